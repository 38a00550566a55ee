// A NodeHub for tests: one tool registry per tenant, node tokens by value, and what it was told of nodes
// coming and going.
#pragma once

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <xcore/hooks.hpp>
#include <xcore/nodes.hpp>
#include <xcore/tools.hpp>

namespace xcore_test {

using namespace xcore;

struct Host {
  std::map<std::string, std::unique_ptr<HookBus>> buses;
  std::map<std::string, std::unique_ptr<ToolRegistry>> registries;
  std::map<std::string, NodeIdentity> tokens;  // token -> who
  std::mutex mutex;
  std::vector<std::string> events;
  std::unique_ptr<NodeHub> hub;

  NodeHubOptions options(std::uint16_t port = 0) {
    NodeHubOptions o;
    o.port = port;
    o.handshake_timeout = std::chrono::milliseconds(5000);
    o.authenticate = [this](std::string_view token, std::string_view claimed) -> Result<NodeIdentity> {
      std::lock_guard lock(mutex);
      auto it = tokens.find(std::string(token));
      if (it == tokens.end()) return Error{ErrorCode::unauthenticated, "unknown node token"};
      if (it->second.name != claimed) return Error{ErrorCode::permission_denied, fmt::format("this token is node '{}''s, not '{}''s", it->second.name, claimed)};
      return it->second;
    };
    o.registry_for = [this](const std::string& tenant) -> Result<NodeRegistry> {
      std::lock_guard lock(mutex);
      auto& r = registries[tenant];
      if (!r) {
        buses[tenant] = std::make_unique<HookBus>();
        r = std::make_unique<ToolRegistry>(buses[tenant].get());
      }
      return NodeRegistry{r.get(), nullptr};
    };
    o.on_change = [this](const NodeInfo& n, bool online, const std::optional<Error>&) {
      std::lock_guard lock(mutex);
      events.push_back(fmt::format("{}/{} {}", n.tenant, n.name, online ? "online" : "offline"));
    };
    return o;
  }
  void start(NodeHubOptions o) {
    hub = std::make_unique<NodeHub>(std::move(o));
    auto port = hub->start();
    REQUIRE_MESSAGE(port, port.error().message);
  }
  ToolRegistry& tools(const std::string& tenant) {
    (void)options().registry_for(tenant);
    std::lock_guard lock(mutex);
    return *registries[tenant];
  }
  std::string url() const { return fmt::format("ws://127.0.0.1:{}/nodes", hub->port()); }
};

}  // namespace xcore_test
