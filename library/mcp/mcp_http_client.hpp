// The client side of MCP's Streamable HTTP transport (specification 2025-11-25, falling back to what the
// server negotiates): a session with one server, requests answered as JSON or as an SSE stream, the server's
// notifications and requests during a request handed to the caller, and the server's own stream (GET) for
// notifications such as tools/list_changed. Used by the runner of `url:` plugins.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

#include "jsonrpc/jsonrpc.hpp"
#include "net/sse_reader.hpp"

namespace xcore::inline v1::mcp {

struct HttpClientOptions {
  std::string url;                                           // http(s)://host[:port]/path
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every request (Authorization, ...)
  // Connect to this address for the URL's host (a policy resolved and checked it; a second lookup could
  // answer otherwise). Empty: resolve as usual.
  std::string pinned_address;
  std::chrono::milliseconds connect_timeout{5000};
  std::string client_name = "xcore", client_version;
  json::object capabilities;  // what this client tells the server it can do (sampling, elicitation, ...)
};

// What reaches the caller while one request runs.
struct RequestHandlers {
  std::function<void(const jsonrpc::Message&)> notification;             // progress, log messages
  std::function<Result<json::value>(const jsonrpc::Message&)> request;   // sampling, elicitation, roots
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();  // ends the session (DELETE) and the server stream
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // initialize, then notifications/initialized: the server's initialize result.
  Result<json::value> connect();
  bool connected() const;
  // One request. Fails with `unavailable` when the server cannot be reached or answers 5xx, `unauthenticated`
  // or `permission_denied` for 401 and 403, `timeout` at the deadline, `cancelled` on a stop request (the
  // server is sent notifications/cancelled). A session the server no longer knows (404) is opened again
  // once and the request repeated.
  Result<json::value> request(std::string_view method, const json::value& params, std::optional<std::chrono::system_clock::time_point> deadline = {},
                              std::stop_token cancel = {}, const RequestHandlers& handlers = {});
  Result<void> notify(std::string_view method, const json::value& params);
  // Listens on the server's own stream (GET) on a thread of its own, reopening it when it drops, until
  // the client ends; a server that offers none (405) is left alone.
  // Requests the server sends there (not tied to one of ours) go to `on_request`, answered by POST.
  void listen(std::function<void(const jsonrpc::Message&)> on_notification,
              std::function<Result<json::value>(const jsonrpc::Message&)> on_request = {});
  const std::string& url() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The host an http(s) URL names (without brackets for IPv6), or why the URL is not one this client takes.
Result<std::string> url_host(std::string_view url);

using net::SseReader;

}  // namespace xcore::inline v1::mcp
