// Tenants at scale, in one process, built the way xcore-server builds one (a Manager over the plugin
// folders with its own data folder, discover, enable `core`, a Scheduler over it on the shared threads):
// RSS and threads per tenant against the process before any tenant, mapped copies of the plugin binary,
// the time to build a tenant, and echo throughput with calls spread over every tenant against calls to
// one tenant, measured in the same run. Not over HTTP: per-tenant logins (Argon2, 64 MiB each) would be
// what it measured. Prints a Markdown section for bench/RESULTS.md.
//   build/bench/bench_tenants [--tenants N] [--seconds S]      (10,000 and 3 by default)
#include <xcore/xcore.hpp>

#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

using namespace xcore;
using namespace std::chrono;
namespace fs = std::filesystem;

namespace {

long status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return -1;
}

std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& t : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Distinct files mapped that are the plugin's binary: lib<id>.so or its shadow copies, <id>-<hash>-<n>.so.
std::size_t mapped_copies(const std::string& id) {
  std::ifstream in("/proc/self/maps");
  std::set<std::string> files;
  for (std::string line; std::getline(in, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const auto path = line.substr(slash);
    const auto file = fs::path(path).filename().string();
    if (file == "lib" + id + ".so" || (file.starts_with(id + "-") && file.ends_with(".so"))) files.insert(path);
  }
  return files.size();
}

// Heap bytes in use (glibc), for what each step of building a tenant keeps.
std::int64_t heap_in_use() { return static_cast<std::int64_t>(::mallinfo2().uordblks); }
struct Steps {
  std::int64_t manager = 0, discover = 0, enable = 0, scheduler = 0;
} steps;

struct Tenant {
  std::unique_ptr<Manager> manager;
  std::unique_ptr<Scheduler> scheduler;
};

Tenant make_tenant(const fs::path& data, std::size_t i, const std::shared_ptr<SchedulerThreads>& threads) {
  ManagerOptions o;
  o.plugin_dirs = {xcore_bench::example_plugins()};
  o.data_dir = data / fmt::format("t{}", i);
  o.shadow_dir = data / "shadow";
  Tenant t;
  auto at = heap_in_use();
  auto step = [&](std::int64_t& into) {
    const auto now = heap_in_use();
    into += now - at;
    at = now;
  };
  t.manager = std::make_unique<Manager>(std::move(o));
  step(steps.manager);
  t.manager->discover();
  step(steps.discover);
  if (auto e = t.manager->enable("core"); !e) {
    fmt::print(stderr, "tenant {}: cannot enable core: {}\n", i, e.error().message);
    std::exit(1);
  }
  step(steps.enable);
  SchedulerOptions so;
  so.manager = t.manager.get();
  so.threads = threads;
  t.scheduler = std::make_unique<Scheduler>(std::move(so));
  (void)t.scheduler->restore();
  step(steps.scheduler);
  return t;
}

// Echo calls per second from `callers` threads, each call to the tenant `pick(n)` chooses.
template <typename Pick>
double echo_rate(std::vector<Tenant>& tenants, Pick pick, seconds duration, unsigned callers) {
  const auto args = boost::json::parse(xcore_bench::kArgs);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> calls{0};
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < callers; ++w)
    workers.emplace_back([&, w] {
      std::uint64_t n = w, mine = 0;
      CallContext ctx;
      ctx.principal = Principal::host();
      while (!stop.load(std::memory_order_relaxed)) {
        auto& t = tenants[pick(n)];
        n += callers;
        if (auto r = t.manager->call_action("core", "echo", args, ctx); !r) {
          fmt::print(stderr, "echo failed: {}\n", r.error().message);
          std::abort();
        }
        ++mine;
      }
      calls += mine;
    });
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& w : workers) w.join();
  return static_cast<double>(calls.load()) / static_cast<double>(duration.count());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t count = 10'000;
  long secs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string_view(argv[i]) == "--tenants") count = std::stoul(argv[i + 1]);
    else if (std::string_view(argv[i]) == "--seconds") secs = std::stol(argv[i + 1]);
  }
  const auto data = fs::temp_directory_path() / fmt::format("xcore-bench-tenants-{}", ::getpid());
  fs::create_directories(data);
  auto threads = std::make_shared<SchedulerThreads>(8);

  // The empty process: the shared threads up, one tenant built and dropped (libraries loaded, first-use
  // allocations made), the heap trimmed.
  { auto warm = make_tenant(data, 0, threads); }
  ::malloc_trim(0);
  const long rss0 = status_kb("VmRSS:");
  const auto threads0 = thread_count();

  std::vector<Tenant> tenants;
  tenants.reserve(count);
  steps = {};
  std::vector<double> build_us;
  build_us.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto start = steady_clock::now();
    tenants.push_back(make_tenant(data, i + 1, threads));
    build_us.push_back(duration<double, std::micro>(steady_clock::now() - start).count());
  }
  ::malloc_trim(0);
  const long rss1 = status_kb("VmRSS:");
  const auto threads1 = thread_count();
  const auto copies = mapped_copies("core");
  std::sort(build_us.begin(), build_us.end());

  // Echo: all calls to tenant 0, then calls spread over every tenant, then tenant 0 again.
  const unsigned callers = 2;
  const auto one_a = echo_rate(tenants, [](std::uint64_t) { return std::size_t{0}; }, seconds(secs), callers);
  const auto spread = echo_rate(tenants, [&](std::uint64_t n) { return static_cast<std::size_t>(n % tenants.size()); }, seconds(secs), callers);
  const auto one_b = echo_rate(tenants, [](std::uint64_t) { return std::size_t{0}; }, seconds(secs), callers);
  const double one = (one_a + one_b) / 2;

  // Parked, as the server parks an idle tenant: its Manager goes, its Scheduler stays (its tasks fire and
  // would start the Manager again through manager_lease).
  for (auto& t : tenants) {
    t.scheduler->detach_plugins();
    t.manager.reset();
  }
  ::malloc_trim(0);
  const long rss2 = status_kb("VmRSS:");
  const double parked_kb = static_cast<double>(rss2 - rss0) / static_cast<double>(count);

  const double per_tenant_kb = static_cast<double>(rss1 - rss0) / static_cast<double>(count);

  fmt::print("\n## Tenants at scale\n\n");
  fmt::print("Command: `build/bench/bench_tenants --tenants {} --seconds {}` (in one process, each tenant built as xcore-server builds\n"
             "one: a Manager over the example plugin folder with its own data folder, discover, enable `core`, a Scheduler on the\n"
             "shared threads; echo through `Manager::call_action` from {} threads). Targets: <= 32 KB per tenant, threads <= the\n"
             "empty process's + 8, one mapped copy per plugin binary, spread echo >= 0.9x one tenant's.\n\n",
             count, secs, callers);
  fmt::print("| measure | {} tenants | baseline (same run) | ratio |\n|---|---:|---:|---:|\n", count);
  fmt::print("| RSS | {:.1f} MB | {:.1f} MB before any tenant | {:.1f} KB per tenant |\n", rss1 / 1024.0, rss0 / 1024.0, per_tenant_kb);
  fmt::print("| RSS, every tenant parked (Scheduler kept, Manager gone) | {:.1f} MB | {:.1f} MB before any tenant | {:.1f} KB per tenant |\n", rss2 / 1024.0,
             rss0 / 1024.0, parked_kb);
  fmt::print("| threads | {} | {} before any tenant | +{} |\n", threads1, threads0, static_cast<long>(threads1) - static_cast<long>(threads0));
  fmt::print("| mapped copies of libcore.so | {} | 1 plugin binary | |\n", copies);
  fmt::print("| build a tenant (median, p99) | {:.0f} us, {:.0f} us | | |\n", build_us[build_us.size() / 2], build_us[build_us.size() * 99 / 100]);
  auto kb = [&](std::int64_t bytes) { return static_cast<double>(bytes) / 1024.0 / static_cast<double>(count); };
  fmt::print("| heap kept per tenant: Manager, discover, enable core, Scheduler | {:.1f}, {:.1f}, {:.1f}, {:.1f} KB | | |\n", kb(steps.manager),
             kb(steps.discover), kb(steps.enable), kb(steps.scheduler));
  fmt::print("| echo calls/s spread over all tenants | {:.0f} | {:.0f} to one tenant (mean of before and after) | {:.2f}x |\n", spread, one, spread / one);
  tenants.clear();
  fs::remove_all(data);
  return 0;
}
