// Tool invocation: a direct C++ call of echo's logic (baseline) vs the registry, vs a trusted plugin.
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

using namespace xcore;
using namespace xcore_bench;

namespace {

// What the echo tool does, as a plain C++ function: the baseline.
ToolResult echo(const json::value& args) { return ToolResult::structured_value(args); }

void BM_DirectEcho(benchmark::State& state) {
  const json::value args = json::parse(kArgs);
  for (auto _ : state) {
    auto r = echo(args);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_DirectEcho);

// The registry around the same function (lookup, validation, metrics), without a plugin boundary.
void BM_RegistryHostEcho(benchmark::State& state) {
  ToolRegistry reg;
  ToolSpec spec;
  spec.name = "echo";
  spec.input_schema = json::parse(R"({"type":"object","properties":{"message":{"type":"string"},"count":{"type":"integer"},
      "tags":{"type":"array","items":{"type":"string"}},"nested":{"type":"object"}},"required":["message"]})").as_object();
  auto h = reg.add(spec, [](const json::value& a, const CallContext&) -> Result<ToolResult> { return echo(a); });
  const json::value args = json::parse(kArgs);
  for (auto _ : state) {
    auto r = reg.invoke("echo", args, xcore::CallContext::host());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_RegistryHostEcho);

// Calls the example plugins' echo through Manager -> registry -> C ABI -> SDK and back.
void plugin_echo(benchmark::State& state, bool with_audit) {
  ManagerOptions o;
  o.plugin_dirs = {example_plugins()};
  Manager m(o);
  m.discover();
  if (auto r = with_audit ? m.load_all() : m.enable("core"); !r) {
    state.SkipWithError(r.error().message.c_str());
    return;
  }
  const json::value args = json::parse(kArgs);
  for (auto _ : state) {
    auto r = m.call_tool("echo", args, xcore::CallContext::host());
    benchmark::DoNotOptimize(r);
  }
}

// The trusted "core" plugin's echo.
void BM_PluginEcho(benchmark::State& state) { plugin_echo(state, false); }
BENCHMARK(BM_PluginEcho);

// The same, with the audit plugin's before/after hooks on every call.
void BM_PluginEchoAudited(benchmark::State& state) { plugin_echo(state, true); }
BENCHMARK(BM_PluginEchoAudited);

}  // namespace

BENCHMARK_MAIN();
