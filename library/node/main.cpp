// xcore-node: serves a machine's tools to an xcore host it dials out to over WebSocket. It never listens
// on a port. It runs its own Manager (trusted, sandboxed and external plugins from --plugins folders) and
// its native tools (files under --root folders, system figures, and commands under a policy when
// --allow-exec is given), and speaks MCP to the host: the host asks, the node answers.
//
//   xcore-node --server ws://HOST:PORT/nodes --token TOKEN --name NAME [--label L]... [--root DIR]...
//
// It reconnects by itself (exponential backoff with jitter), answers the host's pings, and tells the host
// when its tools change. SIGINT or SIGTERM ends it.
#include <xcore/manager.hpp>
#include <xcore/version.hpp>

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "core/thread_name.hpp"
#include "mcp/mcp_server.hpp"
#include "net/websocket.hpp"
#include "node/mcp_servers.hpp"
#include "node/native_tools.hpp"
#include "nodes/ws_rpc.hpp"
#include "sandbox/wire.hpp"

namespace {

using namespace xcore;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::string server, token, name, ca_file, pin, policy_file, state;
  std::vector<std::string> labels, plugin_dirs, roots, mcp_caches;
  bool allow_exec = false, allow_mcp = false;
  unsigned workers = 8;
  int backoff_max_ms = 30000;
  bool verbose = false;
};

std::mutex log_mutex;
bool verbose_log = false;
void log(LogLevel level, std::string_view source, std::string_view message) {
  if (level < LogLevel::info && !verbose_log) return;
  std::lock_guard lock(log_mutex);
  std::fprintf(stderr, "%s %.*s: %.*s\n", std::string(to_string(level)).c_str(), static_cast<int>(source.size()), source.data(),
               static_cast<int>(message.size()), message.data());
}

// A fixed pool for the host's requests: a tool call may take long, and the link's I/O thread must not wait.
class Workers {
 public:
  explicit Workers(unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      threads_.emplace_back([this] { run(); });
      name_thread(threads_.back(), "xcore-node-work");
    }
  }
  ~Workers() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// One connection's life: serve the host's requests until the link ends.
class Session {
 public:
  Session(const Settings& settings, Manager& manager, node::McpServers& mcp, Workers& workers, std::shared_ptr<node::HostPolicy> host_policy)
      : settings_(settings), manager_(manager), mcp_(mcp), workers_(workers), host_policy_(std::move(host_policy)) {}

  // Returns when the link has ended (or `stop` was requested), with why.
  Error serve(std::shared_ptr<net::WsLink> link, std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable ended_cv;
    std::optional<Error> ended;
    nodes::WsRpc::Handlers h;
    h.on_request = [this](jsonrpc::Message m) {
      auto cancel = std::make_shared<std::stop_source>();
      {
        std::lock_guard lock(calls_mutex_);
        if (m.id.is_int64() || m.id.is_uint64()) calls_[json::serialize(m.id)] = cancel;
      }
      workers_.post([this, m = std::move(m), cancel] { answer(m, cancel->get_token()); });
    };
    h.on_notification = [this](const std::string& method, const json::value& params) {
      if (method == "xcore/node/policy") return take_policy(params);
      if (method != "notifications/cancelled" || !params.is_object()) return;
      const auto* id = params.get_object().if_contains("requestId");
      if (!id) return;
      std::lock_guard lock(calls_mutex_);
      if (auto it = calls_.find(json::serialize(*id)); it != calls_.end()) it->second->request_stop();
    };
    h.on_closed = [&](const Error& why) {
      std::lock_guard lock(mutex);
      ended = why;
      ended_cv.notify_all();
    };
    {
      std::lock_guard lock(rpc_mutex_);
      rpc_ = nodes::WsRpc::open(std::move(link), std::move(h));
    }
    std::stop_callback on_stop(stop, [&] {
      std::lock_guard lock(rpc_mutex_);
      if (rpc_) rpc_->close("the node is shutting down");
    });
    std::unique_lock lock(mutex);
    ended_cv.wait(lock, [&] { return ended.has_value(); });
    std::lock_guard rl(rpc_mutex_);
    rpc_.reset();
    return *ended;
  }

  // The node's tools changed (a plugin came or went): the host lists them again.
  void tools_changed() {
    std::lock_guard lock(rpc_mutex_);
    if (rpc_) (void)rpc_->notify("notifications/tools/list_changed", json::object{});
  }

 private:
  // The host's command policy: kept until the host sends another (a malformed one refuses every command).
  void take_policy(const json::value& params) {
    const auto* p = params.is_object() ? params.get_object().if_contains("policy") : nullptr;
    auto policy = p ? nodes::CommandPolicy::from_json(*p) : Result<nodes::CommandPolicy>(Error{ErrorCode::invalid_argument, "no policy"});
    std::lock_guard lock(host_policy_->mutex);
    if (policy) {
      host_policy_->policy = std::move(*policy);
      log(LogLevel::info, "xcore-node", fmt::format("the host's command policy: {} rules", host_policy_->policy->rules.size()));
    } else {
      host_policy_->policy = nodes::CommandPolicy{};  // no rules: nothing runs
      log(LogLevel::warn, "xcore-node", fmt::format("the host sent a command policy that does not read ({}): commands are refused", policy.error().message));
    }
  }

  // The host's own requests: MCP servers to start, stop and list here.
  Result<json::value> host_request(const jsonrpc::Message& m, std::stop_token cancel) {
    auto value = [](Result<json::object> r) -> Result<json::value> {
      if (!r) return r.error();
      return json::value(std::move(*r));
    };
    if (m.method == "xcore/node/mcp/list") return json::value(mcp_.list());
    if (m.method == "xcore/node/mcp/stop") return value(mcp_.stop(m.params));
    if (m.method == "xcore/node/mcp/start")  // installing a package may take minutes: the host's call says how long
      return value(mcp_.start(m.params, Clock::now() + std::chrono::minutes(10), cancel));
    return Error{ErrorCode::not_found, fmt::format("method '{}' not found", m.method)};
  }

  void answer(const jsonrpc::Message& m, std::stop_token cancel) {
    if (m.method.starts_with("xcore/node/")) return finish(m, host_request(m, cancel));
    mcp::ServerOptions so;
    so.name = "xcore-node";
    so.version = version();
    so.plugins = &manager_;
    so.context = CallContext::host();  // the host checked the caller; the node serves what it was asked
    if (m.params.is_object()) {
      auto carried = wire::context_from_meta(m.params.get_object());
      so.context.trace_id = carried.trace_id;
      so.context.user = carried.user;
      so.context.deadline = carried.deadline;
    }
    so.context.cancel = cancel;
    auto result = mcp::ToolServer(manager_.tools(), std::move(so)).handle(m.method, m.params);
    if (result && m.method == "initialize" && result->is_object()) {
      json::array labels;
      for (const auto& l : settings_.labels) labels.emplace_back(l);
      result->as_object()["_meta"] = json::object{{"xcore/node", json::object{{"name", settings_.name}, {"labels", std::move(labels)}}}};
    }
    finish(m, result);
  }

  void finish(const jsonrpc::Message& m, const Result<json::value>& result) {
    {
      std::lock_guard lock(calls_mutex_);
      calls_.erase(json::serialize(m.id));
    }
    std::shared_ptr<nodes::WsRpc> rpc;
    {
      std::lock_guard lock(rpc_mutex_);
      rpc = rpc_;
    }
    if (rpc) (void)rpc->respond(m.id, result);
  }

  const Settings& settings_;
  Manager& manager_;
  node::McpServers& mcp_;
  Workers& workers_;
  std::shared_ptr<node::HostPolicy> host_policy_;
  std::mutex rpc_mutex_;
  std::shared_ptr<nodes::WsRpc> rpc_;
  std::mutex calls_mutex_;
  std::map<std::string, std::shared_ptr<std::stop_source>> calls_;
};

int run(const Settings& s) {
  verbose_log = s.verbose;
  ManagerOptions mo;
  for (const auto& d : s.plugin_dirs) mo.plugin_dirs.emplace_back(d);
  mo.log = log;
  // url: plugins reach servers on this machine only: a node is no door into its network.
  mo.remote_address = [](const PluginManifest& m, std::string_view host) -> Result<std::string> {
    if (host == "127.0.0.1" || host == "localhost") return std::string("127.0.0.1");
    if (host == "::1" || host == "[::1]") return std::string("::1");
    return Error{ErrorCode::permission_denied, fmt::format("plugin '{}': a node's url: plugins reach this machine only, not '{}'", m.id, host)};
  };
  std::filesystem::path state;
  if (s.allow_mcp) {
    state = !s.state.empty()                  ? std::filesystem::path(s.state)
            : std::getenv("XDG_STATE_HOME")   ? std::filesystem::path(std::getenv("XDG_STATE_HOME")) / "xcore-node" / s.name
            : std::getenv("HOME")             ? std::filesystem::path(std::getenv("HOME")) / ".local/state/xcore-node" / s.name
                                              : std::filesystem::path("/var/lib/xcore-node") / s.name;
    std::error_code ec;
    std::filesystem::create_directories(node::McpServers::plugins_dir(state), ec);
    if (ec) {
      log(LogLevel::error, "xcore-node", fmt::format("--state '{}': {}", state.string(), ec.message()));
      return 2;
    }
    state = std::filesystem::canonical(state);
    // The servers it was asked for come back with it.
    mo.plugin_dirs.push_back(node::McpServers::plugins_dir(state));
    mo.data_dir = state / "data";
  }
  Manager manager(mo);
  auto report = manager.discover();
  for (const auto& p : report.problems) log(LogLevel::warn, "plugins", p.message);
  if (auto loaded = manager.load_all(true); !loaded) log(LogLevel::warn, "plugins", loaded.error().message);

  node::NativeToolsOptions no;
  for (const auto& r : s.roots) {
    std::error_code ec;
    auto real = std::filesystem::canonical(r, ec);
    if (ec || !std::filesystem::is_directory(real)) {
      log(LogLevel::error, "xcore-node", fmt::format("--root '{}' is not a folder", r));
      return 2;
    }
    no.roots.push_back(real);
  }
  no.exec = s.allow_exec;
  if (!s.policy_file.empty()) {
    std::ifstream in(s.policy_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (!in || ec) {
      log(LogLevel::error, "xcore-node", fmt::format("--command-policy '{}': {}", s.policy_file, in ? ec.message() : "cannot be read"));
      return 2;
    }
    auto policy = nodes::CommandPolicy::from_json(v);
    if (!policy) {
      log(LogLevel::error, "xcore-node", fmt::format("--command-policy '{}': {}", s.policy_file, policy.error().message));
      return 2;
    }
    no.policy = std::move(*policy);
  }
  auto native = node::register_native_tools(manager.tools(), no);
  if (!native) {
    log(LogLevel::error, "xcore-node", native.error().message);
    return 2;
  }

  node::McpServersOptions mcp_options;
  mcp_options.allowed = s.allow_mcp;
  mcp_options.roots = no.roots;
  for (const auto& c : s.mcp_caches) mcp_options.caches.emplace_back(c);
  mcp_options.state = state;
  mcp_options.data_dir = mo.data_dir;
  mcp_options.log = log;
  node::McpServers mcp(manager, std::move(mcp_options));

  Workers workers(s.workers);
  Session session(s, manager, mcp, workers, no.host_policy);
  std::vector<Subscription> subs;
  for (const char* event : {"plugin.enabled", "plugin.disabled", "plugin.reloaded", "plugin.unloaded"})
    if (auto sub = manager.hooks().subscribe(event, [&session](const HookEvent&) {
          session.tools_changed();
          return HookReply::none();
        }))
      subs.push_back(std::move(*sub));

  net::WsEngine engine(1, "xcore-node-io");
  net::WsDialOptions dial;
  dial.url = s.server;
  dial.headers["Authorization"] = "Bearer " + s.token;
  dial.headers["X-Xcore-Node"] = s.name;
  dial.ca_file = s.ca_file;
  dial.pinned_sha256 = s.pin;
  dial.limits.max_message = 64u << 20;  // the host is trusted to send what it means to

  // SIGINT/SIGTERM end the node: a thread waits for them, so no handler runs on a random thread.
  std::stop_source stop;
  std::thread signals([&stop] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGTERM || sig == SIGINT) stop.request_stop();
  });

  std::mt19937_64 rng(std::random_device{}());
  std::chrono::milliseconds backoff{250};
  std::mutex sleep_mutex;
  std::condition_variable sleep_cv;
  std::stop_callback wake(stop.get_token(), [&] { sleep_cv.notify_all(); });
  while (!stop.stop_requested()) {
    auto started = Clock::now();
    auto link = engine.dial(dial);
    if (link) {
      log(LogLevel::info, "xcore-node", fmt::format("connected to {} as '{}'", s.server, s.name));
      auto why = session.serve(*link, stop.get_token());
      log(LogLevel::info, "xcore-node", fmt::format("disconnected: {}", why.message));
      if (Clock::now() - started > std::chrono::seconds(10)) backoff = std::chrono::milliseconds(250);
    } else {
      log(LogLevel::warn, "xcore-node", link.error().message);
    }
    if (stop.stop_requested()) break;
    // Full jitter: nodes that lost the same host do not all come back in the same instant.
    std::uniform_int_distribution<long long> pick(backoff.count() / 2, backoff.count());
    auto wait = std::chrono::milliseconds(pick(rng));
    std::unique_lock lock(sleep_mutex);
    sleep_cv.wait_for(lock, wait, [&] { return stop.stop_requested(); });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(s.backoff_max_ms));
  }
  signals.join();
  subs.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Blocked in every thread; the signal thread takes them with sigwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Settings s;
  CLI::App app{"xcore-node: serves this machine's tools to an xcore host it dials out to"};
  app.set_version_flag("--version", std::string("xcore-node: ") + xcore::version_line());
  app.set_config("--config", "", "read these settings from a file (TOML or INI: server = \"...\")");
  app.add_option("--server", s.server, "the host's node address: ws://HOST:PORT/nodes or wss://...")->envname("XCORE_NODE_SERVER")->required();
  app.add_option("--token", s.token, "this node's token (shown once when the node was created)")->envname("XCORE_NODE_TOKEN")->required();
  app.add_option("--name", s.name, "this node's name, as created on the host")->envname("XCORE_NODE_NAME")->required();
  app.add_option("--label", s.labels, "a label the host shows (repeatable)");
  app.add_option("--plugins", s.plugin_dirs, "a folder of plugin folders to load (repeatable)");
  app.add_option("--root", s.roots, "a folder the file tools may reach (repeatable)");
  app.add_flag("--allow-exec", s.allow_exec, "serve exec_command (under --command-policy; without one, every command is refused)");
  app.add_option("--command-policy", s.policy_file, "a JSON file: {\"rules\": [{\"allow\": \"/usr/bin/git\"}, {\"deny\": \"/usr/bin/rm\"}]}");
  app.add_flag("--allow-mcp", s.allow_mcp, "start MCP servers the host asks for (presets from npm, sandboxed, seeing only mounts inside --root folders)");
  app.add_option("--mcp-cache", s.mcp_caches, "a folder holding node_modules/<package> to take presets' packages from before npm (repeatable)");
  app.add_option("--state", s.state, "where this node keeps its MCP servers and their data (default: $XDG_STATE_HOME or ~/.local/state, xcore-node/NAME)");
  app.add_option("--ca-file", s.ca_file, "wss: verify the host against these CAs (default: the system's)");
  app.add_option("--pin-sha256", s.pin, "wss: the host's public key, hex SHA-256 of its SubjectPublicKeyInfo");
  app.add_option("--workers", s.workers, "requests served at once")->check(CLI::Range(1u, 256u));
  app.add_option("--backoff-max-ms", s.backoff_max_ms, "the longest wait between reconnection attempts")->check(CLI::Range(100, 600000));
  app.add_flag("--verbose", s.verbose, "log debug messages");
  CLI11_PARSE(app, argc, argv);
  if (s.token.empty()) {
    std::fprintf(stderr, "error: --token is empty\n");
    return 2;
  }
  return run(s);
}
