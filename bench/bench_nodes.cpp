// Remote nodes, measured on loopback: a tool call through a real xcore-node beside a bare Boost.Beast
// WebSocket echo (same machine, same run), the host's memory per connected idle node, and the time from a
// node's start to its tools being listed. Prints a Markdown section for bench/RESULTS.md.
//   build/bench/bench_nodes [--nodes 100] [--calls 2000]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <xcore/hooks.hpp>
#include <xcore/nodes.hpp>
#include <xcore/tools.hpp>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

pid_t spawn_node(int port, const std::string& token, const std::string& name, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{XCORE_NODE_PATH, "--server", fmt::format("ws://127.0.0.1:{}/nodes", port), "--token", token, "--name", name};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  pid_t pid = -1;
  posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

void end(pid_t pid) {
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

template <class F>
bool wait_for(F ready, std::chrono::seconds limit) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return ready();
}

// The baseline: a synchronous Beast echo server and client, the least a WebSocket round trip costs here.
double raw_round_trip_us(int calls, int batches) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acceptor.local_endpoint().port();
  std::thread server([&] {
    tcp::socket s(ioc);
    acceptor.accept(s);
    s.set_option(tcp::no_delay(true));
    websocket::stream<tcp::socket> ws(std::move(s));
    ws.accept();
    beast::flat_buffer buf;
    beast::error_code ec;
    for (;;) {
      ws.read(buf, ec);
      if (ec) return;
      ws.text(true);
      ws.write(buf.data(), ec);
      buf.consume(buf.size());
      if (ec) return;
    }
  });
  tcp::socket c(ioc);
  c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  c.set_option(tcp::no_delay(true));
  websocket::stream<tcp::socket> ws(std::move(c));
  ws.handshake("127.0.0.1", "/");
  const std::string msg = R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}})";
  std::vector<double> per_batch;
  beast::flat_buffer buf;
  for (int b = 0; b < batches; ++b) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) {
      ws.text(true);
      ws.write(asio::buffer(msg));
      ws.read(buf);
      buf.consume(buf.size());
    }
    per_batch.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls);
  }
  ws.close(websocket::close_code::normal);
  server.join();
  return median(per_batch);
}

struct Hub {
  xcore::HookBus bus;
  xcore::ToolRegistry tools{&bus};
  std::unique_ptr<xcore::NodeHub> hub;
  Hub() {
    xcore::NodeHubOptions o;
    o.authenticate = [](std::string_view token, std::string_view name) -> xcore::Result<xcore::NodeIdentity> {
      if (token != "bench-token") return xcore::Error{xcore::ErrorCode::unauthenticated, "no"};
      return xcore::NodeIdentity{"t", std::string(name), {}};
    };
    o.registry_for = [this](const std::string&) -> xcore::Result<xcore::NodeRegistry> { return xcore::NodeRegistry{&tools, nullptr}; };
    o.max_nodes = 10000;
    hub = std::make_unique<xcore::NodeHub>(o);
    auto port = hub->start();
    if (!port) throw std::runtime_error(port.error().message);
  }
};

}  // namespace

int main(int argc, char** argv) {
  int nodes = 100, calls = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--nodes") == 0) nodes = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--calls") == 0) calls = std::atoi(argv[i + 1]);
  }
  constexpr int kBatches = 7;
  Hub h;
  const int port = h.hub->port();
  xcore::CallContext ctx;
  ctx.tenant = "t";
  ctx.principal = xcore::Principal::host();

  // Round trips: the node serves the core example plugin's echo beside its native tools.
  pid_t echo_node = spawn_node(port, "bench-token", "edge", {"--plugins", XCORE_EXAMPLE_PLUGIN_DIR});
  if (!wait_for([&] { return h.hub->find("t", "edge").has_value() && h.tools.find("edge.echo", "t").has_value(); }, std::chrono::seconds(30))) {
    std::fprintf(stderr, "the node did not come online with edge.echo\n");
    end(echo_node);
    return 1;
  }
  const auto args = boost::json::parse(R"({"text":"hello"})");
  for (int i = 0; i < 200; ++i) (void)h.tools.invoke("edge.echo", args, ctx);  // warm up
  std::vector<double> node_batches;
  for (int b = 0; b < kBatches; ++b) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) {
      auto r = h.tools.invoke("edge.echo", args, ctx);
      if (!r || r->is_error) {
        std::fprintf(stderr, "echo failed after %d calls: %s\n", i, r ? "isError" : r.error().message.c_str());
        for (const auto& t : h.tools.list()) std::fprintf(stderr, "  listed: %s\n", t.qualified_name.c_str());
        end(echo_node);
        return 1;
      }
    }
    node_batches.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls);
  }
  end(echo_node);
  const double node_us = median(node_batches);
  const double raw_us = raw_round_trip_us(calls, kBatches);

  // Start to listed, a few times.
  std::vector<double> start_ms;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    pid_t p = spawn_node(port, "bench-token", "fresh");
    wait_for([&] { return h.hub->find("t", "fresh").has_value(); }, std::chrono::seconds(30));
    start_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    end(p);
    wait_for([&] { return !h.hub->find("t", "fresh").has_value(); }, std::chrono::seconds(10));
  }

  // Memory: the host's resident size before and with `nodes` idle nodes connected.
  const long before = rss_kib();
  std::vector<pid_t> idle;
  for (int i = 0; i < nodes; ++i) idle.push_back(spawn_node(port, "bench-token", fmt::format("idle{}", i)));
  const bool all = wait_for([&] { return static_cast<int>(h.hub->online("t").size()) >= nodes; }, std::chrono::seconds(120));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long with = rss_kib();
  const auto connected = h.hub->online("t").size();
  for (auto p : idle) end(p);

  std::printf("\n## Remote nodes (bench/bench_nodes.cpp)\n\n");
  std::printf("Command: `build/bench/bench_nodes --nodes %d --calls %d` (medians of %d batches; loopback, 2 cores)\n\n", nodes, calls, kBatches);
  std::printf("| what | xcore | baseline | ratio |\n|---|---|---|---|\n");
  std::printf("| tool call round trip through a node (`edge.echo`: registry, JSON-RPC over WebSocket, the node's Manager) | %.1f us | %.1f us (bare Beast echo of the same request) | %.2fx |\n",
              node_us, raw_us, node_us / raw_us);
  std::printf("| host memory per connected idle node (%zu nodes%s) | %.1f KiB | %ld KiB before any node | |\n", connected, all ? "" : ", not all came online",
              static_cast<double>(with - before) / std::max<std::size_t>(1, connected), before);
  std::printf("| node start to its tools listed on the host | %.0f ms | | |\n", median(start_ms));
  return 0;
}
