// The sandbox: a call round trip vs a raw pipe ping-pong of the same bytes between two processes (the
// floor any process boundary pays), cold start, and the same echo through a third-party MCP server.
#include <benchmark/benchmark.h>

#include <boost/json/serialize.hpp>
#include <fstream>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_support.hpp"
#include "support/peers.hpp"

using namespace xcore;
using namespace xcore_bench;
namespace fs = std::filesystem;

namespace {

// A copy of the example "core" plugin whose manifest says sandboxed.
fs::path sandboxed_core() {
  auto dir = fs::temp_directory_path() / "xcore-bench-sandbox" / "plugins";
  fs::remove_all(dir);
  fs::create_directories(dir / "core");
  fs::copy(example_plugins() / "core", dir / "core", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::ifstream in(dir / "core" / "plugin.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::ofstream(dir / "core" / "plugin.yaml") << "mode: sandboxed\n" << text.replace(text.find("mode: trusted\n"), 14, "");
  return dir;
}

// What the sandboxed echo sends and receives, for the pipe baseline to move the same bytes.
const std::string& request_line() {
  static const std::string line = R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":)" +
                                  std::string(kArgs) + "}}\n";
  return line;
}

void BM_RawPipePingPong(benchmark::State& state) {
  int to_child[2], to_parent[2];
  if (::pipe(to_child) || ::pipe(to_parent)) {
    state.SkipWithError("pipe failed");
    return;
  }
  const std::string& msg = request_line();
  pid_t pid = ::fork();
  if (pid == 0) {  // the child echoes every message back until its input closes
    ::close(to_child[1]);
    ::close(to_parent[0]);
    std::string buf(msg.size(), '\0');
    for (;;) {
      std::size_t got = 0;
      while (got < msg.size()) {
        ssize_t n = ::read(to_child[0], buf.data() + got, msg.size() - got);
        if (n <= 0) ::_exit(0);
        got += static_cast<std::size_t>(n);
      }
      if (::write(to_parent[1], buf.data(), buf.size()) <= 0) ::_exit(0);
    }
  }
  ::close(to_child[0]);
  ::close(to_parent[1]);
  std::string back(msg.size(), '\0');
  for (auto _ : state) {
    if (::write(to_child[1], msg.data(), msg.size()) <= 0) break;
    std::size_t got = 0;
    while (got < msg.size()) got += static_cast<std::size_t>(::read(to_parent[0], back.data() + got, msg.size() - got));
  }
  ::close(to_child[1]);
  ::close(to_parent[0]);
  ::waitpid(pid, nullptr, 0);
}
BENCHMARK(BM_RawPipePingPong)->UseRealTime();

// A Manager with the sandboxed core plugin enabled; null (the benchmark skipped with the reason) if it
// does not start.
std::unique_ptr<Manager> enabled_core(benchmark::State& state, ManagerOptions o = {}) {
  o.plugin_dirs = {sandboxed_core()};
  auto m = std::make_unique<Manager>(std::move(o));
  m->discover();
  if (auto r = m->enable("core"); !r) {
    state.SkipWithError(r.error().message.c_str());
    return nullptr;
  }
  return m;
}

void BM_SandboxedEcho(benchmark::State& state) {
  auto m = enabled_core(state);
  if (!m) return;
  const json::value args = json::parse(kArgs);
  for (auto _ : state) {
    auto r = m->call_tool("echo", args, xcore::CallContext::host());
    if (!r) state.SkipWithError(r.error().message.c_str());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_SandboxedEcho)->UseRealTime();

// Spawn with full isolation to the first answered call, then unload.
void BM_SandboxColdStart(benchmark::State& state) {
  ManagerOptions o;
  o.plugin_dirs = {sandboxed_core()};
  Manager m(o);
  m.discover();
  const json::value args = json::parse(kArgs);
  for (auto _ : state) {
    if (auto r = m.enable("core"); !r) {
      state.SkipWithError(r.error().message.c_str());
      return;
    }
    auto r = m.call_tool("echo", args, xcore::CallContext::host());
    benchmark::DoNotOptimize(r);
    state.PauseTiming();
    (void)m.unload("core");
    state.ResumeTiming();
  }
}
BENCHMARK(BM_SandboxColdStart)->Unit(benchmark::kMillisecond)->UseRealTime();

// A crash (SIGKILL to the plugin's process group) to the first answered call after it: detection, reap,
// backoff (set to 1 ms here), spawn, handshake, load and enable. Compare with the cold start above.
void BM_SandboxRestartAfterCrash(benchmark::State& state) {
  ManagerOptions o;
  o.crash_budget = 1u << 30;
  o.crash_window = std::chrono::seconds(0);  // every crash the first: no doubling of the backoff
  o.restart_backoff = std::chrono::milliseconds(1);
  auto m = enabled_core(state, std::move(o));
  if (!m) return;
  const json::value args = json::parse(kArgs);
  for (auto _ : state) {
    auto pid = m->info("core")->runner.at("pid").to_number<int>();
    ::kill(-pid, SIGKILL);
    for (int tries = 0; tries < 100; ++tries)
      if (m->call_tool("echo", args, xcore::CallContext::host())) break;
  }
}
BENCHMARK(BM_SandboxRestartAfterCrash)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same echo through @modelcontextprotocol/server-everything (node), if tests/peers/install.sh ran.
void BM_ServerEverythingEcho(benchmark::State& state) {
  const auto js = xcore_test::peer_script("server-everything");
  if (!fs::exists(js)) {
    state.SkipWithError("server-everything not installed (tests/peers/install.sh)");
    return;
  }
  auto dir = fs::temp_directory_path() / "xcore-bench-sandbox" / "peers";
  fs::create_directories(dir / "everything");
  std::ofstream(dir / "everything" / "plugin.yaml") << "id: everything\nversion: 2026.8.31\nmode: sandboxed\ncommand: [node, " << js.string()
                                                    << ", stdio]\npermissions: [\"fs.read:" << xcore_test::peers_dir().string() << "\"]\n";
  ManagerOptions o;
  o.plugin_dirs = {dir};
  Manager m(o);
  m.discover();
  if (auto r = m.enable("everything"); !r) {
    state.SkipWithError(r.error().message.c_str());
    return;
  }
  const json::value args = json::parse(R"({"message":"hello world, this is a benchmark payload of about a hundred bytes......"})");
  for (auto _ : state) {
    auto r = m.call_tool("echo", args, xcore::CallContext::host());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ServerEverythingEcho)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
