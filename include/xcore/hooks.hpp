// The hook bus: named events with pluggy's semantics.
//
// Order of a call: wrappers first (outermost first), then plain handlers. Within each group handlers are
// ordered by band (first, normal, last), then by priority (higher first), then last-registered first, as
// in pluggy. A call collects every non-null reply; a first_result hook stops at the first one. A handler
// of a vetoable hook may veto, which stops the chain. A handler that throws or fails never takes the bus
// down: the failure is recorded in the outcome, reported as a "hook.error" event, and the chain goes on
// (or stops, if the hook's policy says so).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1 {

namespace detail {
struct HookBusState;
}

enum class HookBand : std::uint8_t { first, normal, last };
enum class HookErrorPolicy : std::uint8_t { continue_chain, stop_chain };

struct HookSpec {
  std::string name;
  std::string description;
  bool first_result = false;  // stop at the first non-null reply
  bool historic = false;      // remember calls and replay them to handlers that subscribe later
  bool vetoable = false;      // handlers may veto (hooks named "*.before_*" are vetoable by default)
  HookErrorPolicy on_error = HookErrorPolicy::continue_chain;
  std::size_t history_limit = 256;  // historic hooks keep at most this many calls
};

struct HookEvent {
  std::string_view name;
  const json::value& payload;
  std::string_view tenant;  // empty: a system event
};

// What a handler answers: nothing, a value, a veto, or a failure.
class HookReply {
 public:
  enum class Kind : std::uint8_t { none, value, veto, failure };

  HookReply() = default;
  HookReply(json::value v) : kind_(v.is_null() ? Kind::none : Kind::value), value_(std::move(v)) {}
  static HookReply none() { return {}; }
  static HookReply veto(std::string reason) {
    HookReply r;
    r.kind_ = Kind::veto;
    r.error_ = Error{ErrorCode::permission_denied, std::move(reason)};
    return r;
  }
  static HookReply fail(Error e) {
    HookReply r;
    r.kind_ = Kind::failure;
    r.error_ = std::move(e);
    return r;
  }

  Kind kind() const noexcept { return kind_; }
  const json::value& value() const noexcept { return value_; }
  json::value& value() noexcept { return value_; }
  const Error& error() const noexcept { return error_; }

 private:
  Kind kind_ = Kind::none;
  json::value value_;
  Error error_;
};

struct HookFailure {
  std::string owner;  // who subscribed the failing handler ("" for the host)
  Error error;
};

// The result of one call of a hook.
struct HookOutcome {
  json::array results;  // non-null replies in call order (first_result hooks: at most one)
  bool vetoed = false;
  std::string veto_reason;
  std::string vetoed_by;  // owner of the vetoing handler
  std::vector<HookFailure> failures;
  std::size_t handlers_called = 0;

  // The first reply, or null.
  const json::value& first() const noexcept;
};

using HookHandler = std::function<HookReply(const HookEvent&)>;
// A wrapper runs around the rest of the chain: it calls next() (once) and may inspect or change the outcome.
using HookNext = std::function<HookOutcome()>;
using HookWrapper = std::function<HookOutcome(const HookEvent&, const HookNext& next)>;

struct SubscribeOptions {
  HookBand band = HookBand::normal;
  int priority = 0;
  std::string owner;   // e.g. a plugin id: unsubscribe_owner() removes all of an owner's handlers
  std::string tenant;  // empty: every tenant's events and system events; else only that tenant's events
  // When set, the handler answers only while *active is true (the Manager's switch for disabled plugins).
  std::shared_ptr<const std::atomic<bool>> active;
};

class HookBus;

// RAII: the handler stays subscribed while this handle lives. Move-only.
class Subscription {
 public:
  Subscription() = default;
  Subscription(Subscription&& other) noexcept;
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription();

  std::uint64_t id() const noexcept { return id_; }
  bool subscribed() const noexcept;
  void reset();             // unsubscribe now
  std::uint64_t release();  // keep the handler subscribed for the bus's lifetime; returns its id

 private:
  friend class HookBus;
  Subscription(std::weak_ptr<detail::HookBusState> bus, std::uint64_t id) : bus_(std::move(bus)), id_(id) {}
  std::weak_ptr<detail::HookBusState> bus_;
  std::uint64_t id_ = 0;
};

struct HookInfo {
  HookSpec spec;
  std::size_t handlers = 0;
  std::size_t wrappers = 0;
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;
  bool defined = false;  // declared with define(), not just used
};

class HookBus {
 public:
  HookBus();
  ~HookBus();
  HookBus(const HookBus&) = delete;
  HookBus& operator=(const HookBus&) = delete;

  // Declare a hook's semantics. Redefining an existing hook is a conflict unless the spec is equal.
  Result<void> define(HookSpec spec);

  Result<Subscription> subscribe(std::string_view hook, HookHandler handler, SubscribeOptions options = {});
  Result<Subscription> wrap(std::string_view hook, HookWrapper wrapper, SubscribeOptions options = {});
  bool unsubscribe(std::uint64_t id) noexcept;
  std::size_t unsubscribe_owner(std::string_view owner) noexcept;

  HookOutcome emit(std::string_view hook, const json::value& payload, std::string_view tenant = {});
  // Cheap check, so callers can skip building a payload nobody would see.
  bool has_subscribers(std::string_view hook) const noexcept;

  std::vector<HookInfo> list() const;

 private:
  std::shared_ptr<detail::HookBusState> state_;
};

// Valid hook names: 1-128 of [A-Za-z0-9_.-], not starting with '.'.
bool is_valid_hook_name(std::string_view name) noexcept;

}  // namespace xcore::inline v1
