// run, call and mcp: the commands that host plugins (or reach a server that does).
#include <CLI/CLI.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

#include <xcore/manifest.hpp>
#include <xcore/version.hpp>

#include "cli/cli.hpp"
#include "jsonrpc/rpc_peer.hpp"
#include "mcp/mcp_server.hpp"

namespace xcore::cli {
namespace fs = std::filesystem;

Result<std::map<std::string, json::object>> read_config_file(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return Error{ErrorCode::not_found, fmt::format("cannot read config file {}", file.string())};
  std::ostringstream text;
  text << in.rdbuf();
  XCORE_ASSIGN_OR_RETURN(auto doc, parse_document(text.str(), file));
  if (!doc.is_object()) return Error{ErrorCode::invalid_argument, fmt::format("{}: expected a mapping of plugin ids to config objects", file.string())};
  std::map<std::string, json::object> configs;
  for (const auto& [id, config] : doc.get_object()) {
    if (!config.is_object())
      return Error{ErrorCode::invalid_argument, fmt::format("{}: '{}': expected the plugin's config as a mapping", file.string(), std::string_view(id))};
    configs[std::string(id)] = config.get_object();
  }
  return configs;
}

Result<std::unique_ptr<Manager>> open_local_host(const LocalHostOptions& options, std::vector<Error>& problems) {
  ManagerOptions mo;
  std::vector<fs::path> single;
  for (const auto& p : options.paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) return Error{ErrorCode::not_found, fmt::format("{} is not a folder", p.string())};
    if (find_manifest(p)) single.push_back(p);
    else mo.plugin_dirs.push_back(p);
  }
  mo.configs = options.configs;
  mo.log = stderr_log_sink(options.verbose ? LogLevel::info : LogLevel::warn);
  if (options.force_sandbox)
    mo.admit = [](PluginManifest& m) {
      m.mode = PluginMode::sandboxed;
      return ok();
    };
  auto manager = std::make_unique<Manager>(std::move(mo));
  for (auto& p : manager->discover().problems) problems.push_back(std::move(p));
  for (const auto& p : single)
    if (auto r = manager->add(p); !r) problems.push_back(r.error());
  return manager;
}

namespace {

struct HostArgs {
  std::vector<std::string> paths;
  std::string config;
  bool verbose = false, json = false, no_watch = false;
  // call
  std::string tool;
  std::vector<std::string> assignments;
  std::string args_json;
  std::string server, token;
};

void add_host_options(CLI::App* cmd, HostArgs& a) {
  cmd->add_option("--config", a.config, "A YAML or JSON file mapping plugin ids to their configs")->check(CLI::ExistingFile);
  cmd->add_flag("-v,--verbose", a.verbose, "Log what the host does (to stderr)");
}

Result<std::unique_ptr<Manager>> start_plugins(const HostArgs& a, const std::vector<std::string>& paths) {
  LocalHostOptions o;
  for (const auto& p : paths) o.paths.emplace_back(p);
  o.verbose = a.verbose;
  if (!a.config.empty()) {
    XCORE_ASSIGN_OR_RETURN(o.configs, read_config_file(a.config));
  }
  std::vector<Error> problems;
  XCORE_ASSIGN_OR_RETURN(auto manager, open_local_host(o, problems));
  for (const auto& p : problems) std::cerr << "xcore: " << p.message << '\n';
  if (auto r = manager->load_all(true); !r) std::cerr << "xcore: " << r.error().message << '\n';
  return manager;
}

// SIGINT and SIGTERM are taken by sigwait in main's thread; every thread started after this inherits the mask.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

std::string one_line(const json::value& v, std::size_t max = 200) {
  auto s = boost::json::serialize(v);
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

void add_run(CLI::App& app, Run& run) {
  auto a = std::make_shared<HostArgs>();
  auto* cmd = app.add_subcommand("run", "A development host: loads the plugins, reloads one when it is rebuilt, prints every call and hook");
  cmd->add_option("paths", a->paths, "Plugin folders, or folders of plugin folders")->required();
  cmd->add_flag("--no-watch", a->no_watch, "Do not reload plugins when their files change");
  add_host_options(cmd, *a);
  cmd->callback([a, &run] {
    auto signals = block_stop_signals();
    a->verbose = true;
    auto manager = start_plugins(*a, a->paths);
    if (!manager) {
      run.exit = Output{}.fail("run", manager.error());
      return;
    }
    auto& m = **manager;
    std::mutex print;
    auto say = [&](const std::string& line) {
      std::lock_guard lock(print);
      std::cout << line << std::endl;
    };
    std::vector<Subscription> subs;
    auto watch_hook = [&](const std::string& name, std::function<std::string(const json::value&)> describe) {
      if (auto s = m.hooks().subscribe(name, [&, name, describe](const HookEvent& e) {
            say(describe(e.payload));
            return HookReply::none();
          }, SubscribeOptions{HookBand::last, 0, "xcore-run", {}, nullptr}))
        subs.push_back(std::move(*s));
    };
    watch_hook("tool.after_call", [](const json::value& p) {
      const auto& o = p.as_object();
      auto line = fmt::format("call  {} {} {:.2f} ms", std::string_view(o.at("tool").as_string()), o.at("ok").as_bool() ? "ok" : "FAILED",
                              o.at("duration_ms").to_number<double>());
      if (auto e = o.find("error"); e != o.end()) line += " " + one_line(e->value());
      return line;
    });
    for (const char* event : {"plugin.loaded", "plugin.enabled", "plugin.disabled", "plugin.reloaded", "plugin.unloaded", "plugin.failed"})
      watch_hook(event, [event](const json::value& p) { return fmt::format("event {} {}", event, one_line(p)); });
    // Every other hook defined so far (plugins' own among them).
    for (const auto& h : m.hooks().list())
      if (!h.spec.name.starts_with("plugin.") && h.spec.name != "tool.after_call")
        watch_hook(h.spec.name, [name = h.spec.name](const json::value& p) { return fmt::format("hook  {} {}", name, one_line(p)); });
    if (!a->no_watch)
      if (auto r = m.watch(true); !r) std::cerr << "xcore run: not watching for changes: " << r.error().message << '\n';
    for (const auto& info : m.list())
      say(fmt::format("{} {} {} ({}){}", info.manifest.id, info.manifest.version.to_string(), to_string(info.state), to_string(info.manifest.mode),
                      info.last_error ? ": " + info.last_error->message : ""));
    say(fmt::format("ready: {} plugins, {} tools; Ctrl-C to stop", m.list().size(), m.tools().list().size()));
    int sig = 0;
    sigwait(&signals, &sig);
    subs.clear();
  });
}

// k=v: v as JSON when it reads as JSON and the tool's schema does not ask for a string there, else as text.
Result<json::object> arguments_of(const HostArgs& a, const json::object* schema) {
  json::object args;
  if (!a.args_json.empty()) {
    boost::system::error_code ec;
    auto v = boost::json::parse(a.args_json, ec);
    if (ec || !v.is_object()) return Error{ErrorCode::invalid_argument, "--args: expected a JSON object such as '{\"a\": 1}'"};
    args = v.get_object();
  }
  const json::object* props = nullptr;
  if (schema)
    if (auto p = schema->find("properties"); p != schema->end() && p->value().is_object()) props = &p->value().get_object();
  for (const auto& kv : a.assignments) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return Error{ErrorCode::invalid_argument, fmt::format("'{}': expected NAME=VALUE", kv)};
    auto key = kv.substr(0, eq), text = kv.substr(eq + 1);
    bool wants_string = false;
    if (props)
      if (auto p = props->find(key); p != props->end() && p->value().is_object())
        if (auto t = p->value().get_object().find("type"); t != p->value().get_object().end() && t->value() == "string") wants_string = true;
    boost::system::error_code ec;
    auto v = wants_string ? json::value() : boost::json::parse(text, ec);
    args[key] = wants_string || ec ? json::value(json::string(text)) : v;
  }
  return args;
}

// A result for people: its text blocks, or its structured content when it has no text.
std::string describe_result(const json::object& r) {
  std::string text;
  if (auto c = r.find("content"); c != r.end() && c->value().is_array())
    for (const auto& block : c->value().get_array())
      if (block.is_object() && block.get_object().contains("text") && block.at("text").is_string())
        text += std::string(block.at("text").get_string()) + "\n";
  if (text.empty())
    if (auto s = r.find("structuredContent"); s != r.end()) text = boost::json::serialize(s->value());
  return text;
}

Result<json::object> call_server(const HostArgs& a) {
  httplib::Client client(a.server);
  client.set_connection_timeout(10);
  client.set_read_timeout(300);
  std::string token = a.token;
  if (token.empty())
    if (const char* t = std::getenv("XCORE_TOKEN")) token = t;
  if (token.empty()) return Error{ErrorCode::unauthenticated, "--server needs a token: --token or XCORE_TOKEN (an API token or an access token)"};
  client.set_bearer_token_auth(token.c_str());
  XCORE_ASSIGN_OR_RETURN(auto args, arguments_of(a, nullptr));
  auto res = client.Post(fmt::format("/api/v1/tools/{}/invoke", a.tool), boost::json::serialize(args), "application/json");
  if (!res) return Error{ErrorCode::unavailable, fmt::format("cannot reach {}: {}", a.server, httplib::to_string(res.error()))};
  boost::system::error_code ec;
  auto body = boost::json::parse(res->body, ec);
  if (res->status != 200) {
    if (!ec && body.is_object() && body.get_object().contains("error") && body.at("error").is_object()) {
      const auto& e = body.at("error").get_object();
      ErrorCode code = ErrorCode::internal;
      if (auto c = e.find("code"); c != e.end() && c->value().is_string()) parse_error_code(c->value().get_string(), code);
      return Error{code, fmt::format("{} (HTTP {})", e.contains("message") && e.at("message").is_string() ? std::string(e.at("message").get_string()) : res->body, res->status)};
    }
    return Error{ErrorCode::internal, fmt::format("HTTP {}: {}", res->status, res->body.substr(0, 300))};
  }
  if (ec || !body.is_object()) return Error{ErrorCode::internal, fmt::format("{} answered something other than a tool result", a.server)};
  return body.get_object();
}

void add_call(CLI::App& app, Run& run) {
  auto a = std::make_shared<HostArgs>();
  auto* cmd = app.add_subcommand("call", "Call a tool: of plugins in local folders (--plugins) or of a running server (--server)");
  cmd->add_option("tool", a->tool, "The tool's name (plugin.tool, or the bare name when it is unique)")->required();
  cmd->add_option("arguments", a->assignments, "NAME=VALUE arguments; VALUE is read as JSON when it can be (a=2, on=true), else as text");
  cmd->add_option("--args", a->args_json, "The arguments as one JSON object (NAME=VALUE ones are added to it)");
  auto* plugins = cmd->add_option("--plugins", a->paths, "Plugin folders, or folders of plugin folders, to load for the call");
  auto* server = cmd->add_option("--server", a->server, "A running xcore-server's base URL, e.g. http://127.0.0.1:8080");
  cmd->add_option("--token", a->token, "The server's API or access token (default: $XCORE_TOKEN)");
  plugins->excludes(server);
  add_host_options(cmd, *a);
  cmd->add_flag("--json", a->json, "Print the tool's result (MCP CallToolResult) as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    auto result = [&]() -> Result<json::object> {
      if (!a->server.empty()) return call_server(*a);
      if (a->paths.empty()) return Error{ErrorCode::invalid_argument, "say where the tool is: --plugins DIR... or --server URL"};
      XCORE_ASSIGN_OR_RETURN(auto manager, start_plugins(*a, a->paths));
      auto info = manager->tools().find(a->tool);
      if (!info) return Error{ErrorCode::not_found, fmt::format("no tool named '{}' in the plugins loaded", a->tool)};
      XCORE_ASSIGN_OR_RETURN(auto args, arguments_of(*a, &info->spec.input_schema));
      XCORE_ASSIGN_OR_RETURN(auto r, manager->call_tool(a->tool, args, CallContext::host()));
      return r.to_mcp();
    }();
    if (!result) {
      run.exit = out.fail("call", result.error());
      return;
    }
    const bool failed = result->contains("isError") && result->at("isError") == true;
    if (failed && !a->json) std::cerr << "xcore call: the tool reports an error:\n";
    (failed && !a->json ? std::cerr : std::cout) << (a->json ? std::string() : describe_result(*result));
    if (a->json) out.print(*result, {});
    run.exit = failed ? kFailed : kOk;
  });
}

void add_mcp(CLI::App& app, Run& run) {
  auto a = std::make_shared<HostArgs>();
  auto* cmd = app.add_subcommand("mcp", "Serve the plugins' tools over MCP on standard input and output (for desktop MCP clients)");
  cmd->add_option("paths", a->paths, "Plugin folders, or folders of plugin folders")->required();
  add_host_options(cmd, *a);
  cmd->callback([a, &run] {
    // The protocol owns the real stdout: anything a plugin prints goes to stderr.
    const int protocol_out = ::dup(1);
    ::dup2(2, 1);
    auto manager = start_plugins(*a, a->paths);
    if (!manager) {
      run.exit = Output{}.fail("mcp", manager.error());
      return;
    }
    mcp::ServerOptions so;
    so.name = "xcore";
    so.version = XCORE_VERSION_STRING;
    so.context = CallContext::host();
    so.plugins = manager->get();
    jsonrpc::RpcPeer peer(0, protocol_out, {});
    // The pipe stays open both ways: a tool's progress, log messages and requests to the client go on it.
    struct StdioChannel final : mcp::ClientChannel {
      jsonrpc::RpcPeer& peer;
      explicit StdioChannel(jsonrpc::RpcPeer& p) : peer(p) {}
      void notify(std::string_view method, const json::object& params) override { (void)peer.notify(method, params); }
      Result<json::value> request(std::string_view method, const json::object& params, const CallContext& ctx) override {
        std::optional<jsonrpc::RpcPeer::Clock::time_point> deadline;
        if (ctx.deadline) deadline = jsonrpc::RpcPeer::Clock::now() + (*ctx.deadline - std::chrono::system_clock::now());
        return peer.call(method, params, deadline);
      }
    } channel(peer);
    so.channel = &channel;
    mcp::ToolServer server((*manager)->tools(), so);
    std::mutex mutex;
    std::condition_variable cv;
    bool closed = false;
    // Tools come and go with plugins: say so, as MCP's listChanged capability promises.
    std::vector<Subscription> subs;
    for (const char* event : {"plugin.enabled", "plugin.disabled", "plugin.reloaded", "plugin.unloaded"})
      if (auto s = (*manager)->hooks().subscribe(event, [&peer](const HookEvent&) {
            (void)peer.notify("notifications/tools/list_changed", json::object{});
            return HookReply::none();
          }))
        subs.push_back(std::move(*s));
    peer.start([&](const std::string& method, const json::value& params) { return server.handle(method, params); },
               [](const std::string&, const json::value&) {},
               [&](const Error&) {
                 std::lock_guard lock(mutex);
                 closed = true;
                 cv.notify_all();
               });
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return closed; });
    lock.unlock();
    subs.clear();
  });
}

}  // namespace

void add_host_commands(CLI::App& app, Run& run) {
  add_run(app, run);
  add_call(app, run);
  add_mcp(app, run);
}

}  // namespace xcore::cli
