// Keep-alive HTTP client connections that another thread can interrupt, shared by libxcore's HTTP clients
// (MCP's Streamable HTTP client, the model providers' chat-completions client). Include only from .cpp files
// that include <httplib.h>: the connection holds an httplib::Client.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>

namespace httplib {
class Client;
}

namespace xcore::inline v1::net {

struct HttpTarget {
  std::string origin;  // scheme://host[:port], as httplib::Client takes it
  std::string host;    // without brackets for IPv6
  std::string path;    // "/" at least
};

// An http(s) URL, or why it is not one these clients take (`what` names it in the message: "url", "base_url").
Result<HttpTarget> parse_http_url(std::string_view url, std::string_view what = "url");

// The time left until `deadline`, at least 1 ms.
std::chrono::milliseconds time_left(std::chrono::system_clock::time_point deadline);

// A keep-alive connection with the socket it uses now, so that another thread can interrupt a request by
// shutting the socket down (a blocked read then returns). httplib's own stop() is not used: its locking is
// split between the header and Debian's library.
struct HttpConnection {
  std::unique_ptr<httplib::Client> http;
  std::shared_ptr<std::atomic<int>> socket = std::make_shared<std::atomic<int>>(-1);
  httplib::Client* operator->() const { return http.get(); }
  void interrupt() const;
  // The read timeout of the next request.
  void set_read_budget(std::chrono::milliseconds budget) const;
};

// Idle connections to one origin, reused one request at a time each.
class HttpConnectionPool {
 public:
  HttpConnectionPool() = default;
  // https: the server's certificate is always verified, against `ca_file` when set, else the system's CAs.
  HttpConnectionPool(HttpTarget target, std::chrono::milliseconds connect_timeout, std::string pinned_address = {}, std::string ca_file = {})
      : target_(std::move(target)), connect_timeout_(connect_timeout), pinned_address_(std::move(pinned_address)), ca_file_(std::move(ca_file)) {}
  HttpConnection take();
  void give(HttpConnection c);  // after a request that left the connection usable
  const HttpTarget& target() const noexcept { return target_; }

 private:
  HttpTarget target_;
  std::chrono::milliseconds connect_timeout_{5000};
  std::string pinned_address_;
  std::string ca_file_;
  std::mutex mutex_;
  std::vector<HttpConnection> idle_;
};

}  // namespace xcore::inline v1::net
