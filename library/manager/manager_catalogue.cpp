// The Manager's catalogue: discovery, lookups, dependency order, what info() reports.
#include "manager/manager_impl.hpp"
#include <xcore/json_text.hpp>

#include <functional>

namespace xcore::inline v1 {

SlotPtr Manager::Impl::find(std::string_view id) const {
  std::shared_lock lock(catalogue_mutex);
  auto it = catalogue.find(id);
  return it == catalogue.end() ? nullptr : it->second;
}

Error Manager::Impl::no_such_plugin(std::string_view id) const {
  return Error{ErrorCode::not_found, fmt::format("no plugin '{}' has been discovered", id)};
}

Result<std::string> Manager::Impl::add_folder(const std::filesystem::path& dir, DiscoveryReport& report) {
  auto file = find_manifest(dir);
  if (!file) return Error{ErrorCode::not_found, fmt::format("{}: no plugin.yaml, plugin.yml or plugin.json", dir.string())};
  XCORE_ASSIGN_OR_RETURN(auto shared, load_manifest_shared(*file));
  const std::shared_ptr<const PluginManifest> manifest(shared, &shared->manifest);
  const auto* loaded = shared.get();
  for (const auto& w : loaded->warnings) {
    log(LogLevel::warn, "xcore", w);
    report.warnings.push_back(w);
  }
  const auto id = loaded->manifest.id;
  for (;;) {
    if (auto slot = find(id)) {
      Claim claim(*this, {slot});  // a plugin's manifest changes only under its claim
      std::unique_lock lock(catalogue_mutex);
      if (std::filesystem::weakly_canonical(slot->manifest->file) != std::filesystem::weakly_canonical(*file))
        return Error{ErrorCode::already_exists, fmt::format("{}: plugin id '{}' is already provided by {}", file->string(), id,
                                                            slot->manifest->file.string())};
      if (!is_loaded(slot->state)) {  // loaded plugins keep their manifest until reload()
        slot->manifest = manifest;
        slot->warnings = loaded->warnings;
      }
      return id;
    }
    std::unique_lock lock(catalogue_mutex);
    if (catalogue.contains(id)) continue;  // another thread added it meanwhile
    auto slot = std::make_shared<PluginSlot>(id);
    slot->manifest = manifest;
    slot->warnings = loaded->warnings;
    if (auto c = options.configs.find(id); c != options.configs.end()) slot->config = c->second;
    catalogue.emplace(id, slot);
    return id;
  }
}

std::vector<SlotPtr> Manager::Impl::reach(std::string_view id, Reach how) const {
  std::vector<SlotPtr> out;
  std::shared_lock lock(catalogue_mutex);
  auto self_it = catalogue.find(id);
  if (self_it == catalogue.end()) return out;
  auto add = [&](const SlotPtr& s) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  std::set<const PluginSlot*> seen_up, seen_down;
  std::function<void(const SlotPtr&)> dependencies = [&](const SlotPtr& s) {
    if (!seen_up.insert(s.get()).second) return;
    add(s);
    for (const auto& dep : s->manifest->dependencies)
      if (auto it = catalogue.find(dep.id); it != catalogue.end()) dependencies(it->second);
  };
  std::function<void(const SlotPtr&, bool)> dependents = [&](const SlotPtr& s, bool enabled_only) {
    if (!seen_down.insert(s.get()).second) return;
    add(s);
    for (const auto& [_, d] : catalogue) {
      if (!(enabled_only ? d->state == PluginState::enabled : is_loaded(d->state))) continue;
      for (const auto& dep : d->manifest->dependencies)
        if (dep.id == s->id) {
          dependents(d, enabled_only);
          break;
        }
    }
  };
  const auto& self = self_it->second;
  const bool failed = failed_with_generation(*self);
  switch (how) {
    case Reach::plugin: add(self); break;
    case Reach::enabled_dependents: dependents(self, true); break;
    case Reach::loaded_dependents: dependents(self, false); break;
    case Reach::reload:
      if (!failed) {
        add(self);
        break;
      }
      [[fallthrough]];  // a failed plugin is unloaded with a cascade and loaded again
    case Reach::load: {
      dependencies(self);
      // Loading a plugin that failed with a generation unloads it first, with its dependents.
      const auto up = out;
      for (const auto& s : up)
        if (failed_with_generation(*s)) dependents(s, false);
      break;
    }
  }
  return out;
}

Manager::Impl::Claim::Claim(Impl& impl, std::vector<SlotPtr> slots) : impl_(impl), slots_(std::move(slots)) {
  const auto me = std::this_thread::get_id();
  std::unique_lock lock(impl_.claims_mutex);
  impl_.claims_cv.wait(lock, [&] {
    return std::all_of(slots_.begin(), slots_.end(), [&](const SlotPtr& s) { return s->claim_depth == 0 || s->claim_owner == me; });
  });
  for (const auto& s : slots_) {
    s->claim_owner = me;
    ++s->claim_depth;
  }
}

Manager::Impl::Claim::~Claim() {
  {
    std::lock_guard lock(impl_.claims_mutex);
    for (const auto& s : slots_)
      if (--s->claim_depth == 0) s->claim_owner = {};
  }
  impl_.claims_cv.notify_all();
}

std::vector<SlotPtr> Manager::Impl::dependents_of(std::string_view id, bool enabled_only) const {
  std::vector<SlotPtr> out;
  std::shared_lock lock(catalogue_mutex);
  for (const auto& [_, s] : catalogue) {
    if (!(enabled_only ? s->state == PluginState::enabled : is_loaded(s->state))) continue;
    for (const auto& d : s->manifest->dependencies)
      if (d.id == id) out.push_back(s);
  }
  return out;
}

std::vector<std::string> Manager::Impl::topological(std::vector<Error>& problems) const {
  std::vector<std::string> order;
  std::map<std::string, int> mark;  // 1 visiting, 2 done
  std::shared_lock lock(catalogue_mutex);
  std::function<void(const std::string&, std::vector<std::string>&)> visit = [&](const std::string& id, std::vector<std::string>& path) {
    if (mark[id] == 2) return;
    if (mark[id] == 1) {
      std::string cycle;
      json::array members;
      auto it = std::find(path.begin(), path.end(), id);
      for (; it != path.end(); ++it) {
        cycle += *it + " -> ";
        members.emplace_back(*it);
      }
      members.emplace_back(id);
      problems.push_back(Error{ErrorCode::conflict, fmt::format("dependency cycle: {}{}", cycle, id),
                               xcore::json_text::serialize(json::object{{"dependency_cycle", std::move(members)}})});
      return;
    }
    mark[id] = 1;
    path.push_back(id);
    if (auto it = catalogue.find(id); it != catalogue.end())
      for (const auto& d : it->second->manifest->dependencies) visit(d.id, path);
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

PluginInfo Manager::Impl::info_of(const PluginSlot& s) const {
  PluginInfo i;
  {
    std::shared_lock lock(catalogue_mutex);
    i.manifest = *s.manifest;
    i.state = s.state;
    i.last_error = s.last_error;
    i.warnings = s.warnings;
    i.config = s.config;
    i.stats.generation = s.generations;
    i.stats.reloads = s.reloads;
  }
  for (const auto& d : dependents_of(s.manifest->id, false)) i.dependents.push_back(d->manifest->id);
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

void Manager::Impl::refresh_watches() {  // caller holds watcher_mutex
  if (!watcher) return;
  std::vector<std::pair<std::string, std::filesystem::path>> dirs;
  {
    std::shared_lock lock(catalogue_mutex);
    for (const auto& [id, s] : catalogue) dirs.emplace_back(id, s->manifest->dir());
  }
  for (const auto& [id, dir] : dirs) watcher->watch(id, dir);
}

}  // namespace xcore::inline v1
