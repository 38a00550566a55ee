// xcore's url: client: a Manager with one remote MCP plugin calling its echo tool, one call at a time, as
// bench/remote_mcp.sh's counterpart to the TypeScript SDK's client (bench/sdk_echo.mjs). Prints one JSON line.
//   bench_remote URL CALLS
#include <xcore/manager.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "support/test_support.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_remote URL [CALLS]\n");
    return 2;
  }
  const int calls = argc > 2 ? std::atoi(argv[2]) : 2000;
  xcore_test::TempDir tmp;
  xcore_test::write_file(tmp / "plugins" / "remote" / "plugin.yaml", std::string("id: remote\nversion: 1.0.0\nurl: ") + argv[1] + "\n");
  xcore_test::CapturedLog log;
  xcore::Manager manager(xcore_test::test_options(tmp, tmp / "plugins", log));
  manager.discover();
  if (auto e = manager.enable("remote"); !e) {
    std::fprintf(stderr, "cannot enable the remote plugin: %s\n", e.error().message.c_str());
    return 1;
  }
  const auto args = boost::json::value(boost::json::object{{"message", "hello from the bench"}});
  const auto ctx = xcore::CallContext::host();
  auto call = [&] {
    auto r = manager.call_tool("remote.echo", args, ctx);
    if (!r) {
      std::fprintf(stderr, "echo failed: %s\n", r.error().message.c_str());
      std::exit(1);
    }
  };
  for (int i = 0; i < 100; ++i) call();  // warm up
  std::vector<double> times;
  times.reserve(static_cast<std::size_t>(calls));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(times.begin(), times.end());
  std::printf("{\"calls_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", calls / seconds, times[times.size() / 2], times[times.size() * 99 / 100]);
  return 0;
}
