// Hook emit with 0, 1 and 10 handlers vs calling the same handlers directly in a loop (baseline).
#include <benchmark/benchmark.h>

#include <xcore/hooks.hpp>

#include <functional>
#include <vector>

using namespace xcore;

namespace {

const json::value& payload() {
  static const json::value p = json::object{{"tool", "echo"}, {"tenant", "t"}};
  return p;
}

HookReply handler(const HookEvent& ev) {
  benchmark::DoNotOptimize(ev.payload);
  return HookReply::none();
}

void BM_DirectCalls(benchmark::State& state) {
  std::vector<std::function<HookReply(const HookEvent&)>> handlers(static_cast<std::size_t>(state.range(0)), handler);
  HookEvent ev{"e", payload(), {}};
  for (auto _ : state)
    for (auto& h : handlers) {
      auto r = h(ev);
      benchmark::DoNotOptimize(r);
    }
}
BENCHMARK(BM_DirectCalls)->Arg(0)->Arg(1)->Arg(10);

void BM_Emit(benchmark::State& state) {
  HookBus bus;
  std::vector<Subscription> subs;
  for (int i = 0; i < state.range(0); ++i) subs.push_back(bus.subscribe("e", handler).value());
  for (auto _ : state) {
    auto out = bus.emit("e", payload());
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_Emit)->Arg(0)->Arg(1)->Arg(10);

}  // namespace

BENCHMARK_MAIN();
