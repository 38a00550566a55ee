// The sessions of /mcp (MCP's Streamable HTTP): made by initialize, each bound to the tenant and principal
// that made it, so that an id seen by someone else opens nothing. Ids are unguessable (the store makes
// them), sessions end on DELETE or after an idle time, and each principal holds a bounded number.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>

#include <xcore/error.hpp>

#include "jsonrpc/jsonrpc.hpp"
#include "mcp/mcp_server.hpp"

namespace xcore::server {

// Requests this server sent a session's client (sampling, elicitation, roots) and waits on. The client
// POSTs each answer back as a JSON-RPC response, which finds its waiter here by id.
class ClientRequests {
 public:
  // A fresh id (unique in the session) for a request about to be sent.
  std::string open();
  // Waits for the answer to `id` until `deadline` or a stop request; the id is closed either way.
  Result<json::value> wait(const std::string& id, std::chrono::system_clock::time_point deadline, std::stop_token cancel);
  // Delivers a response; false when no request by its id waits (answered, timed out, or never sent).
  bool answer(const jsonrpc::Message& response);

 private:
  std::mutex mutex_;
  std::condition_variable_any answered_;
  std::uint64_t next_ = 1;
  std::map<std::string, std::optional<jsonrpc::Message>> waiting_;  // by id; set once answered
};

class McpSessions {
 public:
  using Clock = std::chrono::steady_clock;
  struct Session {
    std::string tenant, principal, protocol;
    Clock::time_point last_used;
    std::shared_ptr<mcp::ClientSession> client;  // capabilities and log level, shared by its requests
    std::shared_ptr<ClientRequests> asks;          // requests to the client awaiting its answer
  };

  // A session's standalone stream (GET /mcp): what the server says outside any request, such as
  // notifications/tools/list_changed. Lines wait here until the stream's connection writes them.
  struct Stream {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::string> lines;  // JSON-RPC messages, one per line
    bool closed = false;
    void push(std::string line);
    void close();
    // The waiting lines; empty when `idle` passed with none (or the stream closed).
    std::deque<std::string> take(std::chrono::milliseconds idle);
  };

  McpSessions(std::chrono::seconds idle, std::size_t per_principal, std::size_t max_streams = 16,
              std::function<Clock::time_point()> clock = Clock::now)
      : idle_(idle), per_principal_(per_principal), clock_(std::move(clock)), max_streams_(max_streams) {}

  // The session's stream, opened: not_found without such a session (for this caller), conflict when it has
  // one open, resource_exhausted when the server holds max_streams (each holds a worker thread).
  Result<std::shared_ptr<Stream>> open_stream(const std::string& id, const std::string& tenant, const std::string& principal);
  void end_stream(const std::string& id, const std::shared_ptr<Stream>& stream);
  // To every open stream of the tenant's sessions.
  void broadcast(const std::string& tenant, const std::string& line);
  // Ends every stream (the server stops: their connections must not hold it up).
  void close_streams();

  // A new session; the principal's least recently used one goes when it holds per_principal already.
  std::string open(const std::string& tenant, const std::string& principal, const std::string& protocol,
                   std::shared_ptr<mcp::ClientSession> client);
  // The session, touched; nullopt when it is unknown, expired, or another tenant's or principal's.
  std::optional<Session> use(const std::string& id, const std::string& tenant, const std::string& principal);
  // Ends it; false when there was none for this caller.
  bool close(const std::string& id, const std::string& tenant, const std::string& principal);
  std::size_t size() const;

  // Requests in flight, by session and JSON-RPC id, so that notifications/cancelled can stop one: a call's
  // context carries the token of the source registered here until the call ends.
  std::stop_token start_request(const std::string& session, const std::string& request_id);
  void end_request(const std::string& session, const std::string& request_id);
  // Stops the request if it is in flight; false when there is none by that id in the session.
  bool cancel_request(const std::string& session, const std::string& request_id);

 private:
  void sweep(Clock::time_point now);  // drops expired sessions (under the lock)
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Session> sessions_;
  std::chrono::seconds idle_;
  std::size_t per_principal_;
  std::function<Clock::time_point()> clock_;
  Clock::time_point last_sweep_{};
  std::map<std::pair<std::string, std::string>, std::stop_source> in_flight_;  // under mutex_
  std::size_t max_streams_;
  std::map<std::string, std::shared_ptr<Stream>> streams_;  // by session, under mutex_
};

}  // namespace xcore::server
