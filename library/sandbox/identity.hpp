// Who a sandboxed plugin's process is and what it inherits: the uid and gid it runs as on a root host, and
// the environment it starts with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runners/runner.hpp"

namespace xcore::inline v1::sandbox {

struct Identity {
  std::uint32_t uid, gid;
};

// The named user, else nobody (said in the plugin's log). Never root.
Result<Identity> sandbox_identity(const std::string& user, std::optional<std::uint32_t> uid, PluginServices& services);

// The host's own environment (which may hold keys and tokens) stays out; only locale, PATH, sanitizer
// settings and the sandbox switch pass, plus the plugin's folders (HOME, TMPDIR, XCORE_PLUGIN_DATA).
std::vector<std::string> sandbox_environment(const std::filesystem::path& data_dir);

}  // namespace xcore::inline v1::sandbox
