// The NodeHub: a WebSocket listener for nodes, the map of those online, and a few threads of its own for
// what must not run on an I/O thread (a tenant's registry, a node's handshake and tool listing).
#include <xcore/nodes.hpp>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/thread_name.hpp"
#include "net/websocket.hpp"
#include "nodes/remote_node.hpp"

namespace xcore::inline v1 {

namespace {
constexpr unsigned kWorkers = 2;
std::string key_of(std::string_view tenant, std::string_view name) { return fmt::format("{}\n{}", tenant, name); }
}  // namespace

struct NodeHub::Impl : std::enable_shared_from_this<NodeHub::Impl> {
  NodeHubOptions options;
  std::unique_ptr<net::WsEngine> engine;
  std::uint16_t port = 0;

  mutable std::mutex mutex;
  std::map<std::string, std::shared_ptr<nodes::RemoteNode>> online;  // by key_of(tenant, name), registered
  std::map<std::string, std::shared_ptr<nodes::RemoteNode>> joining;  // in their handshake

  std::mutex jobs_mutex;
  std::condition_variable jobs_ready;
  std::deque<std::function<void()>> jobs;
  bool stopping = false;
  std::vector<std::thread> workers;

  void log(LogLevel level, std::string_view message) const {
    if (options.log) options.log(level, "nodes", message);
  }

  void post(std::function<void()> job) {
    {
      std::lock_guard lock(jobs_mutex);
      if (stopping) return;
      jobs.push_back(std::move(job));
    }
    jobs_ready.notify_one();
  }

  void work() {
    auto next_sweep = std::chrono::steady_clock::now();
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(jobs_mutex);
        jobs_ready.wait_until(lock, next_sweep, [&] { return stopping || !jobs.empty(); });
        if (stopping) return;
        if (!jobs.empty()) {
          job = std::move(jobs.front());
          jobs.pop_front();
        }
      }
      if (job) job();
      // Asynchronous calls past their deadline fail; a few times a second is precise enough for them.
      if (auto now = std::chrono::steady_clock::now(); now >= next_sweep) {
        next_sweep = now + std::chrono::milliseconds(200);
        std::vector<std::shared_ptr<nodes::RemoteNode>> all;
        {
          std::lock_guard lock(mutex);
          for (auto& [k, n] : online) all.push_back(n);
          for (auto& [k, n] : joining) all.push_back(n);
        }
        for (auto& n : all) n->expire(now);
      }
    }
  }

  Result<std::function<void(std::shared_ptr<net::WsLink>)>> authorize(const net::WsUpgrade& up) {
    auto path = std::string_view(up.target).substr(0, up.target.find('?'));
    if (path != options.path) return Error{ErrorCode::not_found, fmt::format("nodes connect at {}", options.path)};
    const std::string auth = up.header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!auth.starts_with(kBearer) || auth.size() == kBearer.size())
      return Error{ErrorCode::unauthenticated, "a node authenticates with 'Authorization: Bearer <its token>'"};
    const std::string claimed = up.header("x-xcore-node");
    auto identity = options.authenticate(std::string_view(auth).substr(kBearer.size()), claimed);
    if (!identity) {
      log(LogLevel::warn, fmt::format("refused a node from {} ('{}'): {}", up.remote_address, claimed, identity.error().message));
      return std::move(identity).error();
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    return std::function<void(std::shared_ptr<net::WsLink>)>([weak, id = std::move(*identity)](std::shared_ptr<net::WsLink> link) {
      auto self = weak.lock();
      if (!self) return link->close("the host is shutting down");
      self->post([weak, id, link] {
        if (auto s = weak.lock()) s->join(id, link);
      });
    });
  }

  Result<json::value> request(std::string_view tenant, std::string_view name, std::string_view method, const json::value& params,
                              std::chrono::milliseconds timeout);

  // On a worker: the tenant's registry, then the handshake.
  void join(const NodeIdentity& id, const std::shared_ptr<net::WsLink>& link) {
    auto registry = options.registry_for(id.tenant);
    if (!registry || !registry->tools) {
      auto why = registry ? std::string("no tool registry") : registry.error().message;
      log(LogLevel::warn, fmt::format("node {}/{}: {}", id.tenant, id.name, why));
      return link->close(why);
    }
    nodes::RemoteNode::Options ro;
    ro.call_timeout = options.call_timeout;
    ro.handshake_timeout = options.handshake_timeout;
    ro.log = options.log;
    ro.messages_per_second = options.messages_per_second;
    std::weak_ptr<Impl> weak = weak_from_this();
    ro.post = [weak](std::function<void()> job) {
      if (auto s = weak.lock()) s->post(std::move(job));
    };
    auto node = std::make_shared<nodes::RemoteNode>(id, std::move(*registry), std::move(ro));
    const auto key = key_of(id.tenant, id.name);
    std::shared_ptr<nodes::RemoteNode> replaced;
    {
      std::lock_guard lock(mutex);
      if (auto it = joining.find(key); it != joining.end()) replaced = it->second;
      joining[key] = node;
    }
    if (replaced) replaced->close("replaced by a newer connection of the same node");
    std::weak_ptr<nodes::RemoteNode> weak_node = node;
    node->open(
        link,
        [this, weak, weak_node, key](Result<void> ready) {
          auto self = weak.lock();
          auto n = weak_node.lock();
          if (!self || !n) return;
          std::shared_ptr<nodes::RemoteNode> old;
          bool still_joining = false;  // not dropped (disconnect) or replaced during its handshake
          {
            std::lock_guard lock(mutex);
            if (auto it = joining.find(key); it != joining.end() && it->second == n) {
              joining.erase(it);
              still_joining = true;
            }
            if (!ready) {
              log(LogLevel::warn, fmt::format("node {}: {}", n->info().name, ready.error().message));
            } else if (still_joining) {
              if (auto it = online.find(key); it != online.end()) old = it->second;
              online[key] = n;
            }
          }
          if (!ready) return n->close(ready.error().message);
          if (!still_joining) return n->close("dropped by the host while it joined");
          if (old) old->close("replaced by a newer connection of the same node");
          auto info = n->info();
          log(LogLevel::info, fmt::format("node {}/{} online from {} with {} tools", info.tenant, info.name, info.remote_address, info.tools.size()));
          if (options.on_change) options.on_change(info, true, std::nullopt);
        },
        [this, weak, weak_node, key](const Error& why) {
          auto self = weak.lock();
          auto n = weak_node.lock();
          if (!self || !n) return;
          bool was_online = false;
          {
            std::lock_guard lock(mutex);
            if (auto it = online.find(key); it != online.end() && it->second == n) {
              online.erase(it);
              was_online = true;
            }
            if (auto it = joining.find(key); it != joining.end() && it->second == n) joining.erase(it);
          }
          if (!was_online) return;
          auto info = n->info();
          log(LogLevel::info, fmt::format("node {}/{} offline: {}", info.tenant, info.name, why.message));
          if (options.on_change) options.on_change(info, false, why);
        });
  }
};

NodeHub::NodeHub(NodeHubOptions options) : impl_(std::make_shared<Impl>()) { impl_->options = std::move(options); }

NodeHub::~NodeHub() {
  std::vector<std::shared_ptr<nodes::RemoteNode>> all;
  {
    std::lock_guard lock(impl_->mutex);
    for (auto& [k, n] : impl_->online) all.push_back(n);
    for (auto& [k, n] : impl_->joining) all.push_back(n);
  }
  for (auto& n : all) n->close("the host is shutting down");
  {
    std::lock_guard lock(impl_->jobs_mutex);
    impl_->stopping = true;
  }
  impl_->jobs_ready.notify_all();
  for (auto& t : impl_->workers) t.join();
  impl_->engine.reset();  // every link closed; their tools went with them
  std::lock_guard lock(impl_->mutex);
  impl_->online.clear();
  impl_->joining.clear();
}

Result<std::uint16_t> NodeHub::start() {
  auto& o = impl_->options;
  if (impl_->engine) return Error{ErrorCode::already_exists, "the node hub is started already"};
  if (!o.authenticate || !o.registry_for) return Error{ErrorCode::invalid_argument, "NodeHubOptions: authenticate and registry_for are required"};
  impl_->engine = std::make_unique<net::WsEngine>(std::max(1u, o.threads), "xcore-nodes-io");
  net::WsListenOptions lo;
  lo.address = o.address;
  lo.port = o.port;
  lo.tls_cert_file = o.tls_cert_file;
  lo.tls_key_file = o.tls_key_file;
  lo.max_connections = o.max_nodes;
  lo.limits.max_message = o.max_message;
  lo.limits.handshake_timeout = o.handshake_timeout;
  lo.limits.idle_timeout = o.idle_timeout;
  std::weak_ptr<Impl> weak = impl_;
  auto port = impl_->engine->listen(lo, [weak](const net::WsUpgrade& up) -> Result<std::function<void(std::shared_ptr<net::WsLink>)>> {
    auto self = weak.lock();
    if (!self) return Error{ErrorCode::unavailable, "the host is shutting down"};
    return self->authorize(up);
  });
  if (!port) {
    impl_->engine.reset();
    return port;
  }
  impl_->port = *port;
  for (unsigned i = 0; i < kWorkers; ++i) {
    impl_->workers.emplace_back([impl = impl_.get()] { impl->work(); });
    name_thread(impl_->workers.back(), "xcore-nodes");
  }
  return *port;
}

std::uint16_t NodeHub::port() const noexcept { return impl_->port; }

std::vector<NodeInfo> NodeHub::online(std::string_view tenant) const {
  std::vector<std::shared_ptr<nodes::RemoteNode>> mine;
  {
    std::lock_guard lock(impl_->mutex);
    for (auto& [k, n] : impl_->online)
      if (n->identity().tenant == tenant) mine.push_back(n);
  }
  std::vector<NodeInfo> out;
  for (auto& n : mine) out.push_back(n->info());
  return out;
}

std::optional<NodeInfo> NodeHub::find(std::string_view tenant, std::string_view name) const {
  std::shared_ptr<nodes::RemoteNode> n;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->online.find(key_of(tenant, name));
    if (it == impl_->online.end()) return std::nullopt;
    n = it->second;
  }
  return n->info();
}

bool NodeHub::any_online(std::string_view tenant) const {
  std::lock_guard lock(impl_->mutex);
  for (auto& [k, n] : impl_->online)
    if (n->identity().tenant == tenant) return true;
  return false;
}

bool NodeHub::set_policy(std::string_view tenant, std::string_view name, const json::object& policy) {
  std::shared_ptr<nodes::RemoteNode> n;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->online.find(key_of(tenant, name));
    if (it == impl_->online.end()) return false;
    n = it->second;
  }
  return static_cast<bool>(n->send_policy(policy));
}

bool NodeHub::disconnect(std::string_view tenant, std::string_view name, std::string_view reason) {
  std::shared_ptr<nodes::RemoteNode> was_online, joining;
  {
    std::lock_guard lock(impl_->mutex);
    const auto key = key_of(tenant, name);
    // Out of the maps now, not when the closing handshake is over: whoever asked sees it gone at once.
    if (auto it = impl_->online.find(key); it != impl_->online.end()) {
      was_online = it->second;
      impl_->online.erase(it);
    }
    if (auto it = impl_->joining.find(key); it != impl_->joining.end()) {
      joining = it->second;
      impl_->joining.erase(it);
    }
  }
  if (joining) joining->close(reason);
  if (!was_online) return joining != nullptr;
  was_online->close(reason);
  if (impl_->options.on_change)
    impl_->options.on_change(was_online->info(), false, Error{ErrorCode::unavailable, fmt::format("dropped by the host: {}", reason)});
  return true;
}

namespace {
Result<json::object> object_answer(Result<json::value> r, std::string_view method) {
  if (!r) return r.error();
  if (!r->is_object()) return Error{ErrorCode::internal, fmt::format("the node's answer to {} is not an object", method)};
  return std::move(r->as_object());
}
}  // namespace

Result<json::value> NodeHub::Impl::request(std::string_view tenant, std::string_view name, std::string_view method, const json::value& params,
                                           std::chrono::milliseconds timeout) {
  std::shared_ptr<nodes::RemoteNode> n;
  {
    std::lock_guard lock(mutex);
    if (auto it = online.find(key_of(tenant, name)); it != online.end()) n = it->second;
  }
  if (!n) return Error{ErrorCode::unavailable, fmt::format("node '{}' is not connected", name)};
  return n->request(method, params, timeout);
}

Result<json::object> NodeHub::start_mcp(std::string_view tenant, std::string_view name, const McpServerRequest& request, std::chrono::milliseconds timeout) {
  json::object params{{"id", request.id}};
  if (request.preset) {
    params["preset"] = request.preset->to_json();
    params["preset"].as_object()["name"] = request.preset->name;
    json::array mounts;
    for (const auto& m : request.mounts) mounts.emplace_back(m);
    params["mounts"] = std::move(mounts);
  } else {
    params["url"] = request.url;
  }
  return object_answer(impl_->request(tenant, name, "xcore/node/mcp/start", params, timeout), "xcore/node/mcp/start");
}

Result<void> NodeHub::stop_mcp(std::string_view tenant, std::string_view name, std::string_view id) {
  auto r = impl_->request(tenant, name, "xcore/node/mcp/stop", json::object{{"id", id}}, impl_->options.call_timeout);
  if (!r) return r.error();
  return ok();
}

Result<json::object> NodeHub::list_mcp(std::string_view tenant, std::string_view name) {
  return object_answer(impl_->request(tenant, name, "xcore/node/mcp/list", json::object{}, impl_->options.call_timeout), "xcore/node/mcp/list");
}

}  // namespace xcore::inline v1
