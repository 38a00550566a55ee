// The scheduler, driven by a clock the test moves: fires, misfires, coalescing, max instances, pause,
// restarts, crashes mid-run, targets (tools, actions, callbacks) and plugins' own schedules.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>

using namespace xcore;
using namespace xcore_test;
using namespace std::chrono;

namespace {

struct FakeClock {
  system_clock::time_point now = system_clock::time_point{} + (*parse_iso8601("2026-11-22T07:59:30Z")).time_since_epoch();
  void advance(system_clock::duration d) { now += d; }
  void set(const char* iso) { now = system_clock::time_point{(*parse_iso8601(iso)).time_since_epoch()}; }
};

JobSpec job(const std::string& trigger_json, const std::string& target_json = R"({"callback":"count"})", const std::string& extra = "") {
  auto text = "{\"trigger\":" + trigger_json + ",\"target\":" + target_json + extra + "}";
  auto j = JobSpec::from_json(J(text));
  REQUIRE_MESSAGE(j.ok(), j.error().message);
  return *j;
}

struct Fixture {
  FakeClock clock;
  std::shared_ptr<JobStore> store = make_memory_job_store();
  std::atomic<int> calls{0};
  std::vector<std::string> logged;
  // workers 0: jobs run inside tick(); otherwise on a pool of their own.
  SchedulerOptions options(unsigned workers = 0) {
    SchedulerOptions o;
    o.clock = [this] { return clock.now; };
    o.store = store;
    o.run_inline = workers == 0;
    if (workers > 0) o.threads = std::make_shared<SchedulerThreads>(workers);
    o.background = false;
    o.callbacks["count"] = [this](const json::value&, const JobSpec&) -> Result<json::value> { return json::value(++calls); };
    o.callbacks["fail"] = [](const json::value&, const JobSpec&) -> Result<json::value> { return Error{ErrorCode::unavailable, "the downstream is down"}; };
    o.log = [this](LogLevel, std::string_view, std::string_view m) { logged.emplace_back(m); };
    return o;
  }
};

std::vector<std::string> statuses(const std::vector<RunRecord>& runs) {
  std::vector<std::string> out;
  for (const auto& r : runs) out.emplace_back(to_string(r.status));
  return out;
}

}  // namespace

TEST_CASE("a cron job fires at its times, not before, and each fire is recorded once") {
  Fixture f;
  Scheduler s(f.options());
  auto id = s.add(job(R"({"type":"cron","expression":"0 8 * * *"})"));
  REQUIRE(id.ok());
  CHECK(format_iso8601(*s.get(*id)->next_run) == "2026-11-22T08:00:00Z");
  auto preview = s.preview(*id, 3);
  REQUIRE(preview.size() == 3);
  CHECK(format_iso8601(preview[2]) == "2026-11-24T08:00:00Z");
  CHECK(s.tick() == 0);
  f.clock.advance(seconds(29));
  CHECK(s.tick() == 0);  // 07:59:59
  f.clock.advance(seconds(1));
  CHECK(s.tick() == 1);  // 08:00:00
  CHECK(s.tick() == 0);  // not twice
  CHECK(f.calls == 1);
  auto runs = s.runs(*id).value();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].status == RunStatus::succeeded);
  CHECK(runs[0].result == 1);
  CHECK(format_iso8601(*runs[0].scheduled_for) == "2026-11-22T08:00:00Z");
  CHECK(format_iso8601(*s.get(*id)->next_run) == "2026-11-23T08:00:00Z");
  auto rj = runs[0].to_json();
  for (const char* k : {"id", "status", "start", "end", "duration_ms", "result"}) CHECK_MESSAGE(rj.contains(k), k);
}

TEST_CASE("interval jobs, with jitter inside its bounds, and one-shot dates") {
  Fixture f;
  Scheduler s(f.options());
  auto every = s.add(job(R"({"type":"interval","seconds":30,"jitter_seconds":5})"));
  REQUIRE(every.ok());
  auto times = s.preview(*every, 20);
  auto created = *s.get(*every)->spec.trigger.start;
  for (std::size_t k = 0; k < times.size(); ++k) {
    auto grid = created + seconds(30 * (k + 1));
    CHECK(times[k] >= grid);
    CHECK(times[k] <= grid + seconds(5));
  }
  CHECK(s.preview(*every, 20) == times);  // the jitter is stable per job

  auto once = s.add(job(R"({"type":"date","at":"2026-11-22T08:00:10Z"})"));
  REQUIRE(once.ok());
  f.clock.set("2026-11-22T08:00:10Z");
  s.tick();
  CHECK(s.runs(*once).value().size() == 1);
  CHECK(!s.get(*once)->next_run);
  f.clock.advance(hours(24));
  s.tick();
  CHECK(s.runs(*once).value().size() == 1);
  auto past = s.add(job(R"({"type":"date","at":"2020-01-01T00:00:00Z"})"));
  REQUIRE(!past.ok());
  CHECK(past.error().message.find("has passed") != std::string::npos);
}

TEST_CASE("misfires: past the grace a fire is skipped; within it, coalesced into one run or run each") {
  Fixture f;
  Scheduler s(f.options());
  auto coalesced = s.add(job(R"({"type":"cron","expression":"* * * * *"})", R"({"callback":"count"})", R"(,"misfire_grace_seconds":300)"));
  auto each = s.add(job(R"({"type":"cron","expression":"* * * * *"})", R"({"callback":"count"})", R"(,"misfire_grace_seconds":300,"coalesce":false,"max_instances":5)"));
  auto strict = s.add(job(R"({"type":"cron","expression":"* * * * *"})", R"({"callback":"count"})", R"(,"misfire_grace_seconds":10)"));
  REQUIRE((coalesced.ok() && each.ok() && strict.ok()));
  // The machine slept from 08:00 to 08:09:30: fires at 08:00 ... 08:09.
  f.clock.set("2026-11-22T08:09:30Z");
  s.tick();
  auto c = s.runs(*coalesced).value();
  CHECK(statuses(c) == std::vector<std::string>{"skipped", "succeeded"});  // newest first
  CHECK(c[0].reason.find("missed 9 fire time(s)") != std::string::npos);
  CHECK(format_iso8601(*c[1].scheduled_for) == "2026-11-22T08:09:00Z");
  auto e = s.runs(*each).value();
  CHECK(std::count_if(e.begin(), e.end(), [](auto& r) { return r.status == RunStatus::succeeded; }) == 5);  // 08:05 to 08:09
  CHECK(e[0].reason.find("missed 5 fire time(s)") != std::string::npos);
  auto st = s.runs(*strict).value();
  CHECK(statuses(st) == std::vector<std::string>{"skipped"});
  CHECK(st[0].reason.find("missed 10 fire time(s): later than the misfire grace of 10 s") != std::string::npos);
  CHECK(format_iso8601(*s.get(*strict)->next_run) == "2026-11-22T08:10:00Z");
}

TEST_CASE("max instances: a fire while the last run is still going is skipped, and says why") {
  Fixture f;
  auto o = f.options(/*workers=*/2);
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  int started = 0;
  o.callbacks["slow"] = [&](const json::value&, const JobSpec&) -> Result<json::value> {
    std::unique_lock lock(m);
    ++started;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return json::value("done");
  };
  Scheduler s(std::move(o));
  auto id = s.add(job(R"({"type":"interval","seconds":60})", R"({"callback":"slow"})"));
  REQUIRE(id.ok());
  f.clock.advance(seconds(60));
  CHECK(s.tick() == 1);
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return started == 1; });
  }
  f.clock.advance(seconds(60));
  CHECK(s.tick() == 0);
  auto manual = s.run_now(*id);
  CHECK(manual.error().code == ErrorCode::resource_exhausted);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  s.wait_idle();
  auto runs = s.runs(*id).value();
  CHECK(statuses(runs) == std::vector<std::string>{"skipped", "skipped", "succeeded"});
  CHECK(runs[1].reason.find("max_instances 1") != std::string::npos);
  CHECK(runs[2].result == "done");
}

// A store that, when a run's end is written, asks the scheduler whether the job still counts as running.
class WatchingStore final : public JobStore {
 public:
  explicit WatchingStore(std::shared_ptr<JobStore> inner) : inner_(std::move(inner)) {}
  std::function<void(const RunRecord&)> on_finish;
  Result<void> put_job(const StoredJob& j) override { return inner_->put_job(j); }
  Result<void> remove_job(std::string_view id) override { return inner_->remove_job(id); }
  Result<std::vector<StoredJob>> jobs() override { return inner_->jobs(); }
  Result<void> start_run(const RunRecord& r, std::optional<SysSeconds> next) override { return inner_->start_run(r, next); }
  Result<void> set_next_run(std::string_view id, std::optional<SysSeconds> next) override { return inner_->set_next_run(id, next); }
  Result<void> finish_run(const RunRecord& r) override {
    auto done = inner_->finish_run(r);
    if (on_finish) on_finish(r);
    return done;
  }
  Result<void> add_run(const RunRecord& r) override { return inner_->add_run(r); }
  Result<std::vector<RunRecord>> runs(std::string_view id, std::size_t limit) override { return inner_->runs(id, limit); }
  Result<std::size_t> interrupt_running(std::chrono::system_clock::time_point now) override { return inner_->interrupt_running(now); }
  Result<void> prune_runs(std::string_view id, std::size_t keep) override { return inner_->prune_runs(id, keep); }

 private:
  std::shared_ptr<JobStore> inner_;
};

TEST_CASE("once a run's end is recorded its instance is free: a run asked for then is never refused by max_instances") {
  Fixture f;
  auto store = std::make_shared<WatchingStore>(f.store);
  auto o = f.options();
  o.store = store;
  Scheduler s(std::move(o));
  auto id = s.add(job(R"({"type":"interval","seconds":3600})"));
  REQUIRE(id.ok());
  std::vector<unsigned> running_when_recorded;
  store->on_finish = [&](const RunRecord& r) { running_when_recorded.push_back(s.get(r.job_id)->running); };
  REQUIRE(s.run_now(*id).ok());
  REQUIRE(s.run_now(*id).ok());  // the first is recorded as ended: this one must be admitted
  CHECK(running_when_recorded == std::vector<unsigned>{0, 0});
  CHECK(statuses(s.runs(*id).value()) == std::vector<std::string>{"succeeded", "succeeded"});
}

TEST_CASE("pause and resume; update and remove; failures are recorded with their error") {
  Fixture f;
  Scheduler s(f.options());
  auto id = s.add(job(R"({"type":"interval","seconds":60})", R"({"callback":"fail"})"));
  REQUIRE(id.ok());
  REQUIRE(s.pause(*id).ok());
  f.clock.advance(minutes(5));
  CHECK(s.tick() == 0);
  REQUIRE(s.resume(*id).ok());
  CHECK(s.tick() == 0);  // nothing made up for the pause
  f.clock.advance(seconds(60));
  CHECK(s.tick() == 1);
  auto runs = s.runs(*id).value();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].status == RunStatus::failed);
  CHECK(runs[0].error == "unavailable: the downstream is down");
  REQUIRE(s.update(*id, job(R"({"type":"cron","expression":"0 0 1 1 *"})")).ok());
  CHECK(format_iso8601(*s.get(*id)->next_run) == "2027-01-01T00:00:00Z");
  REQUIRE(s.remove(*id).ok());
  CHECK(!s.get(*id));
  CHECK(s.remove(*id).error().code == ErrorCode::not_found);
}

TEST_CASE("a restart keeps jobs and their next fire; a run left running by a crash is interrupted") {
  Fixture f;
  std::string id;
  {
    Scheduler s(f.options());
    id = *s.add(job(R"({"type":"cron","expression":"0 9 * * *"})", R"({"callback":"count"})", R"(,"name":"nine")"));
  }
  // The process died in the middle of a run: its record says running.
  RunRecord crashed;
  crashed.id = "r1";
  crashed.job_id = id;
  crashed.reason = "schedule";
  crashed.started = f.clock.now;
  REQUIRE(f.store->start_run(crashed, *parse_iso8601("2026-11-22T09:00:00Z")).ok());

  f.clock.set("2026-11-22T09:00:20Z");  // restarted 20 s after the 09:00 fire: within the grace
  Scheduler s(f.options());
  REQUIRE(s.restore().ok());
  REQUIRE(s.get(id));
  CHECK(s.get(id)->spec.name == "nine");
  auto runs = s.runs(id).value();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].status == RunStatus::interrupted);
  CHECK(s.tick() == 1);  // the 09:00 fire, late but within the grace: run once
  CHECK(s.tick() == 0);
  CHECK(statuses(s.runs(id).value()) == std::vector<std::string>{"succeeded", "interrupted"});
}

TEST_CASE("targets: a tool and a plugin action through the Manager; the tenant travels") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(example_plugins() / "core", plugins);
  stage(test_plugins() / "probe", plugins);
  CapturedLog log;
  Manager m(test_options(tmp, plugins, log));
  m.discover();
  REQUIRE(m.enable("core").ok());
  REQUIRE(m.enable("probe").ok());
  Fixture f;
  auto o = f.options();
  o.manager = &m;
  Scheduler s(std::move(o));
  // A job read from JSON runs as the principal it names: here an operator who may call calculate and
  // probe's actions. One that names nobody is denied every call.
  const std::string as_operator = R"(,"run_as":{"kind":"user","id":"7","permissions":["tools.call:core.*","actions.call:probe/*"]})";
  auto calc = s.add(job(R"({"type":"interval","seconds":60})", R"({"tool":"calculate","arguments":{"expression":"6*7"}})", as_operator));
  auto ctx = s.add(job(R"({"type":"interval","seconds":60})", R"({"plugin":"probe","action":"context"})", R"(,"tenant":"acme")" + as_operator));
  auto broken = s.add(job(R"({"type":"interval","seconds":60})", R"({"tool":"calculate","arguments":{"expression":"6*"}})", as_operator));
  auto nobody = s.add(job(R"({"type":"interval","seconds":60})", R"({"tool":"calculate","arguments":{"expression":"1"}})"));
  auto narrow = s.add(job(R"({"type":"interval","seconds":60})", R"({"plugin":"probe","action":"context"})",
                          R"(,"run_as":{"kind":"api_token","id":"3","permissions":["tools.call:core.*"]})"));
  REQUIRE((calc.ok() && ctx.ok() && broken.ok() && nobody.ok() && narrow.ok()));
  f.clock.advance(seconds(60));
  CHECK(s.tick() == 5);
  CHECK(s.runs(*nobody).value()[0].status == RunStatus::failed);
  CHECK(s.runs(*nobody).value()[0].error.find("tools.call:core.calculate") != std::string::npos);
  CHECK(s.runs(*narrow).value()[0].status == RunStatus::failed);
  CHECK(s.runs(*narrow).value()[0].error.find("actions.call:probe/context") != std::string::npos);
  CHECK(s.get(*calc)->spec.to_json().at("run_as").at("kind") == "user");
  CHECK(s.runs(*calc).value()[0].result.at("structuredContent").at("result") == 42);
  CHECK(s.runs(*ctx).value()[0].result.at("tenant") == "acme");
  CHECK(s.runs(*ctx).value()[0].result.at("user") == "scheduler");
  CHECK(s.runs(*broken).value()[0].status == RunStatus::failed);
  // A webhook-style input joins the arguments.
  auto run = s.run_now(*calc, J(R"({"expression":"1+1"})"), "webhook");
  REQUIRE(run.ok());
  CHECK(s.runs(*calc).value()[0].result.at("structuredContent").at("result") == 2);
  CHECK(s.runs(*calc).value()[0].reason == "webhook");
}

TEST_CASE("a plugin's own schedules start and stop with it") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  write_file(plugins / "probe" / "plugin.yaml",
             "id: probe\nversion: 1.0.0\nentry: libprobe.so\nschedules:\n"
             "  - {name: heartbeat, trigger: {type: interval, seconds: 60}, action: held}\n"
             "  - {name: broken, trigger: {type: cron, expression: \"61 * * * *\"}, action: held}\n");
  CapturedLog log;
  Manager m(test_options(tmp, plugins, log));
  m.discover();
  Fixture f;
  auto o = f.options();
  o.manager = &m;
  Scheduler s(std::move(o));
  CHECK(s.size() == 0);
  REQUIRE(m.enable("probe").ok());
  REQUIRE(s.get("probe:heartbeat"));
  CHECK(s.get("probe:heartbeat")->spec.owner == "probe");
  CHECK(!s.get("probe:broken"));
  CHECK(std::any_of(f.logged.begin(), f.logged.end(), [](auto& l) { return l.find("schedules[1]") != std::string::npos && l.find("61 is out of range") != std::string::npos; }));
  f.clock.advance(seconds(60));
  CHECK(s.tick() == 1);
  CHECK(s.runs("probe:heartbeat").value()[0].status == RunStatus::succeeded);
  REQUIRE(m.disable("probe").ok());
  CHECK(!s.get("probe:heartbeat"));
}

TEST_CASE("bad jobs are refused with the field named") {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"target":{"callback":"x"}})", "trigger: is required"},
      {R"({"trigger":{"type":"cron","expression":"0 8 * *"},"target":{"callback":"x"}})", "trigger.expression"},
      {R"({"trigger":{"type":"hourly"},"target":{"callback":"x"}})", "expected cron, interval, date or webhook"},
      {R"({"trigger":{"type":"interval","seconds":0},"target":{"callback":"x"}})", "trigger.seconds: 0 is out of range"},
      {R"({"trigger":{"type":"date","at":"tomorrow"},"target":{"callback":"x"}})", "trigger.at"},
      {R"({"trigger":{"type":"date","at":"2026-12-01T08:00:00"},"target":{"callback":"x"}})", "has no zone"},
      {R"({"trigger":{"type":"cron","expression":"0 8 * * *","utc_offset":"CET"},"target":{"callback":"x"}})", "trigger.utc_offset"},
      {R"({"trigger":{"type":"interval","seconds":5},"target":{}})", "name a 'tool'"},
      {R"({"trigger":{"type":"interval","seconds":5},"target":{"action":"a"}})", "target.plugin: is required"},
      {R"({"trigger":{"type":"interval","seconds":5},"target":{"tool":"t","arguments":[1]}})", "target.arguments: expected an object"},
      {R"({"trigger":{"type":"interval","seconds":5},"target":{"tool":"t"},"max_instances":0})", "max_instances: 0 is out of range"},
      {R"({"trigger":{"type":"webhook","name":"a/b"},"target":{"tool":"t"}})", "trigger.name"},
  };
  for (const auto& [text, needle] : cases) {
    INFO(std::string(text));
    auto j = JobSpec::from_json(J(text));
    REQUIRE(!j.ok());
    CHECK_MESSAGE(j.error().message.find(needle) != std::string::npos, j.error().message);
  }
  Fixture f;
  Scheduler s(f.options());
  auto never = s.add(job(R"({"type":"cron","expression":"0 0 30 2 *"})"));
  CHECK(never.error().message.find("never fires") != std::string::npos);
  CHECK(s.add(job(R"({"type":"interval","seconds":5})", R"({"callback":"count"})", R"(,"id":"bad id!")")).error().code == ErrorCode::invalid_argument);
}

TEST_CASE("plugins schedule their own actions at run time through host services, trusted or sandboxed") {
  for (const char* mode : {"trusted", "sandboxed"}) {
    INFO("mode: " << mode);
    TempDir tmp;
    auto plugins = tmp / "plugins";
    stage(test_plugins() / "probe", plugins);
    write_file(plugins / "probe" / "plugin.yaml", std::string("id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: ") + mode + "\n");
    CapturedLog log;
    Manager m(test_options(tmp, plugins, log));
    m.discover();
    REQUIRE(m.enable("probe").ok());
    const auto job = J(R"({"job":{"name":"beat","trigger":{"type":"interval","seconds":60},"action":"held"}})");
    auto without = m.call_action("probe", "schedule", job, xcore::CallContext::host());
    REQUIRE(!without.ok());
    CHECK(without.error().message.find("no scheduler") != std::string::npos);
    Fixture f;
    auto o = f.options();
    o.manager = &m;
    {
      Scheduler s(std::move(o));
      auto r = m.call_action("probe", "schedule", job, xcore::CallContext::host());
      REQUIRE_MESSAGE(r.ok(), r.error().message);
      REQUIRE(s.get("probe:beat"));
      CHECK(s.get("probe:beat")->spec.target.plugin == "probe");  // its own actions only
      f.clock.advance(seconds(60));
      CHECK(s.tick() == 1);
      CHECK(s.runs("probe:beat").value()[0].status == RunStatus::succeeded);
      auto hook = m.call_action("probe", "schedule", J(R"({"job":{"name":"x","trigger":{"type":"webhook","name":"x"},"action":"held"}})"), xcore::CallContext::host());
      CHECK(hook.error().code == ErrorCode::invalid_argument);
      REQUIRE(m.call_action("probe", "unschedule", J(R"({"name":"beat"})"), xcore::CallContext::host()).ok());
      CHECK(!s.get("probe:beat"));
      CHECK(m.call_action("probe", "unschedule", J(R"({"name":"beat"})"), xcore::CallContext::host()).error().code == ErrorCode::not_found);
      REQUIRE(m.call_action("probe", "schedule", job, xcore::CallContext::host()).ok());
      REQUIRE(m.disable("probe").ok());
      CHECK(!s.get("probe:beat"));  // gone with the plugin
    }
    REQUIRE(m.enable("probe").ok());
    CHECK(!m.call_action("probe", "schedule", job, xcore::CallContext::host()).ok());  // the scheduler is gone: so is the service
  }
}

// ---- the threads Schedulers share ------------------------------------------------------------------------

namespace {

std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& t : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Counts finished jobs; waits (bounded) for a number of them.
struct Finished {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::string> order;
  void add(std::string who) {
    std::lock_guard lock(m);
    order.push_back(std::move(who));
    cv.notify_all();
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, seconds(10), [&] { return order.size() >= n; });
  }
};

}  // namespace

TEST_CASE("Schedulers share one timer and one pool: a hundred of them start no thread, and all their jobs run") {
  auto threads = std::make_shared<SchedulerThreads>(2);
  const auto before = thread_count();
  Finished done;
  std::vector<std::unique_ptr<Scheduler>> schedulers;
  for (int i = 0; i < 100; ++i) {
    SchedulerOptions o;
    o.threads = threads;
    o.callbacks["mark"] = [&done, i](const json::value&, const JobSpec&) -> Result<json::value> {
      done.add(std::to_string(i));
      return json::value(i);
    };
    schedulers.push_back(std::make_unique<Scheduler>(std::move(o)));
  }
  CHECK(thread_count() == before);  // not 5 per Scheduler, as when each had its own
  for (auto& s : schedulers) {
    auto id = s->add(job(R"({"type":"interval","seconds":3600})", R"({"callback":"mark"})"));
    REQUIRE(id.ok());
    REQUIRE(s->run_now(*id).ok());
  }
  REQUIRE(done.wait_for(100));
  CHECK(thread_count() == before);
  schedulers.clear();  // each waits for its own jobs, then leaves the shared threads
  CHECK(threads->workers() == 2);
}

TEST_CASE("the pool takes one job from each Scheduler in turn: a busy one does not hold back another") {
  auto threads = std::make_shared<SchedulerThreads>(1);
  Finished done;
  std::mutex gate_mutex;
  std::condition_variable gate;
  bool open = false, first_started = false;
  auto options = [&](std::string name) {
    SchedulerOptions o;
    o.threads = threads;
    o.background = false;
    o.callbacks["work"] = [&, name](const json::value& input, const JobSpec&) -> Result<json::value> {
      if (input.is_object() && input.as_object().contains("hold")) {
        std::unique_lock lock(gate_mutex);
        first_started = true;
        gate.notify_all();
        gate.wait(lock, [&] { return open; });
      }
      done.add(name);
      return json::value(nullptr);
    };
    return o;
  };
  Scheduler busy(options("busy")), quiet(options("quiet"));
  auto b = busy.add(job(R"({"type":"interval","seconds":3600})", R"({"callback":"work"})", R"(,"max_instances":10)"));
  auto q = quiet.add(job(R"({"type":"interval","seconds":3600})", R"({"callback":"work"})"));
  REQUIRE(b.ok());
  REQUIRE(q.ok());
  // The one worker holds busy's first job while busy queues four more and quiet queues one.
  REQUIRE(busy.run_now(*b, J(R"({"hold":true})")).ok());
  {
    std::unique_lock lock(gate_mutex);
    REQUIRE(gate.wait_for(lock, seconds(10), [&] { return first_started; }));
  }
  for (int i = 0; i < 4; ++i) REQUIRE(busy.run_now(*b).ok());
  REQUIRE(quiet.run_now(*q).ok());
  {
    std::lock_guard lock(gate_mutex);
    open = true;
  }
  gate.notify_all();
  REQUIRE(done.wait_for(6));
  // busy's held job, then busy and quiet in turn: quiet's job is not last behind busy's four.
  std::lock_guard lock(done.m);
  const auto at = std::find(done.order.begin(), done.order.end(), "quiet") - done.order.begin();
  CHECK_MESSAGE(at <= 2, "quiet ran at " << at);
}

TEST_CASE("the shared timer ticks a Scheduler when its earliest fire moves sooner, with an injected clock") {
  std::atomic<std::int64_t> now_s{(*parse_iso8601("2026-11-22T07:59:30Z")).time_since_epoch().count()};
  Finished done;
  SchedulerOptions o;
  o.threads = std::make_shared<SchedulerThreads>(1);
  o.clock = [&] { return system_clock::time_point{seconds(now_s.load())}; };
  o.callbacks["mark"] = [&](const json::value&, const JobSpec& j) -> Result<json::value> {
    done.add(j.name);
    return json::value(nullptr);
  };
  Scheduler s(std::move(o));
  auto hourly = job(R"({"type":"cron","expression":"0 8 * * *"})", R"({"callback":"mark"})");
  hourly.name = "cron";
  REQUIRE(s.add(hourly).ok());
  now_s += 30;  // 08:00:00: due, and nothing calls tick(); a job due now wakes the timer at once
  auto at_once = job(R"({"type":"date","at":"2026-11-22T08:00:00Z"})", R"({"callback":"mark"})");
  at_once.name = "date";
  REQUIRE(s.add(at_once).ok());
  REQUIRE(done.wait_for(2));
  std::lock_guard lock(done.m);
  std::sort(done.order.begin(), done.order.end());
  CHECK(done.order == std::vector<std::string>{"cron", "date"});
}
