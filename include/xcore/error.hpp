// xcore::Error and xcore::Result<T>: every public call of libxcore returns one of these instead of throwing.
#pragma once

#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace xcore::inline v1 {

// A small, stable set. Each maps one to one onto an HTTP status and a JSON-RPC error code.
enum class ErrorCode : std::uint8_t {
  invalid_argument,    // the caller sent something malformed: fix the input
  not_found,           // no such plugin, tool, action, hook or file
  already_exists,      // a name or id is taken
  permission_denied,   // the caller may not do this (manifest permissions, a veto)
  conflict,            // the current state forbids it (e.g. unloading a dependency)
  failed_precondition, // a required state is missing (e.g. the plugin is not loaded)
  resource_exhausted,  // a concurrency or rate limit was reached: retry later
  timeout,             // the deadline passed
  cancelled,           // the caller cancelled
  unavailable,         // temporarily not answering (disabled, draining, restarting)
  plugin_crashed,      // the plugin failed in a way that cost the call
  incompatible,        // ABI or version mismatch
  internal,            // a bug in xcore: please report it
  unauthenticated,     // no valid credentials: log in (HTTP 401)
  plugin_error,        // the plugin failed on its own (threw, or reported an internal error): its message says why
  last = plugin_error,  // not a code: the highest one, for tables indexed by code
};

std::string_view to_string(ErrorCode code) noexcept;
// Inverse of to_string; false when the name is unknown.
bool parse_error_code(std::string_view name, ErrorCode& out) noexcept;
int http_status(ErrorCode code) noexcept;
int jsonrpc_code(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::string details;  // optional: JSON text or a longer explanation

  Error() = default;
  Error(ErrorCode c, std::string msg, std::string det = {})
      : code(c), message(std::move(msg)), details(std::move(det)) {}

  // "code: message" for logs and diagnostics.
  std::string to_string() const;
};

namespace detail {
// A Result asked for what it does not hold (value() of an error, error() of a value) is a bug in the
// caller, not an outcome: it is reported on stderr and the process aborts, in every build type. Never
// an exception: libxcore promises none.
[[noreturn]] void result_misuse(const char* what, const Error* held) noexcept;
}  // namespace detail

// Holds a T or an Error. Deliberately small: value(), error(), ok(), operator bool, operator*, operator->.
// Ask for the value only after ok(), for the error only after !ok().
template <class T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(const T& v) : v_(std::in_place_index<0>, v) {}
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}
  template <class U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
             !std::is_same_v<std::remove_cvref_t<U>, Error> && !std::is_same_v<std::remove_cvref_t<U>, Result>)
  Result(U&& u) : v_(std::in_place_index<0>, std::forward<U>(u)) {}
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return *value_ptr(); }
  const T& value() const& { return *const_cast<Result*>(this)->value_ptr(); }
  T&& value() && { return std::move(*value_ptr()); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return *const_cast<Result*>(this)->error_ptr(); }
  Error&& error() && { return std::move(*error_ptr()); }

  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  T* value_ptr() {
    if (auto* v = std::get_if<0>(&v_)) return v;
    detail::result_misuse("value() of a Result that holds an error", std::get_if<1>(&v_));
  }
  Error* error_ptr() {
    if (auto* e = std::get_if<1>(&v_)) return e;
    detail::result_misuse("error() of a Result that holds a value", nullptr);
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  Result() = default;
  Result(Error e) : err_(std::move(e)), ok_(false) {}

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& {
    if (ok_) detail::result_misuse("error() of a Result<void> that succeeded", nullptr);
    return err_;
  }
  Error&& error() && {
    if (ok_) detail::result_misuse("error() of a Result<void> that succeeded", nullptr);
    return std::move(err_);
  }

 private:
  Error err_;
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace xcore::inline v1

// Propagate an error, abseil style:  XCORE_TRY(do_something());
#define XCORE_TRY(expr)                                   \
  do {                                                    \
    auto&& xcore_try_r_ = (expr);                         \
    if (!xcore_try_r_.ok()) return std::move(xcore_try_r_).error(); \
  } while (0)

#define XCORE_CONCAT_INNER_(a, b) a##b
#define XCORE_CONCAT_(a, b) XCORE_CONCAT_INNER_(a, b)
// XCORE_ASSIGN_OR_RETURN(auto v, compute());
#define XCORE_ASSIGN_OR_RETURN(lhs, expr) \
  XCORE_ASSIGN_OR_RETURN_IMPL_(XCORE_CONCAT_(xcore_aor_, __COUNTER__), lhs, expr)
#define XCORE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).error();      \
  lhs = std::move(tmp).value()
