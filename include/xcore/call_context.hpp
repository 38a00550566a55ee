// What travels with every tool call and plugin action: who asks, for which tenant, until when.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1 {

// Who is calling, and what they may do. Every permission check in libxcore asks a Principal: a tool's
// `tools.call:<plugin>.<tool>` gate and its required permissions, `actions.call:<plugin>/<action>`, and the
// grants of a plugin calling back into the host. Only the host itself is unrestricted, and only when it
// says so (Principal::host()); a default-constructed Principal is anonymous and holds nothing.
struct Principal {
  enum class Kind : std::uint8_t { anonymous, host, user, api_token, plugin, agent, node };
  Kind kind = Kind::anonymous;
  std::string id;                        // user id, token id, plugin id, ... (empty for the host)
  std::vector<std::string> permissions;  // patterns; '*' matches any run of characters
  // Set when a plugin calls on someone's behalf: a tool's required permissions must then be held by both
  // (no plugin widens what its caller may reach). The `tools.call` gate asks the immediate caller only.
  std::shared_ptr<const Principal> on_behalf_of;

  static Principal host();
  static Principal plugin(std::string id, std::vector<std::string> grants);

  bool unrestricted() const noexcept { return kind == Kind::host; }
  // One of this principal's own patterns matches `permission` (always true for the host).
  bool holds(std::string_view permission) const noexcept;
  // holds() here and along the on_behalf_of chain.
  bool allows(std::string_view permission) const noexcept;
  // Every permission `pattern` stands for is held: `pattern` is matched as text by one of ours, so
  // "tools.call:core.*" is covered by "tools.call:*" but not by "tools.call:core.echo". For narrowing.
  bool covers(std::string_view pattern) const noexcept;
  // "user 42", "plugin core", "the host": for error messages.
  std::string describe() const;
};

struct CallContext;

// The caller of a call while it runs, when the caller listens: an MCP client that sent a progressToken or set
// a log level, or that can be asked for sampling or elicitation. A tool reaches it through its context (in a
// plugin, through the host services "progress", "caller_log" and "client_request"). Transports implement it;
// every member may be called from any thread while the call runs.
class CallPeer {
 public:
  virtual ~CallPeer() = default;
  // How far the call has come: `done` grows with each report, of `total` when that is known.
  virtual void progress(double done, std::optional<double> total, std::string_view message) = 0;
  // A log message for the caller at one of MCP's levels ("debug", "info", "notice", "warning", "error",
  // "critical", "alert", "emergency"); dropped when below the level the caller set.
  virtual void log(std::string_view level, std::string_view logger, const json::value& data) = 0;
  // A request to the caller's client (sampling/createMessage, elicitation/create, roots/list): its result,
  // or an error (the client cannot be asked, refused, or did not answer before the call's deadline).
  virtual Result<json::value> request(std::string_view method, const json::object& params, const CallContext& ctx) = 0;
};

std::string_view to_string(Principal::Kind kind) noexcept;
std::optional<Principal::Kind> principal_kind_from_string(std::string_view text) noexcept;

struct CallContext {
  std::string tenant;    // empty: the default tenant
  std::string user;      // a display name for logs and hook payloads; the principal decides access
  std::string trace_id;  // generated when empty
  // Absolute deadline; the call fails with `timeout` once it has passed.
  std::optional<std::chrono::system_clock::time_point> deadline;
  std::stop_token cancel;  // a stop request cancels the call (checked before it starts; plugins may poll)
  // Who is calling. Anonymous unless set: a context built from an outside request reaches only what its
  // principal was granted.
  Principal principal;
  std::string caller_plugin;  // set when a plugin calls through host services
  // The caller, when it listens while the call runs (progress, log messages, requests to its client).
  std::shared_ptr<CallPeer> peer;

  // The host's own call: unrestricted.
  static CallContext host() {
    CallContext c;
    c.principal = Principal::host();
    return c;
  }

  CallContext& with_deadline_in(std::chrono::milliseconds budget) {
    deadline = std::chrono::system_clock::now() + budget;
    return *this;
  }
};

}  // namespace xcore::inline v1
