#include "mcp/mcp_server.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fmt/ranges.h>

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
constexpr std::string_view kLogLevels[] = {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};

// A tool's caller as MCP sees it: progress goes out when the request carried a progressToken, log messages
// at or above the level the client set, requests only for what the client said it can do.
class ClientPeer final : public CallPeer {
 public:
  ClientPeer(ClientChannel& channel, std::shared_ptr<ClientSession> session, json::value progress_token)
      : channel_(channel), session_(std::move(session)), token_(std::move(progress_token)) {}

  void progress(double done, std::optional<double> total, std::string_view message) override {
    if (token_.is_null()) return;
    json::object p{{"progressToken", token_}, {"progress", done}};
    if (total) p["total"] = *total;
    if (!message.empty()) p["message"] = message;
    channel_.notify("notifications/progress", p);
  }
  void log(std::string_view level, std::string_view logger, const json::value& data) override {
    const int wanted = session_->log_level();
    const int index = log_level_index(level);
    if (wanted < 0 || index < wanted) return;
    json::object p{{"level", level}, {"data", data}};
    if (!logger.empty()) p["logger"] = logger;
    channel_.notify("notifications/message", p);
  }
  Result<json::value> request(std::string_view method, const json::object& params, const CallContext& ctx) override {
    const std::string_view capability = method.substr(0, method.find('/'));
    if (!session_->can(capability))
      return Error{ErrorCode::failed_precondition, fmt::format("the client did not declare the '{}' capability: it cannot be sent '{}'", capability, method)};
    return channel_.request(method, params, ctx);
  }

 private:
  ClientChannel& channel_;
  std::shared_ptr<ClientSession> session_;
  json::value token_;
};
}  // namespace

int log_level_index(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kLogLevels); ++i)
    if (kLogLevels[i] == name) return static_cast<int>(i);
  return -1;
}

void ClientSession::set_capabilities(json::object capabilities) {
  std::lock_guard lock(mutex_);
  capabilities_ = std::move(capabilities);
}
bool ClientSession::can(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const auto* c = capabilities_.if_contains(name);
  return c && c->is_object();
}
void ClientSession::set_log_level(int level) {
  std::lock_guard lock(mutex_);
  log_level_ = level;
}
int ClientSession::log_level() const {
  std::lock_guard lock(mutex_);
  return log_level_;
}

ToolServer::ToolServer(ToolRegistry& tools, ServerOptions options) : tools_(tools), options_(std::move(options)) {
  if (!options_.session) options_.session = std::make_shared<ClientSession>();
}

Result<json::value> ToolServer::handle(std::string_view method, const json::value& params) {
  const auto& p = object_or_empty(params);
  if (method == "initialize") {
    if (const auto* c = p.if_contains("capabilities"); c && c->is_object()) options_.session->set_capabilities(c->get_object());
    auto r = wire::initialize_result(p, options_.name, options_.version, options_.list_changed);
    auto& capabilities = r["capabilities"].as_object();
    capabilities["logging"] = json::object();
    if (options_.plugins) {
      capabilities["resources"] = json::object{{"subscribe", true}, {"listChanged", options_.list_changed}};
      capabilities["prompts"] = json::object{{"listChanged", options_.list_changed}};
      capabilities["completions"] = json::object();
    }
    return r;
  }
  if (method == "ping") return json::object{};
  if (method == "logging/setLevel") return set_log_level(p);
  constexpr std::string_view kPluginMethods[] = {"resources/list",        "resources/templates/list", "resources/read",
                                                  "resources/subscribe",   "resources/unsubscribe",    "prompts/list",
                                                  "prompts/get",           "completion/complete"};
  if (options_.plugins && std::find(std::begin(kPluginMethods), std::end(kPluginMethods), method) != std::end(kPluginMethods)) {
    static const json::value no_params = json::object();
    return options_.plugins->serve_mcp(method, params.is_object() ? params : no_params, options_.context);
  }
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
  auto ctx = options_.context;
  if (options_.channel) {
    json::value token;
    if (const auto* meta = p.if_contains("_meta"); meta && meta->is_object())
      if (const auto* t = meta->get_object().if_contains("progressToken"); t && (t->is_string() || t->is_number())) token = *t;
    ctx.peer = std::make_shared<ClientPeer>(*options_.channel, options_.session, std::move(token));
  }
  auto r = tools_.invoke(name, a == p.end() ? empty : a->value(), ctx);
  if (r) return r->to_mcp();
  // The tool exists: whatever went wrong is the tool's answer, not a protocol fault.
  return ToolResult::failure(r.error()).to_mcp();
}

Result<json::value> ToolServer::set_log_level(const json::object& p) {
  const auto* level = p.if_contains("level");
  const int index = level && level->is_string() ? log_level_index(level->get_string()) : -1;
  if (index < 0)
    return Error{ErrorCode::invalid_argument, fmt::format("logging/setLevel: level must be one of {}", fmt::join(kLogLevels, ", "))};
  options_.session->set_log_level(index);
  return json::object{};
}

}  // namespace xcore::inline v1::mcp
