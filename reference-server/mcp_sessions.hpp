// The sessions of /mcp (MCP's Streamable HTTP): made by initialize, each bound to the tenant and principal
// that made it, so that an id seen by someone else opens nothing. Ids are unguessable (the store makes
// them), sessions end on DELETE or after an idle time, and each principal holds a bounded number.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>

namespace xcore::server {

class McpSessions {
 public:
  using Clock = std::chrono::steady_clock;
  struct Session {
    std::string tenant, principal, protocol;
    Clock::time_point last_used;
  };

  McpSessions(std::chrono::seconds idle, std::size_t per_principal, std::function<Clock::time_point()> clock = Clock::now)
      : idle_(idle), per_principal_(per_principal), clock_(std::move(clock)) {}

  // A new session; the principal's least recently used one goes when it holds per_principal already.
  std::string open(const std::string& tenant, const std::string& principal, const std::string& protocol);
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
};

}  // namespace xcore::server
