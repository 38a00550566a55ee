// Translations between the C ABI (plugin.h) and libxcore's types, shared by every runner that speaks it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/plugin.h>

namespace xcore::inline v1 {

// The C status of each code is the code plus one (XCORE_OK is 0): checked here, one by one, so that a
// code added on either side without the other fails to compile.
static_assert(XCORE_E_INVALID_ARGUMENT == static_cast<int>(ErrorCode::invalid_argument) + 1);
static_assert(XCORE_E_NOT_FOUND == static_cast<int>(ErrorCode::not_found) + 1);
static_assert(XCORE_E_ALREADY_EXISTS == static_cast<int>(ErrorCode::already_exists) + 1);
static_assert(XCORE_E_PERMISSION_DENIED == static_cast<int>(ErrorCode::permission_denied) + 1);
static_assert(XCORE_E_CONFLICT == static_cast<int>(ErrorCode::conflict) + 1);
static_assert(XCORE_E_FAILED_PRECONDITION == static_cast<int>(ErrorCode::failed_precondition) + 1);
static_assert(XCORE_E_RESOURCE_EXHAUSTED == static_cast<int>(ErrorCode::resource_exhausted) + 1);
static_assert(XCORE_E_TIMEOUT == static_cast<int>(ErrorCode::timeout) + 1);
static_assert(XCORE_E_CANCELLED == static_cast<int>(ErrorCode::cancelled) + 1);
static_assert(XCORE_E_UNAVAILABLE == static_cast<int>(ErrorCode::unavailable) + 1);
static_assert(XCORE_E_PLUGIN_CRASHED == static_cast<int>(ErrorCode::plugin_crashed) + 1);
static_assert(XCORE_E_INCOMPATIBLE == static_cast<int>(ErrorCode::incompatible) + 1);
static_assert(XCORE_E_INTERNAL == static_cast<int>(ErrorCode::internal) + 1);
static_assert(XCORE_E_UNAUTHENTICATED == static_cast<int>(ErrorCode::unauthenticated) + 1);
static_assert(XCORE_E_PLUGIN_ERROR == static_cast<int>(ErrorCode::last) + 1, "a code without its C status");

// A status a plugin returned. Its `internal`, or a status this host does not know, is the plugin's own
// failure: `internal` stays the name of xcore's bugs.
inline ErrorCode code_from_status(std::int32_t status) {
  if (status == XCORE_E_INTERNAL) return ErrorCode::plugin_error;
  if (status >= XCORE_E_INVALID_ARGUMENT && status <= XCORE_E_PLUGIN_ERROR) return static_cast<ErrorCode>(status - 1);
  return ErrorCode::plugin_error;
}
inline std::int32_t status_from_code(ErrorCode code) { return static_cast<std::int32_t>(code) + 1; }

inline xcore_str to_c(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view from_c(xcore_str s) { return {s.data ? s.data : "", s.data ? s.size : 0}; }

struct StringSink {
  std::string text;
  xcore_sink sink{this, &StringSink::append};
  StringSink() = default;
  StringSink(const StringSink&) = delete;
  static void append(void* ctx, const char* data, std::size_t size) { static_cast<StringSink*>(ctx)->text.append(data, size); }
};

inline void write_sink(xcore_sink* s, std::string_view text) {
  if (s && s->append) s->append(s->ctx, text.data(), text.size());
}

// A CallContext seen through the C struct; valid while `ctx` lives.
struct CContext {
  xcore_call_context c{};
  explicit CContext(const CallContext& ctx) {
    c.size = sizeof(xcore_call_context);
    c.tenant = to_c(ctx.tenant);
    c.user = to_c(ctx.user);
    c.trace_id = to_c(ctx.trace_id);
    c.deadline_unix_ms = ctx.deadline ? std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline->time_since_epoch()).count() : 0;
    c.cancel_state = &ctx.cancel;
    c.is_cancelled = [](const void* s) -> std::int32_t { return static_cast<const std::stop_token*>(s)->stop_requested() ? 1 : 0; };
  }
};

// The reverse, for calls a plugin makes back into the host with the context it was given.
inline CallContext from_c(const xcore_call_context* c) {
  CallContext ctx;
  // ABI 1.0's context ends with the deadline; the cancellation members may be missing from an older one.
  if (!c || c->size < offsetof(xcore_call_context, deadline_unix_ms) + sizeof(c->deadline_unix_ms)) return ctx;
  ctx.tenant = std::string(from_c(c->tenant));
  ctx.user = std::string(from_c(c->user));
  ctx.trace_id = std::string(from_c(c->trace_id));
  if (c->deadline_unix_ms > 0)
    ctx.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(c->deadline_unix_ms));
  return ctx;
}

}  // namespace xcore::inline v1
