// The host's side of one connected node: the runner behind its tools. It asks the node what it serves
// (initialize, tools/list), registers each tool as "<node>.<tool>" in the tenant's registry, and forwards
// calls with their deadline and cancellation. When the link ends, its tools go and its calls fail.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <xcore/call_context.hpp>
#include <xcore/nodes.hpp>
#include <xcore/tools.hpp>

#include "nodes/ws_rpc.hpp"

namespace xcore::inline v1::nodes {

class RemoteNode : public std::enable_shared_from_this<RemoteNode> {
 public:
  struct Options {
    std::chrono::milliseconds call_timeout{30000};
    std::chrono::milliseconds handshake_timeout{10000};
    LogSink log;
    std::uint32_t messages_per_second = 0;  // unsolicited ones (WsRpc::open)
    std::function<void(std::function<void()>)> post;  // runs a job on the hub's threads
  };
  RemoteNode(NodeIdentity identity, NodeRegistry registry, Options options);
  ~RemoteNode();

  // Speaks over `link`: `ready` once the node's tools are registered (or why not), then `closed` once,
  // when the link ends. Both run on the link's I/O thread or the expiring timer's.
  void open(std::shared_ptr<net::WsLink> link, std::function<void(Result<void>)> ready, std::function<void(const Error&)> closed);
  void close(std::string_view reason);
  // The host's command policy, to the node (xcore/node/policy).
  Result<void> send_policy(const json::object& policy);
  void expire(WsRpc::Clock::time_point now);
  // A request of the host's own to the node (xcore/node/...), answered within `timeout`.
  Result<json::value> request(std::string_view method, const json::value& params, std::chrono::milliseconds timeout);
  NodeInfo info() const;
  const NodeIdentity& identity() const noexcept { return identity_; }

 private:
  void handshake(std::function<void(Result<void>)> ready);
  void list_tools(std::string cursor, std::vector<ToolSpec> so_far, std::function<void(Result<std::vector<ToolSpec>>)> done);
  Result<void> publish(std::vector<ToolSpec> specs);
  void refresh();
  Result<ToolResult> call(const std::string& tool, const json::value& arguments, const CallContext& ctx);
  void log(LogLevel level, std::string_view message) const;

  NodeIdentity identity_;
  NodeRegistry registry_;
  Options options_;
  // Set once open() has it; the hub's timer may ask before.
  std::shared_ptr<WsRpc> rpc() const {
    std::lock_guard lock(rpc_mutex_);
    return rpc_;
  }
  mutable std::mutex rpc_mutex_;
  std::shared_ptr<WsRpc> rpc_;
  mutable std::mutex mutex_;
  std::map<std::string, std::pair<ToolSpec, ToolRegistration>> tools_;  // by the node's own name
  NodeInfo info_;
  bool refreshing_ = false, refresh_again_ = false;
};

}  // namespace xcore::inline v1::nodes
