// Enforcement of the isolation policy inside the child, before any plugin code is loaded. Compiled into
// xcore-plugin-host only: libxcore itself never links libseccomp.
#pragma once

#include <string>
#include <vector>

#include <xcore/error.hpp>

#include "sandbox/isolation.hpp"

namespace xcore::inline v1::sandbox {

// Moves the plugin into new namespaces, with a small reaper as pid 1 and the plugin as pid 2. Returns in
// the plugin's process only: the calling process becomes a helper that waits for the reaper and then ends
// the way the plugin ended (same exit code, or the same signal), so the host sees the real cause. Call it
// before anything starts threads.
Result<void> enter_namespaces(const IsolationPolicy& policy);

// Joins the policy's cgroups (the host created them and set their limits). First of all, as the caller.
Result<void> join_cgroups(const IsolationPolicy& policy);

// Applies the policy to the calling process: user, rlimits, no_new_privs, Landlock, seccomp. Returns the mechanisms now in force, e.g. "rlimit:as".
// With XCORE_SANDBOX_STRICT=1 in the environment, a mechanism that cannot be applied is an error.
Result<std::vector<std::string>> apply_in_child(const IsolationPolicy& policy);

// What apply_in_child() applied in this process (for the initialize answer).
const std::vector<std::string>& applied_mechanisms();

}  // namespace xcore::inline v1::sandbox
