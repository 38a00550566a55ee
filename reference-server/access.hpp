// Who calls: roles, the caller as authenticated, and the guards of the login path (a cache of users, a
// limiter of failed attempts, a gate around password hashing). No HTTP here.
#pragma once

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "database.hpp"  // unix_now
#include "jwt.hpp"

namespace xcore::server {

constexpr const char* kDefaultTenant = "default";

// ---- roles -----------------------------------------------------------------------------------------------

enum class Role : int { anonymous = -1, viewer = 0, operator_ = 1, admin = 2 };

inline std::optional<Role> parse_role(std::string_view s) {
  if (s == "viewer") return Role::viewer;
  if (s == "operator") return Role::operator_;
  if (s == "admin") return Role::admin;
  return std::nullopt;
}
inline const char* role_name(Role r) { return r == Role::admin ? "admin" : r == Role::operator_ ? "operator" : r == Role::viewer ? "viewer" : "anonymous"; }

// What each role may do, as permission patterns. A route needs its area's permission ("plugins.read",
// "tasks.write", ...) besides its least role; tools and actions are checked by libxcore against the same
// set ("tools.call:<plugin>.<tool>", "actions.call:<plugin>/<action>"). API tokens may hold a subset.
inline std::vector<std::string> role_permissions(Role r) {
  switch (r) {
    case Role::admin: return {"*"};
    case Role::operator_:
      return {"auth.read", "plugins.read", "tools.read", "tasks.read", "hooks.read", "routes.call:*", "resources.read:*", "prompts.get:*",
              "plugins.write", "tasks.write", "tools.call:*", "actions.call:*", "metrics.read", "agents.read", "agents.write", "providers.read",
              "competencies.read", "approvals.read", "approvals.write", "agents.approve:*", "nodes.read",
              "mcp-presets.read"};
    case Role::viewer:
      return {"auth.read", "plugins.read", "tools.read", "tasks.read", "hooks.read", "routes.call:*", "resources.read:*", "prompts.get:*",
              "agents.read", "providers.read", "competencies.read", "approvals.read", "nodes.read", "mcp-presets.read"};
    case Role::anonymous: return {};
  }
  return {};
}

// Who sent a request: the user (or the user an API token belongs to), the tenant, the role, and the
// principal libxcore checks.
struct Caller {
  std::string user, tenant;  // user: the user name, or "token:<name>"
  Role role = Role::anonymous;
  std::int64_t user_id = 0;
  Principal principal;
};

// The users that tokens name, by id: read on every request, so kept in memory; any change to a user
// drops its entry before the change is acknowledged.
class UserCache {
 public:
  struct Entry {
    std::string tenant, username;
    Role role = Role::viewer;
    std::int64_t generation = 0;
  };
  // `load` answers Result<std::optional<Entry>>: no such user, or the database's error, which passes on.
  template <class Load>
  Result<std::optional<Entry>> get(std::int64_t id, Load&& load) {
    {
      std::shared_lock lock(mutex_);
      if (auto it = users_.find(id); it != users_.end()) return std::optional<Entry>(it->second);
    }
    XCORE_ASSIGN_OR_RETURN(auto e, load(id));
    if (!e) return std::optional<Entry>();
    std::unique_lock lock(mutex_);
    if (users_.size() > 100000) users_.clear();  // bounded; a miss costs one indexed query
    users_[id] = *e;
    return e;
  }
  void forget(std::int64_t id) {
    std::unique_lock lock(mutex_);
    users_.erase(id);
  }

 private:
  std::shared_mutex mutex_;
  std::map<std::int64_t, Entry> users_;
};

// The server's operator: an admin of the default tenant holding every permission. Only they widen what
// plugins reach (privileged config keys, grants beyond a plugin's own folder).
inline bool operates_server(const Caller& who) { return who.role == Role::admin && who.tenant == kDefaultTenant && who.principal.holds("*"); }

// `path` is `base` or below it (both already normalised).
inline bool path_within(const std::filesystem::path& path, const std::filesystem::path& base) {
  return std::mismatch(path.begin(), path.end(), base.begin(), base.end()).second == base.end();
}

// A token's `sub`: the user's id.
inline Result<std::int64_t> user_id_of(const Claims& claims) {
  std::int64_t uid = 0;
  auto [end, ec] = std::from_chars(claims.sub.data(), claims.sub.data() + claims.sub.size(), uid);
  if (ec != std::errc{} || end != claims.sub.data() + claims.sub.size()) return Error{ErrorCode::unauthenticated, "invalid token: 'sub' is not a user id"};
  return uid;
}

// User names: 1-64 of [A-Za-z0-9._@-].
inline bool valid_username(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' || c == '-'; });
}

// Failed attempts per key (user name and address) in the last minute. Bounded: keys whose failures
// are over a minute old are swept once the map grows, and when it is full of live keys a new key must
// wait like a limited one (a flood of names cannot push real entries out).
class LoginLimiter {
 public:
  explicit LoginLimiter(int per_minute, std::size_t max_keys = 50000) : limit_(per_minute), max_keys_(max_keys) {}
  // Seconds to wait, or 0 when another attempt may be made now.
  int retry_after(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = failures_.find(key);
    if (it == failures_.end()) return failures_.size() >= max_keys_ && !sweep() ? 60 : 0;
    prune(it->second);
    if (static_cast<int>(it->second.size()) < limit_) return 0;
    return static_cast<int>(std::max<std::int64_t>(1, it->second.front() + 60 - unix_now()));
  }
  void failed(const std::string& key) {
    std::lock_guard lock(mutex_);
    if (failures_.size() >= max_keys_ && !failures_.contains(key) && !sweep()) return;
    failures_[key].push_back(unix_now());
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return failures_.size();
  }
  void succeeded(const std::string& key) {
    std::lock_guard lock(mutex_);
    failures_.erase(key);
  }

 private:
  static void prune(std::deque<std::int64_t>& q) {
    while (!q.empty() && q.front() + 60 <= unix_now()) q.pop_front();
  }
  // Drops keys with no failure in the last minute; true when room was made.
  bool sweep() {
    // At most once a second: a map full of live keys is not walked again for every new name.
    if (const auto now = unix_now(); now != last_sweep_) last_sweep_ = now;
    else return failures_.size() < max_keys_;
    for (auto it = failures_.begin(); it != failures_.end();) {
      prune(it->second);
      it = it->second.empty() ? failures_.erase(it) : std::next(it);
    }
    return failures_.size() < max_keys_;
  }
  int limit_;
  std::size_t max_keys_;
  std::int64_t last_sweep_ = 0;
  std::mutex mutex_;
  std::map<std::string, std::deque<std::int64_t>> failures_;
};

// Password hashes (Argon2id, 64 MiB each) that may run at once; the rest wait a moment, then get 429.
class PasswordGate {
 public:
  explicit PasswordGate(int slots) : slots_(slots) {}
  class Permit {
   public:
    explicit Permit(PasswordGate* g) : g_(g) {}
    Permit(Permit&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
    Permit& operator=(Permit&&) = delete;
    ~Permit() {
      if (!g_) return;
      --g_->busy_;
      g_->slots_.release();
    }

   private:
    PasswordGate* g_;
  };
  Result<Permit> enter() {
    if (!slots_.try_acquire_for(std::chrono::seconds(2))) {
      Error e{ErrorCode::resource_exhausted, "too many password checks at once; retry in 1 s"};
      e.details = R"({"retry_after":1})";
      return e;
    }
    const int now = ++busy_;
    for (int seen = peak_.load(); now > seen && !peak_.compare_exchange_weak(seen, now);) {
    }
    return Permit(this);
  }
  int peak() const { return peak_.load(); }  // the most that ever ran at once

 private:
  std::counting_semaphore<256> slots_;
  std::atomic<int> busy_{0}, peak_{0};
};

}  // namespace xcore::server
