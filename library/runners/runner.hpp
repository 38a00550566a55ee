// Where a plugin runs is a detail behind this interface: in-process for trusted plugins, a child process
// for sandboxed ones. The Manager never cares which.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/hooks.hpp>
#include <xcore/json.hpp>
#include <xcore/log.hpp>
#include <xcore/tools.hpp>

namespace xcore::inline v1 {

// What a running plugin may ask of the host. The Manager implements it per plugin generation and
// enforces the manifest's permissions; runners only translate their transport into these calls.
class PluginServices {
 public:
  virtual ~PluginServices() = default;
  virtual void log(LogLevel level, std::string_view message) = 0;
  virtual Result<HookOutcome> emit_hook(std::string_view hook, const json::value& payload, std::string_view tenant) = 0;
  virtual Result<std::uint64_t> subscribe_hook(std::string_view hook, HookBand band, int priority, HookHandler handler) = 0;
  virtual bool unsubscribe_hook(std::uint64_t id) = 0;
  virtual Result<ToolResult> call_tool(std::string_view name, const json::value& args, const CallContext& ctx) = 0;
  virtual Result<json::value> call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                          const CallContext& ctx) = 0;
  virtual json::object config() = 0;
  virtual Result<void> register_tool(ToolSpec spec) = 0;
  virtual Result<void> unregister_tool(std::string_view name) = 0;
  // A secret the plugin's manifest grants, from the host's store.
  virtual Result<std::string> secret(std::string_view name) = 0;
  // A job that runs one of the plugin's own actions ({"name","trigger","action","params"}).
  virtual Result<void> schedule_job(const json::value& job) = 0;
  virtual Result<void> unschedule_job(std::string_view name) = 0;
  // An HTTP route for the host to mount while this load of the plugin lasts.
  virtual Result<void> register_route(const json::value& route) = 0;
  // A sandboxed plugin's process was replaced: drop what the old one subscribed and registered.
  virtual void reset_plugin_state() {}
  // The runner gave up on the plugin (its crash budget is spent).
  virtual void runner_failed(const Error& /*why*/) {}
  // The plugin's tool list changed (an MCP server sent notifications/tools/list_changed): list and
  // publish them again. Called from a thread of the runner's own, never from its protocol reader.
  virtual void refresh_tools() {}
};

class Runner {
 public:
  virtual ~Runner() = default;  // releases the plugin (unmaps its code, or ends its process)
  virtual Result<void> on_load(const json::object& config) = 0;
  virtual Result<void> on_enable() = 0;
  virtual Result<void> on_disable() = 0;
  virtual Result<void> on_unload() = 0;
  virtual Result<void> on_config(const json::object& config) = 0;
  virtual Result<json::value> health() = 0;
  virtual Result<std::vector<ToolSpec>> list_tools() = 0;
  virtual Result<ToolResult> call_tool(std::string_view name, const json::value& args, const CallContext& ctx) = 0;
  virtual Result<json::value> handle(std::string_view action, const json::value& params, const CallContext& ctx) = 0;
  // Where and how it runs, for PluginInfo::runner: {"kind": "in_process"|"sandbox", ...}.
  virtual json::object describe() const = 0;
};

}  // namespace xcore::inline v1
