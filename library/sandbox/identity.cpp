#include "sandbox/identity.hpp"

#include <fmt/format.h>
#include <pwd.h>

#include <string_view>

extern char** environ;

namespace xcore::inline v1::sandbox {

// Who sandboxed plugins run as when the host is root: the named user, else nobody. Never root.
Result<Identity> sandbox_identity(const std::string& user, std::optional<std::uint32_t> uid, PluginServices& services) {
  if (uid) {
    if (*uid == 0) return Error{ErrorCode::permission_denied, "refusing to run a sandboxed plugin as root (uid 0)"};
    return Identity{*uid, *uid};
  }
  auto lookup = [](const char* name) -> std::optional<Identity> {
    passwd pw{}, *found = nullptr;
    char buf[4096];
    if (::getpwnam_r(name, &pw, buf, sizeof(buf), &found) != 0 || !found) return std::nullopt;
    return Identity{found->pw_uid, found->pw_gid};
  };
  auto who = lookup(user.c_str());
  if (!who) {
    who = lookup("nobody");
    if (!who) who = Identity{65534, 65534};
    services.log(LogLevel::warn, fmt::format("no user '{}' on this system: the plugin runs as uid {}", user, who->uid));
  }
  if (who->uid == 0 || who->gid == 0)
    return Error{ErrorCode::permission_denied, fmt::format("refusing to run a sandboxed plugin as root (user '{}')", user)};
  return *who;
}

// The environment of the plugin's process: the host's own (which may hold keys and tokens) stays out;
// only locale, PATH, sanitizer settings and the sandbox switch pass, plus the plugin's folders.
std::vector<std::string> sandbox_environment(const std::filesystem::path& data_dir) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto name = kv.substr(0, kv.find('='));
    if (name == "PATH" || name == "LANG" || name == "TZ" || name == "LD_LIBRARY_PATH" || name == "XCORE_SANDBOX_STRICT" ||
        name.starts_with("LC_") || name.ends_with("SAN_OPTIONS"))
      env.emplace_back(kv);
  }
  if (!data_dir.empty()) {
    env.push_back("HOME=" + data_dir.string());
    env.push_back("TMPDIR=" + (data_dir / "tmp").string());
    env.push_back("XCORE_PLUGIN_DATA=" + data_dir.string());
  }
  return env;
}

}  // namespace xcore::inline v1::sandbox
