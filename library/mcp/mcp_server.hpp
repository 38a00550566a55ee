// The server side of MCP over a tool registry: the methods every transport shares (stdio in `xcore mcp`,
// Streamable HTTP later), so each transport only moves messages.
#pragma once

#include <string>
#include <string_view>

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/tools.hpp>

namespace xcore::inline v1::mcp {

struct ServerOptions {
  std::string name = "xcore";
  std::string version;
  CallContext context;     // whose calls these are: tools/list shows what its principal may see
  ToolFilter filter;       // which tools are offered
  std::size_t page_size = 100;  // tools per tools/list page (nextCursor beyond)
  // Whether the transport can send notifications/tools/list_changed (stdio can; a request-response HTTP
  // exchange with no server stream cannot): initialize says so.
  bool list_changed = true;
};

class ToolServer {
 public:
  ToolServer(ToolRegistry& tools, ServerOptions options) : tools_(tools), options_(std::move(options)) {}
  // One request: its result, or an Error for protocol faults only (unknown method, malformed params, unknown
  // tool). A tool that fails or refuses its arguments answers a result with isError, as MCP asks, so the
  // model sees why and can correct itself.
  Result<json::value> handle(std::string_view method, const json::value& params);

 private:
  Result<json::value> list_tools(const json::object& params);
  Result<json::value> call_tool(const json::object& params);
  ToolRegistry& tools_;
  ServerOptions options_;
};

}  // namespace xcore::inline v1::mcp
