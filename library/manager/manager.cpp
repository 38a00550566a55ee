#include <xcore/manager.hpp>
#include <xcore/plugin.h>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <semaphore>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include "core/call_metrics.hpp"
#include "core/rate_limiter.hpp"
#include "core/shared_cell.hpp"
#include "core/string_map.hpp"
#include "json-schema/json_schema.hpp"
#include "manager/folder_watcher.hpp"
#include "manager/generation.hpp"
#include "manager/manager_core.hpp"
#include "runners/in_process_runner.hpp"
#include "sandbox/sandbox_runner.hpp"

namespace xcore::inline v1 {

std::string_view to_string(PluginState s) noexcept {
  switch (s) {
    case PluginState::discovered: return "discovered";
    case PluginState::loaded: return "loaded";
    case PluginState::enabled: return "enabled";
    case PluginState::disabled: return "disabled";
    case PluginState::unloaded: return "unloaded";
    case PluginState::failed: return "failed";
  }
  return "?";
}

namespace {

bool is_loaded(PluginState s) { return s == PluginState::loaded || s == PluginState::enabled || s == PluginState::disabled; }

std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

// The manifest's max_concurrency as a semaphore. Swapped whole on reload; a call releases the one it took.
struct ConcurrencyLimit {
  explicit ConcurrencyLimit(unsigned n) : max(n), places(n) {}
  const unsigned max;
  std::counting_semaphore<> places;
};

// Catalogue entry of one plugin. Plain fields are guarded by Impl::catalogue_mutex; `id` and the atomics
// are read on the call path without it.
struct PluginSlot {
  explicit PluginSlot(std::string plugin_id) : id(std::move(plugin_id)) {}
  const std::string id;
  PluginManifest manifest;
  std::vector<std::string> warnings;
  PluginState state = PluginState::discovered;
  std::optional<Error> last_error;
  json::object config;
  std::uint64_t generations = 0;
  std::uint64_t reloads = 0;

  SharedCell<Generation> current;
  std::atomic<bool> enabled{false};
  SharedCell<ConcurrencyLimit> limit;
  SharedCell<RateLimiter> rate;

  void apply_limits(const PluginLimits& l) {
    auto cur = limit.load();
    if (!l.max_concurrency) limit.store(nullptr);
    else if (!cur || cur->max != *l.max_concurrency) limit.store(std::make_shared<ConcurrencyLimit>(*l.max_concurrency));
    auto r = rate.load();
    if (!l.rate_calls) rate.store(nullptr);
    else if (!r || r->rate() != *l.rate_calls || r->period() != l.rate_period) rate.store(std::make_shared<RateLimiter>(*l.rate_calls, l.rate_period));
  }

  CallMetrics actions;  // tool calls are counted by the registry
  std::atomic<std::uint64_t> in_flight{0};
};

using SlotPtr = std::shared_ptr<PluginSlot>;

}  // namespace

struct Manager::Impl final : ManagerCore {
  ManagerOptions options;
  bool own_shadow_dir = false;
  HookBus hook_bus;
  ToolRegistry tool_registry{&hook_bus};

  std::recursive_mutex ops;  // serializes lifecycle operations (recursive: dependencies recurse)
  mutable std::shared_mutex catalogue_mutex;
  StringMap<SlotPtr> catalogue;
  std::atomic<std::uint64_t> shadow_counter{0};

  // Lifecycle events are emitted after the operation let go of `ops`, so a handler may call back in.
  std::mutex events_mutex;
  std::vector<std::pair<std::string, json::object>> pending_events;

  std::unique_ptr<FolderWatcher> watcher;

  explicit Impl(ManagerOptions o) : options(std::move(o)) {
    if (options.shadow_dir.empty()) {
      std::random_device rd;
      options.shadow_dir = std::filesystem::temp_directory_path() / fmt::format("xcore-shadow-{}-{:08x}", ::getpid(), rd());
      own_shadow_dir = true;
    }
    if (options.data_dir.empty()) options.data_dir = options.shadow_dir / "data";
    std::error_code ec;
    std::filesystem::create_directories(options.shadow_dir, ec);
    for (auto [name, desc, historic] : std::initializer_list<std::tuple<const char*, const char*, bool>>{
             {"plugin.discovered", "a plugin's manifest was read", false},
             {"plugin.loaded", "a plugin was loaded (replayed to late subscribers)", true},
             {"plugin.enabled", "a plugin was enabled", false},
             {"plugin.disabled", "a plugin was disabled", false},
             {"plugin.unloaded", "a plugin was unloaded", false},
             {"plugin.reloaded", "a plugin was hot-reloaded", false},
             {"plugin.failed", "a plugin failed to load, enable or reload", false},
             {"hook.error", "a hook handler failed", false}}) {
      HookSpec s;
      s.name = name;
      s.description = desc;
      s.historic = historic;
      (void)hook_bus.define(std::move(s));
    }
  }

  ~Impl() override {
    watcher.reset();
    if (own_shadow_dir) {
      std::error_code ec;
      std::filesystem::remove_all(options.shadow_dir, ec);
    }
  }

  // ---- ManagerCore -----------------------------------------------------------------------------------
  HookBus& bus() override { return hook_bus; }
  ToolRegistry& registry() override { return tool_registry; }
  void log(LogLevel level, std::string_view source, std::string_view message) override {
    if (!options.log) return;
    try {
      options.log(level, source, message);
    } catch (...) {
    }
  }

  // ---- catalogue -------------------------------------------------------------------------------------
  SlotPtr find(std::string_view id) const {
    std::shared_lock lock(catalogue_mutex);
    auto it = catalogue.find(id);
    return it == catalogue.end() ? nullptr : it->second;
  }

  Error no_such_plugin(std::string_view id) const {
    return Error{ErrorCode::not_found, fmt::format("no plugin '{}' has been discovered", id)};
  }

  void set_state(PluginSlot& s, PluginState st, std::optional<Error> err = std::nullopt) {
    std::unique_lock lock(catalogue_mutex);
    s.state = st;
    if (err) s.last_error = std::move(err);
  }

  void queue_event(std::string name, json::object payload) {
    std::lock_guard lock(events_mutex);
    pending_events.emplace_back(std::move(name), std::move(payload));
  }

  void flush_events() {
    std::vector<std::pair<std::string, json::object>> events;
    {
      std::lock_guard lock(events_mutex);
      events.swap(pending_events);
    }
    for (auto& [name, payload] : events) hook_bus.emit(name, payload);
  }

  json::object plugin_event(const PluginSlot& s) const {
    return json::object{{"plugin", s.manifest.id}, {"version", s.manifest.version.to_string()}};
  }

  // Records a failure; the plugin.failed event goes out after the current operation (or `now`).
  Result<void> fail(PluginSlot& s, Error e, bool now = false) {
    log(LogLevel::error, s.id, e.message);
    set_state(s, PluginState::failed, e);
    auto p = plugin_event(s);
    p["code"] = to_string(e.code);
    p["message"] = e.message;
    if (now) hook_bus.emit("plugin.failed", p);
    else queue_event("plugin.failed", std::move(p));
    return e;
  }

  // ---- discovery -------------------------------------------------------------------------------------
  Result<std::string> add_folder(const std::filesystem::path& dir, DiscoveryReport& report) {
    auto file = find_manifest(dir);
    if (!file) return Error{ErrorCode::not_found, fmt::format("{}: no plugin.yaml, plugin.yml or plugin.json", dir.string())};
    auto loaded = load_manifest(*file);
    if (!loaded) return std::move(loaded).error();
    for (auto& w : loaded->warnings) {
      log(LogLevel::warn, "xcore", w);
      report.warnings.push_back(w);
    }
    const auto id = loaded->manifest.id;
    std::unique_lock lock(catalogue_mutex);
    auto it = catalogue.find(id);
    if (it != catalogue.end()) {
      auto& slot = *it->second;
      if (std::filesystem::weakly_canonical(slot.manifest.file) != std::filesystem::weakly_canonical(*file))
        return Error{ErrorCode::already_exists, fmt::format("{}: plugin id '{}' is already provided by {}", file->string(), id,
                                                            slot.manifest.file.string())};
      if (!is_loaded(slot.state)) {  // loaded plugins keep their manifest until reload()
        slot.manifest = std::move(loaded->manifest);
        slot.warnings = std::move(loaded->warnings);
      }
      return id;
    }
    auto slot = std::make_shared<PluginSlot>(id);
    slot->manifest = std::move(loaded->manifest);
    slot->warnings = std::move(loaded->warnings);
    if (auto c = options.configs.find(id); c != options.configs.end()) slot->config = c->second;
    catalogue.emplace(id, slot);
    return id;
  }

  // ---- the call path ---------------------------------------------------------------------------------

  // Enters the slot's current generation. A reload swaps the pointer before closing the old generation,
  // so a failed enter on a generation that is no longer current just retries on the new one.
  Result<GenerationLease> acquire(PluginSlot& slot) {
    for (int attempt = 0; attempt < 16; ++attempt) {
      auto gen = slot.current.load();
      if (!gen) return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is not loaded", slot.id)};
      if (gen->enter()) return GenerationLease(std::move(gen));
      if (slot.current.load() == gen)
        return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is being unloaded", slot.id)};
    }
    return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is reloading too often to serve calls", slot.id)};
  }

  // `timed`: record calls and latency in the plugin's stats. Tool calls pass false: the registry already
  // times them, and info() adds the plugin's tool metrics in (clock reads are not free on a VM).
  template <class T, class F>
  Result<T> with_plugin(PluginSlot& slot, const CallContext& ctx, bool timed, F&& call) {
    if (!slot.enabled.load(std::memory_order_acquire))
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is not enabled", slot.id)};
    if (auto rate = slot.rate.load()) {
      auto wait = rate->take(ctx.tenant, options.clock ? options.clock() : std::chrono::steady_clock::now());
      if (wait > std::chrono::steady_clock::duration::zero()) {
        // Whole seconds, rounded up: what an HTTP Retry-After can say.
        auto seconds = std::chrono::ceil<std::chrono::seconds>(wait).count();
        Error e{ErrorCode::resource_exhausted, fmt::format("plugin '{}' allows {} calls per {} s per tenant; retry in {} s", slot.id, rate->rate(),
                                                          rate->period().count(), seconds)};
        e.details = json::serialize(json::object{{"retry_after", seconds}, {"limit", rate->rate()}, {"period_seconds", rate->period().count()}});
        return e;
      }
    }
    auto limit = slot.limit.load();
    if (limit) {
      // Wait for a free place until the call's deadline (or briefly, without one).
      auto until = ctx.deadline ? std::chrono::steady_clock::now() + (*ctx.deadline - std::chrono::system_clock::now())
                                : std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      if (!limit->places.try_acquire_until(until))
        return Error{ErrorCode::resource_exhausted,
                     fmt::format("plugin '{}' is at its concurrency limit ({} calls)", slot.id, limit->max)};
    }
    struct Release {
      ConcurrencyLimit* l;
      ~Release() {
        if (l) l->places.release();
      }
    } release{limit.get()};
    XCORE_ASSIGN_OR_RETURN(auto lease, acquire(slot));
    slot.in_flight.fetch_add(1, std::memory_order_relaxed);
    auto t0 = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    Result<T> r = [&]() -> Result<T> {
      // A manifest timeout becomes the deadline the plugin sees, unless the caller set an earlier one.
      if (auto t = lease->manifest.limits.timeout) {
        auto d = std::chrono::system_clock::now() + *t;
        if (!ctx.deadline || d < *ctx.deadline) {
          CallContext c = ctx;
          c.deadline = d;
          return call(*lease, c);
        }
      }
      return call(*lease, ctx);
    }();
    if (timed) slot.actions.record(elapsed_ns(t0), !r.ok());
    slot.in_flight.fetch_sub(1, std::memory_order_relaxed);
    return r;
  }

  ToolHandler make_tool_handler(const SlotPtr& slot, const std::string& tool_name) {
    return [this, weak = std::weak_ptr<PluginSlot>(slot), tool_name](const json::value& args, const CallContext& ctx) -> Result<ToolResult> {
      auto s = weak.lock();
      if (!s) return Error{ErrorCode::unavailable, "the plugin is gone"};
      return with_plugin<ToolResult>(*s, ctx, false, [&](Generation& g, const CallContext& c) { return g.runner->call_tool(tool_name, args, c); });
    };
  }

  Result<json::value> call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                  const CallContext& ctx) override {
    auto slot = find(plugin);
    if (!slot) return no_such_plugin(plugin);
    if (ctx.cancel.stop_requested()) return Error{ErrorCode::cancelled, "the call was cancelled"};
    if (ctx.deadline && std::chrono::system_clock::now() >= *ctx.deadline)
      return Error{ErrorCode::timeout, fmt::format("deadline passed before action '{}/{}' started", plugin, action)};
    return with_plugin<json::value>(*slot, ctx, true, [&](Generation& g, const CallContext& c) { return g.runner->handle(action, params, c); });
  }

  // ---- tools of a generation -------------------------------------------------------------------------

  // The binary's tools plus those registered at run time; manifest-declared tools must all be provided
  // and lend the fields the binary left empty.
  Result<std::vector<ToolSpec>> tool_set(Generation& gen) {
    std::vector<ToolSpec> tools;
    {
      std::lock_guard lock(gen.tools_mutex);
      tools = gen.tools;
    }
    for (auto& t : gen.services->runtime_tools()) tools.push_back(std::move(t));
    for (const auto& declared : gen.manifest.tools) {
      auto it = std::find_if(tools.begin(), tools.end(), [&](const auto& t) { return t.name == declared.name; });
      if (it == tools.end())
        return Error{ErrorCode::incompatible, fmt::format("plugin '{}': the manifest declares tool '{}' but the binary does not provide it",
                                                          gen.manifest.id, declared.name)};
      if (it->title.empty()) it->title = declared.title;
      if (it->description.empty()) it->description = declared.description;
      if (it->input_schema.empty()) it->input_schema = declared.input_schema;
      if (!it->output_schema) it->output_schema = declared.output_schema;
      if (it->category.empty()) it->category = declared.category;
      if (it->competencies.empty()) it->competencies = declared.competencies;
      if (it->permissions.empty()) it->permissions = declared.permissions;
      if (it->annotations.empty()) it->annotations = declared.annotations;
    }
    for (auto& t : tools) t.plugin = gen.manifest.id;
    XCORE_TRY(ToolRegistry::check(tools));
    return tools;
  }

  Result<void> publish_tools(const SlotPtr& slot, Generation& gen) {
    XCORE_ASSIGN_OR_RETURN(auto tools, tool_set(gen));
    XCORE_TRY(tool_registry.replace_plugin_tools(slot->id, std::move(tools),
                                                 [&](const ToolSpec& s) { return make_tool_handler(slot, s.name); }));
    tool_registry.set_plugin_enabled(slot->id, slot->enabled.load());
    return ok();
  }

  void refresh_tools(const std::string& plugin, Generation& gen) override {
    // Only the current generation publishes tools. One still being built lists them itself once loaded
    // (and may not even have its runner yet): nothing to do for it.
    auto slot = find(plugin);
    if (!slot || slot->current.load().get() != &gen) return;
    auto listed = gen.runner->list_tools();
    if (!listed) {
      log(LogLevel::warn, plugin, fmt::format("cannot list tools again: {}", listed.error().message));
      return;
    }
    {
      std::lock_guard lock(gen.tools_mutex);
      gen.tools = std::move(*listed);
    }
    if (auto r = tools_changed(plugin, gen); !r) log(LogLevel::warn, plugin, r.error().message);
  }

  SharedCell<const Manager::JobSink> job_sink;
  Result<void> schedule_job(std::string_view plugin, const json::value& job) override {
    auto sink = job_sink.load();
    if (!sink || !sink->add) return Error{ErrorCode::unavailable, "this host runs no scheduler"};
    return sink->add(plugin, job);
  }
  Result<void> unschedule_job(std::string_view plugin, std::string_view name) override {
    auto sink = job_sink.load();
    if (!sink || !sink->remove) return Error{ErrorCode::unavailable, "this host runs no scheduler"};
    return sink->remove(plugin, name);
  }

  Result<std::string> secret(std::string_view plugin, std::string_view name) override {
    if (!options.secrets) return Error{ErrorCode::not_found, fmt::format("no secret '{}': this host keeps no secrets", name)};
    return options.secrets(plugin, name);
  }

  void runner_failed(const std::string& plugin, const Error& why) override {
    auto slot = find(plugin);
    if (!slot) return;
    // Runs on a calling thread, not under `ops`: stop answering and record; unload/reload clean up.
    slot->enabled.store(false, std::memory_order_release);
    tool_registry.set_plugin_enabled(plugin, false);
    if (auto gen = slot->current.load()) gen->hooks_active->store(false);
    (void)fail(*slot, why, /*now=*/true);  // only this event: others belong to the operations that queued them
  }

  Result<void> tools_changed(const std::string& plugin, Generation& gen) override {
    auto slot = find(plugin);
    if (!slot) return ok();
    auto cur = slot->current.load();
    if (cur.get() != &gen) return ok();  // not published yet: load/reload will pick the tools up
    return publish_tools(slot, gen);
  }

  // ---- generations -----------------------------------------------------------------------------------

  Result<json::object> effective_config(const PluginManifest& m, const json::object& config) {
    json::value v = config;
    if (m.config_schema) {
      XCORE_ASSIGN_OR_RETURN(auto schema, JsonSchema::compile(*m.config_schema));
      schema->apply_defaults(v);
      if (auto r = schema->validate(v, "config"); !r)
        return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}': {}", m.id, r.error().message), r.error().details};
    }
    return v.get_object();
  }

  // Builds and initialises a new generation without publishing anything: on failure nothing is left.
  Result<std::shared_ptr<Generation>> start_generation(const SlotPtr& slot, const PluginManifest& m, const json::object& config) {
    static const Version host_abi{XCORE_ABI_MAJOR, XCORE_ABI_MINOR, 0, {}, {}};
    if (!m.api_version.contains(host_abi))
      return Error{ErrorCode::incompatible, fmt::format("plugin '{}' accepts host ABI '{}', this host provides {}", m.id,
                                                        m.api_version.text(), host_abi.to_string())};
    XCORE_ASSIGN_OR_RETURN(auto cfg, effective_config(m, config));

    auto gen = std::make_shared<Generation>();
    gen->manifest = m;
    gen->config = std::move(cfg);
    {
      std::unique_lock lock(catalogue_mutex);
      gen->number = slot->generations + 1;
    }
    std::error_code ec;
    if (!m.external()) {
      if (!std::filesystem::is_regular_file(m.binary(), ec))
        return Error{ErrorCode::not_found, fmt::format("plugin '{}': binary '{}' not found", m.id, m.binary().string())};
      // A private copy: rebuilding the plugin never rewrites mapped code, and each generation is unique.
      gen->shadow = options.shadow_dir / fmt::format("{}-g{}-{}{}", m.id, gen->number, shadow_counter.fetch_add(1), m.binary().extension().string());
      std::filesystem::create_directories(options.shadow_dir, ec);
      if (!std::filesystem::copy_file(m.binary(), gen->shadow, std::filesystem::copy_options::overwrite_existing, ec))
        return Error{ErrorCode::unavailable, fmt::format("plugin '{}': cannot copy binary to {}: {}", m.id, gen->shadow.string(), ec.message())};
    }

    gen->services = std::make_unique<GenerationServices>(*this, m, gen);
    if (m.mode == PluginMode::sandboxed) {
      sandbox::SandboxOptions so;
      so.plugin_host = options.plugin_host.empty() ? sandbox::default_plugin_host() : options.plugin_host;
      so.call_timeout = options.sandbox_call_timeout;
      so.crash_budget = options.crash_budget;
      so.crash_window = options.crash_window;
      so.backoff_base = options.restart_backoff;
      so.data_dir = options.data_dir / m.id;
      so.user = options.sandbox_user;
      XCORE_ASSIGN_OR_RETURN(gen->runner, sandbox::open_sandboxed(m, gen->shadow, *gen->services, so));
    } else {
      XCORE_ASSIGN_OR_RETURN(gen->runner, open_in_process(m, gen->shadow, *gen->services));
    }
    XCORE_TRY(gen->runner->on_load(gen->config));
    auto rest = [&]() -> Result<void> {
      XCORE_ASSIGN_OR_RETURN(auto listed, gen->runner->list_tools());
      {
        std::lock_guard lock(gen->tools_mutex);
        gen->tools = std::move(listed);
      }
      XCORE_TRY(tool_set(*gen));
      return ok();
    }();
    if (!rest) {
      (void)gen->runner->on_unload();
      return std::move(rest).error();
    }
    return gen;
  }

  // Closes a generation that is no longer current: waits for its calls, runs on_unload, frees it.
  void retire(std::shared_ptr<Generation> gen, bool was_enabled) {
    if (!gen) return;
    gen->hooks_active->store(false);
    const auto id = gen->manifest.id;
    if (!gen->close_and_drain(options.drain_timeout)) {
      // Unmapping code that is still running would crash the host: keep it mapped, say so.
      log(LogLevel::error, id, fmt::format("generation {} still has {} calls running after {} ms; its code stays loaded",
                                           gen->number, gen->in_flight(), options.drain_timeout.count()));
      // Never destroyed, not even at exit: its code may still be running.
      static std::mutex leak_mutex;
      static auto* leaked = new std::vector<std::shared_ptr<Generation>>();
      std::lock_guard lock(leak_mutex);
      leaked->push_back(std::move(gen));
      return;
    }
    if (was_enabled)
      if (auto r = gen->runner->on_disable(); !r) log(LogLevel::warn, id, r.error().message);
    if (auto r = gen->runner->on_unload(); !r) log(LogLevel::warn, id, r.error().message);
    gen.reset();
  }

  // ---- lifecycle (callers hold `ops`) ---------------------------------------------------------------

  // A plugin its runner gave up on still holds a generation: loading it again starts from scratch.
  static bool failed_with_generation(PluginSlot& s) { return s.state == PluginState::failed && s.current.load() != nullptr; }

  Result<void> load_locked(std::string_view id, std::vector<std::string>& chain) {
    auto slot = find(id);
    if (!slot) return no_such_plugin(id);
    if (is_loaded(slot->state)) return ok();
    if (failed_with_generation(*slot)) XCORE_TRY(unload_locked(id, true));
    if (std::find(chain.begin(), chain.end(), id) != chain.end()) {
      std::string cycle;
      for (const auto& c : chain) cycle += c + " -> ";
      return fail(*slot, Error{ErrorCode::conflict, fmt::format("dependency cycle: {}{}", cycle, id)});
    }
    const auto m = slot->manifest;
    chain.push_back(m.id);
    for (const auto& dep : m.dependencies) {
      auto d = find(dep.id);
      if (!d) {
        chain.pop_back();
        return fail(*slot, Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' requires '{}' ({}), which was not discovered",
                                                                             m.id, dep.id, dep.versions.text())});
      }
      if (!dep.versions.contains(d->manifest.version)) {
        chain.pop_back();
        return fail(*slot, Error{ErrorCode::incompatible, fmt::format("plugin '{}' requires '{}' {}, but version {} is installed", m.id,
                                                                      dep.id, dep.versions.text(), d->manifest.version.to_string())});
      }
      if (auto r = load_locked(dep.id, chain); !r) {
        chain.pop_back();
        if (r.error().message.starts_with("dependency cycle")) return fail(*slot, r.error());
        return fail(*slot, Error{r.error().code, fmt::format("plugin '{}': dependency '{}' failed to load: {}", m.id, dep.id, r.error().message)});
      }
    }
    chain.pop_back();

    json::object config;
    {
      std::shared_lock lock(catalogue_mutex);
      config = slot->config;
    }
    auto gen = start_generation(slot, m, config);
    if (!gen) return fail(*slot, std::move(gen).error());

    slot->apply_limits(m.limits);
    slot->current.store(*gen);
    if (auto r = publish_tools(slot, **gen); !r) {
      slot->current.store(nullptr);
      retire(*gen, false);
      return fail(*slot, r.error());
    }
    {
      std::unique_lock lock(catalogue_mutex);
      slot->generations = (*gen)->number;
      slot->state = PluginState::loaded;
      slot->last_error.reset();
    }
    log(LogLevel::info, m.id, fmt::format("loaded version {} (generation {})", m.version.to_string(), (*gen)->number));
    queue_event("plugin.loaded", plugin_event(*slot));
    return ok();
  }

  std::vector<SlotPtr> dependents_of(std::string_view id, bool enabled_only) const {
    std::vector<SlotPtr> out;
    std::shared_lock lock(catalogue_mutex);
    for (const auto& [_, s] : catalogue) {
      if (!(enabled_only ? s->state == PluginState::enabled : is_loaded(s->state))) continue;
      for (const auto& d : s->manifest.dependencies)
        if (d.id == id) out.push_back(s);
    }
    return out;
  }

  Result<void> enable_locked(std::string_view id) {
    std::vector<std::string> chain;
    XCORE_TRY(load_locked(id, chain));
    auto slot = find(id);
    if (slot->state == PluginState::enabled) return ok();
    for (const auto& dep : slot->manifest.dependencies)
      if (auto r = enable_locked(dep.id); !r)
        return Error{r.error().code, fmt::format("plugin '{}': dependency '{}' could not be enabled: {}", id, dep.id, r.error().message)};
    auto gen = slot->current.load();
    if (auto r = gen->runner->on_enable(); !r) {
      log(LogLevel::error, slot->id, r.error().message);
      std::unique_lock lock(catalogue_mutex);
      slot->last_error = r.error();
      return r;
    }
    slot->enabled.store(true, std::memory_order_release);
    tool_registry.set_plugin_enabled(slot->id, true);
    gen->hooks_active->store(true, std::memory_order_release);
    set_state(*slot, PluginState::enabled);
    queue_event("plugin.enabled", plugin_event(*slot));
    return ok();
  }

  // A plugin others depend on is not disabled or unloaded under them unless the caller asks for a cascade.
  static Result<void> refuse_unless_cascade(std::string_view id, const std::vector<SlotPtr>& dependents, bool cascade,
                                            std::string_view state, std::string_view verb) {
    if (dependents.empty() || cascade) return ok();
    std::string names;
    for (const auto& d : dependents) names += (names.empty() ? "" : ", ") + d->id;
    return Error{ErrorCode::conflict, fmt::format("plugin '{}' is required by {} plugins: {}; {} them first or ask for a cascade",
                                                  id, state, names, verb)};
  }

  Result<void> disable_locked(std::string_view id, bool cascade) {
    auto slot = find(id);
    if (!slot) return no_such_plugin(id);
    if (slot->state != PluginState::enabled) {
      if (is_loaded(slot->state)) return ok();
      return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' is {}, not enabled", id, to_string(slot->state))};
    }
    auto deps = dependents_of(id, true);
    XCORE_TRY(refuse_unless_cascade(id, deps, cascade, "enabled", "disable"));
    for (const auto& d : deps) XCORE_TRY(disable_locked(d->id, true));
    // Stop answering first, then tell the plugin.
    slot->enabled.store(false, std::memory_order_release);
    tool_registry.set_plugin_enabled(slot->id, false);
    auto gen = slot->current.load();
    gen->hooks_active->store(false, std::memory_order_release);
    if (auto r = gen->runner->on_disable(); !r) log(LogLevel::warn, slot->id, r.error().message);
    set_state(*slot, PluginState::disabled);
    queue_event("plugin.disabled", plugin_event(*slot));
    return ok();
  }

  Result<void> unload_locked(std::string_view id, bool cascade) {
    auto slot = find(id);
    if (!slot) return no_such_plugin(id);
    if (!is_loaded(slot->state) && !failed_with_generation(*slot)) {
      if (slot->state == PluginState::failed) return ok();
      return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' is {}, not loaded", id, to_string(slot->state))};
    }
    auto deps = dependents_of(id, false);
    XCORE_TRY(refuse_unless_cascade(id, deps, cascade, "loaded", "unload"));
    for (const auto& d : deps) XCORE_TRY(unload_locked(d->id, true));
    bool was_enabled = slot->state == PluginState::enabled;
    slot->enabled.store(false, std::memory_order_release);
    if (was_enabled) queue_event("plugin.disabled", plugin_event(*slot));
    tool_registry.remove_plugin_tools(slot->id);
    auto gen = slot->current.exchange(nullptr);
    if (gen) gen->hooks_active->store(false);
    retire(std::move(gen), was_enabled);
    set_state(*slot, PluginState::unloaded);
    log(LogLevel::info, slot->id, "unloaded");
    queue_event("plugin.unloaded", plugin_event(*slot));
    return ok();
  }

  Result<void> reload_locked(std::string_view id) {
    auto slot = find(id);
    if (!slot) return no_such_plugin(id);
    if (failed_with_generation(*slot)) {
      XCORE_TRY(unload_locked(id, true));
      std::vector<std::string> chain;
      return load_locked(id, chain);
    }
    if (!is_loaded(slot->state))
      return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' is {}; only a loaded plugin can be reloaded", id, to_string(slot->state))};
    auto loaded = load_manifest(slot->manifest.file);
    if (!loaded) return std::move(loaded).error();
    auto& m = loaded->manifest;
    if (m.id != slot->id)
      return Error{ErrorCode::conflict, fmt::format("{}: the id changed from '{}' to '{}'; unload and load instead", m.file.string(), slot->id, m.id)};
    for (const auto& d : dependents_of(id, false))
      for (const auto& dep : d->manifest.dependencies)
        if (dep.id == id && !dep.versions.contains(m.version))
          return Error{ErrorCode::conflict, fmt::format("plugin '{}' requires '{}' {}, which version {} would break", d->manifest.id, id,
                                                        dep.versions.text(), m.version.to_string())};
    for (const auto& dep : m.dependencies) {
      auto d = find(dep.id);
      if (!d || !is_loaded(d->state) || !dep.versions.contains(d->manifest.version))
        return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' {} requires '{}' {}, which is not loaded", id,
                                                                 m.version.to_string(), dep.id, dep.versions.text())};
    }
    json::object config;
    {
      std::shared_lock lock(catalogue_mutex);
      config = slot->config;
    }
    const bool enabled = slot->state == PluginState::enabled;
    auto fresh = start_generation(slot, m, config);
    if (!fresh) {
      log(LogLevel::error, id, fmt::format("reload failed, the previous version keeps serving: {}", fresh.error().message));
      auto p = plugin_event(*slot);
      p["message"] = fresh.error().message;
      p["reload"] = true;
      queue_event("plugin.failed", std::move(p));
      std::unique_lock lock(catalogue_mutex);
      slot->last_error = fresh.error();
      return std::move(fresh).error();
    }
    auto gen = *fresh;
    if (enabled)
      if (auto r = gen->runner->on_enable(); !r) {
        (void)gen->runner->on_unload();
        std::unique_lock lock(catalogue_mutex);
        slot->last_error = r.error();
        return r;
      }
    // Swap: new calls reach the new generation from here on.
    auto old = slot->current.exchange(gen);
    if (auto r = publish_tools(slot, *gen); !r) log(LogLevel::error, id, r.error().message);  // checked in start_generation
    gen->hooks_active->store(enabled);
    if (old) old->hooks_active->store(false);
    {
      std::unique_lock lock(catalogue_mutex);
      slot->manifest = m;
      slot->warnings = loaded->warnings;
      slot->generations = gen->number;
      ++slot->reloads;
      slot->last_error.reset();
    }
    slot->apply_limits(m.limits);
    retire(std::move(old), enabled);
    log(LogLevel::info, id, fmt::format("reloaded: version {} (generation {})", m.version.to_string(), gen->number));
    auto p = plugin_event(*slot);
    p["generation"] = gen->number;
    queue_event("plugin.reloaded", std::move(p));
    return ok();
  }

  // Dependency order of every discovered plugin; cycles are reported, the rest still ordered.
  std::vector<std::string> topological(std::vector<Error>& problems) const {
    std::vector<std::string> order;
    std::map<std::string, int> mark;  // 1 visiting, 2 done
    std::shared_lock lock(catalogue_mutex);
    std::function<void(const std::string&, std::vector<std::string>&)> visit = [&](const std::string& id, std::vector<std::string>& path) {
      if (mark[id] == 2) return;
      if (mark[id] == 1) {
        std::string cycle;
        auto it = std::find(path.begin(), path.end(), id);
        for (; it != path.end(); ++it) cycle += *it + " -> ";
        problems.push_back(Error{ErrorCode::conflict, fmt::format("dependency cycle: {}{}", cycle, id)});
        return;
      }
      mark[id] = 1;
      path.push_back(id);
      if (auto it = catalogue.find(id); it != catalogue.end())
        for (const auto& d : it->second->manifest.dependencies) visit(d.id, path);
      path.pop_back();
      mark[id] = 2;
      if (catalogue.contains(id)) order.push_back(id);
    };
    std::vector<std::string> ids;
    for (const auto& [id, _] : catalogue) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (const auto& id : ids) {
      std::vector<std::string> path;
      visit(id, path);
    }
    return order;
  }

  PluginInfo info_of(const PluginSlot& s) const {
    PluginInfo i;
    {
      std::shared_lock lock(catalogue_mutex);
      i.manifest = s.manifest;
      i.state = s.state;
      i.last_error = s.last_error;
      i.warnings = s.warnings;
      i.config = s.config;
      i.stats.generation = s.generations;
      i.stats.reloads = s.reloads;
    }
    for (const auto& d : dependents_of(s.manifest.id, false)) i.dependents.push_back(d->manifest.id);
    i.routes = i.manifest.routes;
    if (auto gen = s.current.load(); gen && gen->runner) {
      i.runner = gen->runner->describe();
      if (gen->services)
        for (auto& r : gen->services->routes()) i.routes.push_back(std::move(r));
    }
    // Actions are counted here; tool calls in the registry's per-tool metrics.
    auto a = s.actions.snapshot();
    i.stats.calls = a.calls;
    i.stats.errors = a.errors;
    i.stats.in_flight = s.in_flight.load();
    i.stats.total_seconds = a.total_seconds;
    i.stats.max_seconds = a.max_seconds;
    ToolFilter mine;
    mine.plugin = s.id;
    mine.include_disabled = true;
    for (const auto& t : tool_registry.list(mine)) {
      i.stats.calls += t.metrics.calls;
      i.stats.errors += t.metrics.errors;
      i.stats.total_seconds += t.metrics.total_seconds;
      i.stats.max_seconds = std::max(i.stats.max_seconds, t.metrics.max_seconds);
    }
    return i;
  }

  void refresh_watches() {
    if (!watcher) return;
    std::vector<std::pair<std::string, std::filesystem::path>> dirs;
    {
      std::shared_lock lock(catalogue_mutex);
      for (const auto& [id, s] : catalogue) dirs.emplace_back(id, s->manifest.dir());
    }
    for (const auto& [id, dir] : dirs) watcher->watch(id, dir);
  }
};

// ---- Manager: each public operation takes `ops`, then flushes the events it queued -----------------

namespace {
template <class F>
auto locked(Manager::Impl& impl, F&& f) {
  decltype(f()) r = [&] {
    std::lock_guard lock(impl.ops);
    return f();
  }();
  impl.flush_events();
  return r;
}
}  // namespace

Manager::Manager(ManagerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Manager::~Manager() {
  impl_->watcher.reset();
  std::vector<Error> problems;
  auto order = impl_->topological(problems);
  std::reverse(order.begin(), order.end());
  {
    std::lock_guard lock(impl_->ops);
    for (const auto& id : order) {
      auto slot = impl_->find(id);
      if (slot && is_loaded(slot->state)) (void)impl_->unload_locked(id, true);
    }
  }
  impl_->flush_events();
}

DiscoveryReport Manager::discover() {
  DiscoveryReport report;
  locked(*impl_, [&] {
    for (const auto& root : impl_->options.plugin_dirs) {
      std::error_code ec;
      if (!std::filesystem::is_directory(root, ec)) {
        report.problems.push_back(Error{ErrorCode::not_found, fmt::format("plugin folder '{}' does not exist", root.string())});
        continue;
      }
      std::vector<std::filesystem::path> dirs;
      for (const auto& e : std::filesystem::directory_iterator(root, ec))
        if (e.is_directory()) dirs.push_back(e.path());
      std::sort(dirs.begin(), dirs.end());  // deterministic: the first folder wins an id
      for (const auto& dir : dirs) {
        if (!find_manifest(dir)) continue;
        auto r = impl_->add_folder(dir, report);
        if (!r) {
          impl_->log(LogLevel::error, "xcore", r.error().message);
          report.problems.push_back(std::move(r).error());
          continue;
        }
        report.found.push_back(*r);
        if (auto slot = impl_->find(*r)) impl_->queue_event("plugin.discovered", impl_->plugin_event(*slot));
      }
    }
    impl_->refresh_watches();
    return 0;
  });
  return report;
}

Result<std::string> Manager::add(const std::filesystem::path& plugin_dir) {
  DiscoveryReport report;
  return locked(*impl_, [&]() -> Result<std::string> {
    auto r = impl_->add_folder(plugin_dir, report);
    if (r) {
      impl_->queue_event("plugin.discovered", impl_->plugin_event(*impl_->find(*r)));
      impl_->refresh_watches();
    }
    return r;
  });
}

Result<void> Manager::load(std::string_view id) {
  return locked(*impl_, [&] {
    std::vector<std::string> chain;
    return impl_->load_locked(id, chain);
  });
}

Result<void> Manager::enable(std::string_view id) {
  return locked(*impl_, [&] { return impl_->enable_locked(id); });
}

Result<void> Manager::disable(std::string_view id, UnloadOptions o) {
  return locked(*impl_, [&] { return impl_->disable_locked(id, o.cascade); });
}

Result<void> Manager::unload(std::string_view id, UnloadOptions o) {
  return locked(*impl_, [&] { return impl_->unload_locked(id, o.cascade); });
}

Result<void> Manager::reload(std::string_view id) {
  return locked(*impl_, [&] { return impl_->reload_locked(id); });
}

Result<void> Manager::load_all(bool enable) {
  return locked(*impl_, [&]() -> Result<void> {
    std::vector<Error> problems;
    auto order = impl_->topological(problems);
    for (const auto& id : order) {
      std::vector<std::string> chain;
      auto r = enable ? impl_->enable_locked(id) : impl_->load_locked(id, chain);
      if (!r) problems.push_back(std::move(r).error());
    }
    if (problems.empty()) return ok();
    std::string msg = fmt::format("{} plugin(s) failed", problems.size());
    for (const auto& p : problems) msg += "; " + p.message;
    return Error{problems.front().code, msg};
  });
}

Result<void> Manager::set_config(std::string_view id, json::object config) {
  return locked(*impl_, [&]() -> Result<void> {
    auto slot = impl_->find(id);
    if (!slot) return impl_->no_such_plugin(id);
    XCORE_ASSIGN_OR_RETURN(auto effective, impl_->effective_config(slot->manifest, config));
    if (auto gen = slot->current.load()) {
      XCORE_TRY(gen->runner->on_config(effective));  // the plugin may refuse: then nothing changes
      gen->config = std::move(effective);
    }
    std::unique_lock lock(impl_->catalogue_mutex);
    slot->config = std::move(config);
    return ok();
  });
}

Result<json::value> Manager::call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                         const CallContext& ctx) {
  return impl_->call_action(plugin, action, params, ctx);
}

Result<ToolResult> Manager::call_tool(std::string_view name, const json::value& arguments, const CallContext& ctx) {
  return impl_->tool_registry.invoke(name, arguments, ctx);
}

Result<json::value> Manager::health(std::string_view id) {
  auto slot = impl_->find(id);
  if (!slot) return impl_->no_such_plugin(id);
  XCORE_ASSIGN_OR_RETURN(auto lease, impl_->acquire(*slot));
  return lease->runner->health();
}

std::optional<PluginInfo> Manager::info(std::string_view id) const {
  auto slot = impl_->find(id);
  if (!slot) return std::nullopt;
  return impl_->info_of(*slot);
}

std::vector<PluginInfo> Manager::list() const {
  std::vector<SlotPtr> slots;
  {
    std::shared_lock lock(impl_->catalogue_mutex);
    for (const auto& [_, s] : impl_->catalogue) slots.push_back(s);
  }
  std::vector<PluginInfo> out;
  for (const auto& s : slots) out.push_back(impl_->info_of(*s));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.manifest.id < b.manifest.id; });
  return out;
}

void Manager::set_job_sink(std::shared_ptr<const JobSink> sink) { impl_->job_sink.store(std::move(sink)); }

Result<void> Manager::watch(bool on) {
  if (!on) {
    // Stopped outside `ops`: the watcher thread may be waiting for it inside a reload.
    std::unique_ptr<FolderWatcher> w;
    {
      std::lock_guard lock(impl_->ops);
      w = std::move(impl_->watcher);
    }
    return ok();
  }
  std::lock_guard lock(impl_->ops);
  if (impl_->watcher) return ok();
  auto* impl = impl_.get();
  XCORE_ASSIGN_OR_RETURN(impl_->watcher, FolderWatcher::start([this, impl](const std::string& id) {
                           auto slot = impl->find(id);
                           if (!slot || !is_loaded(slot->state)) return;
                           if (auto r = reload(id); !r) impl->log(LogLevel::error, id, fmt::format("automatic reload failed: {}", r.error().message));
                         }));
  impl_->refresh_watches();
  return ok();
}

HookBus& Manager::hooks() noexcept { return impl_->hook_bus; }
ToolRegistry& Manager::tools() noexcept { return impl_->tool_registry; }

}  // namespace xcore::inline v1
