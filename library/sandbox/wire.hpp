// The shapes both ends of the sandbox protocol agree on: MCP's initialize, tools, call contexts, hooks.
#pragma once

#include <functional>
#include <vector>

#include <optional>
#include <string>
#include <string_view>

#include <xcore/call_context.hpp>
#include <xcore/hooks.hpp>
#include <xcore/json.hpp>
#include <xcore/tools.hpp>

namespace xcore::inline v1::wire {

// MCP protocol versions we speak, oldest first. A peer asking for another gets the newest.
inline constexpr std::string_view kProtocolVersions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};
bool supported_protocol(std::string_view version);
// Every page of an MCP server's tools/list (following nextCursor, at most 1000 pages), as ToolSpecs;
// `list_page` sends one tools/list with the given params.
Result<std::vector<ToolSpec>> list_tool_pages(std::string_view plugin, const std::function<Result<json::value>(const json::object& params)>& list_page);

json::object initialize_params(std::string_view client_name, std::string_view client_version);
// `list_changed`: whether the transport can tell the client when the tools change.
json::object initialize_result(const json::object& params, std::string_view server_name, std::string_view server_version,
                               bool list_changed = true);

json::object tool_to_json(const ToolSpec& spec);

// `serving`: the token of the call (see SandboxRunner's Serving); the plugin's host calls send it back.
json::object context_to_json(const CallContext& ctx, std::string_view serving = {});
CallContext context_from_json(const json::value& v);
// tools/call carries the context as params._meta.xcore, where MCP allows extensions.
json::object meta_with_context(const CallContext& ctx, std::string_view serving = {});
// The token a call's context carries (empty if none).
std::string serving_of(const json::value& context);
CallContext context_from_meta(const json::object& params);

// A plugin's process asks for host service <name> as the request xcore/host/<name>.
inline constexpr std::string_view kHostMethodPrefix = "xcore/host/";
inline std::string host_method(std::string_view service) { return std::string(kHostMethodPrefix).append(service); }
inline std::optional<std::string_view> host_service_of(std::string_view method) {
  if (!method.starts_with(kHostMethodPrefix)) return std::nullopt;
  return method.substr(kHostMethodPrefix.size());
}

json::object outcome_to_json(const HookOutcome& o);
json::object reply_to_json(const HookReply& r);
HookReply reply_from_json(const json::value& v);

}  // namespace xcore::inline v1::wire
