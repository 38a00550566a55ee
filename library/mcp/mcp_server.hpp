// The server side of MCP over a tool registry: the methods every transport shares (stdio in `xcore mcp`,
// Streamable HTTP later), so each transport only moves messages.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/manager.hpp>
#include <xcore/tools.hpp>

namespace xcore::inline v1::mcp {

// The transport's way back to the client while one of its requests runs (an SSE answer to an HTTP POST,
// the stdio pipe). Thread-safe: a tool's threads may use it while the request runs.
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  virtual void notify(std::string_view method, const json::object& params) = 0;
  // A request to the client and its result; fails at the context's deadline or cancellation.
  virtual Result<json::value> request(std::string_view method, const json::object& params, const CallContext& ctx) = 0;
};

// What MCP keeps of one client across its requests: what it said it can do (initialize) and the log level
// it asked for (logging/setLevel). Shared by the session's requests, which may run at once.
class ClientSession {
 public:
  void set_capabilities(json::object capabilities);
  // The client declared `name` (sampling, elicitation, roots) in initialize.
  bool can(std::string_view name) const;
  void set_log_level(int level);
  // -1 until the client sets one: no log messages are sent before it asks.
  int log_level() const;

 private:
  mutable std::mutex mutex_;
  json::object capabilities_;
  int log_level_ = -1;
};

// MCP's log levels, lowest first ("debug" is 0); -1 for a name that is not one.
int log_level_index(std::string_view name);

struct ServerOptions {
  std::string name = "xcore";
  std::string version;
  CallContext context;     // whose calls these are: tools/list shows what its principal may see
  ToolFilter filter;       // which tools are offered
  std::size_t page_size = 100;  // tools per tools/list page (nextCursor beyond)
  // Whether the transport can send notifications/tools/list_changed (stdio can; a request-response HTTP
  // exchange with no server stream cannot): initialize says so.
  bool list_changed = true;
  // Whose resources, prompts and completions are served besides the registry's tools (null: tools only).
  Manager* plugins = nullptr;
  // The client's session; a fresh one when null.
  std::shared_ptr<ClientSession> session;
  // Where notifications and requests to the client go while a request runs; null when the answer is the
  // only thing the transport can send (tools then see no CallContext::peer).
  ClientChannel* channel = nullptr;
};

class ToolServer {
 public:
  ToolServer(ToolRegistry& tools, ServerOptions options);
  // One request: its result, or an Error for protocol faults only (unknown method, malformed params, unknown
  // tool). A tool that fails or refuses its arguments answers a result with isError, as MCP asks, so the
  // model sees why and can correct itself.
  Result<json::value> handle(std::string_view method, const json::value& params);

 private:
  Result<json::value> list_tools(const json::object& params);
  Result<json::value> call_tool(const json::object& params);
  Result<json::value> set_log_level(const json::object& params);
  ToolRegistry& tools_;
  ServerOptions options_;
};

}  // namespace xcore::inline v1::mcp
