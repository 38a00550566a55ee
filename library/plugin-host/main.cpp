// xcore-plugin-host: runs one SDK plugin in its own process and serves it over JSON-RPC on stdin/stdout.
//
//   xcore-plugin-host --manifest <plugin.yaml> --binary <plugin.so> [--parent <pid>] [--policy <json>]
//   xcore-plugin-host --manifest <plugin.yaml> --exec 1 [--parent <pid>] [--policy <json>]
//     applies the same isolation, then execs the manifest's `command` (an external MCP server), which
//     speaks to the host directly on the same stdin/stdout.
//
// MCP methods (initialize, notifications/initialized, ping, tools/list, tools/call) make every sandboxed
// xcore plugin a usable MCP server; xcore/* methods carry the rest of the lifecycle. Calls back to host
// services go out as xcore/host/<service> requests.
#include <xcore/manifest.hpp>
#include <xcore/version.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>
#include <mutex>

#include "jsonrpc/rpc_peer.hpp"
#include "runners/in_process_runner.hpp"
#include "plugin-host/isolation_apply.hpp"
#include "sandbox/wire.hpp"

using namespace xcore;
using jsonrpc::RpcPeer;

namespace {

// The token of the host's call this thread is serving (tools/call, xcore/action): the plugin's host calls
// from this thread send it back, and the host answers them with that call's context. Host calls from a
// thread of the plugin's own carry none and act for nobody.
thread_local std::string t_serving;
struct ServingThisCall {
  explicit ServingThisCall(std::string token) { t_serving = std::move(token); }
  ~ServingThisCall() { t_serving.clear(); }
};

// Host services, forwarded to the host process.
class RemoteServices final : public PluginServices {
 public:
  explicit RemoteServices(RpcPeer& peer) : peer_(peer) {}

  void log(LogLevel level, std::string_view message) override {
    (void)peer_.notify(wire::host_method(host_service::log), json::object{{"level", to_string(level)}, {"message", message}});
  }
  Result<std::uint64_t> subscribe_hook(std::string_view hook, HookBand band, int priority, HookHandler handler) override {
    std::uint64_t id;
    {
      std::lock_guard lock(mutex_);
      id = next_id_++;
      handlers_[id] = std::move(handler);
    }
    auto r = peer_.call(wire::host_method(host_service::subscribe_hook),
                        json::object{{"hook", hook}, {"band", static_cast<int>(band)}, {"priority", priority}, {"subscription", id}});
    if (!r) {
      std::lock_guard lock(mutex_);
      handlers_.erase(id);
      return std::move(r).error();
    }
    return id;
  }
  bool unsubscribe_hook(std::uint64_t id) override {
    {
      std::lock_guard lock(mutex_);
      if (!handlers_.erase(id)) return false;
    }
    return peer_.call(wire::host_method(host_service::unsubscribe_hook), json::object{{"subscription", id}}).ok();
  }
  // Every other service goes to the host as it came, with the context of the call being served.
  Result<json::value> call(std::string_view service, const json::object& request, const CallContext& ctx) override {
    json::object r = request;
    r["context"] = wire::context_to_json(ctx);
    if (!t_serving.empty()) r["serving"] = t_serving;
    return peer_.call(wire::host_method(service), std::move(r));
  }

  // The host calls a subscribed handler through xcore/hook.
  Result<json::value> run_hook(const json::value& params) {
    const auto& p = params.as_object();
    HookHandler h;
    {
      std::lock_guard lock(mutex_);
      auto it = handlers_.find(p.at("subscription").to_number<std::uint64_t>());
      if (it == handlers_.end()) return Error{ErrorCode::not_found, "no such subscription"};
      h = it->second;
    }
    const json::value& payload = p.at("payload");
    HookEvent ev{p.at("hook").as_string(), payload, p.at("tenant").as_string()};
    return wire::reply_to_json(h(ev));
  }

 private:
  RpcPeer& peer_;
  std::mutex mutex_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, HookHandler> handlers_;
};

struct Options {
  std::string manifest, binary, policy;
  pid_t parent = 0;
  bool exec = false;
};

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view k = argv[i];
    if (k == "--manifest") o.manifest = argv[i + 1];
    else if (k == "--binary") o.binary = argv[i + 1];
    else if (k == "--policy") o.policy = argv[i + 1];
    else if (k == "--parent") o.parent = static_cast<pid_t>(std::atoi(argv[i + 1]));
    else if (k == "--exec") o.exec = std::string_view(argv[i + 1]) == "1";
    else return false;
  }
  return !o.manifest.empty() && (o.exec || !o.binary.empty());
}

// Becomes the manifest's external command. Only returns on failure.
[[noreturn]] void exec_command(const PluginManifest& m) {
  auto dir = m.cwd.empty() ? m.dir() : m.dir() / m.cwd;
  if (::chdir(dir.c_str()) != 0) {
    std::fprintf(stderr, "xcore-plugin-host: cannot enter %s: %s\n", dir.c_str(), std::strerror(errno));
    std::_Exit(70);
  }
  for (const auto& [k, v] : m.env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> argv;
  for (const auto& a : m.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  std::fprintf(stderr, "xcore-plugin-host: cannot run %s: %s\n", argv[0], std::strerror(errno));
  std::_Exit(71);
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "xcore-plugin-host: %s\n", why.c_str());
  std::exit(70);
}

sandbox::IsolationPolicy read_policy(const std::string& text) {
  if (text.empty()) return {};
  auto p = sandbox::IsolationPolicy::from_json_text(text);
  if (!p) die(p.error().message);
  return std::move(*p);
}

// A mechanism that could not be applied: an error under XCORE_SANDBOX_STRICT=1, a warning otherwise.
void or_die(const Error& e, const char* what) {
  const char* strict = std::getenv("XCORE_SANDBOX_STRICT");
  if (strict && std::string_view(strict) == "1") die(e.message);
  std::fprintf(stderr, "xcore-plugin-host: isolation not applied: %s: %s\n", what, e.message.c_str());
}

// Namespaces come first, while this process has one thread.
void enter_namespaces_or_die(const sandbox::IsolationPolicy& policy) {
  if (auto r = sandbox::enter_namespaces(policy); !r) or_die(r.error(), "namespaces");
}

}  // namespace

int main(int argc, char** argv) {
  // Die with the host, whatever kills it (checked after setting, against the race with its death).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  constexpr const char* kUsage =
      "usage: xcore-plugin-host --manifest FILE (--binary FILE | --exec 1) [--parent PID] [--policy JSON]\n"
      "Runs one plugin in a sandbox and serves its tools over MCP on standard input and output (an xcore host\n"
      "starts it for each sandboxed plugin; an MCP client may start it too).\n";
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::printf("%s\n", xcore::version_line());
    return 0;
  }
  Options opt;
  if (!parse_args(argc, argv, opt)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (opt.parent && ::getppid() != opt.parent) return 0;

  sandbox::IsolationPolicy policy = read_policy(opt.policy);
  // Into the host's cgroups before anything else, so every process that follows is counted and limited.
  if (auto r = sandbox::join_cgroups(policy); !r) or_die(r.error(), "cgroups");
  // Read while still the caller's user; the sandbox's user may not be able to.
  auto loaded = load_manifest(opt.manifest);
  if (!loaded) die(loaded.error().message);
  const auto& manifest = loaded->manifest;
  if (!opt.exec) policy.read_paths.push_back(opt.binary);
  if (opt.exec) {
    if (!manifest.external()) die("the manifest has no 'command' to run");
    enter_namespaces_or_die(policy);
    if (auto r = sandbox::apply_in_child(policy); !r) die(r.error().message);
    exec_command(manifest);
  }

  enter_namespaces_or_die(policy);

  // The protocol owns the real stdout; anything the plugin prints goes to stderr, i.e. the host's log.
  int protocol_out = ::dup(1);
  ::dup2(2, 1);
  if (auto r = sandbox::apply_in_child(policy); !r) die(r.error().message);
  if (!policy.data_dir.empty() && ::chdir(policy.data_dir.c_str()) != 0)
    die(fmt::format("cannot enter the plugin's data folder {} as uid {}: {}", policy.data_dir, ::getuid(), std::strerror(errno)));

  RpcPeer peer(0, protocol_out, {});
  RemoteServices services(peer);
  std::unique_ptr<Runner> plugin;
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  auto finish = [&] {
    std::lock_guard lock(done_mutex);
    done = true;
    done_cv.notify_all();
  };
  std::atomic<bool> loaded_once = false;
  std::atomic<bool> xcore_client = false;
  // Opened before the peer starts serving: the handlers below read `plugin` without a lock.
  std::string start_error;
  if (auto runner = open_in_process(manifest, opt.binary, services); runner) plugin = std::move(*runner);
  else start_error = runner.error().message;

  auto handle = [&](const std::string& method, const json::value& params) -> Result<json::value> {
    const json::object empty;
    const json::object& p = params.is_object() ? params.get_object() : empty;
    if (method == "initialize") {
      // An xcore host sends xcore/load with the plugin's config; a plain MCP client never does.
      if (auto c = p.find("capabilities"); c != p.end() && c->value().is_object())
        if (auto e = c->value().get_object().find("experimental"); e != c->value().get_object().end() && e->value().is_object())
          xcore_client = e->value().get_object().contains("xcore");
      auto r = wire::initialize_result(p, manifest.id, manifest.version.to_string());
      json::array isolation;
      for (const auto& m : sandbox::applied_mechanisms()) isolation.push_back(json::string(m));
      r["_meta"] = json::object{{"isolation", std::move(isolation)}};
      return r;
    }
    if (method == "ping") return json::object{};
    if (!plugin) return Error{ErrorCode::unavailable, fmt::format("the plugin failed to start: {}", start_error)};
    // A plain MCP client: load with the defaults before its first real request (on this worker thread:
    // on_load may call back into the host, which must never block the reader).
    if (!xcore_client && method != "xcore/load" && !loaded_once.exchange(true)) XCORE_TRY(plugin->on_load(json::object{}));
    if (method == "xcore/load") {
      json::object config = p.contains("config") && p.at("config").is_object() ? p.at("config").get_object() : json::object();
      XCORE_TRY(plugin->on_load(config));
      loaded_once = true;
      return json::object{};
    }
    if (method == "tools/list") {
      XCORE_ASSIGN_OR_RETURN(auto tools, plugin->list_tools());
      json::array out;
      for (const auto& t : tools) out.push_back(wire::tool_to_json(t));
      return json::object{{"tools", std::move(out)}};
    }
    if (method == "tools/call") {
      const auto* meta = p.if_contains("_meta");
      const auto* xcore_meta = meta && meta->is_object() ? meta->get_object().if_contains("xcore") : nullptr;
      ServingThisCall serving(xcore_meta ? wire::serving_of(*xcore_meta) : std::string());
      auto name = p.contains("name") && p.at("name").is_string() ? std::string(p.at("name").get_string()) : std::string();
      auto r = plugin->call_tool(name, p.contains("arguments") ? p.at("arguments") : json::object(), wire::context_from_meta(p));
      if (r) return r->to_mcp();
      // An xcore host maps the error's code itself. A plain MCP client gets a tool's failure as the tool's
      // answer (isError), and a protocol error only when there is no such tool.
      if (xcore_client) return r.error();
      XCORE_ASSIGN_OR_RETURN(auto tools, plugin->list_tools());
      if (std::none_of(tools.begin(), tools.end(), [&](const ToolSpec& t) { return t.name == name; }))
        return Error{ErrorCode::invalid_argument, fmt::format("unknown tool '{}'", name)};
      return ToolResult::failure(r.error()).to_mcp();
    }
    if (method.starts_with("resources/") || method.starts_with("prompts/") || method == "completion/complete") {
      const auto* meta = p.if_contains("_meta");
      const auto* xcore_meta = meta && meta->is_object() ? meta->get_object().if_contains("xcore") : nullptr;
      ServingThisCall serving(xcore_meta ? wire::serving_of(*xcore_meta) : std::string());
      json::object request = p;
      request.erase("_meta");
      return plugin->serve_mcp(method, request, wire::context_from_meta(p));
    }
    if (method == "xcore/action") {
      ServingThisCall serving(wire::serving_of(p.contains("context") ? p.at("context") : json::value()));
      return plugin->handle(p.at("action").as_string(), p.contains("params") ? p.at("params") : json::value(),
                            wire::context_from_json(p.contains("context") ? p.at("context") : json::value()));
    }
    if (method == "xcore/hook") return services.run_hook(params);
    if (method == "xcore/enable") {
      XCORE_TRY(plugin->on_enable());
      return json::object{};
    }
    if (method == "xcore/disable") {
      XCORE_TRY(plugin->on_disable());
      return json::object{};
    }
    if (method == "xcore/configure") {
      XCORE_TRY(plugin->on_config(p.contains("config") && p.at("config").is_object() ? p.at("config").get_object() : json::object()));
      return json::object{};
    }
    if (method == "xcore/health") return plugin->health();
    if (method == "xcore/unload") {
      XCORE_TRY(plugin->on_unload());
      return json::object{};
    }
    return Error{ErrorCode::not_found, fmt::format("unknown method '{}'", method)};
  };
  // Runs on the reader thread: nothing here may wait for the host.
  auto notified = [&](const std::string& method, const json::value&) {
    if (method == "xcore/shutdown") finish();
  };
  if (!plugin) std::fprintf(stderr, "xcore-plugin-host: %s\n", start_error.c_str());
  peer.start(handle, notified, [&](const Error&) { finish(); });

  std::unique_lock lock(done_mutex);
  done_cv.wait(lock, [&] { return done; });
  lock.unlock();
  // Leave without running the plugin's static destructors or unmapping it under running threads.
  std::fflush(stderr);
  ::_exit(0);
}
