// Remote nodes: programs (xcore-node) on other machines that dial in over WebSocket and serve their tools.
// A NodeHub listens for them; each node's tools join its tenant's registry as "<node>.<tool>" and are
// called, listed, permission-checked, metered and hooked like the host's own. The wire is MCP (JSON-RPC
// 2.0, one message per WebSocket text frame): the hub is the client, the node the server; deadlines and
// cancellation cross it (notifications/cancelled). A node that drops takes its tools with it at once, and
// its calls in flight fail with `unavailable`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/log.hpp>

namespace xcore::inline v1 {

class ToolRegistry;

// Who a connecting node is, as the host's authentication decided.
struct NodeIdentity {
  std::string tenant;
  std::string name;  // becomes its tools' prefix: 1-40 of [a-z0-9-]
  // The host's command policy for the node ({"rules": [...]}, see xcore-node), sent to it when it connects:
  // a command runs only if the node's own policy and this one both let it. Empty: the node's alone.
  json::object policy;
};

struct NodeInfo {
  std::string tenant;
  std::string name;
  std::string version;         // what the node says it runs (MCP serverInfo.version)
  std::string remote_address;  // where it connected from
  std::vector<std::string> labels;
  std::vector<std::string> tools;  // the names it serves them under, "<node>.<tool>"
  std::chrono::system_clock::time_point connected_at;
  std::chrono::system_clock::time_point last_seen;  // its last message
};

// The registry a tenant's node tools go into, and what keeps it alive while the node is connected.
struct NodeRegistry {
  ToolRegistry* tools = nullptr;
  std::shared_ptr<void> keep;
};

struct NodeHubOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;                   // 0: any free port
  std::string tls_cert_file, tls_key_file;  // both set: nodes dial wss://
  std::string path = "/nodes";              // the upgrade's path; others are refused
  // Who a node is: its bearer token and the name it gave (header X-Xcore-Node). An error refuses the
  // upgrade with the error's status and message, which the node shows.
  std::function<Result<NodeIdentity>(std::string_view token, std::string_view claimed_name)> authenticate;
  // Where a tenant's node tools go. Called on the hub's own thread, never an I/O one.
  std::function<Result<NodeRegistry>(const std::string& tenant)> registry_for;
  // Told when a node came online (its tools registered) or went offline, with why.
  std::function<void(const NodeInfo& node, bool online, const std::optional<Error>& why)> on_change;
  std::chrono::milliseconds call_timeout{30000};       // tool calls that carry no deadline
  std::chrono::milliseconds handshake_timeout{10000};  // upgrade, initialize and tools/list
  std::chrono::milliseconds idle_timeout{20000};       // silent this long (pings unanswered): dropped
  std::size_t max_message = 8u << 20;                  // bytes; a bigger message drops the node
  // What a node sends of itself (requests, notifications, answers to nothing asked), per second, bursts up
  // to as many; beyond: dropped. Its answers to the host's calls are not counted.
  std::uint32_t messages_per_second = 200;
  std::size_t max_nodes = 4096;                        // connections at once
  unsigned threads = 1;                                // I/O threads
  LogSink log;
};

class NodeHub {
 public:
  explicit NodeHub(NodeHubOptions options);
  ~NodeHub();  // drops every node (their tools go) and stops listening
  NodeHub(const NodeHub&) = delete;
  NodeHub& operator=(const NodeHub&) = delete;

  // Listens; returns the port.
  Result<std::uint16_t> start();
  std::uint16_t port() const noexcept;

  // The tenant's nodes online now.
  std::vector<NodeInfo> online(std::string_view tenant) const;
  std::optional<NodeInfo> find(std::string_view tenant, std::string_view name) const;
  bool any_online(std::string_view tenant) const;
  // Sends a connected node the host's new command policy (see NodeIdentity::policy); false when it is not
  // connected (it gets the policy authenticate returns when it next connects).
  bool set_policy(std::string_view tenant, std::string_view name, const json::object& policy);
  // Drops a node (its token was revoked, it was deleted): true when it was connected.
  bool disconnect(std::string_view tenant, std::string_view name, std::string_view reason);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace xcore::inline v1
