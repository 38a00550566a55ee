// JSON-RPC 2.0 over a WebSocket link, one message per text frame: the wire between a node and its host, in
// both directions. Calls are asynchronous (a callback) or blocking (call(), with a deadline and a stop
// token); an answer that comes after its caller gave up is dropped, and the other side is told with MCP's
// notifications/cancelled. Incoming requests and notifications are handed over on the link's I/O thread:
// handlers must not block (serve requests on threads of your own and answer with respond()).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

#include "jsonrpc/jsonrpc.hpp"
#include "net/websocket.hpp"

namespace xcore::inline v1::nodes {

class WsRpc : public std::enable_shared_from_this<WsRpc> {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(Result<json::value>)>;
  struct Handlers {
    std::function<void(jsonrpc::Message request)> on_request;
    std::function<void(const std::string& method, const json::value& params)> on_notification;
    std::function<void(const Error& why)> on_closed;  // once; every pending call has failed by then
  };

  // Starts reading the link.
  // `unsolicited_per_second`: messages the other side sends of itself (requests, notifications, answers to
  // nothing asked) per second, bursts up to as many; beyond, the link is closed. Answers to our own calls
  // are never limited: a busy peer answers as fast as it is asked. 0: no limit.
  static std::shared_ptr<WsRpc> open(std::shared_ptr<net::WsLink> link, Handlers handlers, std::uint32_t unsolicited_per_second = 0);

  // `done` runs once: with the answer (on the I/O thread), the deadline's timeout (from expire()), or the
  // link's end.
  void call_async(std::string_view method, const json::value& params, Clock::time_point deadline, Callback done);
  // Waits for the answer until `deadline` or a stop request; either sends notifications/cancelled.
  Result<json::value> call(std::string_view method, const json::value& params, Clock::time_point deadline,
                           std::stop_token cancel = {});
  Result<void> notify(std::string_view method, const json::value& params);
  Result<void> respond(const json::value& id, const Result<json::value>& answer);
  // Fails the asynchronous calls whose deadline passed; the owner calls it from a timer.
  void expire(Clock::time_point now);
  void close(std::string_view reason);
  bool closed() const { return link_->closed(); }
  const net::WsLink& link() const { return *link_; }
  // When the other side last sent a message (a pong does not count).
  std::chrono::system_clock::time_point last_message() const { return std::chrono::system_clock::time_point(std::chrono::system_clock::duration(last_message_.load())); }

 private:
  struct Pending {
    Clock::time_point deadline;
    Callback done;
  };
  explicit WsRpc(std::shared_ptr<net::WsLink> link) : link_(std::move(link)) {}
  void on_message(std::string text);
  void on_closed(const Error& why);
  std::optional<Callback> take(std::uint64_t id);
  bool unsolicited_allowed();  // the I/O thread's

  std::shared_ptr<net::WsLink> link_;
  Handlers handlers_;
  std::mutex mutex_;
  std::map<std::uint64_t, Pending> pending_;
  std::uint64_t next_id_ = 1;
  std::optional<Error> closed_why_;
  std::uint32_t unsolicited_rate_ = 0;
  double tokens_ = 0;
  Clock::time_point refilled_ = Clock::now();
  std::atomic<std::chrono::system_clock::rep> last_message_{std::chrono::system_clock::now().time_since_epoch().count()};
};

}  // namespace xcore::inline v1::nodes
