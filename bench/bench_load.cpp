// Plugin load and hot reload vs a raw copy + dlopen + dlsym + dlclose of the same binary (baseline).
#include <benchmark/benchmark.h>

#include <dlfcn.h>

#include "bench_support.hpp"

using namespace xcore;
using namespace xcore_bench;
namespace fs = std::filesystem;

namespace {

fs::path scratch() {
  auto p = fs::temp_directory_path() / "xcore-bench-load";
  fs::create_directories(p);
  return p;
}

// The same file work the Manager does: a fresh private copy per load, removed after unload.
void raw_dlopen(benchmark::State& state, const fs::path& so) {
  std::uint64_t n = 0;
  for (auto _ : state) {
    auto copy = scratch() / ("raw-" + std::to_string(n++) + so.extension().string());
    fs::copy_file(so, copy, fs::copy_options::overwrite_existing);
    void* h = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    benchmark::DoNotOptimize(dlsym(h, "xcore_plugin_entry"));
    dlclose(h);
    fs::remove(copy);
  }
}
void BM_RawDlopenCore(benchmark::State& state) { raw_dlopen(state, example_plugins() / "core" / "libcore.so"); }
void BM_RawDlopenProbe(benchmark::State& state) { raw_dlopen(state, test_plugins() / "probe" / "libprobe.so"); }
BENCHMARK(BM_RawDlopenCore)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RawDlopenProbe)->Unit(benchmark::kMicrosecond);

// load + enable + unload of "core": manifest already discovered, ABI tag read, shadow copy, dlopen,
// on_load, tool registration, on_enable, then the reverse.
void BM_LoadUnload(benchmark::State& state) {
  ManagerOptions o;
  o.plugin_dirs = {example_plugins()};
  Manager m(o);
  m.discover();
  for (auto _ : state) {
    if (!m.enable("core") || !m.unload("core")) {
      state.SkipWithError("load failed");
      return;
    }
  }
}
BENCHMARK(BM_LoadUnload)->Unit(benchmark::kMicrosecond);

// A hot reload of an enabled plugin: re-read the manifest, new generation, swap, drain, unload old.
void BM_Reload(benchmark::State& state) {
  auto dir = scratch() / "plugins";
  fs::remove_all(dir);
  fs::create_directories(dir / "probe");
  fs::copy(test_plugins() / "probe", dir / "probe", fs::copy_options::overwrite_existing | fs::copy_options::recursive);
  ManagerOptions o;
  o.plugin_dirs = {dir};
  Manager m(o);
  m.discover();
  if (auto r = m.enable("probe"); !r) {
    state.SkipWithError(r.error().message.c_str());
    return;
  }
  for (auto _ : state) {
    if (auto r = m.reload("probe"); !r) {
      state.SkipWithError(r.error().message.c_str());
      return;
    }
  }
}
BENCHMARK(BM_Reload)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
