// Control groups for sandboxed plugins: a memory, process-count and CPU budget that covers every process a
// plugin starts, and a way to end all of them at once. Created by the host; the helper joins them before
// anything else runs. cgroup v2 (cgroup.kill, memory.max, ...) where its controllers are available to us,
// else v1 per controller (this needs root).
#pragma once

#include <cstdint>
#include <sys/types.h>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1::sandbox {

struct CgroupLimits {
  std::optional<std::uint64_t> memory_bytes;
  std::optional<std::uint64_t> pids;
  std::optional<std::uint64_t> cpu_percent;  // 100 = one CPU
};

class Cgroup {
 public:
  // One cgroup per plugin (one folder per controller on v1), limited as asked. The error says why there
  // are none here (e.g. "cgroup v1 needs root").
  static Result<std::shared_ptr<Cgroup>> create(std::string_view name, const CgroupLimits& limits);
  ~Cgroup();  // kills what is left and removes the folders
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // The folders the plugin's helper joins.
  const std::vector<std::string>& dirs() const { return dirs_; }
  // What is in force, e.g. "cgroup:v1:memory", "cgroup:v2:pids".
  const std::vector<std::string>& mechanisms() const { return mechanisms_; }
  bool has(std::string_view controller) const;
  // Ends every process in the group (cgroup.kill on v2; SIGKILL to each member on v1) and waits until it
  // is empty (bounded). `except`: a member to spare (the helper, which should reap the others itself).
  void kill_all(pid_t except = 0) const;
  // How many times the kernel's OOM killer struck inside the group.
  std::uint64_t oom_kills() const;
  // The memory limit asked for (bytes), for exit reasons.
  std::optional<std::uint64_t> memory_limit() const { return memory_limit_; }
  // Current memory and process count: "cgroup_memory_bytes", "cgroup_pids".
  void add_stats(json::object& out) const;

 private:
  Cgroup() = default;
  struct Dir {
    std::string controller, path;
  };
  std::string file(std::string_view controller, std::string_view name) const;
  int version_ = 0;
  std::vector<Dir> by_controller_;
  std::vector<std::string> dirs_, mechanisms_;
  std::vector<std::string> parents_;  // the host's xcore-<pid> folders, removed when empty
  std::optional<std::uint64_t> memory_limit_;
};

}  // namespace xcore::inline v1::sandbox
