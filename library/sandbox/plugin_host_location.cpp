// Where xcore-plugin-host is: beside the running code first, so that an installed prefix can be moved.
#include "sandbox/sandbox_runner.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace xcore::inline v1::sandbox {

Result<std::filesystem::path> find_plugin_host(const std::vector<std::filesystem::path>& anchors, const std::vector<std::filesystem::path>& fixed) {
  if (const char* env = std::getenv("XCORE_PLUGIN_HOST"); env && *env) {
    if (::access(env, X_OK) == 0) return std::filesystem::path(env);
    return Error{ErrorCode::not_found, fmt::format("XCORE_PLUGIN_HOST names {}, which is not an executable file", env)};
  }
  std::vector<std::filesystem::path> tried;
  auto consider = [&](const std::filesystem::path& p) {
    if (std::find(tried.begin(), tried.end(), p) == tried.end()) tried.push_back(p);
  };
  for (const auto& dir : anchors) {
    consider(dir / "xcore-plugin-host");
    consider((dir / ".." / "libexec" / "xcore" / "xcore-plugin-host").lexically_normal());
  }
  for (const auto& p : fixed) consider(p);
  for (const auto& p : tried)
    if (::access(p.c_str(), X_OK) == 0) return p;
  std::string list;
  for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p.string();
  return Error{ErrorCode::not_found,
               fmt::format("cannot find xcore-plugin-host, which runs sandboxed plugins; tried {}. Set XCORE_PLUGIN_HOST (or ManagerOptions::plugin_host) "
                           "to its path",
                           list.empty() ? std::string("nothing") : list)};
}

Result<std::filesystem::path> find_plugin_host() {
  std::vector<std::filesystem::path> anchors, fixed;
  // The folder of the code running this (libxcore.so, or the executable it is linked into), then the
  // executable's.
  if (Dl_info info{}; ::dladdr(reinterpret_cast<void*>(static_cast<Result<std::filesystem::path> (*)()>(&find_plugin_host)), &info) && info.dli_fname) {
    std::error_code ec;
    auto self = std::filesystem::canonical(info.dli_fname, ec);
    if (!ec) anchors.push_back(self.parent_path());
  }
  std::error_code ec;
  if (auto exe = std::filesystem::read_symlink("/proc/self/exe", ec); !ec) anchors.push_back(exe.parent_path());
#ifdef XCORE_INSTALLED_PLUGIN_HOST
  fixed.emplace_back(XCORE_INSTALLED_PLUGIN_HOST);
#endif
#ifdef XCORE_BUILD_PLUGIN_HOST
  fixed.emplace_back(XCORE_BUILD_PLUGIN_HOST);
#endif
  return find_plugin_host(anchors, fixed);
}

}  // namespace xcore::inline v1::sandbox
