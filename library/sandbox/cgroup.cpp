#include "sandbox/cgroup.hpp"

#include "core/split.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace xcore::inline v1::sandbox {

namespace {

constexpr const char* kControllers[] = {"memory", "pids", "cpu"};


std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

bool write_text(const std::string& path, std::string_view text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// "key value" lines, as in memory.events or memory.oom_control.
std::uint64_t keyed_value(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

// What this process may use, found once: the cgroup folder we are in, per controller.
struct Probe {
  int version = 0;                           // 2, 1, or 0 when there is nothing usable
  std::map<std::string, std::string> base;  // controller -> our own cgroup's folder
  std::string reason;                        // why there is nothing usable
  std::string enable;                        // v2: "+memory +pids +cpu", as cgroup.subtree_control takes it
};

// Removes the folders of hosts that are gone (a crashed host cannot clean up after itself).
void remove_stale(const std::string& base) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(base, ec)) {
    auto name = entry.path().filename().string();
    if (!name.starts_with("xcore-") || !entry.is_directory(ec)) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.c_str() + 6));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    for (const auto& leaf : std::filesystem::directory_iterator(entry.path(), ec))
      if (leaf.is_directory(ec)) ::rmdir(leaf.path().c_str());
    ::rmdir(entry.path().c_str());
  }
}

Probe run_probe() {
  Probe p;
  std::string unified;
  std::map<std::string, std::string> v1_mount;
  {
    std::ifstream mi("/proc/self/mountinfo");
    for (std::string line; std::getline(mi, line);) {
      auto dash = line.find(" - ");
      if (dash == std::string::npos) continue;
      const std::string_view whole(line);
      auto left = split(whole.substr(0, dash), ' ');
      auto right = split(whole.substr(dash + 3), ' ');
      if (left.size() < 5 || right.size() < 3) continue;
      if (right[0] == "cgroup2") unified = std::string(left[4]);
      if (right[0] == "cgroup")
        for (const auto& opt : split(right[2], ','))
          for (const char* c : kControllers)
            if (opt == c) v1_mount[c] = std::string(left[4]);
    }
  }
  std::string v2_path;
  std::map<std::string, std::string> v1_path;
  {
    std::ifstream cg("/proc/self/cgroup");
    for (std::string line; std::getline(cg, line);) {
      auto f = split(line, ':');
      if (f.size() < 3) continue;
      auto path = line.substr(f[0].size() + f[1].size() + 2);
      if (f[0] == "0" && f[1].empty()) v2_path = path;
      for (const auto& c : split(f[1], ',')) v1_path[std::string(c)] = path;
    }
  }
  if (!unified.empty()) {
    auto own = unified + (v2_path == "/" ? "" : v2_path);
    const auto controllers = read_text(own + "/cgroup.controllers");
    for (const char* c : kControllers)
      for (auto a : split(controllers, ' ')) {
        while (!a.empty() && a.back() == '\n') a.remove_suffix(1);
        if (a == c) p.base[c] = own;
      }
    if (!p.base.empty() && ::access(own.c_str(), W_OK) == 0) {
      // Controllers are enabled on the way down, and a cgroup that enables them may hold no process
      // ("no internal processes"): in a delegated subtree (systemd's Delegate=yes) this process is in the
      // delegated cgroup itself, so it first moves into a leaf of it, as systemd asks delegates to do.
      std::string& enable = p.enable;
      for (const auto& [c, dir] : p.base) enable += (enable.empty() ? "+" : " +") + c;
      if (!write_text(own + "/cgroup.subtree_control", enable) && errno == EBUSY) {
        const auto leaf = own + "/xcore-host";
        if ((::mkdir(leaf.c_str(), 0755) == 0 || errno == EEXIST) && write_text(leaf + "/cgroup.procs", std::to_string(::getpid())))
          (void)write_text(own + "/cgroup.subtree_control", enable);
      }
      p.version = 2;
      remove_stale(own);
      return p;
    }
    p.base.clear();
  }
  for (const char* c : kControllers) {
    auto m = v1_mount.find(c);
    auto path = v1_path.find(c);
    if (m == v1_mount.end() || path == v1_path.end()) continue;
    auto own = m->second + (path->second == "/" ? "" : path->second);
    if (::access(own.c_str(), W_OK) == 0) p.base[c] = own;
  }
  if (!p.base.empty()) {
    p.version = 1;
    for (const auto& [c, dir] : p.base) remove_stale(dir);
    return p;
  }
  p.reason = v1_mount.empty() && unified.empty() ? "no cgroup file system is mounted"
             : ::geteuid() != 0                    ? "the cgroups this process is in are not writable by it (cgroup v1 needs root; v2 needs a delegated subtree)"
                                                   : "no memory, pids or cpu controller is writable here";
  return p;
}

const Probe& probe() {
  static const Probe p = run_probe();
  return p;
}

std::atomic<std::uint64_t> counter{0};

}  // namespace

Result<std::shared_ptr<Cgroup>> Cgroup::create(std::string_view name, const CgroupLimits& limits) {
  const Probe& p = probe();
  if (p.version == 0) return Error{ErrorCode::unavailable, fmt::format("cgroups are not available: {}", p.reason)};
  std::shared_ptr<Cgroup> g(new Cgroup());
  g->version_ = p.version;
  g->memory_limit_ = limits.memory_bytes;
  const auto leaf_name = fmt::format("{}-{}", name, counter.fetch_add(1));
  const auto parent_name = fmt::format("xcore-{}", ::getpid());
  auto make = [&](const std::string& base, const std::string& controller) -> Result<std::string> {
    auto parent = base + "/" + parent_name;
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
      return Error{ErrorCode::unavailable, fmt::format("cannot create cgroup {}: {}", parent, std::strerror(errno))};
    if (std::find(g->parents_.begin(), g->parents_.end(), parent) == g->parents_.end()) g->parents_.push_back(parent);
    if (p.version == 2) {
      // Enabled in our own cgroup by the probe; here in our folder.
      if (!write_text(parent + "/cgroup.subtree_control", p.enable))
        return Error{ErrorCode::unavailable, fmt::format("cannot enable the {} controllers below {}: {}", p.enable, base, std::strerror(errno))};
    }
    auto leaf = parent + "/" + leaf_name;
    if (::mkdir(leaf.c_str(), 0755) != 0)
      return Error{ErrorCode::unavailable, fmt::format("cannot create cgroup {} ({}): {}", leaf, controller, std::strerror(errno))};
    return leaf;
  };
  if (p.version == 2) {
    XCORE_ASSIGN_OR_RETURN(auto leaf, make(p.base.begin()->second, "v2"));
    g->dirs_.push_back(leaf);
    for (const auto& [c, dir] : p.base) g->by_controller_.push_back({c, leaf});
  } else {
    for (const auto& [c, dir] : p.base) {
      // On v1 every controller is a separate hierarchy, and joining each costs the helper a migration
      // (milliseconds: the kernel waits for an RCU grace period): only those with a limit to enforce.
      const bool wanted = c == "pids" || (c == "memory" && limits.memory_bytes) || (c == "cpu" && limits.cpu_percent);
      if (!wanted) continue;
      XCORE_ASSIGN_OR_RETURN(auto leaf, make(dir, c));
      g->dirs_.push_back(leaf);
      g->by_controller_.push_back({c, leaf});
    }
  }
  auto set = [&](std::string_view controller, std::string_view file, const std::string& value) -> Result<void> {
    if (!g->has(controller)) return ok();
    auto path = g->file(controller, file);
    if (!write_text(path, value)) return Error{ErrorCode::unavailable, fmt::format("cannot set {} to {}: {}", path, value, std::strerror(errno))};
    return ok();
  };
  if (limits.memory_bytes) {
    auto bytes = std::to_string(*limits.memory_bytes);
    if (p.version == 2) {
      XCORE_TRY(set("memory", "memory.max", bytes));
      if (g->has("memory") && ::access(g->file("memory", "memory.swap.max").c_str(), F_OK) == 0) XCORE_TRY(set("memory", "memory.swap.max", "0"));
    } else {
      XCORE_TRY(set("memory", "memory.limit_in_bytes", bytes));
      // Memory and swap together, when the kernel accounts swap: no escape into swap.
      if (g->has("memory") && ::access(g->file("memory", "memory.memsw.limit_in_bytes").c_str(), F_OK) == 0)
        XCORE_TRY(set("memory", "memory.memsw.limit_in_bytes", bytes));
    }
  }
  if (limits.pids) XCORE_TRY(set("pids", "pids.max", std::to_string(*limits.pids)));
  if (limits.cpu_percent) {
    const std::uint64_t period = 100000, quota = *limits.cpu_percent * 1000;
    if (p.version == 2) {
      XCORE_TRY(set("cpu", "cpu.max", fmt::format("{} {}", quota, period)));
    } else {
      XCORE_TRY(set("cpu", "cpu.cfs_period_us", std::to_string(period)));
      XCORE_TRY(set("cpu", "cpu.cfs_quota_us", std::to_string(quota)));
    }
  }
  for (const auto& d : g->by_controller_) g->mechanisms_.push_back(fmt::format("cgroup:v{}:{}", p.version, d.controller));
  if (p.version == 2 && ::access(g->file(g->by_controller_.front().controller, "cgroup.kill").c_str(), F_OK) == 0)
    g->mechanisms_.push_back("cgroup:v2:kill");
  return g;
}

Cgroup::~Cgroup() {
  kill_all();
  for (const auto& d : dirs_) {
    // The kernel may take a moment to let go of the last member.
    for (int i = 0; i < 200 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (const auto& p : parents_) ::rmdir(p.c_str());  // fails while other plugins still have theirs: fine
}

bool Cgroup::has(std::string_view controller) const {
  for (const auto& d : by_controller_)
    if (d.controller == controller) return true;
  return false;
}

std::string Cgroup::file(std::string_view controller, std::string_view name) const {
  for (const auto& d : by_controller_)
    if (d.controller == controller) return fmt::format("{}/{}", d.path, name);
  return {};
}

void Cgroup::kill_all(pid_t except) const {
  if (dirs_.empty()) return;
  const auto procs = dirs_.front() + "/cgroup.procs";
  if (version_ == 2 && except == 0) (void)write_text(dirs_.front() + "/cgroup.kill", "1");
  // v1 (and v2 without cgroup.kill): kill each member until none is left; a fork racing us is caught on
  // the next round, and pids.max bounds how many there can be.
  for (int round = 0; round < 500; ++round) {
    std::istringstream in(read_text(procs));
    bool any = false;
    for (pid_t pid; in >> pid;) {
      if (pid == except) continue;
      any = true;
      ::kill(pid, SIGKILL);
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::uint64_t Cgroup::oom_kills() const {
  if (!has("memory")) return 0;
  return keyed_value(read_text(file("memory", version_ == 2 ? "memory.events" : "memory.oom_control")), "oom_kill");
}

void Cgroup::add_stats(json::object& out) const {
  auto number = [&](std::string_view controller, std::string_view name) -> std::optional<std::uint64_t> {
    if (!has(controller)) return std::nullopt;
    auto text = read_text(file(controller, name));
    if (text.empty()) return std::nullopt;
    return std::strtoull(text.c_str(), nullptr, 10);
  };
  if (auto m = number("memory", version_ == 2 ? "memory.current" : "memory.usage_in_bytes")) out["cgroup_memory_bytes"] = *m;
  if (auto n = number("pids", "pids.current")) out["cgroup_pids"] = *n;
  out["oom_kills"] = oom_kills();
}

}  // namespace xcore::inline v1::sandbox
