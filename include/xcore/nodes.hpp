// Remote nodes: programs (xcore-node) on other machines that dial in over WebSocket and serve their tools.
// A NodeHub listens for them; each node's tools join its tenant's registry as "<node>.<tool>" and are
// called, listed, permission-checked, metered and hooked like the host's own. The wire is MCP (JSON-RPC
// 2.0, one message per WebSocket text frame): the hub is the client, the node the server; deadlines and
// cancellation cross it (notifications/cancelled). A node that drops takes its tools with it at once, and
// its calls in flight fail with `unavailable`.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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

// A node's name, and the name of a preset or an MCP server on a node: 1-40 of a-z, 0-9 and '-', not
// starting with '-' (it prefixes tool names and is a path segment).
bool is_node_name(std::string_view name) noexcept;

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

// An MCP server from npm that a node starts when asked: Node.js runs the package's `entry` as a sandboxed
// plugin of the node, with no network, seeing only the package, its own data folder and the folders the
// caller chose (its mounts), which the node keeps inside its --root folders.
struct McpPreset {
  std::string name;  // 1-40 of [a-z0-9-]
  std::string description;
  std::string package;  // npm name, e.g. @modelcontextprotocol/server-filesystem
  std::string version;  // exact: installed as package@version, install scripts off
  std::string entry;    // the script in the package, e.g. dist/index.js
  std::vector<std::string> args;  // "{mounts}" stands for the chosen folders, "{data}" for its data folder
  std::vector<std::pair<std::string, std::string>> env;  // values may hold "{data}"
  unsigned min_mounts = 0, max_mounts = 0;
  bool writable = false;  // mounts are read-write (else read-only)
  unsigned memory_mb = 2048;  // address space (Node.js reserves more than it uses)
  unsigned timeout_ms = 30000;
  json::object to_json() const;
  // Errors name the field, e.g. "preset 'files': version: expected an exact version such as 1.2.3".
  static Result<McpPreset> from_json(std::string_view name, const json::value& v);
};

// The presets a host offers: the catalogue built into xcore (presets/mcp.yaml in its source), to which an
// operator's files add presets or replace those of the same name.
class McpCatalogue {
 public:
  static McpCatalogue builtin();
  Result<void> add_file(const std::filesystem::path& file);
  Result<void> add_text(std::string_view yaml, const std::filesystem::path& file_for_messages);
  const McpPreset* find(std::string_view name) const;
  std::vector<McpPreset> list() const;

 private:
  std::map<std::string, McpPreset, std::less<>> presets_;
};

// What a node is asked to start: a preset with its mounts, or an MCP server already running on the node,
// reached at `url` (loopback only: the node does not proxy into its network).
struct McpServerRequest {
  std::string id;  // its plugin id on the node: its tools come as "<node>.<id>.<tool>"
  std::optional<McpPreset> preset;
  std::vector<std::string> mounts;  // absolute folders on the node
  std::string url;
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

  // MCP servers on a node (it must run with --allow-mcp). Starting one installs its package if need be
  // (from the node's cache or npm) within `timeout`; its tools then join as the node's. The answers are
  // the node's: {id, preset|url, mounts, state, tools, error?}; listing gives {"servers": [...]}.
  Result<json::object> start_mcp(std::string_view tenant, std::string_view name, const McpServerRequest& request,
                                 std::chrono::milliseconds timeout = std::chrono::minutes(5));
  Result<void> stop_mcp(std::string_view tenant, std::string_view name, std::string_view id);
  Result<json::object> list_mcp(std::string_view tenant, std::string_view name);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace xcore::inline v1
