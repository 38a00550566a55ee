// What a sandboxed plugin's process may do: the host writes it, the child (library/plugin-host) enforces it
// before any plugin code is loaded.
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
  std::optional<std::uint64_t> data_bytes;       // RLIMIT_DATA: the default where no cgroup counts memory (off under sanitizers)
  std::optional<std::uint64_t> cpu_seconds;      // RLIMIT_CPU
  std::optional<std::uint64_t> open_files;       // RLIMIT_NOFILE
  std::optional<std::uint64_t> file_size_bytes;  // RLIMIT_FSIZE
  std::optional<std::uint64_t> processes;        // RLIMIT_NPROC (per user: meaningful with a dedicated uid)
  bool network = false;                          // allow AF_INET/AF_INET6 sockets (and keep the host's network namespace)
  bool seccomp = true;
  bool namespaces = true;                        // pid, ipc, uts, mount, net (unless network), user (when not root)
  bool landlock = true;
  bool filesystem_view = true;                   // a root of only the system folders and the grants (with namespaces)
  // Set by a host running as root: the plugin runs as this user, never as root.
  std::optional<std::uint32_t> uid, gid;
  // The plugin's own folder: its working directory, HOME and TMPDIR, and the only place it may write
  // besides what the manifest grants.
  std::string data_dir;
  // Read-only besides the system folders: the plugin's folder, its binary, and the manifest's
  // `fs.read:<path>` grants. Writable: the manifest's `fs.write:<path>` grants.
  std::vector<std::string> read_paths, write_paths;
  // Cgroup folders the helper joins before anything else runs (created and limited by the host).
  std::vector<std::string> cgroups;

  static IsolationPolicy from_manifest(const PluginManifest& m);
  json::object to_json() const;
  static Result<IsolationPolicy> from_json_text(std::string_view text);
};

}  // namespace xcore::inline v1::sandbox
