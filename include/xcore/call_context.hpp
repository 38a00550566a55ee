// What travels with every tool call and plugin action: who asks, for which tenant, until when.
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace xcore::inline v1 {

struct CallContext {
  std::string tenant;    // empty: the default tenant
  std::string user;
  std::string trace_id;  // generated when empty
  // Absolute deadline; the call fails with `timeout` once it has passed.
  std::optional<std::chrono::system_clock::time_point> deadline;
  std::stop_token cancel;  // a stop request cancels the call (checked before it starts; plugins may poll)
  // The caller's permissions. nullopt: unrestricted (the host itself). Otherwise a tool's required
  // permissions must each be matched by one of these patterns ('*' matches any run of characters).
  std::optional<std::vector<std::string>> permissions;
  std::string caller_plugin;  // set when a plugin calls through host services

  CallContext& with_deadline_in(std::chrono::milliseconds budget) {
    deadline = std::chrono::system_clock::now() + budget;
    return *this;
  }
};

}  // namespace xcore::inline v1
