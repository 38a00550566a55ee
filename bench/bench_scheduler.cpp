// The scheduler with 100,000 jobs: memory per job, the cost of a tick, and how late jobs fire while the
// machine is busy, each beside a baseline from the same run.
#include <benchmark/benchmark.h>

#include <xcore/xcore.hpp>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <atomic>
#include <malloc.h>
#include <mutex>
#include <random>
#include <thread>
#include <unistd.h>

using namespace xcore;
using namespace std::chrono;

namespace {

constexpr int kJobs = 100000;

// Heap bytes in use (not RSS: freed memory stays resident between repetitions).
std::size_t heap_bytes() { return mallinfo2().uordblks; }

JobSpec interval_job(int seconds) {
  JobSpec j;
  j.trigger.kind = Trigger::Kind::interval;
  j.trigger.interval = std::chrono::seconds(seconds);
  j.target.kind = JobTarget::Kind::callback;
  j.target.name = "noop";
  return j;
}

SchedulerOptions options(std::function<system_clock::time_point()> clock, bool background) {
  SchedulerOptions o;
  o.clock = std::move(clock);
  o.run_inline = !background;
  if (background) o.threads = std::make_shared<SchedulerThreads>(2);
  o.background = background;
  o.history_per_job = 2;
  o.callbacks["noop"] = [](const json::value&, const JobSpec&) -> Result<json::value> { return json::value(nullptr); };
  return o;
}

// Adding 100,000 jobs: the time per add, and the heap memory each holds (counter bytes_per_job).
void BM_Add100kJobs(benchmark::State& state) {
  for (auto _ : state) {
    auto t = system_clock::now();
    const auto before = heap_bytes();
    Scheduler s(options([t] { return t; }, false));
    std::mt19937 rng(7);
    for (int i = 0; i < kJobs; ++i) (void)s.add(interval_job(60 + static_cast<int>(rng() % 3600)));
    state.counters["bytes_per_job"] = static_cast<double>(heap_bytes() - before) / kJobs;
    state.PauseTiming();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kJobs);
}
BENCHMARK(BM_Add100kJobs)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// Baseline for a tick: a scheduler with no jobs.
void BM_TickEmpty(benchmark::State& state) {
  auto t = system_clock::now();
  Scheduler s(options([&t] { return t; }, false));
  for (auto _ : state) benchmark::DoNotOptimize(s.tick());
}
BENCHMARK(BM_TickEmpty);

// A tick with 100,000 jobs and nothing due: what the scheduler pays every time it wakes.
void BM_Tick100kIdle(benchmark::State& state) {
  auto t = floor<seconds>(system_clock::now());
  system_clock::time_point now = t;
  Scheduler s(options([&now] { return now; }, false));
  for (int i = 0; i < kJobs; ++i) (void)s.add(interval_job(3600 + i % 3600));
  for (auto _ : state) benchmark::DoNotOptimize(s.tick());
}
BENCHMARK(BM_Tick100kIdle);

// A tick with 100,000 jobs of which 100 are due (each run recorded, history kept, next fire computed).
void BM_Tick100kWith100Due(benchmark::State& state) {
  auto t0 = floor<seconds>(system_clock::now());
  system_clock::time_point now = t0;
  Scheduler s(options([&now] { return now; }, false));
  // 100 jobs fire every second; the rest hourly or later.
  for (int i = 0; i < 100; ++i) (void)s.add(interval_job(1));
  for (int i = 100; i < kJobs; ++i) (void)s.add(interval_job(3600 + i % 3600));
  for (auto _ : state) {
    now += seconds(1);
    benchmark::DoNotOptimize(s.tick());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_Tick100kWith100Due)->Unit(benchmark::kMicrosecond);

// Lateness while the machine is busy (two spinning threads on the two CPUs): 100,000 jobs on the real
// clock, each firing every 10 s to 10 min, measured from each run's scheduled time to its start. Baseline:
// a thread that sleeps until a deadline every 10 ms under the same load. Figures are reported as the
// benchmark's time (manual time): p50 and p99 of one 8-second experiment.
struct Lateness {
  double p50 = 0, p99 = 0, base_p50 = 0, base_p99 = 0;
  std::size_t fires = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

const Lateness& lateness() {
  static const Lateness result = [] {
    Lateness out;
    std::atomic<bool> stop = false;
    std::vector<std::thread> load;
    for (int i = 0; i < 2; ++i)
      load.emplace_back([&] {
        volatile std::uint64_t x = 0;
        while (!stop.load(std::memory_order_relaxed)) x = x + 1;
      });
    std::vector<double> base;
    std::thread sleeper([&] {
      auto next = steady_clock::now();
      while (!stop) {
        next += milliseconds(10);
        std::this_thread::sleep_until(next);
        base.push_back(duration<double>(steady_clock::now() - next).count());
      }
    });
    std::vector<std::string> ids;
    {
      Scheduler s(options(nullptr, true));
      std::mt19937 rng(11);
      const auto now = floor<seconds>(system_clock::now());
      for (int i = 0; i < kJobs; ++i) {
        // Every 10 s to 10 min, in random phase: about 700 fires a second in all.
        const int every = 10 + static_cast<int>(rng() % 591);
        auto j = interval_job(every);
        j.trigger.start = SysSeconds{(now - seconds(rng() % static_cast<unsigned>(every))).time_since_epoch()};
        ids.push_back(*s.add(std::move(j)));
      }
      std::this_thread::sleep_for(seconds(8));
      std::vector<double> late;
      for (const auto& id : ids)
        for (const auto& r : s.runs(id, 2).value_or(std::vector<RunRecord>{}))
          if (r.scheduled_for && r.status != RunStatus::skipped)
            late.push_back(duration<double>(r.started - system_clock::time_point(r.scheduled_for->time_since_epoch())).count());
      out.fires = late.size();
      out.p50 = percentile(late, 0.5);
      out.p99 = percentile(late, 0.99);
    }
    stop = true;
    sleeper.join();
    for (auto& t : load) t.join();
    out.base_p50 = percentile(base, 0.5);
    out.base_p99 = percentile(base, 0.99);
    return out;
  }();
  return result;
}

void report(benchmark::State& state, double seconds_value) {
  for (auto _ : state) state.SetIterationTime(seconds_value);
  state.counters["fires_sampled"] = static_cast<double>(lateness().fires);
}
void BM_FireLatenessP50(benchmark::State& state) { report(state, lateness().p50); }
void BM_FireLatenessP99(benchmark::State& state) { report(state, lateness().p99); }
void BM_SleepUntilLatenessP50(benchmark::State& state) { report(state, lateness().base_p50); }
void BM_SleepUntilLatenessP99(benchmark::State& state) { report(state, lateness().base_p99); }
BENCHMARK(BM_FireLatenessP50)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FireLatenessP99)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SleepUntilLatenessP50)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SleepUntilLatenessP99)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
