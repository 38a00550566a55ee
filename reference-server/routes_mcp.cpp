// /mcp: the caller's tenant's tools over MCP's Streamable HTTP transport (specification 2025-11-25, also
// 2025-06-18 and 2025-03-26). POST carries JSON-RPC messages and is answered with JSON; GET (a stream the
// server opens) is not offered (405); DELETE ends the session. The methods themselves are libxcore's
// mcp::ToolServer, the same that `xcore mcp` serves over stdio.
#include "server_impl.hpp"

#include "jsonrpc/jsonrpc.hpp"
#include "mcp/mcp_server.hpp"
#include "sandbox/wire.hpp"

namespace xcore::server {

namespace {

// Who a session belongs to: the principal (a user or an API token) within its tenant.
std::string principal_key(const Caller& who) { return fmt::format("{}:{}", to_string(who.principal.kind), who.principal.id); }

std::string_view header(const httplib::Request& req, const char* name) {
  auto it = req.headers.find(name);
  return it == req.headers.end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace

// A page served from this machine's loopback names: http(s)://localhost, 127.0.0.1 or [::1], any port.
static bool loopback_origin(std::string_view origin) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (!origin.starts_with(scheme)) continue;
    auto host = origin.substr(scheme.size());
    for (std::string_view name : {"localhost", "127.0.0.1", "[::1]"}) {
      if (!host.starts_with(name)) continue;
      auto rest = host.substr(name.size());
      if (rest.empty()) return true;
      if (rest.front() != ':' || rest.size() == 1) return false;
      return std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; });
    }
  }
  return false;
}

// A browser page on another origin must not reach the tools with the user's credentials. DNS rebinding
// makes any name point here, but the page's Origin keeps that name: an Origin is accepted when it is a
// loopback one or the settings list it.
Result<void> Server::Impl::mcp_origin_allowed(const httplib::Request& req) const {
  const auto origin = header(req, "Origin");
  if (origin.empty() || loopback_origin(origin)) return ok();
  for (const auto& allowed : config.mcp_allowed_origins)
    if (allowed == origin) return ok();
  return Error{ErrorCode::permission_denied,
               fmt::format("Origin '{}' is not allowed to use /mcp (the settings' mcp.allowed_origins)", origin)};
}

namespace {
// Who calls /mcp without a token when the server runs for the conformance suite: its fixture tools, no more.
Principal conformance_principal() {
  Principal p;
  p.kind = Principal::Kind::anonymous;
  p.id = "conformance";
  p.permissions = {"tools.call:conformance.*"};
  return p;
}
}  // namespace

// Without a token only the conformance setting lets a request in (the route is then open to all).
Result<void> Server::Impl::mcp_caller_allowed(const Call& c) const {
  if (c.who.role == Role::anonymous && !config.mcp_conformance) return Error{ErrorCode::unauthenticated, "log in first: /mcp needs a bearer token"};
  return mcp_origin_allowed(c.req);
}

Result<Server::Impl::Reply> Server::Impl::mcp_post(Call& c) {
  XCORE_TRY(mcp_caller_allowed(c));
  // Every value sent: two headers that disagree are as wrong as one this server does not speak.
  for (auto [it, end] = c.req.headers.equal_range("MCP-Protocol-Version"); it != end; ++it)
    if (!wire::supported_protocol(it->second))
      return Error{ErrorCode::invalid_argument, fmt::format("MCP-Protocol-Version '{}' is not one this server speaks ({})", it->second,
                                                            fmt::join(wire::kProtocolVersions, ", "))};
  // One message, or (2025-03-26) a batch of them. The route read the body (numbers checked): taken, not copied.
  const bool batch = c.body.is_array();
  json::array messages = batch ? std::move(c.body.get_array()) : json::array{std::move(c.body)};
  if (messages.empty()) return Error{ErrorCode::invalid_argument, "an empty batch"};
  bool initializing = false;
  for (const auto& m : messages)
    if (m.is_object() && m.get_object().contains("method") && m.at("method") == "initialize") initializing = true;
  if (initializing && messages.size() > 1) return Error{ErrorCode::invalid_argument, "initialize must be sent alone"};

  const auto key = principal_key(c.who);
  std::string session_id(header(c.req, "Mcp-Session-Id"));
  std::string protocol;
  if (!initializing) {
    if (session_id.empty()) return Error{ErrorCode::invalid_argument, "no Mcp-Session-Id header: send initialize first, then its session id with every request"};
    auto session = mcp_sessions.use(session_id, c.who.tenant, key);
    // Unknown, expired or someone else's read the same: 404, which tells the client to initialize again.
    if (!session) return Error{ErrorCode::not_found, "no such MCP session (it ended or expired): initialize again"};
    protocol = session->protocol;
  }

  mcp::ServerOptions options;
  options.name = "xcore-server";
  options.version = XCORE_VERSION_STRING;
  options.context = context_of(c);
  if (c.who.role == Role::anonymous) options.context.principal = conformance_principal();
  options.list_changed = false;  // no server stream yet to send it on

  std::vector<std::pair<std::string, std::string>> headers;
  std::string out;
  std::size_t answers = 0;
  for (auto& m : messages) {
    auto parsed = jsonrpc::from_json(std::move(m));
    if (!parsed) {
      out += (answers++ ? "," : "") + std::string(jsonrpc::error(nullptr, jsonrpc::kInvalidRequest, parsed.error().message));
      continue;
    }
    // notifications/cancelled stops the request it names if that is still running (its POST waits on another
    // connection). Other notifications and responses need no answer.
    if (parsed->kind == jsonrpc::Message::Kind::notification && parsed->method == "notifications/cancelled" && parsed->params.is_object())
      if (const auto* id = parsed->params.get_object().if_contains("requestId")) mcp_sessions.cancel_request(session_id, json::serialize(*id));
    if (parsed->kind != jsonrpc::Message::Kind::request) continue;
    // Each request runs with a cancellation of its own, registered while it runs.
    const auto request_key = json::serialize(parsed->id);
    auto per_request = options;
    std::stop_token cancel;
    if (!initializing) per_request.context.cancel = cancel = mcp_sessions.start_request(session_id, request_key);
    Result<json::value> r = mcp::ToolServer(c.manager.tools(), std::move(per_request)).handle(parsed->method, parsed->params);
    if (!initializing) {
      mcp_sessions.end_request(session_id, request_key);
      // The client gave up on it: what the tool made of it is not an answer anyone waits for.
      if (cancel.stop_requested()) r = Error{ErrorCode::cancelled, fmt::format("request {} was cancelled by the client", request_key)};
    }
    if (r && parsed->method == "initialize") {
      protocol = std::string(r->at("protocolVersion").as_string());
      session_id = mcp_sessions.open(c.who.tenant, key, protocol);
      headers.emplace_back("Mcp-Session-Id", session_id);
    }
    auto line = r ? jsonrpc::result(parsed->id, *r) : jsonrpc::error(parsed->id, r.error());
    if (!line.empty() && line.back() == '\n') line.pop_back();
    out += (answers++ ? "," : "") + line;
  }
  Reply answer = answers == 0 ? Reply{202, json::value(), std::string(), "application/json"}
                               : Reply{200, json::value(), batch ? "[" + out + "]" : out, "application/json"};
  answer.headers = std::move(headers);
  return answer;
}

void Server::Impl::add_mcp_routes() {
  // Open to requests without a token only for the conformance suite; the document says which it is.
  const Role least = config.mcp_conformance ? Role::anonymous : Role::viewer;
  route("POST", "/mcp", least, "MCP over Streamable HTTP: JSON-RPC requests and notifications", [this](Call& c) { return mcp_post(c); })
      .body(R"json({"description":"a JSON-RPC message, or a batch (2025-03-26)","type":["object","array"]})json")
      .returns(200, R"json({"description":"the JSON-RPC response(s)"})json")
      .returns_text(202, "application/json")
      .errors({403, 404});
  // Not an operation of the API (the document lists none that only refuses): MCP's own way of saying that the
  // server opens no stream.
  route("GET", "/mcp", least, "MCP: the server-to-client stream, which this server does not offer (405)", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(mcp_caller_allowed(c));
    Reply r{405, error_body(Error{ErrorCode::failed_precondition, "this server opens no stream: POST requests to /mcp"}, c.request_id)};
    r.headers.emplace_back("Allow", "POST, DELETE");
    return r;
  }, {}, /*in_document=*/false).errors({403, 405});
  route("DELETE", "/mcp", least, "MCP: end the session named by Mcp-Session-Id", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(mcp_caller_allowed(c));
    const std::string id(header(c.req, "Mcp-Session-Id"));
    if (id.empty()) return Error{ErrorCode::invalid_argument, "no Mcp-Session-Id header: which session?"};
    if (!mcp_sessions.close(id, c.who.tenant, principal_key(c.who))) return Error{ErrorCode::not_found, "no such MCP session"};
    return Reply{204, json::value(), std::string(), "application/json"};
  }).returns_text(204, "application/json").errors({403, 404});
}

}  // namespace xcore::server
