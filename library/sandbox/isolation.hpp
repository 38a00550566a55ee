// What a sandboxed plugin's process may do, and the code that enforces it inside the child before any
// plugin code is loaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/manifest.hpp>

namespace xcore::inline v1::sandbox {

struct IsolationPolicy {
  std::optional<std::uint64_t> memory_bytes;     // RLIMIT_AS (off under sanitizers)
  std::optional<std::uint64_t> cpu_seconds;      // RLIMIT_CPU
  std::optional<std::uint64_t> open_files;       // RLIMIT_NOFILE
  std::optional<std::uint64_t> file_size_bytes;  // RLIMIT_FSIZE
  std::optional<std::uint64_t> processes;        // RLIMIT_NPROC (per user: meaningful with a dedicated uid)
  bool network = false;                          // allow AF_INET/AF_INET6 sockets (and keep the host's network namespace)
  bool seccomp = true;
  bool namespaces = true;                        // pid, ipc, uts, mount, net (unless network), user (when not root)

  static IsolationPolicy from_manifest(const PluginManifest& m);
  json::object to_json() const;
  static Result<IsolationPolicy> from_json_text(std::string_view text);
};

// Moves the plugin into new namespaces, with a small reaper as pid 1 and the plugin as pid 2. Returns in
// the plugin's process only: the calling process becomes a helper that waits for the reaper and then ends
// the way the plugin ended (same exit code, or the same signal), so the host sees the real cause. Call it
// before anything starts threads.
Result<void> enter_namespaces(const IsolationPolicy& policy);

// Applies the policy to the calling process. Returns the mechanisms now in force, e.g. "rlimit:as".
// With XCORE_SANDBOX_STRICT=1 in the environment, a mechanism that cannot be applied is an error.
Result<std::vector<std::string>> apply_in_child(const IsolationPolicy& policy);

// What apply_in_child() applied in this process (for the initialize answer).
const std::vector<std::string>& applied_mechanisms();

}  // namespace xcore::inline v1::sandbox
