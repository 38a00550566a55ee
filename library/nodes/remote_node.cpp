#include "nodes/remote_node.hpp"

#include <fmt/format.h>

#include <xcore/version.hpp>

#include "sandbox/wire.hpp"

namespace xcore::inline v1::nodes {

namespace {
WsRpc::Clock::time_point steady_deadline(std::chrono::system_clock::time_point deadline) {
  return WsRpc::Clock::now() + std::chrono::duration_cast<WsRpc::Clock::duration>(deadline - std::chrono::system_clock::now());
}
}  // namespace

RemoteNode::RemoteNode(NodeIdentity identity, NodeRegistry registry, Options options)
    : identity_(std::move(identity)), registry_(std::move(registry)), options_(std::move(options)) {
  info_.tenant = identity_.tenant;
  info_.name = identity_.name;
  info_.connected_at = std::chrono::system_clock::now();
}

RemoteNode::~RemoteNode() {
  std::lock_guard lock(mutex_);
  tools_.clear();
}

void RemoteNode::log(LogLevel level, std::string_view message) const {
  if (options_.log) options_.log(level, fmt::format("node {}/{}", identity_.tenant, identity_.name), message);
}

void RemoteNode::open(std::shared_ptr<net::WsLink> link, std::function<void(Result<void>)> ready, std::function<void(const Error&)> closed) {
  {
    std::lock_guard lock(mutex_);
    info_.remote_address = link->remote_address();
  }
  std::weak_ptr<RemoteNode> weak = weak_from_this();
  WsRpc::Handlers h;
  h.on_request = [weak](jsonrpc::Message m) {
    // A node asks nothing of its host yet: every request is answered "no such method".
    if (auto self = weak.lock()) (void)self->rpc()->respond(m.id, jsonrpc::method_not_found(m.method));
  };
  h.on_notification = [weak](const std::string& method, const json::value&) {
    if (method != "notifications/tools/list_changed") return;
    if (auto self = weak.lock()) self->refresh();
  };
  h.on_closed = [weak, closed = std::move(closed)](const Error& why) {
    // The hub hears first, so whoever sees the tools gone also sees the node offline.
    closed(Error{ErrorCode::unavailable, why.message, why.details});
    if (auto self = weak.lock()) {
      std::lock_guard lock(self->mutex_);
      self->tools_.clear();  // its tools go at once; calls in flight have failed with `why`
    }
  };
  {
    std::lock_guard lock(rpc_mutex_);
    rpc_ = WsRpc::open(std::move(link), std::move(h), options_.messages_per_second);
  }
  handshake(std::move(ready));
}

void RemoteNode::handshake(std::function<void(Result<void>)> ready) {
  auto deadline = WsRpc::Clock::now() + options_.handshake_timeout;
  auto init = rpc()->call("initialize", wire::initialize_params("xcore", version()), deadline);
  if (!init) return ready(Error{init.error().code, fmt::format("initialize: {}", init.error().message)});
  if (!init->is_object()) return ready(Error{ErrorCode::invalid_argument, "initialize: the answer is not an object"});
  const auto& r = init->get_object();
  {
    std::lock_guard lock(mutex_);
    if (const auto* si = r.if_contains("serverInfo"); si && si->is_object())
      if (const auto* v = si->get_object().if_contains("version"); v && v->is_string()) info_.version = std::string(v->get_string()).substr(0, 64);
    // The node's labels, in xcore's part of _meta.
    if (const auto* meta = r.if_contains("_meta"); meta && meta->is_object())
      if (const auto* x = meta->get_object().if_contains("xcore/node"); x && x->is_object())
        if (const auto* labels = x->get_object().if_contains("labels"); labels && labels->is_array())
          for (const auto& l : labels->get_array())
            if (l.is_string() && info_.labels.size() < 64) info_.labels.emplace_back(std::string(l.get_string()).substr(0, 128));
  }
  (void)rpc()->notify("notifications/initialized", json::object{});
  if (!identity_.policy.empty()) (void)send_policy(identity_.policy);
  auto specs = wire::list_tool_pages(identity_.name, [&](const json::object& params) { return rpc()->call("tools/list", params, deadline); });
  if (!specs) return ready(Error{specs.error().code, fmt::format("tools/list: {}", specs.error().message)});
  ready(publish(std::move(*specs)));
}

Result<void> RemoteNode::publish(std::vector<ToolSpec> specs) {
  std::lock_guard lock(mutex_);
  if (rpc()->closed()) return Error{ErrorCode::unavailable, "the node disconnected"};
  std::map<std::string, std::pair<ToolSpec, ToolRegistration>> next;
  std::vector<std::string> problems;
  for (auto& spec : specs) {
    const std::string own = spec.name;
    if (next.contains(own)) continue;
    if (auto it = tools_.find(own); it != tools_.end()) {
      if (it->second.first.to_mcp() == spec.to_mcp()) {
        next.emplace(own, std::move(it->second));  // unchanged: it keeps its metrics
        tools_.erase(it);
        continue;
      }
      tools_.erase(it);  // changed: its old registration lets go of the name before the new one takes it
    }
    ToolSpec registered = spec;
    registered.name = fmt::format("{}.{}", identity_.name, own);
    registered.tenant = identity_.tenant;
    registered.permissions.clear();  // a node does not choose who may call it; the host's gate decides
    if (registered.category.empty()) registered.category = "node";
    std::weak_ptr<RemoteNode> weak = weak_from_this();
    auto reg = registry_.tools->add(std::move(registered), [weak, own](const json::value& args, const CallContext& ctx) -> Result<ToolResult> {
      auto self = weak.lock();
      if (!self) return Error{ErrorCode::unavailable, "the node disconnected"};
      return self->call(own, args, ctx);
    });
    if (!reg) {
      problems.push_back(fmt::format("{}: {}", own, reg.error().message));
      continue;
    }
    next.emplace(own, std::make_pair(std::move(spec), std::move(*reg)));
  }
  tools_.swap(next);  // what is left in `next` (tools the node no longer serves) is unregistered here
  info_.tools.clear();
  for (const auto& [own, entry] : tools_) info_.tools.push_back(entry.second.qualified_name());
  if (!problems.empty()) log(LogLevel::warn, fmt::format("tools not registered: {}", fmt::join(problems, "; ")));
  return ok();
}

void RemoteNode::refresh() {
  // Runs on the link's I/O thread: the listing goes to the hub's threads, one at a time per node.
  {
    std::lock_guard lock(mutex_);
    if (refreshing_) {
      refresh_again_ = true;
      return;
    }
    refreshing_ = true;
  }
  options_.post([self = shared_from_this()] {
    for (;;) {
      auto deadline = WsRpc::Clock::now() + self->options_.handshake_timeout;
      auto specs = wire::list_tool_pages(self->identity_.name, [&](const json::object& params) { return self->rpc()->call("tools/list", params, deadline); });
      if (specs) {
        if (auto p = self->publish(std::move(*specs)); !p) self->log(LogLevel::warn, p.error().message);
      } else {
        self->log(LogLevel::warn, fmt::format("tools/list after a change: {}", specs.error().message));
      }
      std::lock_guard lock(self->mutex_);
      if (!self->refresh_again_) {
        self->refreshing_ = false;
        return;
      }
      self->refresh_again_ = false;
    }
  });
}

Result<ToolResult> RemoteNode::call(const std::string& tool, const json::value& arguments, const CallContext& ctx) {
  auto deadline = ctx.deadline ? steady_deadline(*ctx.deadline) : WsRpc::Clock::now() + options_.call_timeout;
  CallContext carried;  // what the node may know of the call: never the caller's principal
  carried.tenant = ctx.tenant;
  carried.user = ctx.user;
  carried.trace_id = ctx.trace_id;
  carried.deadline = ctx.deadline ? *ctx.deadline : std::chrono::system_clock::now() + options_.call_timeout;
  json::object params{{"name", tool}, {"arguments", arguments}, {"_meta", wire::meta_with_context(carried)}};
  auto r = rpc()->call("tools/call", params, deadline, ctx.cancel);
  if (!r) {
    auto e = std::move(r).error();
    if (e.code == ErrorCode::unavailable || e.code == ErrorCode::plugin_crashed)
      return Error{ErrorCode::unavailable, fmt::format("node '{}' is not connected: {}", identity_.name, e.message)};
    return Error{e.code, fmt::format("node '{}': {}", identity_.name, e.message), e.details};
  }
  return ToolResult::from_mcp(std::move(*r));
}

Result<json::value> RemoteNode::request(std::string_view method, const json::value& params, std::chrono::milliseconds timeout) {
  auto link = rpc();
  if (!link) return Error{ErrorCode::unavailable, fmt::format("node '{}' is not connected", identity_.name)};
  return link->call(method, params, WsRpc::Clock::now() + timeout);
}

void RemoteNode::close(std::string_view reason) {
  if (auto r = rpc()) r->close(reason);
  std::lock_guard lock(mutex_);
  tools_.clear();  // gone now, not when the closing handshake is over
}

Result<void> RemoteNode::send_policy(const json::object& policy) {
  return rpc()->notify("xcore/node/policy", json::object{{"policy", policy}});
}

void RemoteNode::expire(WsRpc::Clock::time_point now) {
  if (auto r = rpc()) r->expire(now);
}

NodeInfo RemoteNode::info() const {
  std::lock_guard lock(mutex_);
  auto out = info_;
  if (auto r = rpc()) out.last_seen = r->last_message();
  return out;
}

}  // namespace xcore::inline v1::nodes
