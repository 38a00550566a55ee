// The Manager's private state, shared by its files: manager.cpp (construction, events, the public
// operations), manager_catalogue.cpp (discovery, dependency order, info), manager_calls.cpp (the call path,
// a generation's tools, host services), manager_lifecycle.cpp (generations, load/enable/disable/unload/reload).
#pragma once

#include <xcore/manager.hpp>
#include <xcore/json_text.hpp>
#include <xcore/plugin.h>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <semaphore>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "tools/call_metrics.hpp"
#include "core/rate_limiter.hpp"
#include "core/shared_cell.hpp"
#include "core/string_map.hpp"
#include <xcore/json_schema.hpp>
#include "manager/folder_watcher.hpp"
#include "manager/generation.hpp"
#include "manager/manager_core.hpp"
#include "runners/in_process_runner.hpp"
#include "sandbox/sandbox_runner.hpp"

namespace xcore::inline v1 {

inline bool is_loaded(PluginState s) { return s == PluginState::loaded || s == PluginState::enabled || s == PluginState::disabled; }

inline std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

// The manifest's max_concurrency (or the host's default) as a semaphore, with as many places to wait as
// to run: a plugin never holds more than twice its limit of the caller's threads, and a call beyond that
// is refused at once. Swapped whole on reload; a call releases what it took.
struct ConcurrencyLimit {
  explicit ConcurrencyLimit(unsigned n) : max(n), places(n) {}
  const unsigned max;
  std::counting_semaphore<> places;
  std::atomic<unsigned> admitted{0};  // running and waiting
};

// Catalogue entry of one plugin. Plain fields are guarded by Impl::catalogue_mutex; `id` and the atomics
// are read on the call path without it. `manifest` changes only under this plugin's lifecycle claim (and
// catalogue_mutex), so the operation holding the claim reads it freely.
struct PluginSlot {
  explicit PluginSlot(std::string plugin_id) : id(std::move(plugin_id)) {}
  const std::string id;
  // Immutable and shared: every Manager that read the same manifest file holds the same one; a change
  // (rediscovery, reload) replaces the pointer.
  std::shared_ptr<const PluginManifest> manifest = std::make_shared<const PluginManifest>();
  std::vector<std::string> warnings;
  std::atomic<PluginState> state{PluginState::discovered};  // written under catalogue_mutex
  std::optional<Error> last_error;
  json::object config;
  std::uint64_t generations = 0;
  std::uint64_t reloads = 0;

  SharedCell<Generation> current;
  std::atomic<bool> enabled{false};
  SharedCell<ConcurrencyLimit> limit;
  SharedCell<RateLimiter> rate;

  // `default_concurrency`: the host's limit where the manifest sets none (0: none).
  void apply_limits(const PluginLimits& l, unsigned default_concurrency) {
    auto cur = limit.load();
    const unsigned max = l.max_concurrency.value_or(default_concurrency);
    if (max == 0) limit.store(nullptr);
    else if (!cur || cur->max != max) limit.store(std::make_shared<ConcurrencyLimit>(max));
    auto r = rate.load();
    if (!l.rate_calls) rate.store(nullptr);
    else if (!r || r->rate() != *l.rate_calls || r->period() != l.rate_period) rate.store(std::make_shared<RateLimiter>(*l.rate_calls, l.rate_period));
  }

  CallMetrics actions;  // tool calls are counted by the registry
  std::atomic<std::uint64_t> in_flight{0};

  // The lifecycle claim (guarded by Impl::claims_mutex): the thread running an operation on this plugin,
  // and how many times it entered (a hook handler may call back into the Manager).
  std::thread::id claim_owner;
  unsigned claim_depth = 0;

  // Serializes what makes a generation the published one (`current`, `enabled`, its tools in the registry)
  // against a runner reporting from its own thread (a crash, new tools). Held briefly, never across plugin
  // code, and nothing waits for a claim while holding it.
  std::mutex publish_mutex;
};

using SlotPtr = std::shared_ptr<PluginSlot>;

struct Manager::Impl final : ManagerCore {
  ManagerOptions options;
  bool own_shadow_dir = false;
  HookBus hook_bus;
  ToolRegistry tool_registry{&hook_bus};
  CompetencyRegistry competency_registry;
  // The competencies an enabled plugin declared (its manifest's, and those its generation declared at run
  // time) are registered; one taken by another plugin is logged.
  void register_competencies(Generation& gen);

  mutable std::shared_mutex catalogue_mutex;
  StringMap<SlotPtr> catalogue;
  std::atomic<std::uint64_t> shadow_counter{0};

  // Lifecycle events are emitted after the operation let go of its claim, so a handler may call back in.
  std::mutex events_mutex;
  std::vector<std::pair<std::string, json::object>> pending_events;

  std::mutex watcher_mutex;  // guards `watcher`; never held while a reload runs
  std::unique_ptr<FolderWatcher> watcher;

  // ---- registrations ---------------------------------------------------------------------------------
  // Collects the lifecycle events the outermost operation on this thread queues, so that what it changed
  // (the plugin asked for and any its claims reached) is written to the registration store after it.
  class Recorder {
   public:
    explicit Recorder(Impl& impl) : impl_(impl), previous_(current), outer_(!current || &current->impl_ != &impl) {
      if (outer_) current = this;
    }
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;
    ~Recorder() {
      if (outer_) current = previous_;
    }
    bool outermost() const { return outer_; }
    static void note(const Impl& impl, const std::string& event, const json::object& payload) {
      if (!current || &current->impl_ != &impl) return;
      if (const auto* p = payload.if_contains("plugin"); p && p->is_string()) current->events.emplace_back(event, std::string(p->get_string()));
    }
    std::vector<std::pair<std::string, std::string>> events;  // (event, plugin), in order

   private:
    static thread_local Recorder* current;
    Impl& impl_;
    Recorder* previous_;
    bool outer_;
  };

  enum class Verb { load, enable, disable, unload, reload, configure };
  // Writes what an operation on `id` changed to the registration store (if the host keeps one).
  Result<void> remember(std::string_view id, Verb verb, bool succeeded, const Recorder& what, const json::object* config);

  // ---- lifecycle claims ------------------------------------------------------------------------------
  // An operation claims every plugin it may touch (the plugin, the dependencies it loads, the dependents a
  // cascade reaches) all at once, waiting until none is claimed by another thread. So operations on
  // unrelated plugins run side by side, one stuck in a plugin's code delays only those that need that
  // plugin, and no thread holds a claim while it waits for another (no deadlock). A thread may claim again
  // what it holds.
  std::mutex claims_mutex;
  std::condition_variable claims_cv;

  class Claim {
   public:
    Claim(Impl& impl, std::vector<SlotPtr> slots);
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim();

   private:
    Impl& impl_;
    std::vector<SlotPtr> slots_;
  };

  enum class Reach {
    load,                 // the plugin, its dependencies, and the dependents of any it must unload first
    plugin,               // the plugin alone
    enabled_dependents,   // ... and its enabled dependents, transitively (disable with cascade)
    loaded_dependents,    // ... and its loaded dependents, transitively (unload with cascade)
    reload,               // the plugin alone, or as `load` and `loaded_dependents` if it failed
  };
  // The plugins an operation on `id` may touch, now.
  std::vector<SlotPtr> reach(std::string_view id, Reach how) const;

  // Runs `op` holding the claims of everything it may touch. The set is computed again once claimed:
  // had it grown meanwhile (a dependent loaded), the claim is dropped and taken again.
  template <class F>
  auto claimed(std::string_view id, Reach how, F&& op) {
    for (;;) {
      auto want = reach(id, how);
      Claim claim(*this, want);
      auto now = reach(id, how);
      const bool covered = std::all_of(now.begin(), now.end(), [&](const SlotPtr& s) {
        return std::find(want.begin(), want.end(), s) != want.end();
      });
      if (covered) return op();
    }
  }

  explicit Impl(ManagerOptions o);

  ~Impl() override;

  // ---- ManagerCore -----------------------------------------------------------------------------------
  HookBus& bus() override { return hook_bus; }
  ToolRegistry& registry() override { return tool_registry; }
  void log(LogLevel level, std::string_view source, std::string_view message) override;

  // ---- catalogue -------------------------------------------------------------------------------------
  SlotPtr find(std::string_view id) const;

  Error no_such_plugin(std::string_view id) const;

  void set_state(PluginSlot& s, PluginState st, std::optional<Error> err = std::nullopt) {
    std::unique_lock lock(catalogue_mutex);
    s.state = st;
    if (err) s.last_error = std::move(err);
  }

  void queue_event(std::string name, json::object payload);

  void flush_events();

  json::object plugin_event(const PluginSlot& s) const;

  // Records a failure; the plugin.failed event goes out after the current operation.
  Result<void> fail(PluginSlot& s, Error e) {
    log(LogLevel::error, s.id, e.message);
    set_state(s, PluginState::failed, e);
    auto p = plugin_event(s);
    p["code"] = to_string(e.code);
    p["message"] = e.message;
    queue_event("plugin.failed", std::move(p));
    return e;
  }

  // ---- discovery -------------------------------------------------------------------------------------
  Result<std::string> add_folder(const std::filesystem::path& dir, DiscoveryReport& report);

  // ---- the call path ---------------------------------------------------------------------------------

  // Enters the slot's current generation. A reload swaps the pointer before closing the old generation,
  // so a failed enter on a generation that is no longer current just retries on the new one.
  Result<GenerationLease> acquire(PluginSlot& slot);

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
        e.details = xcore::json_text::serialize(json::object{{"retry_after", seconds}, {"limit", rate->rate()}, {"period_seconds", rate->period().count()}});
        return e;
      }
    }
    auto limit = slot.limit.load();
    if (limit) {
      if (limit->admitted.fetch_add(1, std::memory_order_acq_rel) >= 2 * limit->max) {
        limit->admitted.fetch_sub(1, std::memory_order_acq_rel);
        return Error{ErrorCode::resource_exhausted,
                     fmt::format("plugin '{}' has {} calls running and {} waiting, its limit: try again later", slot.id, limit->max, limit->max)};
      }
      // Wait for a free place until the call's deadline (or briefly, without one).
      auto until = ctx.deadline ? std::chrono::steady_clock::now() + (*ctx.deadline - std::chrono::system_clock::now())
                                : std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      if (!limit->places.try_acquire_until(until)) {
        limit->admitted.fetch_sub(1, std::memory_order_acq_rel);
        return Error{ErrorCode::resource_exhausted,
                     fmt::format("plugin '{}' is at its concurrency limit ({} calls)", slot.id, limit->max)};
      }
    }
    struct Release {
      ConcurrencyLimit* l;
      ~Release() {
        if (!l) return;
        l->places.release();
        l->admitted.fetch_sub(1, std::memory_order_acq_rel);
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

  ToolHandler make_tool_handler(const SlotPtr& slot, const std::string& tool_name);

  Result<json::value> call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                  const CallContext& ctx) override {
    auto slot = find(plugin);
    if (!slot) return no_such_plugin(plugin);
    if (!ctx.principal.unrestricted()) {
      const auto gate = fmt::format("actions.call:{}/{}", plugin, action);
      if (!ctx.principal.holds(gate))
        return Error{ErrorCode::permission_denied, fmt::format("{} may not call action '{}/{}': it needs the permission '{}'", ctx.principal.describe(), plugin, action, gate)};
    }
    if (ctx.cancel.stop_requested()) return Error{ErrorCode::cancelled, "the call was cancelled"};
    if (ctx.deadline && std::chrono::system_clock::now() >= *ctx.deadline)
      return Error{ErrorCode::timeout, fmt::format("deadline passed before action '{}/{}' started", plugin, action)};
    return name_plugin_failure(
        with_plugin<json::value>(*slot, ctx, true, [&](Generation& g, const CallContext& c) { return g.runner->handle(action, params, c); }),
        fmt::format("action '{}/{}'", plugin, action));
  }

  // A plugin's own failure names what failed: "tool 'core.boom' of plugin 'core' failed: kaboom".
  template <class T>
  static Result<T> name_plugin_failure(Result<T> r, std::string_view what) {
    if (!r.ok() && r.error().code == ErrorCode::plugin_error) {
      Error e = r.error();
      e.message = fmt::format("{} failed: {}", what, e.message.empty() ? "the plugin gave no reason" : e.message);
      return e;
    }
    return r;
  }

  // ---- tools of a generation -------------------------------------------------------------------------

  // The binary's tools plus those registered at run time; manifest-declared tools must all be provided
  // and lend the fields the binary left empty.
  Result<std::vector<ToolSpec>> tool_set(Generation& gen);

  Result<void> publish_tools(const SlotPtr& slot, Generation& gen);  // caller holds slot->publish_mutex

  void refresh_tools(const std::string& plugin, Generation& gen) override;

  // Publishes `gen` as the slot's current generation with its tools (under publish_mutex); returns the
  // generation it replaced.
  Result<std::shared_ptr<Generation>> publish(const SlotPtr& slot, std::shared_ptr<Generation> gen);

  SharedCell<const Manager::JobSink> job_sink;
  Result<void> schedule_job(std::string_view plugin, const json::value& job) override;
  Result<void> unschedule_job(std::string_view plugin, std::string_view name) override;

  Result<std::string> secret(std::string_view plugin, std::string_view name) override;

  Result<void> check_route(std::string_view plugin, const PluginRoute& route) const override {
    const auto& roles = options.route_roles;
    if (route.role.empty() || roles.empty() || std::find(roles.begin(), roles.end(), route.role) != roles.end()) return ok();
    std::string known;
    for (const auto& r : roles) known += (known.empty() ? "" : ", ") + r;
    return Error{ErrorCode::invalid_argument,
                 fmt::format("plugin '{}': route {} {} requires the role '{}', which this host does not define (its roles: {})", plugin,
                             route.method, route.path, route.role, known),
                 xcore::json_text::serialize(json::object{{"field", "role"}})};
  }

  void runner_failed(const std::string& plugin, Generation& gen, const Error& why) override;

  Result<void> tools_changed(const std::string& plugin, Generation& gen) override;
  void competencies_changed(const std::string& plugin, Generation& gen) override;

  // ---- generations -----------------------------------------------------------------------------------

  Result<json::object> effective_config(const PluginManifest& m, const json::object& config);

  // Builds and initialises a new generation without publishing anything: on failure nothing is left.
  Result<std::shared_ptr<Generation>> start_generation(const SlotPtr& slot, const PluginManifest& m, const json::object& config);

  // Closes a generation that is no longer current: waits for its calls, runs on_unload, frees it.
  void retire(std::shared_ptr<Generation> gen, bool was_enabled);

  // ---- lifecycle (callers hold the claims `reach` names) ---------------------------------------------

  // A plugin its runner gave up on still holds a generation: loading it again starts from scratch.
  static bool failed_with_generation(const PluginSlot& s) { return s.state == PluginState::failed && s.current.load() != nullptr; }

  // The plugins being loaded, outermost first; `cycle` once one of them turned out to depend on itself
  // (its error then travels up unchanged instead of being wrapped at each level).
  struct LoadChain {
    std::vector<std::string> ids;
    bool cycle = false;
  };
  Result<void> load_locked(std::string_view id, LoadChain& chain);

  std::vector<SlotPtr> dependents_of(std::string_view id, bool enabled_only) const;

  Result<void> enable_locked(std::string_view id);

  // A plugin others depend on is not disabled or unloaded under them unless the caller asks for a cascade.
  static Result<void> refuse_unless_cascade(std::string_view id, const std::vector<SlotPtr>& dependents, bool cascade,
                                            std::string_view state, std::string_view verb) {
    if (dependents.empty() || cascade) return ok();
    std::string names;
    for (const auto& d : dependents) names += (names.empty() ? "" : ", ") + d->id;
    return Error{ErrorCode::conflict, fmt::format("plugin '{}' is required by {} plugins: {}; {} them first or ask for a cascade",
                                                  id, state, names, verb)};
  }

  Result<void> disable_locked(std::string_view id, bool cascade);

  Result<void> unload_locked(std::string_view id, bool cascade);

  Result<void> reload_locked(std::string_view id);
  unsigned default_concurrency(const PluginManifest& m) const { return m.mode == PluginMode::sandboxed ? options.sandboxed_max_concurrency : 0; }

  // Dependency order of every discovered plugin; cycles are reported, the rest still ordered.
  std::vector<std::string> topological(std::vector<Error>& problems) const;

  PluginInfo info_of(const PluginSlot& s) const;

  void refresh_watches();
};

}  // namespace xcore::inline v1
