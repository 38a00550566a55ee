// The Manager's call path (limits, generation gates) and what a generation publishes: tools, host services.
#include "manager/manager_impl.hpp"
#include "tools/plugin_tools.hpp"

namespace xcore::inline v1 {

Result<GenerationLease> Manager::Impl::acquire(PluginSlot& slot) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto gen = slot.current.load();
    if (!gen) return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is not loaded", slot.id)};
    if (gen->enter()) return GenerationLease(std::move(gen));
    if (slot.current.load() == gen)
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is being unloaded", slot.id)};
  }
  return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is reloading too often to serve calls", slot.id)};
}

ToolHandler Manager::Impl::make_tool_handler(const SlotPtr& slot, const std::string& tool_name) {
  return [this, weak = std::weak_ptr<PluginSlot>(slot), tool_name](const json::value& args, const CallContext& ctx) -> Result<ToolResult> {
    auto s = weak.lock();
    if (!s) return Error{ErrorCode::unavailable, "the plugin is gone"};
    return name_plugin_failure(
        with_plugin<ToolResult>(*s, ctx, false, [&](Generation& g, const CallContext& c) { return g.runner->call_tool(tool_name, args, c); }),
        fmt::format("tool '{}' of plugin '{}'", tool_name, s->id));
  };
}

Result<std::vector<ToolSpec>> Manager::Impl::tool_set(Generation& gen) {
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
  XCORE_TRY(detail::PluginTools::check(tools));
  return tools;
}

Result<void> Manager::Impl::publish_tools(const SlotPtr& slot, Generation& gen) {
  XCORE_ASSIGN_OR_RETURN(auto tools, tool_set(gen));
  XCORE_TRY(detail::PluginTools::replace(tool_registry, slot->id, std::move(tools),
                                               [&](const ToolSpec& s) { return make_tool_handler(slot, s.name); }));
  detail::PluginTools::set_enabled(tool_registry, slot->id, slot->enabled.load());
  return ok();
}

void Manager::Impl::refresh_tools(const std::string& plugin, Generation& gen) {
  // Only the current generation publishes tools. One still being built lists them itself once loaded
  // (and may not even have its runner yet): nothing to do for it.
  auto slot = find(plugin);
  if (!slot || slot->current.load().get() != &gen) return;
  auto listed = gen.runner->list_tools();  // plugin code: outside publish_mutex
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

Result<std::shared_ptr<Generation>> Manager::Impl::publish(const SlotPtr& slot, std::shared_ptr<Generation> gen) {
  std::lock_guard lock(slot->publish_mutex);
  auto previous = slot->current.exchange(gen);
  if (auto r = publish_tools(slot, *gen); !r) {
    slot->current.store(previous);
    return std::move(r).error();
  }
  return previous;
}

Result<void> Manager::Impl::schedule_job(std::string_view plugin, const json::value& job) {
  auto sink = job_sink.load();
  if (!sink || !sink->add) return Error{ErrorCode::unavailable, "this host runs no scheduler"};
  return sink->add(plugin, job);
}

Result<void> Manager::Impl::unschedule_job(std::string_view plugin, std::string_view name) {
  auto sink = job_sink.load();
  if (!sink || !sink->remove) return Error{ErrorCode::unavailable, "this host runs no scheduler"};
  return sink->remove(plugin, name);
}

Result<std::string> Manager::Impl::secret(std::string_view plugin, std::string_view name) {
  if (!options.secrets) return Error{ErrorCode::not_found, fmt::format("no secret '{}': this host keeps no secrets", name)};
  return options.secrets(plugin, name);
}

void Manager::Impl::runner_failed(const std::string& plugin, Generation& gen, const Error& why) {
  auto slot = find(plugin);
  if (!slot) return;
  {
    // Runs on the runner's thread, beside any operation: only the generation that is still current
    // may fail its plugin (a reload may have replaced it since). Stop answering and record; unload or
    // reload clean up.
    std::lock_guard lock(slot->publish_mutex);
    if (slot->current.load().get() != &gen) return;
    slot->enabled.store(false, std::memory_order_release);
    detail::PluginTools::set_enabled(tool_registry, plugin, false);
    gen.hooks_active->store(false);
    set_state(*slot, PluginState::failed, why);
  }
  log(LogLevel::error, plugin, why.message);
  auto p = plugin_event(*slot);
  p["code"] = to_string(why.code);
  p["message"] = why.message;
  hook_bus.emit("plugin.failed", p);  // only this event: others belong to the operations that queued them
}

Result<void> Manager::Impl::tools_changed(const std::string& plugin, Generation& gen) {
  auto slot = find(plugin);
  if (!slot) return ok();
  std::lock_guard lock(slot->publish_mutex);
  if (slot->current.load().get() != &gen) return ok();  // not published yet: load/reload will pick the tools up
  return publish_tools(slot, gen);
}

}  // namespace xcore::inline v1
