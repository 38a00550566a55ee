#include "sandbox/observed_isolation.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace xcore::inline v1::sandbox {

// The plugin's own process: below the launcher (and, with namespaces, below its reaper), the deepest of
// the first-child chain. Whatever the plugin starts inherits what applies to it.
pid_t plugin_process(pid_t launcher) {
  pid_t p = launcher;
  for (int depth = 0; depth < 8; ++depth) {
    std::ifstream kids(fmt::format("/proc/{}/task/{}/children", p, p));
    pid_t child = 0;
    if (!(kids >> child) || child <= 0) break;
    p = child;
  }
  return p;
}

// Mechanisms the host can verify in /proc; a claim of one of these counts only when seen.
bool observable(std::string_view m) {
  return m == "seccomp" || m == "no_new_privs" || m == "filesystem:view" || m.starts_with("uid:") || m.starts_with("namespace:") || m.starts_with("capabilities:");
}

// What applies to the plugin's process, read from outside: the seccomp mode, no_new_privs, its uid, its
// effective and bounding capabilities, and each namespace it does not share with the host.
json::array observed_isolation(pid_t launcher) {
  json::array out;
  const pid_t p = plugin_process(launcher);
  std::ifstream status(fmt::format("/proc/{}/status", p));
  std::string cap_eff, cap_bnd;
  for (std::string line; std::getline(status, line);) {
    auto value = [&](std::size_t n) {
      auto v = line.substr(n);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    };
    if (line.starts_with("Seccomp:") && value(8) == "2") out.emplace_back("seccomp");
    if (line.starts_with("NoNewPrivs:") && value(11) == "1") out.emplace_back("no_new_privs");
    if (line.starts_with("Uid:")) out.emplace_back(fmt::format("uid:{}", std::strtoul(value(4).c_str(), nullptr, 10)));
    if (line.starts_with("CapEff:")) cap_eff = value(7);
    if (line.starts_with("CapBnd:")) cap_bnd = value(7);
  }
  if (!cap_eff.empty() && cap_eff.find_first_not_of('0') == std::string::npos && cap_bnd.find_first_not_of('0') == std::string::npos)
    out.emplace_back("capabilities:none");
  for (const auto& [ns, name] : {std::pair{"pid", "pid"}, std::pair{"net", "net"}, std::pair{"mnt", "mount"}, std::pair{"ipc", "ipc"},
                                 std::pair{"uts", "uts"}, std::pair{"user", "user"}}) {
    std::error_code a, b;
    auto theirs = std::filesystem::read_symlink(fmt::format("/proc/{}/ns/{}", p, ns), a);
    auto ours = std::filesystem::read_symlink(fmt::format("/proc/self/ns/{}", ns), b);
    if (!a && !b && theirs != ours) out.emplace_back(fmt::format("namespace:{}", name));
  }
  // A root of its own: the plugin's "/" is not the host's.
  struct stat theirs{}, ours{};
  if (::stat(fmt::format("/proc/{}/root/", p).c_str(), &theirs) == 0 && ::stat("/", &ours) == 0 &&
      (theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino))
    out.emplace_back("filesystem:view");
  return out;
}

}  // namespace xcore::inline v1::sandbox
