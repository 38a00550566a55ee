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

// The host services a plugin calls by name: request and answer are JSON objects. These names travel as
// `service` in the C ABI's call_host, as xcore/host/<name> on the sandbox's wire, and select an entry of
// the Manager's table (manager/host_services.cpp), the one place a service is implemented. The fixed
// members of xcore_host_api (ABI 1.0 and 1.1) are these same services under their old signatures.
namespace host_service {
inline constexpr std::string_view emit_hook = "emit_hook";              // {hook, payload, tenant?} -> {results, vetoed, veto_reason?}
inline constexpr std::string_view call_tool = "call_tool";              // {name, arguments} -> an MCP CallToolResult
inline constexpr std::string_view call_action = "call_action";          // {plugin, action, params} -> the action's answer
inline constexpr std::string_view config = "config";                    // {} -> the plugin's config
inline constexpr std::string_view register_tool = "register_tool";      // {tool} -> {}
inline constexpr std::string_view unregister_tool = "unregister_tool";  // {name} -> {}
inline constexpr std::string_view secret = "secret";                    // {name} -> {value}
inline constexpr std::string_view schedule = "schedule";                // {job} -> {}
inline constexpr std::string_view unschedule = "unschedule";            // {name} -> {}
inline constexpr std::string_view register_route = "register_route";    // {route} -> {}
// A competency for agents ({id, name, category, level, prerequisites, tools}), while this load of the plugin
// is enabled; declaring an id again replaces it.
inline constexpr std::string_view declare_competency = "declare_competency";  // {competency} -> {}
// To the caller of the call being served (CallContext::peer); without one they reach nobody.
inline constexpr std::string_view progress = "progress";              // {progress, total?, message?} -> {delivered}
inline constexpr std::string_view caller_log = "caller_log";          // {level, data, logger?} -> {delivered}
inline constexpr std::string_view client_request = "client_request";  // {method, params} -> the client's result
// Not callable by name: they carry a callback (subscriptions) or have no answer (log).
inline constexpr std::string_view subscribe_hook = "subscribe_hook";
inline constexpr std::string_view unsubscribe_hook = "unsubscribe_hook";
inline constexpr std::string_view log = "log";
inline bool by_name(std::string_view s) { return s != subscribe_hook && s != unsubscribe_hook && s != log; }
}  // namespace host_service

// What a running plugin may ask of the host. The Manager implements it per plugin generation and
// enforces the manifest's permissions; runners only translate their transport into these calls.
class PluginServices {
 public:
  virtual ~PluginServices() = default;
  virtual void log(LogLevel level, std::string_view message) = 0;
  virtual Result<std::uint64_t> subscribe_hook(std::string_view hook, HookBand band, int priority, HookHandler handler) = 0;
  virtual bool unsubscribe_hook(std::uint64_t id) = 0;
  // Every other service, by its name in host_service. `ctx`: the call being served, if any.
  virtual Result<json::value> call(std::string_view service, const json::object& request, const CallContext& ctx) = 0;
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
  // MCP's resources, prompts and completions (plugin.h's serve_mcp): not_found when the plugin has none of
  // what `params` names.
  virtual Result<json::value> serve_mcp(std::string_view method, const json::value& params, const CallContext& ctx) = 0;
  // Where and how it runs, for PluginInfo::runner: {"kind": "in_process"|"sandbox", ...}.
  virtual json::object describe() const = 0;
};

}  // namespace xcore::inline v1
