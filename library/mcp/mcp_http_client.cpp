#include "mcp/mcp_http_client.hpp"

#include <httplib.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <atomic>
#include <sys/socket.h>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "net/http_connection.hpp"
#include "sandbox/wire.hpp"

namespace xcore::inline v1::mcp {

// ---- the client --------------------------------------------------------------------------------------


struct HttpClient::Impl {
  HttpClientOptions options;
  net::HttpTarget target;
  mutable std::mutex mutex;
  std::string session_id, protocol;
  bool connected = false;
  std::atomic<std::uint64_t> next_id{1};

  // The server's own stream.
  std::thread listener;
  std::condition_variable stop_cv;
  bool stopping = false;
  const net::HttpConnection* listening = nullptr;  // under mutex: interrupted by the destructor
  bool first_attempt_done = false;        // under mutex: the stream's first GET was answered (or failed)

  std::optional<net::HttpConnectionPool> pool;  // set when the URL is one this client takes
  net::HttpConnection take() { return pool->take(); }
  void give(net::HttpConnection c) { pool->give(std::move(c)); }

  httplib::Headers headers(std::string_view accept) const {
    httplib::Headers h{{"Accept", std::string(accept)}};
    for (const auto& [k, v] : options.headers) h.emplace(k, v);
    std::lock_guard lock(mutex);
    if (!session_id.empty()) h.emplace("Mcp-Session-Id", session_id);
    if (!protocol.empty()) h.emplace("MCP-Protocol-Version", protocol);
    return h;
  }

  Error unreachable(httplib::Error e) const {
    return Error{ErrorCode::unavailable, fmt::format("cannot reach the MCP server at {}: {}", options.url, httplib::to_string(e))};
  }
  Error refused(int status, const std::string& body) const {
    // A JSON-RPC error in the body says more than the status.
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (!ec) {
      if (auto m = jsonrpc::from_json(std::move(v)); m && m->kind == jsonrpc::Message::Kind::error) {
        auto e = jsonrpc::to_error(*m);
        e.message = fmt::format("the MCP server at {} answered {}: {}", options.url, status, e.message);
        if (status == 401) e.code = ErrorCode::unauthenticated;
        if (status == 403) e.code = ErrorCode::permission_denied;
        return e;
      }
    }
    const auto code = status == 401 ? ErrorCode::unauthenticated : status == 403 ? ErrorCode::permission_denied : status >= 500 ? ErrorCode::unavailable
                                                                                                                                  : ErrorCode::invalid_argument;
    return Error{code, fmt::format("the MCP server at {} answered HTTP {}", options.url, status)};
  }

  // Sends one message that is not a request (a notification, or our answer to the server's request).
  Result<void> post_message(const std::string& line) {
    auto client = take();
    client->set_read_timeout(30, 0);
    auto res = client->Post(target.path.c_str(), headers("application/json, text/event-stream"), line, "application/json");
    if (!res) return unreachable(res.error());
    if (res->status >= 300) return refused(res->status, res->body);
    give(std::move(client));
    return ok();
  }

  struct Exchange {
    int status = 0;
    bool event_stream = false;
    bool framed = false;  // the answer has a Content-Length
    std::string body;
    std::string session;  // the Mcp-Session-Id the answer carried
    std::optional<jsonrpc::Message> answer;
    std::optional<Error> failure;  // a problem found while reading the stream
  };

  // One request, its answer read as JSON or from an SSE stream.
  Result<json::value> send(const json::value& id, std::string_view method, const json::value& params,
                           std::optional<std::chrono::system_clock::time_point> deadline, std::stop_token cancel, const RequestHandlers& handlers,
                           bool& session_gone) {
    auto client = take();
    const auto budget = deadline ? net::time_left(*deadline) : std::chrono::milliseconds(std::chrono::minutes(10));
    client.set_read_budget(budget);
    Exchange x;
    SseReader sse([&](std::string_view data) {
      boost::system::error_code ec;
      auto v = json::parse(data, ec);
      if (ec) return true;  // the priming event's empty data, a keep-alive
      auto m = jsonrpc::from_json(std::move(v));
      if (!m) return true;
      if (x.answer) return true;  // the rest of a stream of known length, read so the connection stays usable
      if (m->is_response()) {
        if (m->id != id) return true;
        x.answer = std::move(*m);
        // The answer is in. A stream of known length ends by itself: read it out and keep the connection. Any
        // other may stay open after the answer (MCP only says it should close): stop reading, drop it.
        return x.framed;
      }
      if (m->kind == jsonrpc::Message::Kind::notification) {
        if (handlers.notification) handlers.notification(*m);
        return true;
      }
      // The server asks us something while our request runs (sampling, elicitation): answered by POST.
      Result<json::value> r = handlers.request ? handlers.request(*m)
                                               : Result<json::value>(Error{ErrorCode::not_found, fmt::format("this client answers no '{}'", m->method)});
      auto line = r ? jsonrpc::result(m->id, *r) : jsonrpc::error(m->id, r.error());
      if (auto sent = post_message(line); !sent) x.failure = sent.error();
      return true;
    });
    httplib::Request req;
    req.method = "POST";
    req.path = target.path;
    req.headers = headers("application/json, text/event-stream");
    req.body = jsonrpc::request(id, method, params);
    req.set_header("Content-Type", "application/json");
    req.response_handler = [&](const httplib::Response& r) {
      x.status = r.status;
      x.event_stream = r.get_header_value("Content-Type").starts_with("text/event-stream");
      x.session = r.get_header_value("Mcp-Session-Id");
      x.framed = r.has_header("Content-Length");
      return true;
    };
    req.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
      if (cancel.stop_requested()) return false;
      if (x.event_stream && x.status < 300) return sse.feed(std::string_view(data, size));
      if (x.body.size() + size > (64u << 20)) {
        x.failure = Error{ErrorCode::resource_exhausted, fmt::format("the MCP server at {} answered with more than 64 MiB", options.url)};
        return false;
      }
      x.body.append(data, size);
      return true;
    };
    httplib::Result res{nullptr, httplib::Error::Unknown};
    {
      std::stop_callback on_cancel(cancel, [&] { client.interrupt(); });
      res = client->send(req);
    }
    if (!x.session.empty()) {
      std::lock_guard lock(mutex);
      session_id = x.session;
    }
    if (x.failure) return *x.failure;
    auto answered = [&]() -> Result<json::value> {
      if (x.answer->kind == jsonrpc::Message::Kind::error) return jsonrpc::to_error(*x.answer);
      return std::move(x.answer->result);
    };
    // The caller gave up: tell the server to stop working on it (best effort), as MCP asks.
    auto gave_up = [&]() -> std::optional<Error> {
      const bool cancelled = cancel.stop_requested();
      if (!cancelled && !(deadline && std::chrono::system_clock::now() >= *deadline)) return std::nullopt;
      (void)post_message(jsonrpc::notification("notifications/cancelled", json::object{{"requestId", id}, {"reason", cancelled ? "cancelled" : "timed out"}}));
      if (cancelled) return Error{ErrorCode::cancelled, fmt::format("'{}' to {} was cancelled", method, options.url)};
      return Error{ErrorCode::timeout, fmt::format("'{}' to {} did not answer before the call's deadline", method, options.url)};
    };
    if (x.answer) {
      if (res) give(std::move(client));  // a stream read to its end leaves the connection usable; one abandoned
      return answered();                 // mid-stream is dropped (closed with the client)
    }
    if (auto e = gave_up()) return *e;
    // The server ended the answer's stream before the answer, having numbered its events: the stream is
    // resumed with a GET naming the last event seen, after the delay the server asked for (SEP-1699).
    x.framed = false;  // a resumed stream stays open after the answer: stop reading at it
    for (int resumed = 0; res && x.event_stream && x.status == 200 && !sse.last_id().empty() && resumed < 3; ++resumed) {
      const auto wake = std::chrono::steady_clock::now() + std::min(sse.retry().value_or(std::chrono::milliseconds(1000)), std::chrono::milliseconds(30000));
      while (std::chrono::steady_clock::now() < wake && !cancel.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (auto e = gave_up()) return *e;
      auto resume_headers = headers("text/event-stream");
      resume_headers.emplace("Last-Event-ID", sse.last_id());
      int resumed_status = 0;
      {
        std::stop_callback on_cancel(cancel, [&] { client.interrupt(); });
        res = client->Get(
            target.path.c_str(), resume_headers,
            [&](const httplib::Response& r) {
              resumed_status = r.status;
              return r.status == 200;
            },
            [&](const char* data, std::size_t size) { return !cancel.stop_requested() && sse.feed(std::string_view(data, size)); });
      }
      if (x.answer) return answered();  // the resumed stream, left open, closes with the client
      if (auto e = gave_up()) return *e;
      if (resumed_status != 200) break;
      res = httplib::Result{std::make_unique<httplib::Response>(), httplib::Error::Success};  // it ended cleanly: resume again
    }
    if (!res) return unreachable(res.error());
    if (x.status == 404) {
      std::lock_guard lock(mutex);
      session_gone = !session_id.empty();
    }
    if (x.status >= 300) return refused(x.status, x.body);
    give(std::move(client));
    if (x.event_stream) return Error{ErrorCode::unavailable, fmt::format("the MCP server at {} ended its stream without answering '{}'", options.url, method)};
    boost::system::error_code ec;
    auto v = json::parse(x.body, ec);
    if (ec) return Error{ErrorCode::unavailable, fmt::format("the MCP server at {} answered '{}' with malformed JSON: {}", options.url, method, ec.message())};
    // One response, or (2025-03-26) a batch holding it.
    json::array all = v.is_array() ? std::move(v.get_array()) : json::array{std::move(v)};
    for (auto& item : all) {
      auto m = jsonrpc::from_json(std::move(item));
      if (!m || !m->is_response() || m->id != id) continue;
      if (m->kind == jsonrpc::Message::Kind::error) return jsonrpc::to_error(*m);
      return std::move(m->result);
    }
    return Error{ErrorCode::unavailable, fmt::format("the MCP server at {} answered '{}' without its response", options.url, method)};
  }

  Result<json::value> connect() {
    {
      std::lock_guard lock(mutex);
      session_id.clear();
      protocol.clear();
      connected = false;
    }
    json::object params{{"protocolVersion", std::end(wire::kProtocolVersions)[-1]},
                        {"capabilities", options.capabilities},
                        {"clientInfo", json::object{{"name", options.client_name}, {"version", options.client_version}}}};
    bool gone = false;
    XCORE_ASSIGN_OR_RETURN(auto r, send(json::value(next_id++), "initialize", params, std::chrono::system_clock::now() + std::chrono::seconds(30), {}, {}, gone));
    const auto* version = r.is_object() ? r.get_object().if_contains("protocolVersion") : nullptr;
    if (!version || !version->is_string() || !wire::supported_protocol(version->get_string()))
      return Error{ErrorCode::incompatible, fmt::format("the MCP server at {} speaks protocol {}, none this client speaks", options.url,
                                                        version ? json::serialize(*version) : std::string("(none)"))};
    {
      std::lock_guard lock(mutex);
      protocol = std::string(version->get_string());
    }
    XCORE_TRY(post_message(jsonrpc::notification("notifications/initialized", json::object{})));
    std::lock_guard lock(mutex);
    connected = true;
    return r;
  }

  void first_answered() {
    {
      std::lock_guard lock(mutex);
      if (first_attempt_done) return;
      first_attempt_done = true;
    }
    stop_cv.notify_all();
  }

  void listen_loop(const std::function<void(const jsonrpc::Message&)>& on_notification,
                   const std::function<Result<json::value>(const jsonrpc::Message&)>& on_request) {
    auto pause = std::chrono::milliseconds(500);
    for (;;) {
      auto client = take();
      {
        std::lock_guard lock(mutex);
        if (stopping) return;
        listening = &client;
      }
      client->set_read_timeout(3600, 0);
      SseReader sse([&](std::string_view data) {
        boost::system::error_code ec;
        auto v = json::parse(data, ec);
        if (ec) return true;
        auto m = jsonrpc::from_json(std::move(v));
        if (!m) return true;
        if (m->kind == jsonrpc::Message::Kind::notification) on_notification(*m);
        if (m->kind == jsonrpc::Message::Kind::request) {
          auto r = on_request ? on_request(*m) : Result<json::value>(Error{ErrorCode::not_found, fmt::format("this client answers no '{}'", m->method)});
          (void)post_message(r ? jsonrpc::result(m->id, *r) : jsonrpc::error(m->id, r.error()));
        }
        return true;
      });
      int status = 0;
      auto res = client->Get(
          target.path.c_str(), headers("text/event-stream"),
          [&](const httplib::Response& r) {
            status = r.status;
            first_answered();
            return r.status == 200;
          },
          [&](const char* data, std::size_t size) { return sse.feed(std::string_view(data, size)); });
      first_answered();
      {
        std::unique_lock lock(mutex);
        listening = nullptr;
        if (stopping || status == 405) return;  // ended, or the server offers no stream of its own
        if (res && status == 200) pause = std::chrono::milliseconds(500);  // it had worked: start the backoff again
        stop_cv.wait_for(lock, pause, [&] { return stopping; });
        if (stopping) return;
      }
      pause = std::min(pause * 2, std::chrono::milliseconds(30000));
    }
  }
};

Result<std::string> url_host(std::string_view url) {
  XCORE_ASSIGN_OR_RETURN(auto t, net::parse_http_url(url));
  return std::move(t.host);
}

HttpClient::HttpClient(HttpClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (auto t = net::parse_http_url(impl_->options.url)) {
    impl_->target = *t;
    impl_->pool.emplace(std::move(*t), impl_->options.connect_timeout, impl_->options.pinned_address);
  }
}

HttpClient::~HttpClient() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    if (impl_->listening) impl_->listening->interrupt();
  }
  impl_->stop_cv.notify_all();
  if (impl_->listener.joinable()) impl_->listener.join();
  // The session ends with the client (best effort: a server that went away needs no goodbye).
  std::string session;
  {
    std::lock_guard lock(impl_->mutex);
    session = impl_->session_id;
  }
  if (!session.empty() && !impl_->target.origin.empty()) {
    auto client = impl_->take();
    client->set_read_timeout(2, 0);
    (void)client->Delete(impl_->target.path.c_str(), impl_->headers("application/json"));
  }
}

Result<json::value> HttpClient::connect() {
  XCORE_TRY(net::parse_http_url(impl_->options.url));
  return impl_->connect();
}

bool HttpClient::connected() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->connected;
}

Result<json::value> HttpClient::request(std::string_view method, const json::value& params, std::optional<std::chrono::system_clock::time_point> deadline,
                                        std::stop_token cancel, const RequestHandlers& handlers) {
  for (int attempt = 0;; ++attempt) {
    if (!connected()) XCORE_TRY(connect());
    bool session_gone = false;
    auto r = impl_->send(json::value(impl_->next_id++), method, params, deadline, cancel, handlers, session_gone);
    if (r || !session_gone || attempt > 0) {
      if (!r && r.error().code == ErrorCode::unavailable) {
        std::lock_guard lock(impl_->mutex);
        impl_->connected = false;  // the next request starts a new session
      }
      return r;
    }
    // The server forgot the session (it restarted, or the session expired): a new one, and once more.
    std::lock_guard lock(impl_->mutex);
    impl_->connected = false;
  }
}

Result<void> HttpClient::notify(std::string_view method, const json::value& params) { return impl_->post_message(jsonrpc::notification(method, params)); }

void HttpClient::listen(std::function<void(const jsonrpc::Message&)> on_notification,
                        std::function<Result<json::value>(const jsonrpc::Message&)> on_request) {
  if (impl_->listener.joinable()) return;
  impl_->listener = std::thread([this, f = std::move(on_notification), r = std::move(on_request)] { impl_->listen_loop(f, r); });
  // What the server sends there from now on must find the stream open: wait (bounded) for its first answer.
  std::unique_lock lock(impl_->mutex);
  impl_->stop_cv.wait_for(lock, impl_->options.connect_timeout, [&] { return impl_->first_attempt_done || impl_->stopping; });
}

const std::string& HttpClient::url() const { return impl_->options.url; }

}  // namespace xcore::inline v1::mcp
