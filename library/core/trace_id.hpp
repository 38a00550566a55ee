#pragma once

#include <string>

namespace xcore::inline v1 {
// 32 hex digits (W3C trace-context size), unique per process and call without a lock.
std::string new_trace_id();
}  // namespace xcore::inline v1
