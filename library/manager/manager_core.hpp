// The part of the Manager that generations and tool handlers call back into.
#pragma once

#include <xcore/manager.hpp>

#include "manager/generation.hpp"

namespace xcore::inline v1 {

struct ManagerCore {
  virtual ~ManagerCore() = default;
  virtual HookBus& bus() = 0;
  virtual ToolRegistry& registry() = 0;
  virtual void log(LogLevel level, std::string_view source, std::string_view message) = 0;
  virtual Result<json::value> call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                          const CallContext& ctx) = 0;
  // A generation registered or removed a tool at run time: republish its tool set if it is current.
  virtual Result<void> tools_changed(const std::string& plugin, Generation& gen) = 0;
  // Lists the generation's tools again and publishes them if it is current.
  virtual void refresh_tools(const std::string& plugin, Generation& gen) = 0;
  // The runner of `gen` gave up on it (a sandboxed plugin spent its crash budget); ignored unless `gen` is
  // still the plugin's current generation.
  virtual void runner_failed(const std::string& plugin, Generation& gen, const Error& why) = 0;
  // The host's secret store (ManagerOptions::secrets); permissions are checked before.
  virtual Result<std::string> secret(std::string_view plugin, std::string_view name) = 0;
  virtual Result<void> schedule_job(std::string_view plugin, const json::value& job) = 0;
  // A route's role is one the host defined (ManagerOptions::route_roles).
  virtual Result<void> check_route(std::string_view plugin, const PluginRoute& route) const = 0;
  virtual Result<void> unschedule_job(std::string_view plugin, std::string_view name) = 0;
  // A generation declared competencies at run time: registered again if it is current and enabled.
  virtual void competencies_changed(const std::string& plugin, Generation& gen) = 0;
};

}  // namespace xcore::inline v1
