// /mcp: the caller's tenant's tools over MCP's Streamable HTTP transport (specification 2025-11-25, also
// 2025-06-18 and 2025-03-26). POST carries JSON-RPC messages and is answered with JSON, or with an SSE stream
// when a tool call's client listens (progress, log messages, sampling and elicitation); GET opens the
// session's own stream (list_changed notifications); DELETE ends the session. The methods themselves are libxcore's
// mcp::ToolServer, the same that `xcore mcp` serves over stdio.
#include "server_impl.hpp"

#include <poll.h>

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

// Whether anything may reach the client while its tools/call runs.
bool client_listens(const mcp::ClientSession& client, const json::value& params) {
  if (client.log_level() >= 0 || client.can("sampling") || client.can("elicitation") || client.can("roots")) return true;
  const auto* meta = params.is_object() ? params.get_object().if_contains("_meta") : nullptr;
  return meta && meta->is_object() && meta->get_object().contains("progressToken");
}

// A POST's answer as an SSE stream: notifications and requests to the client go out as events while the
// call runs, its response last. The tool's threads write as well as the connection's: one at a time, and
// nothing once the stream ended. A write that fails means the client left: its request is cancelled.
class SseChannel final : public mcp::ClientChannel {
 public:
  SseChannel(const std::function<bool(std::string_view)>& write, ClientRequests& asks, std::function<void()> on_gone)
      : write_(write), asks_(asks), on_gone_(std::move(on_gone)) {}

  void notify(std::string_view method, const json::object& params) override { send(jsonrpc::notification(method, params)); }
  Result<json::value> request(std::string_view method, const json::object& params, const CallContext& ctx) override {
    const auto id = asks_.open();
    // Bounded even when the call has no deadline: a person answering an elicitation gets ten minutes.
    const auto deadline = ctx.deadline.value_or(std::chrono::system_clock::now() + std::chrono::minutes(10));
    if (!send(jsonrpc::request(json::value(id), method, params))) {
      (void)asks_.wait(id, std::chrono::system_clock::now(), {});  // closes the id
      return Error{ErrorCode::unavailable, fmt::format("the client's stream closed before '{}' could be sent", method)};
    }
    return asks_.wait(id, deadline, ctx.cancel);
  }
  bool send(std::string_view line) {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    std::function<void()> gone;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return false;
      if (write_(fmt::format("event: message\ndata: {}\n\n", line))) return true;
      closed_ = true;
      gone = std::move(on_gone_);
    }
    if (gone) gone();
    return false;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }

 private:
  std::mutex mutex_;
  const std::function<bool(std::string_view)>& write_;
  ClientRequests& asks_;
  std::function<void()> on_gone_;
  bool closed_ = false;
};

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
  p.permissions = {"tools.call:conformance.*", "resources.read:conformance", "prompts.get:conformance"};
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
  std::optional<McpSessions::Session> session;
  if (!initializing) {
    if (session_id.empty()) return Error{ErrorCode::invalid_argument, "no Mcp-Session-Id header: send initialize first, then its session id with every request"};
    session = mcp_sessions.use(session_id, c.who.tenant, key);
    // Unknown, expired or someone else's read the same: 404, which tells the client to initialize again.
    if (!session) return Error{ErrorCode::not_found, "no such MCP session (it ended or expired): initialize again"};
  }

  mcp::ServerOptions options;
  options.name = "xcore-server";
  options.version = XCORE_VERSION_STRING;
  options.context = context_of(c);
  if (c.who.role == Role::anonymous) options.context.principal = conformance_principal();
  options.list_changed = config.mcp_max_streams > 0;  // sent on the session's stream (GET)
  options.plugins = &c.manager;
  options.session = session ? session->client : std::make_shared<mcp::ClientSession>();

  // One request, run under a cancellation registered by session and id while it runs; its answer line.
  auto run = [this, session_id](jsonrpc::Message& m, ToolRegistry& tools, mcp::ServerOptions per_request) {
    const auto request_key = json::serialize(m.id);
    std::stop_token cancel = per_request.context.cancel = mcp_sessions.start_request(session_id, request_key);
    Result<json::value> r = mcp::ToolServer(tools, std::move(per_request)).handle(m.method, m.params);
    mcp_sessions.end_request(session_id, request_key);
    // The client gave up on it: what the tool made of it is not an answer anyone waits for.
    if (cancel.stop_requested()) r = Error{ErrorCode::cancelled, fmt::format("request {} was cancelled by the client", request_key)};
    return r ? jsonrpc::result(m.id, *r) : jsonrpc::error(m.id, r.error());
  };

  std::vector<std::pair<std::string, std::string>> headers;
  std::string out;
  std::size_t answers = 0;
  for (auto& m : messages) {
    auto parsed = jsonrpc::from_json(std::move(m));
    if (!parsed) {
      out += (answers++ ? "," : "") + std::string(jsonrpc::error(nullptr, jsonrpc::kInvalidRequest, parsed.error().message));
      continue;
    }
    // The client's answer to a request a tool sent it (sampling, elicitation) while its call runs.
    if (parsed->is_response()) {
      if (session) session->asks->answer(*parsed);
      continue;
    }
    // notifications/cancelled stops the request it names if that is still running (its POST waits on another
    // connection). Other notifications need no answer.
    if (parsed->kind == jsonrpc::Message::Kind::notification && parsed->method == "notifications/cancelled" && parsed->params.is_object())
      if (const auto* id = parsed->params.get_object().if_contains("requestId")) mcp_sessions.cancel_request(session_id, json::serialize(*id));
    if (parsed->kind != jsonrpc::Message::Kind::request) continue;
    if (initializing) {
      Result<json::value> r = mcp::ToolServer(c.manager.tools(), options).handle(parsed->method, parsed->params);
      if (r) {
        session_id = mcp_sessions.open(c.who.tenant, key, std::string(r->at("protocolVersion").as_string()), options.session);
        headers.emplace_back("Mcp-Session-Id", session_id);
      }
      auto line = r ? jsonrpc::result(parsed->id, *r) : jsonrpc::error(parsed->id, r.error());
      if (!line.empty() && line.back() == '\n') line.pop_back();
      out += (answers++ ? "," : "") + line;
      continue;
    }
    // A tool call whose client listens (it asked for progress or log messages, or can be asked for
    // sampling, elicitation or roots) is answered as an SSE stream: what the tool sends its caller goes out
    // as it happens, the response last.
    if (!batch && parsed->method == "tools/call" && accepts_event_stream(c.req) && client_listens(*session->client, parsed->params)) {
      Reply streamed{200, json::value(), std::string(), "text/event-stream"};
      streamed.headers.emplace_back("Cache-Control", "no-store");
      // The server holds the tenant's Manager until the stream ends.
      streamed.stream = [this, run, message = std::move(*parsed), options, session_id, asks = session->asks,
                         manager = &c.manager](const std::function<bool(std::string_view)>& write) mutable {
        SseChannel channel(write, *asks, [this, session_id, key = json::serialize(message.id)] { mcp_sessions.cancel_request(session_id, key); });
        options.channel = &channel;
        channel.send(run(message, manager->tools(), std::move(options)));
        channel.close();
      };
      return streamed;
    }
    auto line = run(*parsed, c.manager.tools(), options);
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
  // The session's own stream: notifications outside any request (tools, resources and prompts come and go
  // with plugins). One per session; each holds a worker thread, so the server holds at most mcp.max_streams.
  route("GET", "/mcp", least, "MCP: the session's server-to-client stream (SSE)", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(mcp_caller_allowed(c));
    if (config.mcp_max_streams == 0) {
      Reply r{405, error_body(Error{ErrorCode::failed_precondition, "this server opens no stream (mcp.max_streams is 0): POST requests to /mcp"}, c.request_id)};
      r.headers.emplace_back("Allow", "POST, DELETE");
      return r;
    }
    if (!accepts_event_stream(c.req)) return Error{ErrorCode::invalid_argument, "the stream is text/event-stream: say so in Accept"};
    const std::string id(header(c.req, "Mcp-Session-Id"));
    if (id.empty()) return Error{ErrorCode::invalid_argument, "no Mcp-Session-Id header: which session's stream?"};
    const auto key = principal_key(c.who);
    XCORE_ASSIGN_OR_RETURN(auto stream, mcp_sessions.open_stream(id, c.who.tenant, key));
    Reply r{200, json::value(), std::string(), "text/event-stream"};
    r.headers.emplace_back("Cache-Control", "no-store");
    r.stream = [this, stream, id, tenant = c.who.tenant, key](const std::function<bool(std::string_view)>& write) {
      // A comment first, so that the client sees the stream open; then the lines as they come. A client that
      // closes its end is seen within a second (its socket hangs up), and a comment every 15 s keeps proxies
      // from timing the stream out.
      auto* connection = HttpServer::current();
      const int socket = connection ? connection->socket() : -1;
      auto client_left = [socket] { return client_hung_up(socket); };
      bool open = write(": stream open\n\n");
      for (int quiet = 0; open;) {
        auto lines = stream->take(std::chrono::seconds(1));
        {
          std::lock_guard lock(stream->mutex);
          if (stream->closed) break;
        }
        if (lines.empty()) {
          if (client_left()) break;
          // The session may have ended (expired, replaced): so does its stream.
          if (++quiet % 15 == 0) open = mcp_sessions.use(id, tenant, key).has_value() && write(": keep-alive\n\n");
          continue;
        }
        for (auto& line : lines) {
          if (!line.empty() && line.back() == '\n') line.pop_back();
          if (!(open = write(fmt::format("event: message\ndata: {}\n\n", line)))) break;
        }
      }
      mcp_sessions.end_stream(id, stream);
    };
    return r;
  }).returns_text(200, "text/event-stream").errors({403, 404, 405, 409});
  route("DELETE", "/mcp", least, "MCP: end the session named by Mcp-Session-Id", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(mcp_caller_allowed(c));
    const std::string id(header(c.req, "Mcp-Session-Id"));
    if (id.empty()) return Error{ErrorCode::invalid_argument, "no Mcp-Session-Id header: which session?"};
    if (!mcp_sessions.close(id, c.who.tenant, principal_key(c.who))) return Error{ErrorCode::not_found, "no such MCP session"};
    return Reply{204, json::value(), std::string(), "application/json"};
  }).returns_text(204, "application/json").errors({403, 404});
}

}  // namespace xcore::server
