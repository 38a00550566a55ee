#include "mcp/mcp_server.hpp"

#include <fmt/format.h>

#include "jsonrpc/jsonrpc.hpp"
#include "sandbox/wire.hpp"

namespace xcore::inline v1::mcp {

namespace {
const json::object& object_or_empty(const json::value& v) {
  static const json::object empty;
  return v.is_object() ? v.get_object() : empty;
}

// What a caller may call it sees; what it may not does not exist for it (the registry's own gate: the
// permission by the qualified name or by the name it is called by).
bool visible(const Principal& who, const ToolInfo& tool, std::string_view called) {
  return who.unrestricted() || who.holds("tools.call:" + tool.qualified_name) || who.holds(fmt::format("tools.call:{}", called));
}
}  // namespace

Result<json::value> ToolServer::handle(std::string_view method, const json::value& params) {
  const auto& p = object_or_empty(params);
  if (method == "initialize") {
    return wire::initialize_result(p, options_.name, options_.version, options_.list_changed);
  }
  if (method == "ping") return json::object{};
  if (method == "tools/list") return list_tools(p);
  if (method == "tools/call") return call_tool(p);
  return jsonrpc::method_not_found(method);
}

Result<json::value> ToolServer::list_tools(const json::object& p) {
  // The cursor is the offset into the list, as text: opaque to the client, as MCP asks.
  std::size_t start = 0;
  if (auto c = p.find("cursor"); c != p.end()) {
    if (!c->value().is_string()) return Error{ErrorCode::invalid_argument, "cursor: expected a string from a previous nextCursor"};
    const std::string text(c->value().get_string());
    char* end = nullptr;
    start = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') return Error{ErrorCode::invalid_argument, fmt::format("cursor '{}' is not one this server gave", text)};
  }
  json::array out;
  std::size_t seen = 0;
  bool more = false;
  for (const auto& t : tools_.list(options_.filter)) {
    if (!visible(options_.context.principal, t, t.exposed_name)) continue;
    if (seen++ < start) continue;
    if (out.size() == options_.page_size) {
      more = true;
      break;
    }
    out.push_back(t.spec.to_mcp(t.exposed_name));
  }
  json::object r{{"tools", std::move(out)}};
  if (more) r["nextCursor"] = std::to_string(start + options_.page_size);
  return r;
}

Result<json::value> ToolServer::call_tool(const json::object& p) {
  auto n = p.find("name");
  if (n == p.end() || !n->value().is_string()) return Error{ErrorCode::invalid_argument, "tools/call: params.name must be the tool's name"};
  const std::string name(n->value().get_string());
  auto info = tools_.find(name, options_.context.tenant);
  if (!info || !visible(options_.context.principal, *info, name)) return Error{ErrorCode::invalid_argument, fmt::format("unknown tool '{}'", name)};
  static const json::value empty = json::object();
  auto a = p.find("arguments");
  auto r = tools_.invoke(name, a == p.end() ? empty : a->value(), options_.context);
  if (r) return r->to_mcp();
  // The tool exists: whatever went wrong is the tool's answer, not a protocol fault.
  return ToolResult::failure(r.error()).to_mcp();
}

}  // namespace xcore::inline v1::mcp
