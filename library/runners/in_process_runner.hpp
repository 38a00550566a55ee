#pragma once

#include <filesystem>
#include <memory>

#include <xcore/manifest.hpp>

#include "runners/runner.hpp"

namespace xcore::inline v1 {

class PluginModule;

// An instance of an SDK plugin in the host process (trusted plugins), created on `module` (shared with
// the binary's other instances, see plugin_module.hpp); the manifest must agree with the binary's tag.
Result<std::unique_ptr<Runner>> open_in_process(const PluginManifest& manifest, std::shared_ptr<PluginModule> module,
                                                PluginServices& services);
// The same over a binary mapped as it is, not cached (the sandbox's child, which runs one plugin).
Result<std::unique_ptr<Runner>> open_in_process(const PluginManifest& manifest, const std::filesystem::path& binary,
                                                PluginServices& services);

}  // namespace xcore::inline v1
