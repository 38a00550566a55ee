// The Manager against real plugin binaries built by this build.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <sys/wait.h>
#include <xcore/plugin.h>

using namespace xcore;
using namespace xcore_test;

namespace {

struct Host {
  TempDir tmp;
  fs::path plugins = tmp / "plugins";
  fs::path shadow = tmp / "shadow";
  CapturedLog log;
  std::unique_ptr<Manager> manager;

  explicit Host(std::initializer_list<fs::path> staged, std::map<std::string, json::object> configs = {}) {
    fs::create_directories(plugins);
    for (const auto& s : staged) stage(s, plugins);
    ManagerOptions o = test_options(tmp, plugins, log);
    o.configs = std::move(configs);
    o.drain_timeout = std::chrono::seconds(20);
    manager = std::make_unique<Manager>(std::move(o));
    auto report = manager->discover();
    for (const auto& p : report.problems) MESSAGE(p.message);
  }
  Manager& operator*() { return *manager; }
  Manager* operator->() { return manager.get(); }
  PluginState state(std::string_view id) { return manager->info(id)->state; }
  Result<json::value> action(std::string_view plugin, std::string_view action, std::string_view params = "{}") {
    return manager->call_action(plugin, action, J(params), xcore::CallContext::host());
  }
  // Swaps a staged plugin folder's content for another build (same folder, as a developer's rebuild would).
  void replace_with(const fs::path& staged, const std::string& as) { stage(staged, plugins, as); }
};

bool is_loaded_state(PluginState s) { return s == PluginState::loaded || s == PluginState::enabled || s == PluginState::disabled; }

int version_of(const Result<ToolResult>& r) { return static_cast<int>(r->structured.at("version").as_int64()); }

// Keeps one call of probe's "hold" tool running inside the plugin until release() (or destruction).
class HeldCall {
 public:
  explicit HeldCall(Host& h) : host_(h), thread_([this] {
    auto ctx = xcore::CallContext::host();
    ctx.cancel = stop_.get_token();
    result_ = host_->call_tool("hold", J("{}"), ctx);
  }) {
    while (host_->health("probe")->at("held") != 1) std::this_thread::yield();
  }
  ~HeldCall() { release(); }
  const Result<ToolResult>& release() {
    stop_.request_stop();
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  Host& host_;
  std::stop_source stop_;
  Result<ToolResult> result_ = Error{};
  std::thread thread_;
};

}  // namespace

TEST_CASE("lifecycle: discovered -> loaded -> enabled <-> disabled -> unloaded, and back") {
  Host h({example_plugins() / "core"});
  CHECK(h.state("core") == PluginState::discovered);
  CHECK(h->tools().list({.include_disabled = true}).empty());  // discovery ran no plugin code

  REQUIRE(h->load("core").ok());
  CHECK(h.state("core") == PluginState::loaded);
  auto not_yet = h->call_tool("calculate", J(R"({"expression":"1+1"})"), xcore::CallContext::host());
  REQUIRE(!not_yet.ok());
  CHECK(not_yet.error().code == ErrorCode::unavailable);

  REQUIRE(h->enable("core").ok());
  CHECK(h.state("core") == PluginState::enabled);
  CHECK(h->call_tool("calculate", J(R"({"expression":"1+1"})"), xcore::CallContext::host())->structured.at("result") == 2);

  REQUIRE(h->disable("core").ok());
  CHECK(h.state("core") == PluginState::disabled);
  CHECK(h->call_tool("calculate", J(R"({"expression":"1+1"})"), xcore::CallContext::host()).error().code == ErrorCode::unavailable);
  CHECK(h->call_action("core", "echo", J("{}"), xcore::CallContext::host()).error().code == ErrorCode::unavailable);

  REQUIRE(h->enable("core").ok());
  REQUIRE(h->unload("core").ok());
  CHECK(h.state("core") == PluginState::unloaded);
  CHECK(h->tools().list({.include_disabled = true}).empty());
  CHECK(h->call_tool("calculate", J(R"({"expression":"1"})"), xcore::CallContext::host()).error().code == ErrorCode::not_found);

  REQUIRE(h->enable("core").ok());
  CHECK(h->info("core")->stats.generation == 2);
  CHECK(h->call_tool("core.echo", J(R"({"x":1})"), xcore::CallContext::host())->structured == J(R"({"x":1})"));
  // Stats count tool calls since this load plus actions.
  CHECK(h->info("core")->stats.calls == 1);
  REQUIRE(h->call_action("core", "echo", J("{}"), xcore::CallContext::host()).ok());
  CHECK(h->info("core")->stats.calls == 2);
  CHECK(fs::is_empty(h.shadow) == false);  // the running generation's private copy
}

TEST_CASE("a plugin built for another ABI is refused before any of its code runs") {
  // abi_future's constructor aborts the process if it ever runs.
  Host h({test_plugins() / "abi_future"});
  auto r = h->load("abi-future");
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::incompatible);
  CHECK_MESSAGE(r.error().message.find(fmt::format("plugin ABI 99.0, this host provides {}.{}", XCORE_ABI_MAJOR, XCORE_ABI_MINOR)) != std::string::npos, r.error().message);
  CHECK(h.state("abi-future") == PluginState::failed);
  CHECK(h->info("abi-future")->last_error->code == ErrorCode::incompatible);
}

TEST_CASE("a manifest asking for another host ABI is refused naming its file and the field") {
  Host h({test_plugins() / "probe"});
  const auto manifest = h.plugins / "probe" / "plugin.yaml";
  write_file(manifest, "id: probe\nversion: 1.0.0\nentry: libprobe.so\napi_version: \"^9\"\n");
  h->discover();
  auto r = h->load("probe");
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::incompatible);
  CHECK_MESSAGE(r.error().message.find(manifest.string() + ": field 'api_version' accepts host ABI '^9'") != std::string::npos, r.error().message);
  CHECK(r.error().details.find("\"field\":\"api_version\"") != std::string::npos);
}

TEST_CASE("the binary must agree with its manifest on id and version") {
  Host h({test_plugins() / "id_mismatch", test_plugins() / "probe"});
  auto r = h->load("id-mismatch");
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::incompatible);
  CHECK(r.error().message.find("declares id 'someone-else'") != std::string::npos);

  auto manifest = h.plugins / "probe" / "plugin.yaml";
  auto text = std::string("id: probe\nversion: 1.0.1\nentry: libprobe.so\n");
  write_file(manifest, text);
  h->discover();
  auto v = h->load("probe");
  REQUIRE(!v.ok());
  CHECK(v.error().message.find("declares version '1.0.0'") != std::string::npos);
}

TEST_CASE("an id of 64 characters, the most a manifest allows, is read whole from the binary's tag") {
  const std::string id = "a-long-plugin-id-long-plugin-id-long-plugin-id-long-plugin-idxxx";
  REQUIRE(id.size() == 64);
  Host h({test_plugins() / "long_id"});
  auto r = h->enable(id);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(h->call_tool(id + ".ping", J("{}"), xcore::CallContext::host()).ok());
}

TEST_CASE("a plugin that throws in on_load leaves nothing behind") {
  Host h({test_plugins() / "throws_on_load"});
  auto r = h->load("throws-on-load");
  REQUIRE(!r.ok());
  CHECK_MESSAGE(r.error().message.find("database unreachable") != std::string::npos, r.error().message);
  CHECK(h.state("throws-on-load") == PluginState::failed);
  CHECK(h->tools().list({.include_disabled = true}).empty());
  for (const auto& hook : h->hooks().list()) {
    CHECK_MESSAGE(hook.handlers == 0, hook.spec.name);
  }
  CHECK(fs::is_empty(h.shadow));  // its private copy is gone too
}

TEST_CASE("a plugin written in C against an older ABI (1.2) loads and answers; what 1.3 added it simply has none of") {
  Host h({test_plugins() / "c_echo"});
  REQUIRE(h->enable("c-echo").ok());
  auto r = h->call_tool("c_echo", J(R"({"from":"c"})"), xcore::CallContext::host());
  REQUIRE(r.ok());
  CHECK(r->structured == J(R"({"from":"c"})"));
  // Its table ends before serve_mcp: no resources or prompts, and no call past its end.
  auto listed = h->serve_mcp("resources/list", J("{}"), xcore::CallContext::host());
  REQUIRE(listed.ok());
  CHECK(listed->at("resources").as_array().empty());
  auto read = h->serve_mcp("resources/read", J(R"({"uri":"c://x"})"), xcore::CallContext::host());
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().code == xcore::ErrorCode::not_found);
  CHECK(read.error().message.find("no plugin has resource 'c://x'") != std::string::npos);
}

TEST_CASE("dependencies: loaded first, unloading them refused unless cascading") {
  Host h({example_plugins() / "core", example_plugins() / "audit"});
  REQUIRE(h->enable("audit").ok());
  CHECK(h.state("core") == PluginState::enabled);
  CHECK(h->info("core")->dependents == std::vector<std::string>{"audit"});

  auto refused = h->unload("core");
  REQUIRE(!refused.ok());
  CHECK(refused.error().code == ErrorCode::conflict);
  CHECK(refused.error().message.find("required by loaded plugins: audit") != std::string::npos);
  auto not_disabled = h->disable("core");
  CHECK(not_disabled.error().code == ErrorCode::conflict);

  REQUIRE(h->disable("core", {.cascade = true}).ok());
  CHECK(h.state("audit") == PluginState::disabled);
  REQUIRE(h->unload("core", {.cascade = true}).ok());
  CHECK(h.state("audit") == PluginState::unloaded);
  CHECK(h.state("core") == PluginState::unloaded);
}

TEST_CASE("missing dependencies, version conflicts and cycles are reported") {
  Host h({example_plugins() / "audit"});
  auto missing = h->load("audit");
  REQUIRE(!missing.ok());
  CHECK(missing.error().message.find("requires 'core' (^1.0), which was not discovered") != std::string::npos);

  write_file(h.plugins / "needs-core2" / "plugin.yaml", "id: needs-core2\nversion: 1.0.0\nentry: lib.so\nrequires: {core: \"^2\"}\n");
  stage(example_plugins() / "core", h.plugins);
  write_file(h.plugins / "a" / "plugin.yaml", "id: a\nversion: 1.0.0\nentry: lib.so\nrequires: [b]\n");
  write_file(h.plugins / "b" / "plugin.yaml", "id: b\nversion: 1.0.0\nentry: lib.so\nrequires: [a]\n");
  h->discover();
  auto old = h->load("needs-core2");
  REQUIRE(!old.ok());
  CHECK(old.error().message.find("requires 'core' ^2, but version 1.0.0 is installed") != std::string::npos);

  auto cycle = h->load("a");
  REQUIRE(!cycle.ok());
  CHECK_MESSAGE(cycle.error().message.find("dependency cycle: a -> b -> a") != std::string::npos, cycle.error().message);
  CHECK(cycle.error().code == ErrorCode::conflict);
  CHECK(cycle.error().details == R"({"dependency_cycle":["a","b","a"]})");  // details are JSON, for programs
  auto all = h->load_all();
  REQUIRE(!all.ok());
  CHECK(all.error().message.find("dependency cycle") != std::string::npos);
  CHECK(h.state("core") == PluginState::enabled);  // the healthy ones still load
}

TEST_CASE("config: defaults applied, validated against config_schema on load and on update") {
  Host h({test_plugins() / "probe"}, {{"probe", json::object{{"level", 9}}}});
  auto bad = h->load("probe");
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == ErrorCode::invalid_argument);
  CHECK_MESSAGE(bad.error().message.find("config '/level'") != std::string::npos, bad.error().message);

  REQUIRE(h->set_config("probe", json::object{}).ok());
  REQUIRE(h->enable("probe").ok());
  CHECK(*h.action("probe", "config") == J(R"({"fail_load":false,"level":3})"));
  REQUIRE(h->set_config("probe", json::object{{"level", 5}}).ok());
  CHECK(h.action("probe", "config")->at("level") == 5);
  auto refused = h->set_config("probe", json::object{{"colour", "red"}});
  REQUIRE(!refused.ok());
  CHECK(h.action("probe", "config")->at("level") == 5);  // the old config stays
  CHECK(h->info("probe")->config.at("level") == 5);
}

TEST_CASE("host services are checked against the manifest's permissions") {
  Host h({example_plugins() / "core", test_plugins() / "probe"});
  REQUIRE(h->load_all().ok());
  auto allowed = h.action("probe", "call_tool", R"({"name":"core.echo","arguments":{"hi":1}})");
  REQUIRE_MESSAGE(allowed.ok(), allowed.error().message);
  CHECK(allowed->at("structuredContent") == J(R"({"hi":1})"));

  auto denied = h.action("probe", "call_tool", R"({"name":"calculate","arguments":{"expression":"1"}})");
  REQUIRE(!denied.ok());
  CHECK(denied.error().code == ErrorCode::permission_denied);
  CHECK(denied.error().message.find("'tools.call:core.calculate'") != std::string::npos);

  CHECK(h.action("probe", "call_action", R"({"plugin":"core","action":"echo","params":{"a":1}})")->at("a") == 1);
  CHECK(h.action("probe", "call_action", R"({"plugin":"core","action":"info"})").error().code == ErrorCode::permission_denied);
  CHECK(h.action("probe", "emit", R"({"hook":"allowed.thing"})").ok());
  CHECK(h.action("probe", "emit", R"({"hook":"secret.thing"})").error().code == ErrorCode::permission_denied);
  auto own = h.action("probe", "emit", R"({"hook":"probe.ping","payload":{"n":1}})");
  REQUIRE(own.ok());
  CHECK(own->at("results").at(0).at("pong") == 1);
  CHECK(h.action("probe", "subscribe", R"({"hook":"tool.after_call"})").error().code == ErrorCode::permission_denied);
}

TEST_CASE("tools registered at run time join the registry and follow the plugin") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe").ok());
  REQUIRE(h.action("probe", "publish_tool", R"({"name":"dyn"})").ok());
  CHECK(h->call_tool("probe.dyn", J(R"({"v":1})"), xcore::CallContext::host())->structured.at("v") == 1);
  REQUIRE(h->disable("probe").ok());
  CHECK(h->call_tool("dyn", J("{}"), xcore::CallContext::host()).error().code == ErrorCode::unavailable);
  REQUIRE(h->unload("probe").ok());
  CHECK(h->call_tool("dyn", J("{}"), xcore::CallContext::host()).error().code == ErrorCode::not_found);
}

TEST_CASE("the call context reaches the plugin") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe").ok());
  auto ctx = xcore::CallContext::host();
  ctx.tenant = "acme";
  ctx.user = "ada";
  ctx.trace_id = "abc123";
  auto r = h->call_action("probe", "context", J("{}"), ctx);
  CHECK(*r == J(R"({"tenant":"acme","user":"ada","trace_id":"abc123"})"));
  CHECK(h->health("probe")->at("status") == "ok");
}

TEST_CASE("hot reload under concurrent callers: no failed call, and the new version answers") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe").ok());
  REQUIRE(version_of(h->call_tool("version", J("{}"), xcore::CallContext::host())) == 1);

  std::atomic<bool> stop = false;
  std::atomic<int> failures = 0, calls = 0, saw_v2 = 0;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      while (!stop) {
        auto r = h->call_tool("version", J("{}"), xcore::CallContext::host());
        ++calls;
        if (!r.ok()) {
          ++failures;
          MESSAGE(r.error().message);
        } else if (version_of(r) == 2) {
          ++saw_v2;
        }
      }
    });
  while (calls < 200) std::this_thread::yield();
  h.replace_with(test_plugins() / "probe-v2", "probe");
  auto r = h->reload("probe");
  CHECK_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  while (saw_v2 < 100) std::this_thread::yield();
  stop = true;
  for (auto& t : callers) t.join();

  CHECK(failures == 0);
  CHECK(h->info("probe")->manifest.version.to_string() == "2.0.0");
  CHECK(h->info("probe")->stats.generation == 2);
  CHECK(h->info("probe")->stats.reloads == 1);
  CHECK(h->call_tool("added_in_v2", J("{}"), xcore::CallContext::host()).ok());
  CHECK(h->hooks().emit("probe.ping", J("{}")).first().at("pong") == 2);  // the old generation's hook is gone
  CHECK(h->hooks().emit("probe.ping", J("{}")).results.size() == 1);
  // One private copy left: the old generation's was removed after it drained.
  CHECK(std::distance(fs::directory_iterator(h.shadow), fs::directory_iterator()) == 1);
}

TEST_CASE("one plugin stuck in on_load delays no other plugin's load, enable, call or listing") {
  TempDir gate;
  Host h({test_plugins() / "probe", example_plugins() / "core", example_plugins() / "audit"},
         {{"probe", json::object{{"load_gate", gate.path().string()}}}});
  auto stuck = std::async(std::launch::async, [&] { return h->enable("probe"); });
  while (!fs::exists(gate / "entered")) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // Another plugin and its dependency load, enable and answer while probe is still inside on_load.
  auto others = std::async(std::launch::async, [&]() -> Result<ToolResult> {
    XCORE_TRY(h->enable("audit"));
    (void)h->list();
    return h->call_tool("calculate", J(R"({"expression":"2+3"})"), xcore::CallContext::host());
  });
  const bool finished = others.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  const auto probe_state = h.state("probe");
  std::ofstream(gate / "go").put('1');  // let probe go whatever happened, so the test ends
  REQUIRE(finished);
  CHECK(probe_state == PluginState::discovered);  // still loading
  auto answer = others.get();
  REQUIRE(answer.ok());
  CHECK(answer->structured.at("result") == 5);
  CHECK(h.state("core") == PluginState::enabled);
  CHECK(h.state("audit") == PluginState::enabled);

  REQUIRE(stuck.get().ok());
  CHECK(h.state("probe") == PluginState::enabled);
}

TEST_CASE("lifecycle operations from many threads on related plugins keep dependencies whole") {
  Host h({test_plugins() / "probe", example_plugins() / "core", example_plugins() / "audit"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) switch ((t + i) % 6) {
          case 0: (void)h->enable("audit"); break;
          case 1: (void)h->disable("core", {.cascade = true}); break;
          case 2: (void)h->reload("core"); break;
          case 3: (void)h->unload("core", {.cascade = true}); break;
          case 4: (void)h->enable("probe"); break;
          case 5: (void)h->reload("probe"); break;
        }
    });
  for (auto& th : threads) th.join();
  // Whatever order they ran in, a loaded audit has its core loaded, an enabled one its core enabled.
  const auto audit = h.state("audit"), core = h.state("core");
  if (audit == PluginState::enabled) CHECK(core == PluginState::enabled);
  if (is_loaded_state(audit)) CHECK(is_loaded_state(core));
  REQUIRE(h->enable("audit").ok());
  CHECK(h->call_tool("calculate", J(R"({"expression":"1+1"})"), xcore::CallContext::host())->structured.at("result") == 2);
}

TEST_CASE("a failed reload keeps the old version serving") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe").ok());
  write_file(h.plugins / "probe" / "libprobe.so", "this is not a shared library");
  auto r = h->reload("probe");
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::incompatible);
  CHECK(h.state("probe") == PluginState::enabled);
  CHECK(version_of(h->call_tool("version", J("{}"), xcore::CallContext::host())) == 1);
  CHECK(h->info("probe")->last_error);
  CHECK(h.log.contains("reload failed, the previous version keeps serving"));
}

TEST_CASE("unload waits for calls in flight, while new calls are refused at once") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe").ok());
  HeldCall held(h);

  std::atomic<bool> unloaded = false;
  std::thread unloader([&] {
    REQUIRE(h->unload("probe").ok());
    unloaded = true;
  });
  // Once the unload has begun, new calls are refused...
  while (h->call_tool("version", J("{}"), xcore::CallContext::host()).ok()) std::this_thread::yield();
  // ...but it cannot finish while the held call runs in the plugin's code.
  CHECK(!unloaded);
  const auto& result = held.release();
  unloader.join();
  REQUIRE(result.ok());
  CHECK(result->structured.at("released") == true);
  CHECK(h.state("probe") == PluginState::unloaded);
}

TEST_CASE("a concurrency limit refuses calls beyond it instead of queueing forever") {
  Host h({test_plugins() / "probe"});
  auto manifest = h.plugins / "probe" / "plugin.yaml";
  write_file(manifest, "id: probe\nversion: 1.0.0\nentry: libprobe.so\nlimits: {max_concurrency: 1}\n");
  h->discover();
  REQUIRE(h->enable("probe").ok());
  HeldCall held(h);
  auto r = h->call_tool("version", J("{}"), xcore::CallContext::host());
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::resource_exhausted);
  held.release();
  CHECK(h->call_tool("version", J("{}"), xcore::CallContext::host()).ok());
}

TEST_CASE("lifecycle events reach hook subscribers; plugin.loaded is replayed to late ones") {
  Host h({example_plugins() / "core"});
  REQUIRE(h->enable("core").ok());
  std::vector<std::string> seen;
  auto sub = h->hooks().subscribe("plugin.loaded", [&](const HookEvent& ev) {
                  seen.emplace_back(ev.payload.at("plugin").as_string());
                  return HookReply::none();
                }).value();
  CHECK(seen == std::vector<std::string>{"core"});
  std::vector<std::string> lifecycle;
  std::vector<Subscription> subs;
  for (const char* e : {"plugin.disabled", "plugin.unloaded"})
    subs.push_back(h->hooks().subscribe(e, [&lifecycle](const HookEvent& ev) {
                         lifecycle.emplace_back(ev.name);
                         return HookReply::none();
                       }).value());
  REQUIRE(h->unload("core").ok());
  CHECK(lifecycle == std::vector<std::string>{"plugin.disabled", "plugin.unloaded"});
}

TEST_CASE("watching the folder reloads a plugin when its binary is rebuilt") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe").ok());
  std::mutex m;
  std::condition_variable cv;
  bool reloaded = false;
  auto sub = h->hooks().subscribe("plugin.reloaded", [&](const HookEvent&) {
                  std::lock_guard lock(m);
                  reloaded = true;
                  cv.notify_all();
                  return HookReply::none();
                }).value();
  REQUIRE(h->watch(true).ok());
  h.replace_with(test_plugins() / "probe-v2", "probe");
  {
    std::unique_lock lock(m);
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return reloaded; });  // an upper bound, not a timing check
  }
  REQUIRE(reloaded);
  CHECK(version_of(h->call_tool("version", J("{}"), xcore::CallContext::host())) == 2);
  REQUIRE(h->watch(false).ok());
}

TEST_CASE("a reload applies the new manifest's limits") {
  Host h({test_plugins() / "probe"});
  auto manifest = h.plugins / "probe" / "plugin.yaml";
  write_file(manifest, "id: probe\nversion: 1.0.0\nentry: libprobe.so\nlimits: {max_concurrency: 1}\n");
  h->discover();
  REQUIRE(h->enable("probe").ok());
  write_file(manifest, "id: probe\nversion: 1.0.0\nentry: libprobe.so\nlimits: {max_concurrency: 2}\n");
  REQUIRE(h->reload("probe").ok());
  HeldCall held(h);
  CHECK(h->call_tool("version", J("{}"), xcore::CallContext::host()).ok());  // a second place now
}

namespace {
// How many of the process's mappings come from files under `dir`.
int mappings_under(const fs::path& dir) {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.find(dir.string()) != std::string::npos) ++n;
  return n;
}
}  // namespace

TEST_CASE("unload and reload really unmap the old code (nothing pins a plugin in memory)") {
  Host h({test_plugins() / "probe", example_plugins() / "core"});
  REQUIRE(h->enable("probe").ok());
  REQUIRE(h->enable("core").ok());
  // Exercise every path that runs plugin code, so nothing it might leave behind goes unnoticed.
  REQUIRE(h->call_tool("version", J("{}"), xcore::CallContext::host()).ok());
  REQUIRE(h->call_tool("core.echo", J(R"({"a":1})"), xcore::CallContext::host()).ok());
  REQUIRE(h->call_action("probe", "config", J("{}"), xcore::CallContext::host()).ok());
  CHECK(mappings_under(h.shadow) > 0);
  for (int i = 0; i < 3; ++i) REQUIRE(h->reload("probe").ok());
  REQUIRE(h->unload("probe").ok());
  REQUIRE(h->unload("core").ok());
  CHECK(mappings_under(h.shadow) == 0);
}

namespace {
// The distinct files mapped in the process whose names contain `part`.
std::set<std::string> mapped_files(std::string_view part) {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> out;
  for (std::string line; std::getline(maps, line);)
    if (auto at = line.find('/'); at != std::string::npos && line.find(part) != std::string::npos) out.insert(line.substr(at));
  return out;
}
}  // namespace

TEST_CASE("tenants share one mapped module per binary version and keep their own instances") {
  // Two Managers, as a server has one per tenant, each with its own copy of the same probe build.
  TempDir tmp;
  std::vector<std::unique_ptr<Manager>> tenants;
  std::vector<std::unique_ptr<CapturedLog>> logs;
  for (const char* name : {"a", "b"}) {
    stage(test_plugins() / "probe", tmp / name);
    logs.push_back(std::make_unique<CapturedLog>());
    auto o = test_options(tmp, tmp / name, *logs.back());
    o.shadow_dir = tmp / (std::string("shadow-") + name);
    o.configs["probe"] = json::object{{"level", name[0] == 'a' ? 1 : 5}};
    tenants.push_back(std::make_unique<Manager>(std::move(o)));
    tenants.back()->discover();
    REQUIRE(tenants.back()->enable("probe").ok());
  }
  auto& a = *tenants[0];
  auto& b = *tenants[1];
  CHECK(mapped_files("probe-").size() == 1);  // one module for both
  auto config = [](Manager& m) { return m.call_action("probe", "config", J("{}"), xcore::CallContext::host())->at("level"); };
  CHECK(config(a) == 1);
  CHECK(config(b) == 5);
  // Each instance has its own state and tools.
  REQUIRE(b.call_action("probe", "publish_tool", J(R"({"name":"only_b"})"), xcore::CallContext::host()).ok());
  CHECK(b.tools().find("probe.only_b"));
  CHECK(!a.tools().find("probe.only_b"));

  // One tenant moves to a new version: a second module; the other keeps answering from the first.
  stage(test_plugins() / "probe-v2", tmp / "b", "probe");
  REQUIRE(b.reload("probe").ok());
  CHECK(version_of(b.call_tool("version", J("{}"), xcore::CallContext::host())) == 2);
  CHECK(version_of(a.call_tool("version", J("{}"), xcore::CallContext::host())) == 1);
  CHECK(mapped_files("probe-").size() == 2);

  // A module is unmapped with its last instance.
  REQUIRE(a.unload("probe").ok());
  CHECK(mapped_files("probe-").size() == 1);
  REQUIRE(b.unload("probe").ok());
  CHECK(mapped_files("probe-").empty());
}

TEST_CASE("a plugin that glibc keeps mapped after unload is reported") {
  Host h({test_plugins() / "pinned"});
  REQUIRE(h->enable("pinned").ok());
  REQUIRE(h->call_tool("touch", J("{}"), xcore::CallContext::host()).ok());
  REQUIRE(h->unload("pinned").ok());
  CHECK(h.log.contains("plugin 'pinned' stays mapped after unload"));
}

TEST_CASE("a rate limit per tenant: calls beyond it are refused with when to come back; time refills it") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  write_file(plugins / "probe" / "plugin.yaml", "id: probe\nversion: 1.0.0\nentry: libprobe.so\nlimits: {rate: {calls: 3, per_seconds: 60}}\n");
  CapturedLog log;
  auto o = test_options(tmp, plugins, log);
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  o.clock = [&] { return now; };
  Manager m(std::move(o));
  m.discover();
  REQUIRE(m.enable("probe").ok());
  auto acme = xcore::CallContext::host(), other = xcore::CallContext::host();
  acme.tenant = "acme";
  other.tenant = "other";
  for (int i = 0; i < 3; ++i) CHECK(m.call_tool("version", J("{}"), acme).ok());
  auto refused = m.call_tool("version", J("{}"), acme);
  REQUIRE(!refused.ok());
  CHECK(refused.error().code == ErrorCode::resource_exhausted);
  CHECK(J(refused.error().details).at("retry_after") == 20);  // one call per 20 s
  CHECK(m.call_tool("version", J("{}"), other).ok());          // another tenant has its own budget
  now += std::chrono::seconds(19);
  CHECK(!m.call_tool("version", J("{}"), acme).ok());
  now += std::chrono::seconds(1);
  CHECK(m.call_tool("version", J("{}"), acme).ok());
  CHECK(!m.call_tool("version", J("{}"), acme).ok());
}

TEST_CASE("secrets: a plugin reads those its manifest grants, from the host's store, trusted or sandboxed") {
  for (const char* mode : {"trusted", "sandboxed"}) {
    INFO("mode: " << mode);
    TempDir tmp;
    auto plugins = tmp / "plugins";
    stage(test_plugins() / "probe", plugins);
    write_file(plugins / "probe" / "plugin.yaml", std::string("id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: ") + mode +
                                                      "\npermissions: [\"secrets.read:api_*\"]\n");
    CapturedLog log;
    auto o = test_options(tmp, plugins, log);
    std::vector<std::string> asked;
    o.secrets = [&](std::string_view plugin, std::string_view name) -> Result<std::string> {
      asked.push_back(std::string(plugin) + "/" + std::string(name));
      if (name == "api_key") return std::string("s3cret");
      return Error{ErrorCode::not_found, "no such secret"};
    };
    Manager m(std::move(o));
    m.discover();
    REQUIRE(m.enable("probe").ok());
    auto got = m.call_action("probe", "secret", J(R"({"name":"api_key"})"), xcore::CallContext::host());
    REQUIRE_MESSAGE(got.ok(), got.error().message);
    CHECK(*got == "s3cret");
    auto missing = m.call_action("probe", "secret", J(R"({"name":"api_other"})"), xcore::CallContext::host());
    CHECK(missing.error().code == ErrorCode::not_found);
    auto denied = m.call_action("probe", "secret", J(R"({"name":"db_password"})"), xcore::CallContext::host());
    REQUIRE(!denied.ok());
    CHECK(denied.error().code == ErrorCode::permission_denied);
    CHECK(denied.error().message.find("secrets.read:db_password") != std::string::npos);
    CHECK(asked == std::vector<std::string>{"probe/api_key", "probe/api_other"});  // a denied name never reaches the store
  }
}

TEST_CASE("host services by name: the same services and checks as the fixed members, trusted or sandboxed") {
  for (const char* mode : {"trusted", "sandboxed"}) {
    INFO("mode: " << std::string(mode));
    TempDir tmp;
    auto plugins = tmp / "plugins";
    stage(test_plugins() / "probe", plugins);
    stage(example_plugins() / "core", plugins);
    write_file(plugins / "probe" / "plugin.yaml", std::string("id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: ") + mode +
                                                      "\npermissions: [\"secrets.read:api_*\", \"tools.call:core.echo\"]\n");
    CapturedLog log;
    auto o = test_options(tmp, plugins, log);
    o.secrets = [&](std::string_view, std::string_view name) -> Result<std::string> {
      if (name == "api_key") return std::string("s3cret");
      return Error{ErrorCode::not_found, "no such secret"};
    };
    Manager m(std::move(o));
    m.discover();
    REQUIRE(m.enable("core").ok());
    REQUIRE(m.enable("probe").ok());
    auto by_name = [&](std::string_view params) { return m.call_action("probe", "call_host", J(params), xcore::CallContext::host()); };

    auto secret = by_name(R"({"service":"secret","request":{"name":"api_key"}})");
    REQUIRE_MESSAGE(secret.ok(), secret.error().message);
    CHECK(secret->at("value") == "s3cret");
    auto denied = by_name(R"({"service":"secret","request":{"name":"db_password"}})");
    CHECK(denied.error().code == ErrorCode::permission_denied);
    auto echoed = by_name(R"({"service":"call_tool","request":{"name":"core.echo","arguments":{"hi":1}}})");
    REQUIRE_MESSAGE(echoed.ok(), echoed.error().message);
    CHECK(echoed->at("structuredContent") == J(R"({"hi":1})"));
    CHECK(by_name(R"({"service":"call_tool","request":{"name":"calculate","arguments":{}}})").error().code == ErrorCode::permission_denied);
    CHECK(by_name(R"({"service":"config"})")->is_object());

    auto unknown = by_name(R"({"service":"teleport"})");
    CHECK(unknown.error().code == ErrorCode::not_found);
    CHECK(unknown.error().message.find("no host service named 'teleport'") != std::string::npos);
    auto malformed = by_name(R"({"service":"secret","request":{"name":7}})");
    CHECK(malformed.error().code == ErrorCode::invalid_argument);
    CHECK(malformed.error().message.find("'name', a string") != std::string::npos);
    CHECK(by_name(R"({"service":"subscribe_hook"})").error().code == ErrorCode::invalid_argument);
  }
}

namespace {
// A registration store in memory; `broken` makes every call fail as a database that does not answer.
struct MemoryRegistrations final : RegistrationStore {
  std::map<std::string, Registration> rows;
  bool broken = false;
  Result<std::vector<Registration>> list() override {
    if (broken) return Error{ErrorCode::internal, "the database does not answer"};
    std::vector<Registration> out;
    for (const auto& [_, r] : rows) out.push_back(r);
    return out;
  }
  Result<std::optional<Registration>> find(std::string_view plugin) override {
    if (broken) return Error{ErrorCode::internal, "the database does not answer"};
    auto it = rows.find(std::string(plugin));
    return it == rows.end() ? std::nullopt : std::optional(it->second);
  }
  Result<void> put(const Registration& r) override {
    if (broken) return Error{ErrorCode::internal, "the database does not answer"};
    rows[r.plugin] = r;
    return ok();
  }
};
}  // namespace

TEST_CASE("registrations: every operation records what it changed, cascades included, and restore() brings it back") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  for (const auto& p : {example_plugins() / "core", example_plugins() / "audit", test_plugins() / "probe"}) stage(p, plugins);
  auto store = std::make_shared<MemoryRegistrations>();
  {
    CapturedLog log;
    auto o = test_options(tmp, plugins, log);
    o.registrations = store;
    Manager m(std::move(o));
    m.discover();
    REQUIRE(m.enable("audit").ok());
    REQUIRE(store->rows.size() == 2);
    CHECK(store->rows.at("audit").enabled);
    CHECK(store->rows.at("core").enabled);  // enabled as audit's dependency: recorded too
    CHECK(store->rows.at("core").version == m.info("core")->manifest.version.to_string());

    REQUIRE(m.disable("core", {.cascade = true}).ok());
    CHECK(!store->rows.at("core").enabled);
    CHECK(!store->rows.at("audit").enabled);  // reached by the cascade
    REQUIRE(m.enable("audit").ok());

    REQUIRE(m.load("probe").ok());
    CHECK(!store->rows.at("probe").enabled);  // registered, not enabled
    REQUIRE(m.set_config("probe", json::object{{"level", 4}}).ok());
    CHECK(store->rows.at("probe").config == json::object{{"level", 4}});
    CHECK(!m.set_config("probe", json::object{{"level", 9}}).ok());
    CHECK(store->rows.at("probe").config == json::object{{"level", 4}});  // a refused config is not recorded
    store->rows["gone"] = Registration{"gone", true, {}, "1.0.0"};
  }  // the Manager ends: shutting down changes no registration
  CHECK(store->rows.at("audit").enabled);

  CapturedLog log;
  auto o = test_options(tmp, plugins, log);
  o.registrations = store;
  Manager m(std::move(o));
  m.discover();
  auto problems = m.restore();
  REQUIRE(problems.ok());
  REQUIRE(problems->size() == 1);
  CHECK(problems->front().message == "registered plugin 'gone' is not in the plugin folders");
  CHECK(m.info("audit")->state == PluginState::enabled);
  CHECK(m.info("core")->state == PluginState::enabled);
  CHECK(m.info("probe")->state == PluginState::discovered);
  CHECK(m.info("probe")->config == json::object{{"level", 4}});

  // A store that cannot answer: the operation says so (the plugin itself did change).
  store->broken = true;
  auto r = m.disable("audit");
  REQUIRE(!r.ok());
  CHECK(r.error().message == "the database does not answer");
  CHECK(log.contains("cannot record the plugin's registration"));
  CHECK(!m.restore().ok());
}

TEST_CASE("apply: one plugin brought to a desired state, with every change it caused reported") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  for (const auto& p : {example_plugins() / "core", example_plugins() / "audit", test_plugins() / "probe"}) stage(p, plugins);
  auto store = std::make_shared<MemoryRegistrations>();
  CapturedLog log;
  auto o = test_options(tmp, plugins, log);
  o.registrations = store;
  Manager m(std::move(o));
  m.discover();
  auto states = [](const std::vector<PluginChange>& changes) {
    std::vector<std::string> out;
    for (const auto& c : changes) out.push_back(c.plugin + ":" + std::string(to_string(c.state)));
    return out;
  };

  auto audit = m.apply(Registration{"audit", true, {}, {}});
  REQUIRE_MESSAGE(audit.ok(), audit.error().message);
  CHECK(states(*audit) == std::vector<std::string>{"core:loaded", "audit:loaded", "core:enabled", "audit:enabled"});
  CHECK(store->rows.at("core").enabled);

  auto refused = m.apply(Registration{"core", false, {}, {}});
  CHECK(refused.error().code == ErrorCode::conflict);  // audit needs it: only with a cascade
  auto cascade = m.apply(Registration{"core", false, {}, {}}, {.cascade = true});
  REQUIRE(cascade.ok());
  CHECK(states(*cascade) == std::vector<std::string>{"audit:disabled", "core:disabled"});
  CHECK(!store->rows.at("audit").enabled);

  auto configured = m.apply(Registration{"probe", false, json::object{{"level", 2}}, {}});
  REQUIRE(configured.ok());
  CHECK(configured->empty());  // nothing ran: the config waits for the load
  CHECK(store->rows.at("probe").config == json::object{{"level", 2}});
  CHECK(m.apply(Registration{"probe", false, json::object{{"level", 9}}, {}}).error().code == ErrorCode::invalid_argument);
  CHECK(m.apply(Registration{"nowhere", true, {}, {}}).error().code == ErrorCode::not_found);
  CHECK(!store->rows.contains("nowhere"));
}

TEST_CASE("the library's threads are named for what they do") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  write_file(plugins / "probe" / "plugin.yaml", "id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: sandboxed\n");
  CapturedLog log;
  Manager m(test_options(tmp, plugins, log));
  m.discover();
  REQUIRE(m.enable("probe").ok());
  REQUIRE(m.watch(true).ok());
  Scheduler scheduler(SchedulerOptions{.manager = &m});
  std::set<std::string> names;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  for (const char* expected : {"xcore-rpc-probe", "xcore-err-probe", "xcore-watch", "xcore-sched", "xcore-job"}) {
    INFO(expected);
    CHECK(names.contains(expected));
  }
}

TEST_CASE("the host's admit policy sees each manifest before its code runs, and may refuse or tighten it") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  fs::create_directories(plugins);
  stage(example_plugins() / "core", plugins);
  stage(test_plugins() / "probe", plugins);
  CapturedLog log;
  ManagerOptions o = test_options(tmp, plugins, log);
  std::atomic<int> asked{0};
  bool refuse_core = true;
  o.admit = [&](PluginManifest& m) -> Result<void> {
    ++asked;
    if (m.id == "core" && refuse_core) return Error{ErrorCode::permission_denied, "trusted plugins are not run by this host"};
    // Tightened: probe loses every grant to call tools.
    std::erase_if(m.permissions, [](const std::string& p) { return p.starts_with("tools.call:"); });
    return ok();
  };
  Manager m(std::move(o));
  m.discover();
  auto refused = m.load("core");
  REQUIRE(!refused.ok());
  CHECK(refused.error().code == ErrorCode::permission_denied);
  CHECK(refused.error().message.find("plugin 'core' is not admitted: trusted plugins are not run by this host") != std::string::npos);
  CHECK(m.info("core")->state == PluginState::failed);
  refuse_core = false;
  REQUIRE(m.enable("core").ok());  // admitted now
  REQUIRE(m.enable("probe").ok());
  auto denied = m.call_action("probe", "call_tool", J(R"({"name":"core.echo","arguments":{}})"), CallContext::host());
  REQUIRE(!denied.ok());
  CHECK_MESSAGE(denied.error().code == ErrorCode::permission_denied, denied.error().message);
  const int before = asked.load();
  REQUIRE(m.reload("probe").ok());
  CHECK(asked.load() == before + 1);  // and again at every reload
}

TEST_CASE("shadow folders left by hosts that no longer run are removed at start; a running host's are kept") {
  TempDir tmp;
  const char* before = std::getenv("TMPDIR");
  const std::string saved = before ? before : "";
  ::setenv("TMPDIR", tmp.path().c_str(), 1);
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const auto stale = tmp / fmt::format("xcore-shadow-{}-0badf00d", gone);
  const auto alive = tmp / fmt::format("xcore-shadow-{}-0badf00d", ::getppid());
  const auto other = tmp / "xcore-shadow-notapid";
  for (const auto& d : {stale, alive, other}) write_file(d / "libcore-g1.so", "x");
  {
    Manager m{ManagerOptions{}};
    CHECK_FALSE(fs::exists(stale));
    CHECK(fs::exists(alive));
    CHECK(fs::exists(other));
  }
  if (before) ::setenv("TMPDIR", saved.c_str(), 1);
  else ::unsetenv("TMPDIR");
}

TEST_CASE("a plugin's own failure is plugin_error naming the tool or action and the plugin, never internal") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->load_all().ok());
  auto tool = h->tools().invoke("probe.boom", json::object{}, xcore::CallContext::host());
  REQUIRE(!tool.ok());
  CHECK(tool.error().code == ErrorCode::plugin_error);
  CHECK(tool.error().message == "tool 'boom' of plugin 'probe' failed: kaboom");
  auto action = h.action("probe", "boom");
  REQUIRE(!action.ok());
  CHECK(action.error().code == ErrorCode::plugin_error);
  CHECK(action.error().message == "action 'probe/boom' failed: kaboom");
  CHECK(xcore::http_status(action.error().code) == 502);
}

TEST_CASE("competencies a manifest declares are registered while its plugin is enabled, and go with it") {
  Host h({test_plugins() / "probe"});
  const auto manifest = h.plugins / "probe" / "plugin.yaml";
  std::string text = read_file(manifest);
  write_file(manifest, text + "competencies:\n  - {id: probing, name: Probing, category: diagnostics, level: 3, tools: [\"probe.*\"]}\n"
                              "  - {id: deep-probing, category: diagnostics, level: 5, prerequisites: [probing], tools: [probe.hold]}\n");
  h->discover();
  CHECK(h->competencies().list().empty());
  REQUIRE(h->enable("probe"));
  auto listed = h->competencies().list();
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].id == "deep-probing");
  CHECK(listed[0].plugin == "probe");
  CHECK(*h->competencies().tools_for({"deep-probing"}) == std::vector<std::string>{"probe.hold", "probe.*"});
  REQUIRE(h->disable("probe"));
  CHECK(h->competencies().list().empty());
  REQUIRE(h->enable("probe"));
  CHECK(h->competencies().list().size() == 2);
  REQUIRE(h->unload("probe"));
  CHECK(h->competencies().list().empty());

  // A malformed one refuses the manifest, naming the entry and the field.
  write_file(manifest, text + "competencies:\n  - {id: x, level: 7}\n");
  auto report = h->discover();
  REQUIRE(report.problems.size() == 1);
  CHECK_MESSAGE(report.problems[0].message.find("competencies[0]") != std::string::npos, report.problems[0].message);
  CHECK(report.problems[0].message.find("competency.level: expected an integer from 1 to 5") != std::string::npos);
}

TEST_CASE("a plugin declares competencies at run time: they last while this load is enabled") {
  Host h({test_plugins() / "probe"});
  REQUIRE(h->enable("probe"));
  auto declared = h.action("probe", "call_host",
                           R"({"service":"declare_competency","request":{"competency":{"id":"holding","category":"diagnostics","level":2,"tools":["probe.hold"]}}})");
  REQUIRE_MESSAGE(declared, declared.error().message);
  auto listed = h->competencies().list();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].plugin == "probe");
  CHECK(listed[0].level == 2);
  REQUIRE(h->disable("probe"));
  CHECK(h->competencies().list().empty());
  REQUIRE(h->enable("probe"));
  CHECK(h->competencies().list().size() == 1);  // the same load: still declared
  auto bad = h.action("probe", "call_host", R"({"service":"declare_competency","request":{"competency":{"id":"x","colour":"red"}}})");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("competency.colour: unknown field") != std::string::npos);
  REQUIRE(h->reload("probe"));
  CHECK(h->competencies().list().empty());  // a new load declares its own
}
