// Runs a plugin in a child process (xcore-plugin-host) and supervises it: deadlines, crashes, restarts.
#pragma once

#include <chrono>
#include <filesystem>
#include <cstdint>
#include <memory>
#include <optional>

#include <xcore/manifest.hpp>

#include "runners/runner.hpp"

namespace xcore::inline v1::sandbox {

struct SandboxOptions {
  std::filesystem::path plugin_host;  // the xcore-plugin-host executable
  std::chrono::milliseconds call_timeout{30000};  // deadline of a call that has none (manifest timeout_ms wins)
  std::chrono::milliseconds start_timeout{10000};
  std::chrono::milliseconds hook_timeout{5000};
  unsigned crash_budget = 3;                       // crashes within crash_window, then the plugin is failed
  std::chrono::seconds crash_window{300};
  std::chrono::milliseconds backoff_base{50};      // first restart delay, doubled per recent crash
  std::chrono::milliseconds backoff_max{5000};
  std::size_t max_message = 16u << 20;             // bytes per JSON-RPC line
  std::filesystem::path data_dir;                  // the plugin's own writable folder (created if missing)
  std::string user = "xcore-sandbox";              // who the plugin runs as when the host is root
  std::optional<std::uint32_t> uid;                // instead of `user`: this uid, and the gid alike
  // Limits where the manifest sets none. Memory: the cgroup's when it has the memory controller, else
  // RLIMIT_DATA (which counts what a process writes, not the address space node or a JIT reserves).
  std::uint64_t default_memory_bytes = 512ull << 20;
  std::uint64_t default_processes = 256;  // processes and threads: the cgroup's pids.max, else RLIMIT_NPROC
  std::uint64_t default_open_files = 1024;
  std::uint64_t stderr_bytes_per_second = 64 * 1024;  // the plugin's stderr that reaches the host's log
  std::uint64_t stderr_burst_bytes = 256 * 1024;
};

// Finds xcore-plugin-host: $XCORE_PLUGIN_HOST if set (it must exist), then beside the code that runs
// (the library's or the executable's folder: <dir>/xcore-plugin-host and <dir>/../libexec/xcore/...,
// so an installed prefix works wherever it is moved), then the configured install location, then the build
// tree. not_found names every path tried.
Result<std::filesystem::path> find_plugin_host();
// The same search from the folders given instead of the running code's (for tests).
Result<std::filesystem::path> find_plugin_host(const std::vector<std::filesystem::path>& anchors, const std::vector<std::filesystem::path>& fixed);

Result<std::unique_ptr<Runner>> open_sandboxed(const PluginManifest& manifest, const std::filesystem::path& binary,
                                               PluginServices& services, const SandboxOptions& options);

}  // namespace xcore::inline v1::sandbox
