#include "runners/remote_mcp_runner.hpp"

#include <fmt/format.h>

#include <atomic>
#include <map>
#include <mutex>

#include <xcore/version.hpp>

#include "mcp/mcp_http_client.hpp"
#include "sandbox/wire.hpp"

namespace xcore::inline v1 {

namespace {

class RemoteMcpRunner final : public Runner {
 public:
  RemoteMcpRunner(const PluginManifest& m, PluginServices& services, RemoteMcpOptions options)
      : manifest_(m), services_(services), options_(std::move(options)) {
    if (!options_.clock) options_.clock = [] { return std::chrono::steady_clock::now(); };
  }
  ~RemoteMcpRunner() override { disconnect(); }

  Result<void> on_load(const json::object&) override {
    mcp::HttpClientOptions o;
    o.url = manifest_.url;
    o.headers = manifest_.headers;
    o.pinned_address = options_.pinned_address;
    o.client_name = "xcore";
    o.client_version = XCORE_VERSION_STRING;
    // What a tool's caller can do is relayed: the server may ask for sampling, elicitation and roots, and
    // the caller's own client decides (a caller that cannot be asked gets the request refused).
    o.capabilities = json::object{{"sampling", json::object()}, {"elicitation", json::object()}, {"roots", json::object()}};
    if (!manifest_.bearer_secret.empty()) {
      auto secret = services_.call(host_service::secret, json::object{{"name", manifest_.bearer_secret}}, CallContext{});
      if (!secret) return Error{secret.error().code, fmt::format("plugin '{}': the bearer token: {}", manifest_.id, secret.error().message)};
      o.headers.emplace_back("Authorization", fmt::format("Bearer {}", secret->at("value").as_string()));
    }
    auto client = std::make_shared<mcp::HttpClient>(std::move(o));
    if (auto r = client->connect(); !r) return Error{r.error().code, fmt::format("plugin '{}': {}", manifest_.id, r.error().message)};
    // The server's own stream carries tools/list_changed: the Manager lists the tools again.
    // The server's own stream carries tools/list_changed (the Manager lists the tools again), and whatever
    // a server sends outside the request's stream: progress goes to the call whose token it names.
    client->listen(
        [this](const jsonrpc::Message& m) {
          if (m.method == "notifications/tools/list_changed") services_.refresh_tools();
          else if (m.method == "notifications/progress") relay_progress(m);
        },
        [this](const jsonrpc::Message& m) { return ask_sole_caller(m); });
    std::lock_guard lock(mutex_);
    client_ = std::move(client);
    return ok();
  }
  Result<void> on_enable() override { return ok(); }
  Result<void> on_disable() override { return ok(); }
  Result<void> on_unload() override {
    disconnect();
    return ok();
  }
  Result<void> on_config(const json::object&) override { return ok(); }

  Result<json::value> health() override {
    auto r = request("ping", json::object{}, CallContext{}.with_deadline_in(std::chrono::seconds(3)), {});
    if (!r) return r;
    return json::value(json::object{{"status", "ok"}});
  }

  Result<std::vector<ToolSpec>> list_tools() override {
    return wire::list_tool_pages(manifest_.id, [&](const json::object& params) {
      return request("tools/list", params, CallContext{}.with_deadline_in(std::chrono::seconds(30)), {});
    });
  }

  Result<ToolResult> call_tool(std::string_view name, const json::value& args, const CallContext& ctx) override {
    json::object params{{"name", name}, {"arguments", args}};
    mcp::RequestHandlers handlers;
    std::string token;
    if (ctx.peer) {
      // The server's progress and log messages go to this call's caller, and so do its requests.
      token = fmt::format("xcore-{}", next_token_++);
      params["_meta"] = json::object{{"progressToken", token}};
      std::lock_guard lock(mutex_);
      progress_peers_[token] = ctx.peer;
    }
    struct Unregister {
      RemoteMcpRunner& r;
      const std::string& token;
      ~Unregister() {
        if (token.empty()) return;
        std::lock_guard lock(r.mutex_);
        r.progress_peers_.erase(token);
      }
    } unregister{*this, token};
    if (ctx.peer) {
      handlers.notification = [this, peer = ctx.peer](const jsonrpc::Message& m) {
        const auto& p = m.params.is_object() ? m.params.get_object() : json::object();
        if (m.method == "notifications/progress") {
          relay_progress(m);
        } else if (m.method == "notifications/message") {
          const auto* level = p.if_contains("level");
          const auto* logger = p.if_contains("logger");
          if (!level || !level->is_string()) return;
          peer->log(level->get_string(), logger && logger->is_string() ? std::string_view(logger->get_string()) : std::string_view(),
                    p.contains("data") ? p.at("data") : json::value());
        }
      };
      handlers.request = [peer = ctx.peer, &ctx](const jsonrpc::Message& m) -> Result<json::value> {
        static const json::object none;
        return peer->request(m.method, m.params.is_object() ? m.params.get_object() : none, ctx);
      };
    }
    XCORE_ASSIGN_OR_RETURN(auto r, request("tools/call", params, ctx, handlers));
    return ToolResult::from_mcp(std::move(r));
  }

  Result<json::value> handle(std::string_view, const json::value&, const CallContext&) override {
    return Error{ErrorCode::not_found, fmt::format("plugin '{}' is a remote MCP server: it has tools, resources and prompts, no actions", manifest_.id)};
  }

  Result<json::value> serve_mcp(std::string_view method, const json::value& params, const CallContext& ctx) override {
    return request(method, params, ctx, {});
  }

  json::object describe() const override {
    std::lock_guard lock(mutex_);
    return json::object{{"kind", "remote_mcp"}, {"url", manifest_.url}, {"connected", client_ && client_->connected()}};
  }

 private:
  // Every request goes through here: while the server is known to be down, calls fail at once until the
  // backoff has passed; the first one after it tries again (the client opens a new session).
  Result<json::value> request(std::string_view method, const json::value& params, const CallContext& ctx, const mcp::RequestHandlers& handlers) {
    std::shared_ptr<mcp::HttpClient> client;
    {
      std::lock_guard lock(mutex_);
      client = client_;
      const auto now = options_.clock();
      if (failures_ > 0 && now < retry_at_)
        return Error{ErrorCode::unavailable,
                     fmt::format("plugin '{}': the MCP server at {} is unreachable ({}); trying again in {} ms", manifest_.id, manifest_.url, last_failure_,
                                 std::chrono::duration_cast<std::chrono::milliseconds>(retry_at_ - now).count())};
    }
    if (!client) return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is not connected", manifest_.id)};
    auto r = client->request(method, params, ctx.deadline, ctx.cancel, handlers);
    std::lock_guard lock(mutex_);
    if (!r && r.error().code == ErrorCode::unavailable) {
      auto pause = options_.backoff_base * (1 << std::min(failures_, 16));
      retry_at_ = options_.clock() + std::min<std::chrono::milliseconds>(pause, options_.backoff_max);
      ++failures_;
      last_failure_ = r.error().message;
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}': {}", manifest_.id, r.error().message)};
    }
    failures_ = 0;
    return r;
  }

  // A request the server sent on its own stream, tied to none of ours (sampling, elicitation): it can only be
  // the call in flight's, so it goes to that call's caller when exactly one listening call runs.
  Result<json::value> ask_sole_caller(const jsonrpc::Message& m) {
    std::shared_ptr<CallPeer> peer;
    {
      std::lock_guard lock(mutex_);
      if (progress_peers_.size() == 1) peer = progress_peers_.begin()->second;
    }
    if (!peer)
      return Error{ErrorCode::failed_precondition, fmt::format("'{}' on the server's own stream: no single call in flight whose caller could answer it", m.method)};
    static const json::object none;
    return peer->request(m.method, m.params.is_object() ? m.params.get_object() : none, CallContext{});
  }

  // A progress notification, to the caller of the call whose token it names (if that call still runs).
  void relay_progress(const jsonrpc::Message& m) {
    if (!m.params.is_object()) return;
    const auto& p = m.params.get_object();
    const auto* token = p.if_contains("progressToken");
    const auto* done = p.if_contains("progress");
    if (!token || !token->is_string() || !done || !done->is_number()) return;
    std::shared_ptr<CallPeer> peer;
    {
      std::lock_guard lock(mutex_);
      auto it = progress_peers_.find(std::string(token->get_string()));
      if (it == progress_peers_.end()) return;
      peer = it->second;
    }
    const auto* total = p.if_contains("total");
    const auto* message = p.if_contains("message");
    peer->progress(done->to_number<double>(), total && total->is_number() ? std::optional<double>(total->to_number<double>()) : std::nullopt,
                   message && message->is_string() ? std::string_view(message->get_string()) : std::string_view());
  }

  void disconnect() {
    std::shared_ptr<mcp::HttpClient> client;
    {
      std::lock_guard lock(mutex_);
      client.swap(client_);
    }
    client.reset();  // ends the session and joins the stream's thread, outside the lock
  }

  const PluginManifest manifest_;
  PluginServices& services_;
  RemoteMcpOptions options_;
  mutable std::mutex mutex_;
  std::shared_ptr<mcp::HttpClient> client_;
  int failures_ = 0;  // consecutive calls that found the server unreachable
  std::chrono::steady_clock::time_point retry_at_{};
  std::string last_failure_;
  std::atomic<std::uint64_t> next_token_{1};
  std::map<std::string, std::shared_ptr<CallPeer>> progress_peers_;  // by progressToken, while its call runs
};

}  // namespace

Result<std::unique_ptr<Runner>> open_remote_mcp(const PluginManifest& manifest, PluginServices& services, RemoteMcpOptions options) {
  if (!manifest.remote()) return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}' has no url", manifest.id)};
  return std::unique_ptr<Runner>(std::make_unique<RemoteMcpRunner>(manifest, services, std::move(options)));
}

}  // namespace xcore::inline v1
