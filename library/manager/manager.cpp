// xcore::Manager: construction, lifecycle events, and the public operations.
#include "manager/manager_impl.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

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

// Shadow folders of hosts that ended without removing theirs (SIGKILL, a crash): named
// xcore-shadow-<pid>-<random>, ours to remove when that pid no longer runs and the folder is our user's.
void remove_stale_shadow_dirs(const std::filesystem::path& temp) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(temp, ec)) {
    const auto name = e.path().filename().string();
    if (!name.starts_with("xcore-shadow-")) continue;
    const char* digits = name.c_str() + 13;
    char* end = nullptr;
    const long pid = std::strtol(digits, &end, 10);
    if (end == digits || *end != '-' || pid <= 0 || pid == ::getpid()) continue;
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running (or not ours to ask)
    std::error_code rm;
    std::filesystem::remove_all(e.path(), rm);
  }
}

}  // namespace

Manager::Impl::Impl(ManagerOptions o) : options(std::move(o)) {
  if (options.shadow_dir.empty()) {
    static std::once_flag swept;  // once per process: a host with a Manager per tenant scans once
    std::call_once(swept, [] { remove_stale_shadow_dirs(std::filesystem::temp_directory_path()); });
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

Manager::Impl::~Impl() {
  watcher.reset();
  if (own_shadow_dir) {
    std::error_code ec;
    std::filesystem::remove_all(options.shadow_dir, ec);
  }
}

void Manager::Impl::log(LogLevel level, std::string_view source, std::string_view message) {
  if (!options.log) return;
  try {
    options.log(level, source, message);
  } catch (...) {
  }
}

void Manager::Impl::queue_event(std::string name, json::object payload) {
  Recorder::note(*this, name, payload);
  std::lock_guard lock(events_mutex);
  pending_events.emplace_back(std::move(name), std::move(payload));
}

void Manager::Impl::flush_events() {
  std::vector<std::pair<std::string, json::object>> events;
  {
    std::lock_guard lock(events_mutex);
    events.swap(pending_events);
  }
  for (auto& [name, payload] : events) hook_bus.emit(name, payload);
}

json::object Manager::Impl::plugin_event(const PluginSlot& s) const {
  std::shared_lock lock(catalogue_mutex);
  return json::object{{"plugin", s.manifest->id}, {"version", s.manifest->version.to_string()}};
}

// ---- registrations -------------------------------------------------------------------------------------

thread_local Manager::Impl::Recorder* Manager::Impl::Recorder::current = nullptr;

Result<void> Manager::Impl::remember(std::string_view id, Verb verb, bool succeeded, const Recorder& what, const json::object* config) {
  const auto store = options.registrations;
  if (!store) return ok();
  auto put = [&](const std::string& plugin, std::optional<bool> enabled, const json::object* cfg) -> Result<void> {
    auto slot = find(plugin);
    if (!slot) return ok();  // never register a plugin that does not exist
    XCORE_ASSIGN_OR_RETURN(auto found, store->find(plugin));
    Registration r = found.value_or(Registration{plugin, false, {}, {}});
    if (enabled) r.enabled = *enabled;
    if (cfg) r.config = *cfg;
    {
      std::shared_lock lock(catalogue_mutex);
      r.version = slot->manifest->version.to_string();
    }
    if (found && found->enabled == r.enabled && found->config == r.config && found->version == r.version) return ok();
    return store->put(r);
  };
  // Plugins the operation reached besides the one asked for: dependencies it enabled, dependents it
  // disabled or unloaded. (A failure changes no registration: it is not what the host asked for.)
  std::map<std::string, bool> reached;
  for (const auto& [event, plugin] : what.events) {
    if (plugin == id) continue;
    if (event == "plugin.enabled") reached[plugin] = true;
    else if (event == "plugin.disabled" || event == "plugin.unloaded") reached[plugin] = false;
  }
  for (const auto& [plugin, enabled] : reached) XCORE_TRY(put(plugin, enabled, nullptr));
  const std::string plugin(id);
  switch (verb) {
    case Verb::load: return put(plugin, std::nullopt, nullptr);  // registered, even if it failed
    case Verb::enable: return put(plugin, succeeded ? std::optional(true) : std::nullopt, nullptr);
    case Verb::disable:
    case Verb::unload: return succeeded ? put(plugin, false, nullptr) : ok();
    case Verb::configure: return succeeded ? put(plugin, std::nullopt, config) : ok();
    case Verb::reload: return ok();
  }
  return ok();
}

// ---- Manager: each lifecycle operation claims what it touches, records what it changed, then flushes
// the events it queued ------------------------------------------------------------------------------------

namespace {
template <class Impl, class F>  // Impl deduced: Manager::Impl is private to Manager
Result<void> operate(Impl& impl, std::string_view id, typename Impl::Reach how, typename Impl::Verb verb, F&& f,
                     const json::object* config = nullptr) {
  typename Impl::Recorder recorder(impl);
  Result<void> r = impl.claimed(id, how, std::forward<F>(f));
  if (recorder.outermost()) {
    if (auto w = impl.remember(id, verb, r.ok(), recorder, config); !w) {
      impl.log(LogLevel::error, id, fmt::format("cannot record the plugin's registration: {}", w.error().message));
      if (r) r = std::move(w).error();
    }
  }
  impl.flush_events();
  return r;
}
}  // namespace

Manager::Manager(ManagerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Manager::~Manager() {
  (void)watch(false);
  std::vector<Error> problems;
  auto order = impl_->topological(problems);
  std::reverse(order.begin(), order.end());
  for (const auto& id : order)
    impl_->claimed(id, Impl::Reach::loaded_dependents, [&] {
      auto slot = impl_->find(id);
      if (slot && is_loaded(slot->state)) (void)impl_->unload_locked(id, true);
      return 0;
    });
  impl_->flush_events();
}

DiscoveryReport Manager::discover() {
  DiscoveryReport report;
  for (const auto& root : impl_->options.plugin_dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(root, ec)) {
      report.problems.push_back(Error{ErrorCode::not_found, fmt::format("plugin folder '{}' does not exist", root.string())});
      continue;
    }
    std::vector<std::filesystem::path> dirs;
    // Hidden folders are skipped: a package being unpacked (`xcore install`) is never half a plugin.
    for (const auto& e : std::filesystem::directory_iterator(root, ec))
      if (e.is_directory() && !e.path().filename().string().starts_with('.')) dirs.push_back(e.path());
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
  {
    std::lock_guard lock(impl_->watcher_mutex);
    impl_->refresh_watches();
  }
  impl_->flush_events();
  return report;
}

Result<std::string> Manager::add(const std::filesystem::path& plugin_dir) {
  DiscoveryReport report;
  auto r = impl_->add_folder(plugin_dir, report);
  if (r) {
    impl_->queue_event("plugin.discovered", impl_->plugin_event(*impl_->find(*r)));
    std::lock_guard lock(impl_->watcher_mutex);
    impl_->refresh_watches();
  }
  impl_->flush_events();
  return r;
}

Result<void> Manager::load(std::string_view id) {
  return operate(*impl_, id, Impl::Reach::load, Impl::Verb::load, [&] {
    Impl::LoadChain chain;
    return impl_->load_locked(id, chain);
  });
}

Result<void> Manager::enable(std::string_view id) {
  return operate(*impl_, id, Impl::Reach::load, Impl::Verb::enable, [&] { return impl_->enable_locked(id); });
}

Result<void> Manager::disable(std::string_view id, UnloadOptions o) {
  return operate(*impl_, id, o.cascade ? Impl::Reach::enabled_dependents : Impl::Reach::plugin, Impl::Verb::disable,
                 [&] { return impl_->disable_locked(id, o.cascade); });
}

Result<void> Manager::unload(std::string_view id, UnloadOptions o) {
  return operate(*impl_, id, o.cascade ? Impl::Reach::loaded_dependents : Impl::Reach::plugin, Impl::Verb::unload,
                 [&] { return impl_->unload_locked(id, o.cascade); });
}

Result<void> Manager::reload(std::string_view id) {
  XCORE_TRY(operate(*impl_, id, Impl::Reach::reload, Impl::Verb::reload, [&] { return impl_->reload_locked(id); }));
  // A failed plugin reloads into `loaded`: it comes back to what its registration asks for.
  if (auto store = impl_->options.registrations) {
    XCORE_ASSIGN_OR_RETURN(auto reg, store->find(id));
    auto slot = impl_->find(id);
    if (reg && reg->enabled && slot && slot->state != PluginState::enabled) return enable(id);
  }
  return ok();
}

Result<void> Manager::load_all(bool enable) {
  std::vector<Error> problems;
  auto order = impl_->topological(problems);
  // One plugin at a time, each under its own claims: a slow plugin holds up only those that need it.
  for (const auto& id : order) {
    auto r = operate(*impl_, id, Impl::Reach::load, enable ? Impl::Verb::enable : Impl::Verb::load, [&] {
      Impl::LoadChain chain;
      return enable ? impl_->enable_locked(id) : impl_->load_locked(id, chain);
    });
    if (!r) problems.push_back(std::move(r).error());
  }
  if (problems.empty()) return ok();
  std::string msg = fmt::format("{} plugin(s) failed", problems.size());
  for (const auto& p : problems) msg += "; " + p.message;
  return Error{problems.front().code, msg};
}

Result<void> Manager::set_config(std::string_view id, json::object config) {
  const json::object given = config;
  return operate(*impl_, id, Impl::Reach::reload, Impl::Verb::configure, [&]() -> Result<void> {
    auto slot = impl_->find(id);
    if (!slot) return impl_->no_such_plugin(id);
    XCORE_ASSIGN_OR_RETURN(auto effective, impl_->effective_config(*slot->manifest, config));
    auto gen = slot->current.load();
    // A folder the config grants is part of the sandbox the plugin was started in: a change to one
    // starts a new generation with the new grants (the old one serves until the swap).
    const auto grants = slot->manifest->config_grants();
    const bool grant_changed = gen && std::any_of(grants.begin(), grants.end(), [&](const auto& g) {
      const auto* before = gen->config.if_contains(g.first);
      const auto* after = effective.if_contains(g.first);
      return (before == nullptr) != (after == nullptr) || (before && *before != *after);
    });
    if (grant_changed) {
      json::object previous;
      {
        std::unique_lock lock(impl_->catalogue_mutex);
        previous = std::exchange(slot->config, config);
      }
      auto r = impl_->reload_locked(id);
      if (!r) {
        std::unique_lock lock(impl_->catalogue_mutex);
        slot->config = std::move(previous);
      }
      return r;
    }
    if (gen) {
      XCORE_TRY(gen->runner->on_config(effective));  // the plugin may refuse: then nothing changes
      gen->config = std::move(effective);
    }
    std::unique_lock lock(impl_->catalogue_mutex);
    slot->config = std::move(config);
    return ok();
  }, &given);
}

Result<std::vector<PluginChange>> Manager::apply(const Registration& desired, UnloadOptions o) {
  const auto& id = desired.plugin;
  auto slot = impl_->find(id);
  if (!slot) return impl_->no_such_plugin(id);
  // One recorder around both steps: the changes of each are reported together.
  Impl::Recorder recorder(*impl_);
  json::object config;
  {
    std::shared_lock lock(impl_->catalogue_mutex);
    config = slot->config;
  }
  if (config != desired.config) XCORE_TRY(set_config(id, desired.config));
  if (recorder.outermost() && config != desired.config) XCORE_TRY(impl_->remember(id, Impl::Verb::configure, true, recorder, &desired.config));
  if (desired.enabled != (slot->state == PluginState::enabled)) {
    auto r = desired.enabled ? enable(id) : disable(id, o);
    if (recorder.outermost()) XCORE_TRY(impl_->remember(id, desired.enabled ? Impl::Verb::enable : Impl::Verb::disable, r.ok(), recorder, nullptr));
    XCORE_TRY(r);
  }
  if (recorder.outermost()) XCORE_TRY(impl_->remember(id, Impl::Verb::load, true, recorder, nullptr));  // registered, whatever changed
  std::vector<PluginChange> changes;
  for (const auto& [event, plugin] : recorder.events) {
    PluginState st;
    if (event == "plugin.loaded") st = PluginState::loaded;
    else if (event == "plugin.enabled") st = PluginState::enabled;
    else if (event == "plugin.disabled") st = PluginState::disabled;
    else if (event == "plugin.unloaded") st = PluginState::unloaded;
    else if (event == "plugin.failed") st = PluginState::failed;
    else continue;
    changes.push_back(PluginChange{plugin, st});
  }
  return changes;
}

Result<std::vector<Error>> Manager::restore() {
  std::vector<Error> problems;
  auto store = impl_->options.registrations;
  if (!store) return problems;
  XCORE_ASSIGN_OR_RETURN(auto regs, store->list());
  // Configs first, then enable in dependency order (enable loads and enables dependencies itself). The
  // operations write back only what differs (a version that changed, a dependency now enabled).
  for (const auto& r : regs) {
    if (!impl_->find(r.plugin)) {
      problems.push_back(Error{ErrorCode::not_found, fmt::format("registered plugin '{}' is not in the plugin folders", r.plugin)});
      continue;
    }
    if (!r.config.empty())
      if (auto c = set_config(r.plugin, r.config); !c)
        problems.push_back(Error{c.error().code, fmt::format("the registered config of '{}' is refused: {}", r.plugin, c.error().message), c.error().details});
  }
  for (const auto& r : regs) {
    if (!r.enabled || !impl_->find(r.plugin)) continue;
    if (auto e = enable(r.plugin); !e)
      problems.push_back(Error{e.error().code, fmt::format("cannot enable '{}': {}", r.plugin, e.error().message), e.error().details});
  }
  return problems;
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
    // Destroyed outside watcher_mutex: its thread may be inside a reload that needs it.
    std::unique_ptr<FolderWatcher> w;
    {
      std::lock_guard lock(impl_->watcher_mutex);
      w = std::move(impl_->watcher);
    }
    return ok();
  }
  std::lock_guard lock(impl_->watcher_mutex);
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
CompetencyRegistry& Manager::competencies() noexcept { return impl_->competency_registry; }

}  // namespace xcore::inline v1
