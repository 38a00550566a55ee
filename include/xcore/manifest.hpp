// The plugin manifest (plugin.yaml or plugin.json beside the binary): read without running plugin code.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xcore/competencies.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/semver.hpp>
#include <xcore/tools.hpp>

namespace xcore::inline v1 {

enum class PluginMode : std::uint8_t { trusted, sandboxed };
std::string_view to_string(PluginMode mode) noexcept;

struct PluginDependency {
  std::string id;
  VersionRange versions;
};

struct PluginLimits {
  std::optional<unsigned> max_concurrency;           // calls running at once; more wait, then fail
  std::optional<std::chrono::milliseconds> timeout;  // default deadline of a call (timeout_ms)
  // Sandboxed plugins only: limits of the plugin's process.
  std::optional<std::uint64_t> memory_mb, cpu_seconds, open_files, file_size_mb, processes;
  std::optional<std::uint64_t> cpu_percent;  // share of one CPU (cgroup quota; 150 = one and a half)
  // Calls (tools and actions) per tenant: at most rate_calls per rate_period, bursts up to rate_calls.
  std::optional<std::uint64_t> rate_calls;
  std::chrono::seconds rate_period{60};
};

// An HTTP route a plugin contributes; a host mounts it under a prefix of its choosing (per plugin) and
// answers it with the plugin's action (match_route finds which).
struct PluginRoute {
  std::string method;  // GET, POST, PUT, PATCH or DELETE
  std::string path;    // "/items/{id}": literal segments and {name} parameters
  std::string action;
  // The least role that may call it, in the host's terms ([a-z][a-z0-9_-]{0,31}; which names exist is
  // the host's to say, through ManagerOptions::route_roles). Empty: the host's default.
  std::string role;
};

// {"method","path","action","role"}: checked as in a manifest; the error names the bad field.
Result<PluginRoute> parse_route(const json::value& v);

// The route of `routes` that answers `method` and `path` (relative to where the host mounts the plugin's
// routes: "/items/42"), with the values of its {name} segments; nullptr when none does. Empty segments
// are ignored ("/items//42/" is "/items/42").
struct RouteMatch {
  const PluginRoute* route = nullptr;
  json::object params;
};
RouteMatch match_route(const std::vector<PluginRoute>& routes, std::string_view method, std::string_view path);

struct PluginManifest {
  std::string id;  // [a-z0-9][a-z0-9_.-]{0,63}
  std::string name;
  Version version;
  std::string description, author, license, homepage;
  std::vector<std::string> tags;
  PluginMode mode = PluginMode::trusted;
  std::string entry;         // the plugin binary, relative to the manifest's folder
  // Or an external MCP server speaking stdio (sandboxed only): argv, extra environment, working folder
  // (relative to the manifest's folder; default: that folder).
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;
  // Or an MCP server reached over Streamable HTTP: its URL, headers sent with every request, and the name of
  // a secret whose value is sent as `Authorization: Bearer` (the manifest must hold `secrets.read:<name>`).
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string bearer_secret;
  VersionRange api_version;  // host ABI versions the plugin accepts; default "^1"
  std::vector<PluginDependency> dependencies;  // "requires"
  // e.g. "tools.call:core.*", "hooks.subscribe:tool.*", "network", "fs.read:/srv/models", "fs.write:out"
  // (fs paths relative to the manifest's folder)
  std::vector<std::string> permissions;
  PluginLimits limits;
  std::optional<json::object> config_schema;
  std::vector<ToolSpec> tools;  // declared tools: the binary must provide each
  std::vector<PluginRoute> routes;
  std::vector<Competency> competencies;  // declared for agents; registered while the plugin is enabled
  // The whole manifest as read, for fields other subsystems own. Immutable and shared by every copy (a
  // manifest is copied per tenant and per generation; its text is read once per process).
  std::shared_ptr<const json::object> raw = std::make_shared<const json::object>();

  std::filesystem::path file;  // where it was read from
  std::filesystem::path dir() const { return file.parent_path(); }
  std::filesystem::path binary() const { return dir() / entry; }
  bool external() const { return !command.empty(); }
  bool remote() const { return !url.empty(); }
  // Top-level config keys whose schema says "x-xcore-privileged": true: they widen what the plugin can
  // reach (a filesystem root, a host to call), so the host decides who may change them.
  std::vector<std::string> privileged_config_keys() const;
  // Top-level config keys whose schema says "x-xcore-grant": "fs.read" or "fs.write" (privileged too): the
  // folder the key names is granted to the plugin as that permission ("fs.write" reads as well), so a
  // sandboxed plugin reaches the folder its config gives it and nothing else. Key, permission prefix.
  std::vector<std::pair<std::string, std::string>> config_grants() const;
};

struct ManifestLoad {
  PluginManifest manifest;
  std::vector<std::string> warnings;  // unknown fields and the like: "plugin.yaml: field 'x': ..."
};

// Reads and checks a manifest. On failure the error message names the file and every bad field with what
// was expected; details holds a JSON array of {"field","message"}.
Result<ManifestLoad> load_manifest(const std::filesystem::path& file);
// The same, shared: a file whose text was read before (by any Manager in the process) gives the same
// immutable parse, so a thousand tenants discovering one plugin folder hold one copy of each manifest.
Result<std::shared_ptr<const ManifestLoad>> load_manifest_shared(const std::filesystem::path& file);
Result<ManifestLoad> parse_manifest(std::string_view text, const std::filesystem::path& file_for_messages);
// Why a manifest may not grant `permission` (unknown, with the closest valid one suggested, or missing its
// argument), or nullopt when it may.
std::optional<std::string> permission_problem(std::string_view permission);

// A YAML or JSON document (JSON when the file name ends in .json), as read for a manifest or a config file;
// a syntax error names the file, line and column.
Result<json::value> parse_document(std::string_view text, const std::filesystem::path& file_for_messages);

// The manifest file in a plugin folder (plugin.yaml, plugin.yml or plugin.json), if any.
std::optional<std::filesystem::path> find_manifest(const std::filesystem::path& dir);

}  // namespace xcore::inline v1
