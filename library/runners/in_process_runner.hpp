#pragma once

#include <filesystem>
#include <memory>

#include <xcore/manifest.hpp>

#include "runners/runner.hpp"

namespace xcore::inline v1 {

// Loads an SDK plugin binary into the host process (trusted plugins). The binary must be a private copy:
// the runner maps it until destroyed.
Result<std::unique_ptr<Runner>> open_in_process(const PluginManifest& manifest, const std::filesystem::path& binary,
                                                PluginServices& services);

}  // namespace xcore::inline v1
