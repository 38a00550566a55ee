// Sandboxed plugins: same behaviour as trusted ones from the host's side, and every fault costs only
// the call that met it.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include "jsonrpc/rpc_peer.hpp"
#include "sandbox/sandbox_runner.hpp"

#include <fcntl.h>

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <sys/wait.h>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

using namespace xcore;
using namespace xcore_test;

namespace {

// Under a sanitizer the child's own SEGV/abort handlers report the crash and exit their own way, and its
// allocator answers a memory bomb differently: the host-side guarantees are still checked.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

bool process_exists(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// Processes of the session `sid` (the helper of a sandboxed plugin leads its own session).
int session_members(pid_t sid) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    long ppid = 0, pgrp = 0, session = 0;
    rest >> state >> ppid >> pgrp >> session;
    if (session == sid) ++n;
  }
  return n;
}

bool strict() {
  const char* s = std::getenv("XCORE_SANDBOX_STRICT");
  return s && std::string_view(s) == "1";
}

bool has_mechanism(const json::object& runner, std::string_view m) {
  const auto& iso = runner.at("isolation").as_array();
  return std::find(iso.begin(), iso.end(), json::value(m)) != iso.end();
}

struct SandboxHost {
  TempDir tmp;
  fs::path plugins = tmp / "plugins";
  CapturedLog log;
  std::unique_ptr<Manager> manager;

  explicit SandboxHost(std::initializer_list<fs::path> staged, unsigned crash_budget = 50) {
    fs::create_directories(plugins);
    for (const auto& s : staged) stage(s, plugins);
    ManagerOptions o = test_options(tmp, plugins, log);
    o.crash_budget = crash_budget;
    o.restart_backoff = std::chrono::milliseconds(1);
    manager = std::make_unique<Manager>(std::move(o));
    manager->discover();
  }
  Manager* operator->() { return manager.get(); }
  pid_t pid(std::string_view id) {
    auto info = manager->info(id);
    auto it = info->runner.find("pid");
    return it == info->runner.end() ? -1 : static_cast<pid_t>(it->value().to_number<int>());
  }
};

// Makes the probe's manifest sandboxed.
void sandbox_manifest(const fs::path& dir) {
  auto text = std::string("mode: sandboxed\n");
  std::ifstream in(dir / "plugin.yaml");
  text += std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(dir / "plugin.yaml", text);
}

// An external MCP server (node) with one tool, "hello". Its first start leaves a mark in its data
// folder; every later start runs `later` (a shell command) instead.
void write_once_server(const fs::path& dir, const std::string& id, const std::string& later) {
  write_file(dir / "server.js", R"js(
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined) return;
  const result = m.method === 'initialize' ? {protocolVersion: m.params.protocolVersion, capabilities: {tools: {}}, serverInfo: {name: 'once', version: '1'}}
               : m.method === 'tools/list' ? {tools: [{name: 'hello', inputSchema: {type: 'object'}}]}
               : {content: [{type: 'text', text: 'hello'}]};
  process.stdout.write(JSON.stringify({jsonrpc: '2.0', id: m.id, result}) + '\n');
});
)js");
  write_file(dir / "plugin.yaml", "id: " + id + "\nversion: 1.0.0\nmode: sandboxed\n"
                                  "command: [/bin/sh, -c, \"if [ -e $HOME/started ]; then " + later + "; fi; : > $HOME/started; exec /usr/bin/node " +
                                      (dir / "server.js").string() + "\"]\n");
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
}

}  // namespace

TEST_CASE("a sandboxed plugin behaves like a trusted one: tools, actions, config, hooks, host services") {
  SandboxHost h({example_plugins() / "core", test_plugins() / "probe"});
  sandbox_manifest(h.plugins / "probe");
  h->discover();
  auto loaded = h->load_all();
  REQUIRE_MESSAGE(loaded.ok(), loaded.error().message);
  auto info = h->info("probe");
  CHECK(info->runner.at("kind") == "sandbox");
  CHECK(info->runner.at("rss_bytes").to_number<double>() > 0);
  CHECK(info->runner.contains("cpu_seconds"));
  CHECK(process_exists(h.pid("probe")));
  CHECK(h.pid("probe") != ::getpid());

  CHECK(h->call_tool("version", J("{}"), xcore::CallContext::host())->structured.at("version") == 1);
  CHECK(h->call_action("probe", "config", J("{}"), xcore::CallContext::host())->at("level") == 3);
  REQUIRE(h->set_config("probe", json::object{{"level", 4}}).ok());
  CHECK(h->call_action("probe", "config", J("{}"), xcore::CallContext::host())->at("level") == 4);
  CHECK(h->health("probe")->at("status") == "ok");
  // Its hook handler answers from the child process.
  CHECK(h->hooks().emit("probe.ping", J(R"({"n":2})")).first().at("pong") == 1);
  // Host services, with the same permission checks.
  CHECK(h->call_action("probe", "call_tool", J(R"({"name":"core.echo","arguments":{"via":"child"}})"), xcore::CallContext::host())->at("structuredContent").at("via") == "child");
  CHECK(h->call_action("probe", "call_tool", J(R"({"name":"calculate","arguments":{"expression":"1"}})"), xcore::CallContext::host()).error().code ==
        ErrorCode::permission_denied);
  REQUIRE(h->call_action("probe", "publish_tool", J(R"({"name":"dyn"})"), xcore::CallContext::host()).ok());
  CHECK(h->call_tool("probe.dyn", J(R"({"x":1})"), xcore::CallContext::host())->structured.at("x") == 1);
  auto ctx = xcore::CallContext::host();
  ctx.tenant = "acme";
  ctx.trace_id = "t-1";
  CHECK(h->call_action("probe", "context", J("{}"), ctx)->at("tenant") == "acme");
  // Its own failure crosses the pipe as plugin_error, named like a trusted plugin's.
  auto boom = h->call_tool("probe.boom", J("{}"), xcore::CallContext::host());
  REQUIRE(!boom.ok());
  CHECK(boom.error().code == ErrorCode::plugin_error);
  CHECK(boom.error().message == "tool 'boom' of plugin 'probe' failed: kaboom");
  CHECK(process_exists(h.pid("probe")));  // an exception is not a crash

  REQUIRE(h->disable("probe").ok());
  CHECK(h->call_tool("version", J("{}"), xcore::CallContext::host()).error().code == ErrorCode::unavailable);
  auto pid = h.pid("probe");
  REQUIRE(h->unload("probe").ok());
  CHECK(!process_exists(pid));
}

TEST_CASE("hot reload of a sandboxed plugin starts the new version in a new process") {
  SandboxHost h({test_plugins() / "probe"});
  sandbox_manifest(h.plugins / "probe");
  h->discover();
  REQUIRE(h->enable("probe").ok());
  auto old_pid = h.pid("probe");
  stage(test_plugins() / "probe-v2", h.plugins, "probe");
  sandbox_manifest(h.plugins / "probe");
  REQUIRE(h->reload("probe").ok());
  CHECK(h->call_tool("version", J("{}"), xcore::CallContext::host())->structured.at("version") == 2);
  CHECK(h.pid("probe") != old_pid);
  CHECK(!process_exists(old_pid));
}

TEST_CASE("each fault costs only its call: right error, no process left, restart, neighbours unharmed") {
  SandboxHost h({test_plugins() / "hostile", example_plugins() / "core"});
  REQUIRE(h->load_all().ok());
  REQUIRE(h->call_tool("ok", J("{}"), xcore::CallContext::host()).ok());
  int fds_before = open_fds();

  struct Fault {
    const char* tool;
    ErrorCode code;
    const char* reason;  // part of the error message
  };
  for (const Fault& f : {Fault{"segfault", ErrorCode::plugin_crashed, "SIGSEGV"},
                         Fault{"abort", ErrorCode::plugin_crashed, "SIGABRT"},
                         Fault{"exit", ErrorCode::plugin_crashed, "exited with status 3"},
                         Fault{"spin", ErrorCode::timeout, "did not answer"},
                         Fault{"never_answer", ErrorCode::timeout, "did not answer"},
                         Fault{"garbage", ErrorCode::plugin_crashed, "killed by the host after a protocol error: malformed JSON-RPC"},
                         Fault{"huge_line", ErrorCode::plugin_crashed, "killed by the host after a protocol error: a message exceeds the"},
                         Fault{"close_stdout", ErrorCode::plugin_crashed, "crashed"},
                         Fault{"ptrace_parent", ErrorCode::plugin_crashed, "SIGSYS"},
                         Fault{"signal_storm", ErrorCode::plugin_crashed, "SIGUSR2"},
                         Fault{"orphan_then_exit", ErrorCode::plugin_crashed, "exited with status 4"}}) {
    INFO("fault: " << std::string(f.tool));
    auto pid = h.pid("hostile");
    auto r = h->call_tool(f.tool, J("{}"), xcore::CallContext::host());
    REQUIRE(!r.ok());
    CHECK(r.error().code == f.code);
    if (!kSanitized || f.code == ErrorCode::timeout)
      CHECK_MESSAGE(r.error().message.find(f.reason) != std::string::npos, r.error().message);
    CHECK(!process_exists(pid));
    // The neighbour kept answering, and the plugin comes back for the next call.
    CHECK(h->call_tool("calculate", J(R"({"expression":"6*7"})"), xcore::CallContext::host())->structured.at("result") == 42);
    auto again = h->call_tool("ok", J("{}"), xcore::CallContext::host());
    REQUIRE_MESSAGE(again.ok(), again.error().message);
    CHECK(h.pid("hostile") != pid);
  }
  CHECK(h->info("hostile")->runner.at("restarts").to_number<int>() == 11);
  CHECK(open_fds() == fds_before);  // every restart closed what the previous process used
}

TEST_CASE("limits inside the sandbox: memory, open files, sockets") {
  SandboxHost h({test_plugins() / "hostile"});
  REQUIRE(h->enable("hostile").ok());
  auto mem = h->call_tool("memory_bomb", J("{}"), xcore::CallContext::host());
  if (!kSanitized) {
    REQUIRE(mem.ok());
    CHECK(mem->is_error);  // 256 MB address-space limit
  }
  auto fds = h->call_tool("fd_exhaust", J("{}"), xcore::CallContext::host());
  REQUIRE(fds.ok());
  CHECK(fds->structured.at("opened").to_number<int>() < 64);
  auto sock = h->call_tool("socket", J("{}"), xcore::CallContext::host());
  REQUIRE(sock.ok());
  CHECK(sock->structured.at("opened") == false);
  auto iso = h->info("hostile")->runner.at("isolation").as_array();
  auto has = [&](std::string_view m) { return std::find(iso.begin(), iso.end(), json::value(m)) != iso.end(); };
  CHECK(has("seccomp"));
  CHECK(has("no_new_privs"));
  CHECK(has("rlimit:nofile"));
  CHECK(has("rlimit:core"));
}

TEST_CASE("namespaces: the host is out of sight and out of reach; zombies are reaped") {
  SandboxHost h({test_plugins() / "hostile"});
  REQUIRE(h->enable("hostile").ok());
  auto iso = h->info("hostile")->runner.at("isolation").as_array();
  auto has = [&](std::string_view m) { return std::find(iso.begin(), iso.end(), json::value(m)) != iso.end(); };
  CHECK(has("namespace:pid"));
  CHECK(has("namespace:net"));
  CHECK(has("proc:private"));
  // Inside its namespace the plugin has a small pid of its own (pid 1 is the reaper; a sanitizer's
  // threads in the reaper take numbers too), not the one the host sees; the host's /proc entries do not exist.
  auto inside = h->call_tool("ok", J("{}"), xcore::CallContext::host())->structured.at("pid").to_number<int>();
  CHECK(inside >= 2);
  CHECK(inside < 10);
  CHECK(inside != h.pid("hostile"));
  auto mem = h->call_tool("read_host_memory", json::object{{"pid", ::getpid()}}, xcore::CallContext::host());
  REQUIRE(mem.ok());
  CHECK(mem->structured.at("opened") == false);
  CHECK(h->call_tool("zombies", J("{}"), xcore::CallContext::host())->structured.at("zombies") == 50);
  CHECK(h->call_tool("ok", J("{}"), xcore::CallContext::host()).ok());
}

TEST_CASE("a sleep past the deadline times out; a late answer is never handed to the next caller") {
  SandboxHost h({test_plugins() / "hostile"});
  REQUIRE(h->enable("hostile").ok());
  auto quick = xcore::CallContext::host();
  quick.with_deadline_in(std::chrono::milliseconds(200));
  auto r = h->call_tool("sleep", J(R"({"ms":1500})"), quick);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::timeout);
  auto next = h->call_tool("ok", J(R"({"n":7})"), xcore::CallContext::host());
  REQUIRE(next.ok());
  CHECK(next->structured.at("args").at("n") == 7);
}

TEST_CASE("past its crash budget a plugin is failed, and can be loaded again") {
  SandboxHost h({test_plugins() / "hostile"}, /*crash_budget=*/3);
  REQUIRE(h->enable("hostile").ok());
  // A plugin.failed subscriber that reaches the plugin's runner again: health() goes straight to it
  // (this once deadlocked on the runner's lock, held while reporting the failure).
  std::vector<ErrorCode> seen_by_subscriber;
  auto sub = h->hooks().subscribe("plugin.failed", [&](const HookEvent&) {
                  auto r = h->health("hostile");
                  seen_by_subscriber.push_back(r ? ErrorCode::internal : r.error().code);
                  return HookReply::none();
                }).value();
  for (int i = 0; i < 3; ++i) CHECK(h->call_tool("segfault", J("{}"), xcore::CallContext::host()).error().code == ErrorCode::plugin_crashed);
  auto r = h->call_tool("ok", J("{}"), xcore::CallContext::host());
  REQUIRE(!r.ok());
  CHECK(h->info("hostile")->state == PluginState::failed);
  CHECK(h->info("hostile")->last_error->message.find("3 crashes") != std::string::npos);
  CHECK(seen_by_subscriber == std::vector<ErrorCode>{ErrorCode::unavailable});
  CHECK(h->call_tool("ok", J("{}"), xcore::CallContext::host()).error().code == ErrorCode::unavailable);
  REQUIRE(h->enable("hostile").ok());
  CHECK(h->call_tool("ok", J("{}"), xcore::CallContext::host()).ok());
}

TEST_CASE("a fork bomb is contained by the process limit, and nothing of it outlives the plugin") {
  SandboxHost h({test_plugins() / "hostile", example_plugins() / "core"});
  REQUIRE(h->load_all().ok());
  const auto runner = h->info("hostile")->runner;
  if (::geteuid() == 0 && strict()) CHECK((has_mechanism(runner, "cgroup:v1:pids") || has_mechanism(runner, "cgroup:v2:pids")));
  const pid_t helper = h.pid("hostile");
  auto r = h->call_tool("fork_bomb", J("{}"), xcore::CallContext::host());
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->structured.at("forked").to_number<int>() < 64);  // limits.processes: 64
  CHECK(session_members(helper) > 1);
  // The neighbour and the plugin itself still answer.
  CHECK(h->call_tool("calculate", J(R"({"expression":"6*7"})"), xcore::CallContext::host())->structured.at("result") == 42);
  auto ok = h->call_tool("ok", J("{}"), xcore::CallContext::host());
  CHECK_MESSAGE(ok.ok(), ok.error().message);
  REQUIRE(h->unload("hostile").ok());
  CHECK(session_members(helper) == 0);
}

TEST_CASE("files and identity: its own user, its own data folder, no writes elsewhere, none of the host's environment") {
  ::setenv("XCORE_TEST_SECRET", "from the host", 1);
  SandboxHost h({test_plugins() / "hostile"});
  ::unsetenv("XCORE_TEST_SECRET");
  REQUIRE(h->enable("hostile").ok());
  const auto runner = h->info("hostile")->runner;
  auto who = h->call_tool("whoami", J("{}"), xcore::CallContext::host());
  REQUIRE(who.ok());
  CHECK(who->structured.at("secret_seen") == false);
  const std::string data(who->structured.at("data").as_string());
  CHECK(fs::path(data).filename() == "hostile");
  CHECK(who->structured.at("cwd") == json::value(data));
  if (::geteuid() == 0) {
    CHECK(who->structured.at("uid").to_number<int>() != 0);
    CHECK(std::any_of(runner.at("isolation").as_array().begin(), runner.at("isolation").as_array().end(),
                      [](const json::value& m) { return m.as_string().starts_with("uid:"); }));
  }

  auto inside = h->call_tool("write_file", json::object{{"path", data + "/inside.txt"}}, xcore::CallContext::host());
  REQUIRE(inside.ok());
  CHECK(inside->structured.at("written") == true);
  CHECK(fs::exists(fs::path(data) / "inside.txt"));

  // A folder anyone may write to: only the sandbox stands between the plugin and it.
  auto outside = h.tmp / "outside";
  fs::create_directories(outside);
  fs::permissions(outside, fs::perms::all);
  auto out = h->call_tool("write_file", json::object{{"path", (outside / "escaped.txt").string()}}, xcore::CallContext::host());
  REQUIRE(out.ok());
  if (strict()) CHECK(has_mechanism(runner, "landlock:fs"));
  if (has_mechanism(runner, "filesystem:view") || has_mechanism(runner, "landlock:fs")) {
    CHECK(out->structured.at("written") == false);
    // With the view the folder does not exist; Landlock alone refuses the write.
    CHECK(out->structured.at("error") == (has_mechanism(runner, "filesystem:view") ? "No such file or directory" : "Permission denied"));
    CHECK(!fs::exists(outside / "escaped.txt"));
  } else {
    MESSAGE("Landlock is not available here: writes outside the data folder are not confined");
  }
}

TEST_CASE("the filesystem view: only the system folders and the grants exist, host sockets in /tmp are unreachable") {
  SandboxHost h({test_plugins() / "hostile"});
  // A host folder granted read-only, one granted writable, and a file and a socket the plugin is not given,
  // all of them open to anyone: only the view stands between the plugin and them.
  const auto granted = h.tmp / "granted", writable = h.tmp / "writable", secret = h.tmp / "secret.txt";
  fs::create_directories(granted);
  fs::create_directories(writable);
  write_file(granted / "note.txt", "granted");
  write_file(secret, "the host's");
  for (const auto& p : {granted, writable, secret}) fs::permissions(p, fs::perms::all);
  {
    std::ifstream in(h.plugins / "hostile" / "plugin.yaml");
    std::string manifest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file(h.plugins / "hostile" / "plugin.yaml",
               manifest + "permissions: [\"fs.read:" + granted.string() + "\", \"fs.write:" + writable.string() + "\"]\n");
  }
  h->discover();
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const auto socket_path = (h.tmp / "host.sock").string();
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  fs::permissions(socket_path, fs::perms::all);

  auto enabled = h->enable("hostile");
  REQUIRE_MESSAGE(enabled.ok(), enabled.error().message);
  const auto runner = h->info("hostile")->runner;
  INFO(json::serialize(runner));
  if (strict()) CHECK(has_mechanism(runner, "filesystem:view"));
  if (!has_mechanism(runner, "filesystem:view")) {
    MESSAGE("no filesystem view here (namespaces unavailable)");
    ::close(listener);
    return;
  }
  auto call = [&](const char* tool, const std::string& path) {
    auto r = h->call_tool(tool, json::object{{"path", path}}, xcore::CallContext::host());
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    return r->structured;
  };
  auto connected = call("connect_unix", socket_path);
  CHECK(connected.at("connected") == false);
  CHECK(connected.at("error") == std::strerror(ENOENT));
  auto hidden = call("read_file", secret.string());
  CHECK(hidden.at("read") == false);
  CHECK(hidden.at("error") == std::strerror(ENOENT));
  CHECK(call("read_file", "/root/.bashrc").at("error") == std::strerror(ENOENT));
  CHECK(call("read_file", (granted / "note.txt").string()).at("text") == "granted");
  auto ro = call("write_file", (granted / "new.txt").string());
  CHECK(ro.at("written") == false);
  CHECK(!fs::exists(granted / "new.txt"));
  CHECK(call("write_file", (writable / "made.txt").string()).at("written") == true);
  CHECK(fs::exists(writable / "made.txt"));
  // Its own /tmp, empty of the host's; nothing written at the root; a /dev of a few devices.
  CHECK(call("write_file", "/tmp/scratch").at("written") == true);
  CHECK(!fs::exists("/tmp/scratch"));
  CHECK(call("write_file", "/planted").at("written") == false);
  CHECK(call("read_file", "/dev/null").at("read") == true);
  auto dev = call("list_dir", "/dev").at("names").as_array();
  CHECK(std::find(dev.begin(), dev.end(), json::value("null")) != dev.end());
  CHECK(std::find(dev.begin(), dev.end(), json::value("sda")) == dev.end());
  CHECK(std::find(dev.begin(), dev.end(), json::value("vda")) == dev.end());
  auto root = call("list_dir", "/").at("names").as_array();
  for (const char* absent : {"root", "home", "var", "srv", "opt", "work", "oldroot", "newroot"})
    CHECK_MESSAGE(std::find(root.begin(), root.end(), json::value(absent)) == root.end(), absent);
  // The pid namespace's /proc: the reaper and the plugin, nothing of the host's.
  auto procs = call("list_dir", "/proc").at("names").as_array();
  int pids = 0;
  for (const auto& n : procs)
    if (n.as_string().find_first_not_of("0123456789") == std::string::npos) ++pids;
  CHECK(pids <= 3);
  ::close(listener);
}

TEST_CASE("no namespace or capability tricks: clone with namespace flags, clone3 and chroot fail, and no capability is left") {
  SandboxHost h({test_plugins() / "hostile"});
  REQUIRE(h->enable("hostile").ok());
  auto r = h->call_tool("escape_attempts", J("{}"), xcore::CallContext::host());
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const auto& s = r->structured;
  INFO(json::serialize(s));
  for (const char* flag : {"clone_newuser", "clone_newns", "clone_newnet"}) {
    CHECK(s.at(flag).at("made") == false);
    CHECK(s.at(flag).at("error") == std::strerror(EPERM));
  }
  CHECK(s.at("clone3") == std::strerror(ENOSYS));  // libc falls back to clone, which the filter sees
  CHECK(s.at("chroot") == std::strerror(EPERM));
  CHECK(s.at("cap_eff") == "0000000000000000");
  CHECK(s.at("cap_bnd") == "0000000000000000");
  CHECK(s.at("no_new_privs") == "1");
  CHECK(s.at("seccomp") == "2");
  // Ordinary processes still start: fork without namespace flags is clone too.
  CHECK(h->call_tool("zombies", J("{}"), xcore::CallContext::host())->structured.at("zombies") == 50);
}

TEST_CASE("a hanging plugin holds at most twice its default concurrency of the callers' threads; the rest are refused at once") {
  SandboxHost h({test_plugins() / "hostile", test_plugins() / "probe"});
  sandbox_manifest(h.plugins / "probe");
  h->discover();
  REQUIRE(h->enable("hostile").ok());
  REQUIRE(h->enable("probe").ok());
  constexpr int kCallers = 40;
  std::atomic<int> refused{0}, timed_out{0}, other{0};
  std::mutex seen_mutex;
  std::vector<std::string> seen;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i)
    callers.emplace_back([&] {
      auto ctx = xcore::CallContext::host();
      ctx.with_deadline_in(std::chrono::seconds(3));
      auto r = h->call_tool("never_answer", J("{}"), ctx);
      if (!r.ok() && r.error().code == ErrorCode::resource_exhausted) ++refused;
      // Admitted calls end at their deadline, or when the child is killed for missing another's.
      else if (!r.ok() && (r.error().code == ErrorCode::timeout || r.error().code == ErrorCode::plugin_crashed)) ++timed_out;
      else {
        ++other;
        std::lock_guard lock(seen_mutex);
        seen.push_back(r.ok() ? std::string("ok") : r.error().to_string());
      }
    });
  // Eight run and eight wait (the default for a sandboxed plugin); the other 24 are refused without waiting.
  for (int spins = 0; refused < kCallers - 16 && spins < 200000; ++spins) std::this_thread::sleep_for(std::chrono::microseconds(50));
  CHECK(refused == kCallers - 16);
  // Meanwhile a neighbour answers.
  auto neighbour = h->call_action("probe", "context", J("{}"), xcore::CallContext::host());
  CHECK_MESSAGE(neighbour.ok(), neighbour.error().message);
  for (auto& t : callers) t.join();
  CHECK(refused == kCallers - 16);
  CHECK(timed_out == 16);
  CHECK_MESSAGE(other == 0, (seen.empty() ? std::string() : seen.front()));
}

TEST_CASE("a stderr flood reaches the host's log at its rate; the rest is counted and reported") {
  SandboxHost h({test_plugins() / "hostile"});
  REQUIRE(h->enable("hostile").ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = h->call_tool("stderr_flood", J(R"({"lines":100000})"), xcore::CallContext::host());  // 7.9 MB
  REQUIRE(r.ok());
  REQUIRE(h->unload("hostile").ok());  // the reader drains to the end and reports what it dropped
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::size_t logged = 0;
  bool reported = false;
  {
    std::lock_guard lock(h.log.m);
    for (const auto& l : h.log.lines) {
      if (l.find("stderr: eeee") != std::string::npos) ++logged;
      if (l.find("dropped: over the limit of 65536 bytes/s") != std::string::npos) reported = true;
    }
  }
  // At most the burst (256 KiB) and the rate (64 KiB/s) for as long as it ran, in 79-byte lines.
  CHECK(logged <= static_cast<std::size_t>((256 * 1024 + 64 * 1024 * seconds) / 79) + 1);
  CHECK(logged < 100000);
  CHECK(reported);
}

TEST_CASE("an external server cannot write its own isolation report: the host reports what it sees from outside") {
  if (::access("/usr/bin/node", X_OK) != 0) {
    MESSAGE("skipped: no /usr/bin/node");
    return;
  }
  SandboxHost h({});
  const auto dir = h.plugins / "forger";
  // An MCP server (stdio, one JSON-RPC message per line) that claims isolation it does not have.
  write_file(dir / "server.js", R"js(
const rl = require('readline').createInterface({input: process.stdin});
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined) return;
  if (m.method === 'initialize')
    send({jsonrpc: '2.0', id: m.id, result: {protocolVersion: m.params.protocolVersion, capabilities: {tools: {}},
          serverInfo: {name: 'forger', version: '1.0.0'}, _meta: {isolation: ['forged', 'landlock:fs', 'uid:0', 'capabilities:none']}}});
  else if (m.method === 'tools/list') send({jsonrpc: '2.0', id: m.id, result: {tools: []}});
  else send({jsonrpc: '2.0', id: m.id, result: {}});
});
)js");
  write_file(dir / "plugin.yaml", "id: forger\nversion: 1.0.0\nmode: sandboxed\ncommand: [/usr/bin/node, server.js]\n");
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  h->discover();
  auto r = h->enable("forger");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const auto runner = h->info("forger")->runner;
  INFO(json::serialize(runner));
  CHECK_FALSE(has_mechanism(runner, "forged"));
  CHECK_FALSE(has_mechanism(runner, "landlock:fs"));  // true, perhaps, but not the server's to say
  CHECK_FALSE(has_mechanism(runner, "uid:0"));
  // What the host verified in /proc: the seccomp filter, no_new_privs, no capabilities, its namespaces.
  CHECK(has_mechanism(runner, "seccomp"));
  CHECK(has_mechanism(runner, "no_new_privs"));
  CHECK(has_mechanism(runner, "capabilities:none"));
  CHECK(has_mechanism(runner, "namespace:pid"));
  CHECK(has_mechanism(runner, "namespace:net"));
  REQUIRE(h->unload("forger").ok());
}

TEST_CASE("writing to a plugin whose process is gone is an error for that call, never a SIGPIPE for the host") {
  int to_child[2], from_child[2];
  REQUIRE(::pipe2(to_child, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(from_child, O_CLOEXEC) == 0);
  ::close(to_child[0]);  // the reader is gone, as when a plugin dies
  {
    xcore::jsonrpc::RpcPeer peer(from_child[0], to_child[1], {});
    peer.start([](const std::string&, const json::value&) -> xcore::Result<json::value> { return json::value(); }, nullptr, nullptr);
    auto sent = peer.notify("xcore/shutdown", json::object{});
    REQUIRE_FALSE(sent.ok());
    CHECK(sent.error().message.find("Broken pipe") != std::string::npos);
    sigset_t pending;
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGPIPE) == 0);  // none left behind for the host either
    ::close(from_child[1]);
  }
}

TEST_CASE("limits by default: a manifest that sets none still gets memory, processes and open files bounded") {
  SandboxHost h({test_plugins() / "hostile"});
  write_file(h.plugins / "hostile" / "plugin.yaml", "id: hostile\nversion: 1.0.0\nentry: libhostile.so\nmode: sandboxed\nlimits: {timeout_ms: 20000}\n");
  h->discover();
  REQUIRE(h->enable("hostile").ok());
  auto fds = h->call_tool("fd_exhaust", J("{}"), xcore::CallContext::host());
  REQUIRE(fds.ok());
  CHECK(fds->structured.at("opened").to_number<int>() < 1024);  // default open files: 1024
  auto forks = h->call_tool("fork_bomb", J("{}"), xcore::CallContext::host());
  if (forks.ok()) {
    CHECK(forks->structured.at("forked").to_number<int>() < 256);  // default processes: 256
  } else {
    // Processes that each carry a sanitizer's shadow memory meet the default memory limit first.
    CHECK(forks.error().code == ErrorCode::plugin_crashed);
    CHECK_MESSAGE(forks.error().message.find("OOM") != std::string::npos, forks.error().message);
  }
  REQUIRE(h->reload("hostile").ok());  // a fresh process: the bomb's children went with the old one
  if (!kSanitized) {
    // 1 GiB touched against the default 512 MiB: refused (RLIMIT_DATA) or ended by the cgroup's OOM killer.
    auto mem = h->call_tool("memory_bomb", J("{}"), xcore::CallContext::host());
    if (mem.ok()) {
      CHECK(mem->is_error);
    } else {
      CHECK(mem.error().code == ErrorCode::plugin_crashed);
      CHECK_MESSAGE(mem.error().message.find("OOM killer (its cgroup's memory limit of 512 MiB)") != std::string::npos, mem.error().message);
    }
  }
}

// A restart whose new process never answers its handshake: the supervisor waits for it on its own
// thread. Before, the runner's lock was held through that wait (10 s), and every list, describe and
// call waited with it. The bounds below are far under the 10 s handshake, not measurements.
TEST_CASE("while a plugin restarts, list and describe answer at once and a call's deadline covers the restart") {
  if (::access("/usr/bin/node", X_OK) != 0) {
    MESSAGE("skipped: no /usr/bin/node");
    return;
  }
  SandboxHost h({example_plugins() / "core"});
  const auto dir = h.plugins / "stalls";
  // Every later start never answers.
  write_once_server(dir, "stalls", "exec sleep 1000");
  h->discover();
  REQUIRE(h->enable("core").ok());
  auto enabled = h->enable("stalls");
  REQUIRE_MESSAGE(enabled.ok(), enabled.error().message);
  REQUIRE(h->call_tool("hello", J("{}"), xcore::CallContext::host()).ok());
  ::kill(-h.pid("stalls"), SIGKILL);

  using namespace std::chrono;
  const auto t0 = steady_clock::now();
  auto r = h->call_tool("hello", J("{}"), xcore::CallContext::host().with_deadline_in(milliseconds(300)));
  // A call that meets the dying process learns of the crash; the next one meets the restart.
  if (!r.ok() && r.error().code == ErrorCode::plugin_crashed)
    r = h->call_tool("hello", J("{}"), xcore::CallContext::host().with_deadline_in(milliseconds(300)));
  const auto call_took = steady_clock::now() - t0;
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::timeout);
  CHECK_MESSAGE(r.error().message.find("restarting") != std::string::npos, r.error().message);
  CHECK(call_took < seconds(5));

  // The restart is still shaking hands; the host's other questions do not wait for it.
  const auto t1 = steady_clock::now();
  auto info = h->info("stalls");
  auto all = h->list();
  const auto ask_took = steady_clock::now() - t1;
  CHECK(info->runner.at("state") == "starting");
  CHECK(all.size() == 2);
  CHECK(ask_took < seconds(5));
  CHECK(h->call_tool("calculate", J(R"({"expression":"6*7"})"), xcore::CallContext::host())->structured.at("result") == 42);
  // Unloading ends the handshake in progress rather than waiting it out.
  const auto t2 = steady_clock::now();
  CHECK(h->unload("stalls").ok());
  CHECK(steady_clock::now() - t2 < seconds(5));
}

TEST_CASE("a plugin that never starts again after a crash ends failed within its crash budget") {
  if (::access("/usr/bin/node", X_OK) != 0) {
    MESSAGE("skipped: no /usr/bin/node");
    return;
  }
  SandboxHost h({}, /*crash_budget=*/3);
  const auto dir = h.plugins / "once";
  // Every later start exits at once.
  write_once_server(dir, "once", "exit 1");
  h->discover();
  auto enabled = h->enable("once");
  REQUIRE_MESSAGE(enabled.ok(), enabled.error().message);
  REQUIRE(h->call_tool("hello", J("{}"), xcore::CallContext::host()).ok());
  ::kill(-h.pid("once"), SIGKILL);
  std::vector<std::string> errors;
  for (int i = 0; i < 6 && h->info("once")->state != PluginState::failed; ++i) {
    auto r = h->call_tool("hello", J("{}"), xcore::CallContext::host());
    errors.push_back(r.ok() ? "ok" : r.error().message);
  }
  INFO(errors.size() << " calls; last: " << errors.back());
  CHECK(h->info("once")->state == PluginState::failed);
  CHECK(errors.size() <= 4);  // the crash and two starts that did not come back: 3, its budget
  CHECK(h->info("once")->last_error->message.find("3 crashes") != std::string::npos);
}

TEST_CASE("a sandboxed plugin's host calls act in the call it serves: a context it writes itself is not believed") {
  SandboxHost h({test_plugins() / "hostile"});
  REQUIRE(h->enable("hostile").ok());
  std::mutex m;
  std::condition_variable cv;
  std::map<std::string, std::string> tenant_of;  // hook -> the tenant its event arrived in
  for (const char* hook : {"hostile.forged", "hostile.own", "hostile.cross"}) {
    auto sub = h->hooks().subscribe(hook, [&](const HookEvent& ev) {
      std::lock_guard lock(m);
      tenant_of[std::string(ev.name)] = std::string(ev.tenant);
      cv.notify_all();
      return HookReply::none();
    });
    REQUIRE(sub.ok());
    sub->release();  // kept until the Manager goes
  }
  auto acme = xcore::CallContext::host();
  acme.tenant = "acme";
  auto arrived = [&](const std::string& hook) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return tenant_of.contains(hook); });
  };

  // Written to the protocol past the SDK, claiming tenant "victim": answered as a call for nobody.
  REQUIRE(h->call_tool("hostile.forge_context", J("{}"), acme).ok());
  if (!arrived("hostile.forged")) {
    std::lock_guard lock(h.log.m);
    for (const auto& l : h.log.lines) MESSAGE(l);
    for (const auto& hk : h->hooks().list()) MESSAGE(hk.spec.name << " emitted " << hk.calls << " times");
    FAIL("the forged call's event never arrived");
  }
  {
    std::lock_guard lock(m);
    CHECK_MESSAGE(tenant_of["hostile.forged"] == "", "the forged call emitted in tenant '" << tenant_of["hostile.forged"] << "'");
  }
  // Through the SDK: in the served call's tenant; naming another tenant is refused.
  auto r = h->call_tool("hostile.emit_in_tenants", J("{}"), acme);
  REQUIRE(r.ok());
  REQUIRE(arrived("hostile.own"));
  std::lock_guard lock(m);
  CHECK(tenant_of["hostile.own"] == "acme");
  CHECK_FALSE(tenant_of.contains("hostile.cross"));
  const auto cross = std::string(r->structured.at("cross").as_string());
  CHECK_MESSAGE(cross.find("not the tenant of the call being served") != std::string::npos, cross);
}

TEST_CASE("the plugin host is found beside the running code, so a moved prefix works; a miss names every path tried") {
  TempDir tmp;
  const auto prefix = tmp / "moved" / "prefix";
  fs::create_directories(prefix / "bin");
  fs::create_directories(prefix / "libexec" / "xcore");
  const auto host = prefix / "libexec" / "xcore" / "xcore-plugin-host";
  write_file(host, "#!/bin/sh\n");
  fs::permissions(host, fs::perms::owner_all);
  ::unsetenv("XCORE_PLUGIN_HOST");
  // An executable in <prefix>/bin finds <prefix>/libexec/xcore, before any configured location.
  auto found = xcore::sandbox::find_plugin_host({prefix / "bin"}, {tmp / "configured" / "xcore-plugin-host"});
  REQUIRE_MESSAGE(found.ok(), found.error().message);
  CHECK(*found == host);
  // Nothing anywhere: the error lists each place and says how to point at it.
  auto missing = xcore::sandbox::find_plugin_host({tmp / "elsewhere" / "bin"}, {tmp / "configured" / "xcore-plugin-host"});
  REQUIRE_FALSE(missing);
  const auto& why = missing.error().message;
  CHECK_MESSAGE(why.find((tmp / "elsewhere" / "libexec" / "xcore" / "xcore-plugin-host").string()) != std::string::npos, why);
  CHECK_MESSAGE(why.find((tmp / "configured" / "xcore-plugin-host").string()) != std::string::npos, why);
  CHECK_MESSAGE(why.find("XCORE_PLUGIN_HOST") != std::string::npos, why);
  // XCORE_PLUGIN_HOST, when set, is the one place: a wrong one is named, not searched around.
  ::setenv("XCORE_PLUGIN_HOST", (tmp / "nope").c_str(), 1);
  auto named = xcore::sandbox::find_plugin_host({prefix / "bin"}, {});
  ::unsetenv("XCORE_PLUGIN_HOST");
  REQUIRE_FALSE(named);
  CHECK_MESSAGE(named.error().message.find((tmp / "nope").string()) != std::string::npos, named.error().message);
}
