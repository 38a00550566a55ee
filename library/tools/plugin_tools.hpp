// What only the Manager does to a ToolRegistry: a plugin's whole tool set replaced at once, removed, and
// switched on and off. Not part of the public API: a host registers its own tools with ToolRegistry::add.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include <xcore/tools.hpp>

namespace xcore::inline v1::detail {

struct PluginTools {
  // Checks every spec (names, schemas) without changing anything.
  static Result<void> check(const std::vector<ToolSpec>& specs);
  // Atomically makes `specs` the plugin's tool set: kept names keep their metrics, new ones are added,
  // missing ones removed. A bare name already taken by another owner stays reachable as "plugin.name".
  static Result<void> replace(ToolRegistry& registry, std::string_view plugin, std::vector<ToolSpec> specs,
                              const std::function<ToolHandler(const ToolSpec&)>& make_handler);
  static std::size_t remove(ToolRegistry& registry, std::string_view plugin);
  static void set_enabled(ToolRegistry& registry, std::string_view plugin, bool enabled);
};

}  // namespace xcore::inline v1::detail
