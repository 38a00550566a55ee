// Generations and the lifecycle: load, enable, disable, unload, reload (callers hold the claims).
#include "manager/manager_impl.hpp"
#include "mcp/mcp_http_client.hpp"
#include "runners/remote_mcp_runner.hpp"
#include <xcore/json_text.hpp>
#include "runners/plugin_module.hpp"
#include "tools/plugin_tools.hpp"

namespace xcore::inline v1 {

Result<json::object> Manager::Impl::effective_config(const PluginManifest& m, const json::object& config) {
  json::value v = config;
  if (m.config_schema) {
    XCORE_ASSIGN_OR_RETURN(auto schema, JsonSchema::compile(*m.config_schema));
    schema->apply_defaults(v);
    if (auto r = schema->validate(v, "config"); !r)
      return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}': {}", m.id, r.error().message), r.error().details};
  }
  return v.get_object();
}

Result<std::shared_ptr<Generation>> Manager::Impl::start_generation(const SlotPtr& slot, const PluginManifest& discovered, const json::object& config) {
  static const Version host_abi{XCORE_ABI_MAJOR, XCORE_ABI_MINOR, 0, {}, {}};
  PluginManifest m = discovered;
  if (!m.api_version.contains(host_abi))
    return Error{ErrorCode::incompatible, fmt::format("plugin '{}': {}: field 'api_version' accepts host ABI '{}', this host provides {}", m.id,
                                                      m.file.string(), m.api_version.text(), host_abi.to_string()),
                 xcore::json_text::serialize(json::object{{"file", m.file.string()}, {"field", "api_version"}, {"accepts", m.api_version.text()},
                                                          {"host_abi", host_abi.to_string()}})};
  XCORE_ASSIGN_OR_RETURN(auto cfg, effective_config(m, config));
  // Folders the config gives the plugin become grants of this generation.
  for (const auto& [key, kind] : m.config_grants()) {
    const auto* v = cfg.if_contains(key);
    if (!v || !v->is_string() || v->get_string().empty()) continue;
    const std::filesystem::path folder(std::string(v->get_string()));
    if (!folder.is_absolute())
      return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}': config key '{}' names a folder: '{}' must be an absolute path", m.id, key, folder.string())};
    const auto path = folder.lexically_normal().string();
    m.permissions.push_back("fs.read:" + path);
    if (kind == "fs.write") m.permissions.push_back("fs.write:" + path);
  }
  for (const auto& route : m.routes) XCORE_TRY(check_route(m.id, route));
  // The host's policy sees the manifest (with those grants) before any plugin code runs, and may refuse or
  // tighten it.
  if (options.admit)
    if (auto r = options.admit(m); !r) return Error{r.error().code, fmt::format("plugin '{}' is not admitted: {}", m.id, r.error().message), r.error().details};

  auto gen = std::make_shared<Generation>();
  gen->manifest = m;
  gen->config = std::move(cfg);
  {
    std::unique_lock lock(catalogue_mutex);
    gen->number = slot->generations + 1;
  }
  std::error_code ec;
  std::shared_ptr<PluginModule> module;
  if (!m.external() && !m.remote()) {
    if (!std::filesystem::is_regular_file(m.binary(), ec))
      return Error{ErrorCode::not_found, fmt::format("plugin '{}': binary '{}' not found", m.id, m.binary().string())};
    if (m.mode == PluginMode::sandboxed) {
      // A private copy per generation for the child to load: rebuilding the plugin never rewrites it.
      gen->shadow = options.shadow_dir / fmt::format("{}-g{}-{}{}", m.id, gen->number, shadow_counter.fetch_add(1), m.binary().extension().string());
      std::filesystem::create_directories(options.shadow_dir, ec);
      if (!std::filesystem::copy_file(m.binary(), gen->shadow, std::filesystem::copy_options::overwrite_existing, ec))
        return Error{ErrorCode::unavailable, fmt::format("plugin '{}': cannot copy binary to {}: {}", m.id, gen->shadow.string(), ec.message())};
    } else {
      // One mapped module per binary version in the process, whichever Manager loads it.
      XCORE_ASSIGN_OR_RETURN(module, shared_module(m.binary(), options.shadow_dir, m.id));
    }
  }

  gen->services = std::make_unique<GenerationServices>(*this, m, gen);
  if (m.remote()) {
    RemoteMcpOptions ro;
    ro.clock = options.clock;
    if (options.remote_address) {
      auto host = mcp::url_host(m.url);
      if (!host) return Error{host.error().code, fmt::format("plugin '{}': {}", m.id, host.error().message)};
      auto address = options.remote_address(m, *host);
      if (!address) return Error{address.error().code, fmt::format("plugin '{}': {}", m.id, address.error().message), address.error().details};
      ro.pinned_address = std::move(*address);
    }
    XCORE_ASSIGN_OR_RETURN(gen->runner, open_remote_mcp(m, *gen->services, std::move(ro)));
  } else if (m.mode == PluginMode::sandboxed) {
    sandbox::SandboxOptions so;
    if (options.plugin_host.empty()) {
      auto found = sandbox::find_plugin_host();
      if (!found) return Error{found.error().code, fmt::format("plugin '{}': {}", m.id, found.error().message)};
      so.plugin_host = std::move(*found);
    } else {
      so.plugin_host = options.plugin_host;
    }
    so.call_timeout = options.sandbox_call_timeout;
    so.crash_budget = options.crash_budget;
    so.crash_window = options.crash_window;
    so.backoff_base = options.restart_backoff;
    so.data_dir = options.data_dir / m.id;
    so.user = options.sandbox_user;
    so.uid = options.sandbox_uid;
    XCORE_ASSIGN_OR_RETURN(gen->runner, sandbox::open_sandboxed(m, gen->shadow, *gen->services, so));
  } else {
    if (!module) return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}': an external command runs only sandboxed", m.id)};
    XCORE_ASSIGN_OR_RETURN(gen->runner, open_in_process(m, std::move(module), *gen->services));
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

void Manager::Impl::retire(std::shared_ptr<Generation> gen, bool was_enabled) {
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

Result<void> Manager::Impl::load_locked(std::string_view id, LoadChain& chain) {
  auto slot = find(id);
  if (!slot) return no_such_plugin(id);
  if (is_loaded(slot->state)) return ok();
  if (failed_with_generation(*slot)) XCORE_TRY(unload_locked(id, true));
  if (std::find(chain.ids.begin(), chain.ids.end(), id) != chain.ids.end()) {
    std::string cycle;
    json::array members;
    for (const auto& c : chain.ids) {
      cycle += c + " -> ";
      members.emplace_back(c);
    }
    members.emplace_back(id);
    chain.cycle = true;
    return fail(*slot, Error{ErrorCode::conflict, fmt::format("dependency cycle: {}{}", cycle, id),
                             xcore::json_text::serialize(json::object{{"dependency_cycle", std::move(members)}})});
  }
  const auto m_shared = slot->manifest;  // this operation's: a rediscovery may replace the slot's meanwhile
  const auto& m = *m_shared;
  chain.ids.push_back(m.id);
  for (const auto& dep : m.dependencies) {
    auto d = find(dep.id);
    if (!d) {
      chain.ids.pop_back();
      return fail(*slot, Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' requires '{}' ({}), which was not discovered",
                                                                           m.id, dep.id, dep.versions.text())});
    }
    if (!dep.versions.contains(d->manifest->version)) {
      chain.ids.pop_back();
      return fail(*slot, Error{ErrorCode::incompatible, fmt::format("plugin '{}' requires '{}' {}, but version {} is installed", m.id,
                                                                    dep.id, dep.versions.text(), d->manifest->version.to_string())});
    }
    if (auto r = load_locked(dep.id, chain); !r) {
      chain.ids.pop_back();
      if (chain.cycle) return fail(*slot, r.error());
      return fail(*slot, Error{r.error().code, fmt::format("plugin '{}': dependency '{}' failed to load: {}", m.id, dep.id, r.error().message)});
    }
  }
  chain.ids.pop_back();

  json::object config;
  {
    std::shared_lock lock(catalogue_mutex);
    config = slot->config;
  }
  auto gen = start_generation(slot, m, config);
  if (!gen) return fail(*slot, std::move(gen).error());

  slot->apply_limits((*gen)->manifest.limits, default_concurrency((*gen)->manifest));
  if (auto r = publish(slot, *gen); !r) {
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

void Manager::Impl::register_competencies(Generation& gen) {
  auto all = gen.manifest.competencies;
  if (gen.services)
    for (auto& c : gen.services->runtime_competencies()) {
      std::erase_if(all, [&](const Competency& m) { return m.id == c.id; });
      all.push_back(std::move(c));
    }
  for (const auto& c : all)
    if (auto r = competency_registry.add(c); !r) log(LogLevel::warn, gen.manifest.id, fmt::format("competency '{}' not registered: {}", c.id, r.error().message));
}

void Manager::Impl::competencies_changed(const std::string& plugin, Generation& gen) {
  auto slot = find(plugin);
  if (!slot) return;
  std::lock_guard lock(slot->publish_mutex);
  // Not current, or not enabled: enabling (or the reload's swap) registers them.
  if (slot->current.load().get() != &gen || !slot->enabled.load(std::memory_order_acquire)) return;
  competency_registry.remove_plugin(plugin);
  register_competencies(gen);
}

Result<void> Manager::Impl::enable_locked(std::string_view id) {
  LoadChain chain;
  XCORE_TRY(load_locked(id, chain));
  auto slot = find(id);
  if (slot->state == PluginState::enabled) return ok();
  for (const auto& dep : slot->manifest->dependencies)
    if (auto r = enable_locked(dep.id); !r)
      return Error{r.error().code, fmt::format("plugin '{}': dependency '{}' could not be enabled: {}", id, dep.id, r.error().message)};
  auto gen = slot->current.load();
  if (auto r = gen->runner->on_enable(); !r) {
    log(LogLevel::error, slot->id, r.error().message);
    std::unique_lock lock(catalogue_mutex);
    slot->last_error = r.error();
    return r;
  }
  {
    std::lock_guard lock(slot->publish_mutex);
    if (slot->state == PluginState::failed) {  // its runner gave up while on_enable ran
      std::shared_lock catalogue(catalogue_mutex);
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}' failed while being enabled: {}", id,
                                                       slot->last_error ? slot->last_error->message : "its runner gave up")};
    }
    slot->enabled.store(true, std::memory_order_release);
    detail::PluginTools::set_enabled(tool_registry, slot->id, true);
    gen->hooks_active->store(true, std::memory_order_release);
    set_state(*slot, PluginState::enabled);
    register_competencies(*gen);
  }
  queue_event("plugin.enabled", plugin_event(*slot));
  return ok();
}

Result<void> Manager::Impl::disable_locked(std::string_view id, bool cascade) {
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
  auto gen = slot->current.load();
  {
    std::lock_guard lock(slot->publish_mutex);
    slot->enabled.store(false, std::memory_order_release);
    detail::PluginTools::set_enabled(tool_registry, slot->id, false);
    gen->hooks_active->store(false, std::memory_order_release);
    competency_registry.remove_plugin(slot->id);
  }
  if (auto r = gen->runner->on_disable(); !r) log(LogLevel::warn, slot->id, r.error().message);
  set_state(*slot, PluginState::disabled);
  queue_event("plugin.disabled", plugin_event(*slot));
  return ok();
}

Result<void> Manager::Impl::unload_locked(std::string_view id, bool cascade) {
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
  std::shared_ptr<Generation> gen;
  {
    std::lock_guard lock(slot->publish_mutex);
    slot->enabled.store(false, std::memory_order_release);
    detail::PluginTools::remove(tool_registry, slot->id);
    competency_registry.remove_plugin(slot->id);
    gen = slot->current.exchange(nullptr);
    if (gen) gen->hooks_active->store(false);
  }
  if (was_enabled) queue_event("plugin.disabled", plugin_event(*slot));
  retire(std::move(gen), was_enabled);
  set_state(*slot, PluginState::unloaded);
  log(LogLevel::info, slot->id, "unloaded");
  queue_event("plugin.unloaded", plugin_event(*slot));
  return ok();
}

Result<void> Manager::Impl::reload_locked(std::string_view id) {
  auto slot = find(id);
  if (!slot) return no_such_plugin(id);
  if (failed_with_generation(*slot)) {
    XCORE_TRY(unload_locked(id, true));
    LoadChain chain;
    return load_locked(id, chain);
  }
  if (!is_loaded(slot->state))
    return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' is {}; only a loaded plugin can be reloaded", id, to_string(slot->state))};
  XCORE_ASSIGN_OR_RETURN(const auto loaded, load_manifest_shared(slot->manifest->file));
  const std::shared_ptr<const PluginManifest> read(loaded, &loaded->manifest);
  const auto& m = *read;
  if (m.id != slot->id)
    return Error{ErrorCode::conflict, fmt::format("{}: the id changed from '{}' to '{}'; unload and load instead", m.file.string(), slot->id, m.id)};
  for (const auto& d : dependents_of(id, false))
    for (const auto& dep : d->manifest->dependencies)
      if (dep.id == id && !dep.versions.contains(m.version))
        return Error{ErrorCode::conflict, fmt::format("plugin '{}' requires '{}' {}, which version {} would break", d->manifest->id, id,
                                                      dep.versions.text(), m.version.to_string())};
  for (const auto& dep : m.dependencies) {
    auto d = find(dep.id);
    if (!d || !is_loaded(d->state) || !dep.versions.contains(d->manifest->version))
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
  // Swap: new calls reach the new generation from here on. Its tools were checked in start_generation,
  // but another plugin may have taken a name since: then the old generation keeps serving.
  auto swapped = publish(slot, gen);
  if (!swapped) {
    log(LogLevel::error, id, fmt::format("reload failed, the previous version keeps serving: {}", swapped.error().message));
    retire(gen, enabled);
    std::unique_lock lock(catalogue_mutex);
    slot->last_error = swapped.error();
    return std::move(swapped).error();
  }
  auto old = *swapped;
  gen->hooks_active->store(enabled);
  if (old) old->hooks_active->store(false);
  {
    std::unique_lock lock(catalogue_mutex);
    slot->manifest = read;
    slot->warnings = loaded->warnings;
    slot->generations = gen->number;
    ++slot->reloads;
    slot->last_error.reset();
  }
  slot->apply_limits(gen->manifest.limits, default_concurrency(gen->manifest));
  if (enabled) {
    std::lock_guard lock(slot->publish_mutex);
    competency_registry.remove_plugin(id);
    register_competencies(*gen);
  }
  retire(std::move(old), enabled);
  log(LogLevel::info, id, fmt::format("reloaded: version {} (generation {})", m.version.to_string(), gen->number));
  auto p = plugin_event(*slot);
  p["generation"] = gen->number;
  queue_event("plugin.reloaded", std::move(p));
  return ok();
}

}  // namespace xcore::inline v1
