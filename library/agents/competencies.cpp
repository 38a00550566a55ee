#include <xcore/competencies.hpp>
#include <xcore/tools.hpp>

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>

namespace xcore::inline v1 {

namespace {

Result<std::vector<std::string>> string_list(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return out;
  if (!it->value().is_array()) return Error{ErrorCode::invalid_argument, fmt::format("competency.{}: expected a list of strings", key)};
  for (const auto& v : it->value().as_array()) {
    if (!v.is_string() || v.as_string().empty())
      return Error{ErrorCode::invalid_argument, fmt::format("competency.{}[{}]: expected a non-empty string", key, out.size())};
    out.emplace_back(v.as_string());
  }
  return out;
}

json::array to_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

Result<Competency> Competency::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "competency: expected an object"};
  const auto& o = v.as_object();
  Competency c;
  for (const auto& [k, value] : o) {
    const std::string_view key = k;
    if (key == "id" || key == "name" || key == "description" || key == "category") {
      if (!value.is_string()) return Error{ErrorCode::invalid_argument, fmt::format("competency.{}: expected a string", key)};
      std::string s(value.as_string());
      (key == "id" ? c.id : key == "name" ? c.name : key == "description" ? c.description : c.category) = std::move(s);
    } else if (key == "level") {
      if (!value.is_int64() || value.as_int64() < 1 || value.as_int64() > 5)
        return Error{ErrorCode::invalid_argument, "competency.level: expected an integer from 1 to 5"};
      c.level = static_cast<unsigned>(value.as_int64());
    } else if (key != "prerequisites" && key != "tools") {
      return Error{ErrorCode::invalid_argument,
                   fmt::format("competency.{}: unknown field (expected id, name, description, category, level, prerequisites, tools)", key)};
    }
  }
  if (c.id.empty() || !is_valid_tool_name(c.id))
    return Error{ErrorCode::invalid_argument, fmt::format("competency.id: '{}' must be 1-128 of A-Z a-z 0-9 _ . -", c.id)};
  XCORE_ASSIGN_OR_RETURN(c.prerequisites, string_list(o, "prerequisites"));
  XCORE_ASSIGN_OR_RETURN(c.tools, string_list(o, "tools"));
  if (c.name.empty()) c.name = c.id;
  return c;
}

json::object Competency::to_json() const {
  json::object o{{"id", id},       {"name", name},   {"description", description}, {"category", category},
                 {"level", level}, {"prerequisites", to_array(prerequisites)},      {"tools", to_array(tools)}};
  o["plugin"] = plugin.empty() ? json::value(nullptr) : json::value(plugin);
  return o;
}

namespace detail {
struct CompetencyRegistryState {
  mutable std::shared_mutex mutex;
  std::map<std::pair<std::string, std::string>, Competency> by_tenant_id;  // (tenant, id)

  const Competency* find(std::string_view id, std::string_view tenant) const {
    if (auto it = by_tenant_id.find({std::string(tenant), std::string(id)}); it != by_tenant_id.end()) return &it->second;
    if (!tenant.empty())
      if (auto it = by_tenant_id.find({std::string(), std::string(id)}); it != by_tenant_id.end()) return &it->second;
    return nullptr;
  }
};
}  // namespace detail

CompetencyRegistry::CompetencyRegistry() : state_(std::make_unique<detail::CompetencyRegistryState>()) {}
CompetencyRegistry::~CompetencyRegistry() = default;

Result<void> CompetencyRegistry::add(Competency c) {
  std::unique_lock lock(state_->mutex);
  if (const auto* taken = state_->find(c.id, c.tenant); taken && (taken->tenant == c.tenant || c.tenant.empty() || taken->tenant.empty()))
    return Error{ErrorCode::already_exists,
                 fmt::format("competency '{}' is already declared{}", c.id, taken->plugin.empty() ? std::string() : fmt::format(" by plugin '{}'", taken->plugin))};
  auto key = std::make_pair(c.tenant, c.id);
  state_->by_tenant_id.emplace(std::move(key), std::move(c));
  return ok();
}

Result<void> CompetencyRegistry::remove(std::string_view id, std::string_view tenant) {
  std::unique_lock lock(state_->mutex);
  if (state_->by_tenant_id.erase({std::string(tenant), std::string(id)}) == 0)
    return Error{ErrorCode::not_found, fmt::format("no competency '{}'", id)};
  return ok();
}

void CompetencyRegistry::remove_plugin(std::string_view plugin, std::string_view tenant) {
  std::unique_lock lock(state_->mutex);
  std::erase_if(state_->by_tenant_id, [&](const auto& kv) { return kv.second.plugin == plugin && kv.second.tenant == tenant; });
}

std::optional<Competency> CompetencyRegistry::find(std::string_view id, std::string_view tenant) const {
  std::shared_lock lock(state_->mutex);
  if (const auto* c = state_->find(id, tenant)) return *c;
  return std::nullopt;
}

std::vector<Competency> CompetencyRegistry::list(std::string_view tenant, std::string_view category) const {
  std::shared_lock lock(state_->mutex);
  std::vector<Competency> out;
  for (const auto& [key, c] : state_->by_tenant_id)
    if ((c.tenant.empty() || c.tenant == tenant) && (category.empty() || c.category == category)) out.push_back(c);
  std::sort(out.begin(), out.end(), [](const Competency& a, const Competency& b) { return a.id < b.id; });
  return out;
}

Result<std::vector<std::string>> CompetencyRegistry::tools_for(const std::vector<std::string>& ids, std::string_view tenant) const {
  std::shared_lock lock(state_->mutex);
  std::vector<std::string> tools;
  std::set<std::string> seen;
  std::vector<std::string> todo(ids.rbegin(), ids.rend());
  while (!todo.empty()) {
    auto id = std::move(todo.back());
    todo.pop_back();
    if (!seen.insert(id).second) continue;
    const auto* c = state_->find(id, tenant);
    if (!c) return Error{ErrorCode::not_found, fmt::format("no competency '{}'", id)};
    for (const auto& t : c->tools)
      if (std::find(tools.begin(), tools.end(), t) == tools.end()) tools.push_back(t);
    for (const auto& p : c->prerequisites) todo.push_back(p);
  }
  return tools;
}

}  // namespace xcore::inline v1
