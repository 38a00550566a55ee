// Competencies: skills an agent is given (a category and a level) that enable tools. They sit beside the tool
// registry: plugins declare them (in the manifest, `competencies:`) and they go with their plugin.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1 {

struct Competency {
  std::string id;  // like a tool name: [A-Za-z0-9_.-], unique per tenant
  std::string name;
  std::string description;
  std::string category;
  unsigned level = 1;                      // 1 (basic) .. 5 (expert)
  std::vector<std::string> prerequisites;  // competency ids it needs: granting this grants them too
  std::vector<std::string> tools;          // tool names or patterns ('*'): what it enables
  std::string plugin;                      // owner; empty for the host's own
  std::string tenant;                      // empty: every tenant

  // {"id","name","description","category","level","prerequisites","tools"}; errors name the field.
  static Result<Competency> from_json(const json::value& v);
  json::object to_json() const;
};

namespace detail {
struct CompetencyRegistryState;
}

class CompetencyRegistry {
 public:
  CompetencyRegistry();
  ~CompetencyRegistry();
  CompetencyRegistry(const CompetencyRegistry&) = delete;
  CompetencyRegistry& operator=(const CompetencyRegistry&) = delete;

  // already_exists when the id is taken in that tenant (or globally).
  Result<void> add(Competency c);
  Result<void> remove(std::string_view id, std::string_view tenant = {});
  // Every competency the plugin declared (in that tenant): when it is disabled or unloaded.
  void remove_plugin(std::string_view plugin, std::string_view tenant = {});

  std::optional<Competency> find(std::string_view id, std::string_view tenant = {}) const;
  // Those visible to the tenant (its own and the global ones), by id; `category` filters when set.
  std::vector<Competency> list(std::string_view tenant = {}, std::string_view category = {}) const;
  // The tool patterns the named competencies enable, prerequisites included (transitively). An unknown id
  // is not_found; a cycle is harmless.
  Result<std::vector<std::string>> tools_for(const std::vector<std::string>& ids, std::string_view tenant = {}) const;

 private:
  std::unique_ptr<detail::CompetencyRegistryState> state_;
};

}  // namespace xcore::inline v1
