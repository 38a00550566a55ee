// Landlock: the kernel's unprivileged file-system (and TCP, and signal) confinement. Compiled into
// xcore-plugin-host only.
#pragma once

#include <string>
#include <vector>

#include <xcore/error.hpp>

namespace xcore::inline v1::sandbox {

struct LandlockRules {
  std::vector<std::string> read;   // read and execute beneath these paths
  std::vector<std::string> write;  // everything beneath these paths
  bool network = false;            // allow TCP bind/connect (ABI 4+)
};

// The kernel's Landlock ABI version, 0 when Landlock is missing or disabled.
int landlock_abi();

// Restricts the calling process (and what it starts) to the rules. Paths that do not exist are skipped.
// Needs no_new_privs first. Returns the mechanisms applied, e.g. "landlock:fs", "landlock:scope".
Result<std::vector<std::string>> apply_landlock(const LandlockRules& rules);

}  // namespace xcore::inline v1::sandbox
