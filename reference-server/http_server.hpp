// The server's connections: cpp-httplib parses and routes requests; this layer decides how long a client
// may hold a connection and a worker. httplib 0.11 serves each connection on one pool thread from accept to
// close with no deadline for a request as a whole, so a client sending a byte a second, or a few dozen
// idle sockets, held every worker. Here (Go's net/http is the model):
//   - idle keep-alive connections wait in one blocking poll, closed after idle_timeout;
//   - a request's headers must be complete within header_timeout of its first byte, its body within
//     body_timeout of the headers; past either, 408 and the connection is closed;
//   - workers grow on demand from `threads` up to `max_threads`, and shrink back when idle;
//   - each client address holds at most max_connections_per_address connections (then 429 and close).
// Included by .cpp files only: it brings cpp-httplib.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <xcore/error.hpp>

#include "config.hpp"

namespace xcore::server {

// What the connection layer has seen, for /metrics.
struct HttpCounters {
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::int64_t> connections_open{0};
  std::atomic<std::uint64_t> refused_per_address{0};  // over max_connections_per_address
  std::atomic<std::uint64_t> header_timeouts{0};
  std::atomic<std::uint64_t> body_timeouts{0};
  std::atomic<std::uint64_t> idle_closes{0};
  std::atomic<std::int64_t> workers{0};
  std::atomic<std::int64_t> workers_busy{0};
  std::atomic<std::int64_t> workers_peak{0};
  std::atomic<std::int64_t> queued{0};  // accepted connections waiting for a worker
};

// The pool httplib hands accepted connections to: `threads` workers wait for work; when none is free a
// new one starts, up to `max_threads`; past that, connections queue. A worker above `threads` that
// found no work for a minute ends.
class WorkerPool final : public httplib::TaskQueue {
 public:
  WorkerPool(std::size_t kept, std::size_t max, HttpCounters& counters);
  ~WorkerPool() override;
  void enqueue(std::function<void()> task) override;
  void shutdown() override;  // runs what is queued, then waits for every worker to end

 private:
  void spawn();  // with mutex_ held
  void work();

  const std::size_t kept_, max_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, ended_;
  std::deque<std::function<void()>> queue_;
  std::size_t threads_ = 0, idle_ = 0;
  bool shutdown_ = false;
  HttpCounters& counters_;
};

// One connection's socket as httplib reads and writes it, with the deadline of the phase it is in.
class ConnectionStream final : public httplib::Stream {
 public:
  enum class Phase { idle, headers, body, handler };

  // `peer`, `peer_port`: the client's address, read once per connection (httplib asks on every request).
  ConnectionStream(int sock, int stop_fd, const HttpLimits& limits, std::string peer, int peer_port);

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  using httplib::Stream::write;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  int socket() const override { return sock_; }

  // Waits for the next request's first byte, at most the idle timeout; false: close the connection.
  bool wait_for_request();
  // The phase the connection is in now; headers and body start their deadline at this call.
  void enter(Phase phase);
  Phase phase() const { return phase_; }
  // The phase's deadline passed while the stream waited for the client.
  bool expired() const { return expired_; }
  bool wrote() const { return wrote_; }
  void reset_for_request() {
    wrote_ = false;
    routed = false;
  }
  // When the request's first byte was here (its headers' deadline counts from it).
  std::chrono::steady_clock::time_point request_start() const { return start_; }
  // A route took the request and recorded it in its metrics.
  bool routed = false;

  // A request whose framing can no longer be trusted (a body left unread, a smuggling attempt): the
  // connection carries no further request.
  bool unusable = false;

 private:
  // > 0: readable; 0: the deadline passed; < 0: the socket failed or the server stops.
  int wait_readable() const;

  int sock_, stop_fd_;
  std::string peer_;
  int peer_port_;
  const HttpLimits& limits_;
  Phase phase_ = Phase::idle;
  std::chrono::steady_clock::time_point deadline_{}, start_{};
  mutable bool expired_ = false;
  bool wrote_ = false;
  bool known_readable_ = false;  // wait_for_request saw the socket readable; the next read need not poll
  mutable bool local_known_ = false;
  mutable std::string local_;
  mutable int local_port_ = 0;
  char buffer_[4096];
  std::size_t buffered_at_ = 0, buffered_end_ = 0;
};

// httplib::Server with the connection loop above instead of its own.
class HttpServer final : public httplib::Server {
 public:
  // `refusal_body(error)`: the JSON text of an answer this layer gives by itself (408, 429).
  HttpServer(HttpLimits limits, std::function<std::string(const Error&)> refusal_body);
  ~HttpServer() override;

  // Stops listening and ends every connection at once, idle or mid-request.
  void shutdown();

  // httplib listens with a backlog of 5: a burst of connections beyond it waits out SYN retries
  // (1 s, 3 s, ...). Called after binding, it sets the configured backlog.
  bool widen_backlog();

  // The connection the calling thread serves (a handler's, a pre-routing handler's); null elsewhere.
  static ConnectionStream* current();

  const HttpLimits& limits() const { return limits_; }
  const HttpCounters& counters() const { return counters_; }

 private:
  bool process_and_close_socket(int sock) override;
  void refuse(int sock, int status, const Error& e);

  HttpLimits limits_;
  std::function<std::string(const Error&)> refusal_body_;
  int stop_fd_ = -1;  // an eventfd: readable once shutdown() ran
  std::atomic<bool> stopping_{false};
  HttpCounters counters_;
  std::mutex addresses_mutex_;
  std::map<std::string, std::size_t> per_address_;
};

}  // namespace xcore::server
