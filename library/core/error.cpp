#include <xcore/error.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>

namespace xcore::inline v1 {
namespace {

struct CodeInfo {
  ErrorCode code;
  std::string_view name;
  int http;
  int jsonrpc;  // -32602 is JSON-RPC's "invalid params"; the rest sit in the server-error band
};

constexpr std::array<CodeInfo, static_cast<std::size_t>(ErrorCode::last) + 1> kCodes{{
    {ErrorCode::invalid_argument, "invalid_argument", 400, -32602},
    {ErrorCode::not_found, "not_found", 404, -32001},
    {ErrorCode::already_exists, "already_exists", 409, -32002},
    {ErrorCode::permission_denied, "permission_denied", 403, -32003},
    {ErrorCode::conflict, "conflict", 409, -32004},
    {ErrorCode::failed_precondition, "failed_precondition", 412, -32005},
    {ErrorCode::resource_exhausted, "resource_exhausted", 429, -32006},
    {ErrorCode::timeout, "timeout", 504, -32007},
    {ErrorCode::cancelled, "cancelled", 499, -32008},
    {ErrorCode::unavailable, "unavailable", 503, -32009},
    {ErrorCode::plugin_crashed, "plugin_crashed", 502, -32010},
    {ErrorCode::incompatible, "incompatible", 422, -32011},
    {ErrorCode::internal, "internal", 500, -32603},
    {ErrorCode::unauthenticated, "unauthenticated", 401, -32012},
    {ErrorCode::plugin_error, "plugin_error", 502, -32013},
}};

// The table is in the enum's order (checked below), so a code is its own index.
constexpr bool in_enum_order() {
  for (std::size_t i = 0; i < kCodes.size(); ++i)
    if (static_cast<std::size_t>(kCodes[i].code) != i) return false;
  return true;
}
static_assert(in_enum_order(), "kCodes must list every ErrorCode, in the enum's order");

const CodeInfo& info(ErrorCode code) noexcept {
  const auto i = static_cast<std::size_t>(code);
  return i < kCodes.size() ? kCodes[i] : kCodes[static_cast<std::size_t>(ErrorCode::internal)];
}

}  // namespace

std::string_view to_string(ErrorCode code) noexcept { return info(code).name; }
int http_status(ErrorCode code) noexcept { return info(code).http; }
int jsonrpc_code(ErrorCode code) noexcept { return info(code).jsonrpc; }

bool parse_error_code(std::string_view name, ErrorCode& out) noexcept {
  for (const auto& c : kCodes)
    if (c.name == name) {
      out = c.code;
      return true;
    }
  return false;
}

namespace detail {
void result_misuse(const char* what, const Error* held) noexcept {
  if (held) std::fprintf(stderr, "xcore: %s (%s: %s)\n", what, std::string(xcore::to_string(held->code)).c_str(), held->message.c_str());
  else std::fprintf(stderr, "xcore: %s\n", what);
  std::abort();
}
}  // namespace detail

std::string Error::to_string() const { return fmt::format("{}: {}", xcore::to_string(code), message); }

}  // namespace xcore::inline v1
