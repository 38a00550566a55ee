// What the host sees of a sandboxed plugin's process from outside, in /proc: the mechanisms it reports only
// when it can verify them.
#pragma once

#include <string_view>

#include <sys/types.h>

#include <xcore/json.hpp>

namespace xcore::inline v1::sandbox {

// The plugin's own process: below the launcher (and, with namespaces, below its reaper).
pid_t plugin_process(pid_t launcher);

// Whether a mechanism the child claims is one the host can check (and so counts only when seen).
bool observable(std::string_view mechanism);

// "seccomp", "no_new_privs", "uid:N", "capabilities:none", "namespace:<kind>", "filesystem:view": what
// applies to the plugin's process, read from /proc.
json::array observed_isolation(pid_t launcher);

}  // namespace xcore::inline v1::sandbox
