// xcore::Manager: the plugin catalogue and lifecycle, and the front door to tools, actions and hooks.
//
// States: discovered -> loaded -> enabled <-> disabled -> unloaded, plus failed (with the last error).
// Loading is atomic: a plugin that fails half-way leaves no tool, hook or subscription behind. Disabling
// makes its tools and hooks stop answering at once. Reload swaps in a new generation only after it
// initialised, drains the old one's in-flight calls, then unloads it; a failed reload keeps the old one.
// Thread-safe. Calls run concurrently. Lifecycle operations are serialized per plugin: one waits only for
// operations under way on the plugins it touches (the plugin, the dependencies it loads, the dependents a
// cascade reaches), so a plugin stuck in on_load holds up nothing else. A lifecycle callback or hook handler
// may call back into the Manager; events (plugin.loaded...) are emitted after the operation let go.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/hooks.hpp>
#include <xcore/json.hpp>
#include <xcore/log.hpp>
#include <xcore/manifest.hpp>
#include <xcore/tools.hpp>

namespace xcore::inline v1 {

enum class PluginState : std::uint8_t { discovered, loaded, enabled, disabled, unloaded, failed };
std::string_view to_string(PluginState s) noexcept;

struct PluginStats {
  std::uint64_t calls = 0;   // tool calls and actions that reached the plugin (tool calls since it was loaded)
  std::uint64_t errors = 0;  // failed calls and tool results marked isError
  std::uint64_t in_flight = 0;
  double total_seconds = 0;
  double max_seconds = 0;
  std::uint64_t generation = 0;  // 1 after the first load, +1 per reload
  std::uint64_t reloads = 0;
};

struct PluginInfo {
  PluginManifest manifest;
  PluginState state = PluginState::discovered;
  std::optional<Error> last_error;
  std::vector<std::string> warnings;   // from the manifest
  json::object config;                 // as set (defaults not applied)
  std::vector<std::string> dependents; // loaded plugins that require this one
  PluginStats stats;
  // How the loaded plugin runs: {"kind":"in_process"} or {"kind":"sandbox","pid","restarts","crashes",
  // "last_exit","isolation":[...]}; empty when not loaded.
  json::object runner;
  // HTTP routes: the manifest's, then those the loaded plugin registered at run time.
  std::vector<PluginRoute> routes;
};

struct DiscoveryReport {
  std::vector<std::string> found;     // ids discovered or refreshed
  std::vector<Error> problems;        // broken manifests, duplicate ids: each names the file
  std::vector<std::string> warnings;
};

// What a host wants of one plugin: registered (a record exists), enabled or not, with which config. A
// host keeps these (the reference server: per tenant, in SQLite); Manager::restore() applies them at start
// and every lifecycle operation keeps them up to date, for the plugin asked and for every plugin it
// reached (dependencies enabled first, dependents a cascade disabled), so what runs after a restart is
// what ran before. A plugin that fails keeps its registration: it is what the host asked for.
struct Registration {
  std::string plugin;
  bool enabled = false;
  json::object config;  // as given to set_config (defaults are the manifest's)
  std::string version;  // the version last loaded, for the host to show
};

// Where a host keeps registrations (like JobStore for the scheduler). Each call may fail (a database
// that does not answer): the operation that needed it then reports that error.
class RegistrationStore {
 public:
  virtual ~RegistrationStore() = default;
  virtual Result<std::vector<Registration>> list() = 0;
  virtual Result<std::optional<Registration>> find(std::string_view plugin) = 0;
  virtual Result<void> put(const Registration& r) = 0;  // insert or replace
};

// What one operation changed: a plugin it reached (the one asked for, a dependency it loaded or enabled,
// a dependent a cascade disabled) and the state it left it in, in the order they changed.
struct PluginChange {
  std::string plugin;
  PluginState state;
};

struct ManagerOptions {
  std::vector<std::filesystem::path> plugin_dirs;  // each holds one folder per plugin
  // Where binaries are copied before loading (so a rebuild never touches a loaded file).
  // Default: a fresh folder under the system temp dir, removed with the Manager.
  std::filesystem::path shadow_dir;
  LogSink log;  // default: discard
  // Initial configs by plugin id; set_config() changes them later.
  std::map<std::string, json::object> configs;
  // How long unload/reload wait for in-flight calls before giving up on unmapping the old code.
  std::chrono::milliseconds drain_timeout{30000};

  // Sandboxed plugins. plugin_host: the xcore-plugin-host executable (default: $XCORE_PLUGIN_HOST, the
  // install location, then the build tree).
  std::filesystem::path plugin_host;
  std::chrono::milliseconds sandbox_call_timeout{30000};  // deadline of calls that carry none
  // Calls a sandboxed plugin runs at once when its manifest sets no limits.max_concurrency; as many more
  // may wait, and a call beyond those is refused at once (resource_exhausted), so one slow plugin never
  // holds more than its share of the caller's threads. 0: no limit. Trusted plugins have none by default.
  unsigned sandboxed_max_concurrency = 8;
  unsigned crash_budget = 3;                              // crashes within crash_window, then `failed`
  std::chrono::seconds crash_window{300};
  std::chrono::milliseconds restart_backoff{50};          // first restart delay, doubled per recent crash
  // Each sandboxed plugin gets <data_dir>/<id>: its working folder, HOME and TMPDIR, and the only place it
  // may write unless its manifest grants more. Default: <shadow_dir>/data.
  std::filesystem::path data_dir;
  // A host running as root runs sandboxed plugins as this user (default "xcore-sandbox", created by
  // scripts/install-deps.sh), or as "nobody" when it does not exist. Never as root.
  std::string sandbox_user = "xcore-sandbox";
  // Instead of sandbox_user: this uid (and the gid alike), which needs no account. A host serving several
  // tenants gives each its own, so one tenant's plugins cannot read another's files.
  std::optional<std::uint32_t> sandbox_uid;
  // Where plugins' secrets come from (a host's sealed store, say, per tenant). A plugin reads
  // only names its manifest grants ("secrets.read:<name>", '*' allowed). Default: no secrets.
  std::function<Result<std::string>(std::string_view plugin, std::string_view name)> secrets;
  // The host's policy over plugins: called with each manifest before its plugin's code runs (at load and
  // at every reload). An error refuses the plugin (the load fails with it: name the grant and the rule);
  // the manifest may also be tightened (fewer grants, sandboxed mode, lower limits). Default: admit all.
  std::function<Result<void>(PluginManifest& manifest)> admit;
  // Where a `url:` plugin (a remote MCP server) may connect: called with its manifest and the URL's host
  // before it connects. Returns the address to connect to ("" resolves as usual): a host that checked the
  // addresses the name resolves to pins one, so a second lookup cannot answer otherwise. An error refuses
  // the plugin. Default: "" for all.
  std::function<Result<std::string>(const PluginManifest& manifest, std::string_view host)> remote_address;
  // The role names a plugin's HTTP routes may require (the host's own, e.g. viewer, operator, admin): a
  // route naming another is refused when the plugin loads or registers it. Empty: any name.
  std::vector<std::string> route_roles;
  // Where the registrations live (see Registration). Default: none; nothing is remembered.
  std::shared_ptr<RegistrationStore> registrations;
  // The time rate limits are measured by (tests drive it; default: steady_clock::now).
  std::function<std::chrono::steady_clock::time_point()> clock;
};

struct UnloadOptions {
  bool cascade = false;  // also unload (or disable) the plugins that depend on this one, first
};

class Manager {
 public:
  explicit Manager(ManagerOptions options = {});
  ~Manager();  // unloads every plugin, dependents first
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Reads manifests under plugin_dirs; runs no plugin code. Plugins already loaded keep their manifest
  // until reload().
  DiscoveryReport discover();
  // Adds one plugin folder explicitly (outside plugin_dirs).
  Result<std::string> add(const std::filesystem::path& plugin_dir);

  // Loads the plugin, its dependencies first. ABI and manifest/binary agreement are checked before any
  // plugin code runs. Leaves the plugin in `loaded`.
  Result<void> load(std::string_view id);
  // Loads (if needed) and enables; dependencies are enabled first.
  Result<void> enable(std::string_view id);
  Result<void> disable(std::string_view id, UnloadOptions options = {});
  Result<void> unload(std::string_view id, UnloadOptions options = {});
  Result<void> reload(std::string_view id);
  // Every discovered plugin, in dependency order; returns the first error after trying them all.
  Result<void> load_all(bool enable = true);

  Result<void> set_config(std::string_view id, json::object config);

  // Brings one plugin to what `desired` asks (its config, enabled or not; `version` is ignored) and says
  // what changed on the way, cascades included; the registration is recorded like any operation's.
  // Disabling reaches the plugin's dependents only with options.cascade.
  Result<std::vector<PluginChange>> apply(const Registration& desired, UnloadOptions options = {});

  // Applies the stored registrations (ManagerOptions::registrations): their configs, then enables those
  // marked enabled, in dependency order. What could not be applied (a plugin no longer in the folders, one
  // that fails to enable) is returned; an error only when the store itself fails.
  Result<std::vector<Error>> restore();

  // A plugin action. The principal must hold `actions.call:<plugin>/<action>` (CallContext::host() does).
  Result<json::value> call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                  const CallContext& ctx);
  // MCP's resources, prompts and completions of the enabled plugins, as one MCP server's (method and
  // params as MCP names them: "resources/list", "resources/read", "prompts/get", "completion/complete", ...).
  // A list joins the plugins' lists; a request naming a resource, prompt or ref goes to the plugin that
  // has it. The principal sees a plugin's resources with `resources.read:<plugin>`, its prompts with
  // `prompts.get:<plugin>`.
  Result<json::value> serve_mcp(std::string_view method, const json::value& params, const CallContext& ctx);
  // Shorthand for tools().invoke().
  Result<ToolResult> call_tool(std::string_view name, const json::value& arguments, const CallContext& ctx);
  Result<json::value> health(std::string_view id);

  std::optional<PluginInfo> info(std::string_view id) const;
  std::vector<PluginInfo> list() const;

  // Watch plugin folders (inotify) and reload a plugin when its binary or manifest changes. For
  // development; off by default.
  Result<void> watch(bool on);

  // Where plugins' run-time schedules go (a Scheduler built over this Manager installs itself): add(plugin,
  // job JSON) and remove(plugin, name). Without one, plugins are told scheduling is unavailable.
  struct JobSink {
    std::function<Result<void>(std::string_view plugin, const json::value& job)> add;
    std::function<Result<void>(std::string_view plugin, std::string_view name)> remove;
  };
  void set_job_sink(std::shared_ptr<const JobSink> sink);

  HookBus& hooks() noexcept;
  ToolRegistry& tools() noexcept;
  // The enabled plugins' competencies (manifest `competencies:`), and any the host adds.
  CompetencyRegistry& competencies() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xcore::inline v1
