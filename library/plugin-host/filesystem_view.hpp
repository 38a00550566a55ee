// The plugin's own root, built from nothing as bubblewrap builds one: a tmpfs holding read-only binds of
// the system folders and of what is granted, writable binds of the data folder and write grants, and
// private /tmp, /run, /dev/shm, a minimal /dev and the pid namespace's /proc. Compiled into
// xcore-plugin-host only. What is not granted does not exist for the plugin: the host's files, its other
// plugins' folders, and the sockets that live in the host's /tmp and /run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xcore/error.hpp>

namespace xcore::inline v1::sandbox {

struct ViewRules {
  std::vector<std::string> read;   // absolute paths, bound read-only at the same place
  std::vector<std::string> write;  // absolute paths, bound writable at the same place
  bool network = false;            // also bind /etc/resolv.conf's target where it points outside /etc
  std::uint64_t tmp_bytes = 64ULL << 20;  // each of /tmp and /dev/shm (tmpfs pages count in the memory cgroup)
};

// Call in a private mount namespace (propagation already private), before the plugin's user is taken.
// Returns the mechanisms in force ("filesystem:view", "proc:private"). An error means the process is as it
// was; a failure past the change of root cannot be undone, and ends the process with the reason on stderr.
Result<std::vector<std::string>> enter_filesystem_view(const ViewRules& rules);

}  // namespace xcore::inline v1::sandbox
