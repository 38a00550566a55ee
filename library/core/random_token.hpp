// Unguessable tokens from the kernel's generator: ids a caller must not be able to work out from others it saw.
#pragma once

#include <string>

namespace xcore::inline v1 {
// 128 bits as 32 hex digits.
std::string random_token();
}  // namespace xcore::inline v1
