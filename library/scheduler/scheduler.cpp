#include <xcore/scheduler.hpp>
#include <xcore/json_text.hpp>

#include <xcore/manager.hpp>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>


#include <condition_variable>
#include <deque>
#include <mutex>
#include <queue>
#include <random>
#include <unordered_map>

#include "core/string_map.hpp"
#include "scheduler/scheduler_threads.hpp"

namespace xcore::inline v1 {

using namespace std::chrono;

namespace {

std::string new_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

std::uint64_t seed_of(std::string_view id) { return std::hash<std::string_view>{}(id); }

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  return true;
}

// The webhook body (or a manual run's input) joins the target's arguments: object keys override; any
// other value arrives as "body".
json::value with_input(const json::value& arguments, const json::value& input) {
  if (input.is_null()) return arguments;
  json::object merged = arguments.is_object() ? arguments.get_object() : json::object();
  if (input.is_object())
    for (const auto& [k, v] : input.get_object()) merged[k] = v;
  else
    merged["body"] = input;
  return merged;
}

}  // namespace

struct Scheduler::Impl {
  SchedulerOptions options;
  std::shared_ptr<JobStore> store;

  struct Entry {
    JobSpec spec;
    std::optional<SysSeconds> next;
    unsigned running = 0;
    std::uint64_t version = 0;
    // What runs see, shared instead of copied per fire; reset whenever `spec` changes.
    std::shared_ptr<const JobSpec> shared;
    const std::shared_ptr<const JobSpec>& snapshot() {
      if (!shared) shared = std::make_shared<const JobSpec>(spec);
      return shared;
    }
  };
  struct Due {
    SysSeconds at;
    std::uint64_t version;
    std::string id;
    bool operator>(const Due& o) const { return at > o.at; }
  };
  struct Task {
    RunRecord run;
    std::shared_ptr<const JobSpec> spec;
    json::value input;
  };

  mutable std::mutex mutex;
  StringMap<Entry> jobs;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> heap;
  std::uint64_t versions = 0;

  // Who ticks this scheduler and runs its jobs (shared with other Schedulers); null when run_inline
  // without background ticks.
  std::shared_ptr<SchedulerThreads> threads;
  SchedulerThreads::Impl::Client* client = nullptr;

  std::mutex work_mutex;
  std::condition_variable idle;
  std::size_t in_progress = 0;  // jobs queued or running (guarded by `work_mutex`)

  // The Manager whose plugins schedule here (attach_plugins), its hook subscriptions and our job sink in it.
  Manager* plugins_of = nullptr;
  std::vector<Subscription> plugin_hooks;
  std::shared_ptr<const Manager::JobSink> sink;

  bool custom_clock = false;

  explicit Impl(SchedulerOptions o) : options(std::move(o)) {
    custom_clock = static_cast<bool>(options.clock);
    if (!options.clock) options.clock = [] { return system_clock::now(); };
    store = options.store ? options.store : make_memory_job_store();
  }

  system_clock::time_point now_tp() const { return options.clock(); }
  SysSeconds now() const { return floor<seconds>(now_tp()); }
  void log(std::string_view m) const {
    if (!options.log) return;
    try {
      options.log(LogLevel::info, "scheduler", m);
    } catch (...) {
    }
  }

  // Caller holds `mutex`.
  void schedule(Entry& e) {
    e.version = ++versions;
    if (!e.next || e.spec.paused) return;
    const bool earlier = heap.empty() || *e.next < heap.top().at;
    heap.push(Due{*e.next, e.version, e.spec.id});
    if (earlier && client) SchedulerThreadsAccess::of(*threads).wake(client, until_next());  // the timer waits for the earliest fire
  }

  // Caller holds `mutex`. How long the timer may wait before this scheduler's next tick: until the
  // earliest fire, capped (an injected clock may be moved at any time: 1 s; the system clock may be set:
  // 30 s); never while nothing is scheduled.
  milliseconds until_next() const {
    if (heap.empty()) return milliseconds::max();
    const auto cap = custom_clock ? milliseconds(1000) : milliseconds(30'000);
    return std::clamp(duration_cast<milliseconds>(heap.top().at - now_tp()), milliseconds(0), cap);
  }

  // Caller holds `mutex`.
  Result<Entry*> entry(std::string_view id) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return Error{ErrorCode::not_found, fmt::format("no job '{}'", id)};
    return &it->second;
  }

  // Caller holds `mutex`. The one way a job's spec or next fire changes: the store first (a failure changes
  // nothing), then the entry, what runs share of it, and its place in the heap.
  Result<void> replace(Entry& e, JobSpec spec, std::optional<SysSeconds> next) {
    if (spec.persist) XCORE_TRY(store->put_job(StoredJob{spec, next}));
    e.spec = std::move(spec);
    e.next = next;
    e.shared.reset();
    schedule(e);
    return ok();
  }

  std::optional<SysSeconds> first_fire(const JobSpec& spec, SysSeconds at) const {
    if (spec.trigger.kind == Trigger::Kind::date && spec.trigger.at <= at && at - spec.trigger.at <= spec.misfire_grace) return spec.trigger.at;
    return spec.trigger.next_after(at, seed_of(spec.id));
  }

  RunRecord make_run(const JobSpec& spec, std::string reason, std::optional<SysSeconds> scheduled) {
    RunRecord r;
    r.id = new_id();
    r.job_id = spec.id;
    r.reason = std::move(reason);
    r.scheduled_for = scheduled;
    r.started = now_tp();
    return r;
  }

  void skipped(const JobSpec& spec, std::string why, std::optional<SysSeconds> scheduled) {
    auto r = make_run(spec, std::move(why), scheduled);
    r.status = RunStatus::skipped;
    r.ended = r.started;
    if (auto w = store->add_run(r); !w) log(fmt::format("job '{}': cannot record a skipped run: {}", spec.id, w.error().message));
  }

  // The Manager a run calls into: the one given, or a lease from the host (held for the run).
  struct RunManager {
    Manager* manager;
    std::shared_ptr<Manager> lease;
  };
  Result<RunManager> manager_for_run(std::string_view what) {
    if (options.manager) return RunManager{options.manager, nullptr};
    if (options.manager_lease) {
      XCORE_ASSIGN_OR_RETURN(auto lease, options.manager_lease());
      if (lease) return RunManager{lease.get(), std::move(lease)};
    }
    return Error{ErrorCode::failed_precondition, fmt::format("this scheduler has no Manager to call {}", what)};
  }

  Result<json::value> execute(const JobSpec& spec, const json::value& input, const std::string& run_id, std::string_view reason) {
    CallContext ctx;
    ctx.tenant = spec.tenant;
    ctx.user = "scheduler";
    // A plugin's job may only run the plugin's own actions; any other job calls as its run_as.
    ctx.principal = spec.owner.empty() ? spec.run_as : Principal::plugin(spec.owner, {});
    ctx.trace_id = run_id;
    const auto args = with_input(spec.target.arguments, input);
    switch (spec.target.kind) {
      case JobTarget::Kind::tool: {
        XCORE_ASSIGN_OR_RETURN(auto m, manager_for_run("tools"));
        XCORE_ASSIGN_OR_RETURN(auto r, m.manager->call_tool(spec.target.name, args, ctx));
        auto out = r.to_mcp();
        if (r.is_error) {
          Error e{ErrorCode::internal, fmt::format("tool '{}' answered an error: {}", spec.target.name, xcore::json_text::serialize(out))};
          return e;
        }
        return json::value(std::move(out));
      }
      case JobTarget::Kind::action:
      {
        XCORE_ASSIGN_OR_RETURN(auto m, manager_for_run("actions"));
        return m.manager->call_action(spec.target.plugin, spec.target.name, args, ctx);
      }
      case JobTarget::Kind::callback: {
        auto it = options.callbacks.find(spec.target.name);
        if (it == options.callbacks.end()) return Error{ErrorCode::not_found, fmt::format("no callback '{}'", spec.target.name)};
        return it->second(args, spec);
      }
      case JobTarget::Kind::agent: {
        if (!options.agents) return Error{ErrorCode::failed_precondition, fmt::format("this scheduler runs no agents (task '{}')", spec.name)};
        std::string task = spec.target.arguments.is_string() ? std::string(spec.target.arguments.get_string()) : std::string();
        // A webhook's body follows the task, as data for the agent to work on.
        if (!input.is_null())
          task += fmt::format("{}The webhook's body:\n{}", task.empty() ? "" : "\n\n",
                              input.is_string() ? std::string(input.get_string()) : xcore::json_text::serialize(input));
        return options.agents(spec, std::move(task), reason);
      }
    }
    return Error{ErrorCode::internal, "unknown target"};
  }

  void run_task(Task& t) {
    Result<json::value> r = Error{ErrorCode::internal, "not run"};
    try {
      r = execute(*t.spec, t.input, t.run.id, t.run.reason);
    } catch (const std::exception& e) {
      r = Error{ErrorCode::internal, e.what()};
    }
    t.run.ended = now_tp();
    if (r) {
      t.run.status = RunStatus::succeeded;
      t.run.result = std::move(*r);
    } else {
      t.run.status = RunStatus::failed;
      t.run.error = fmt::format("{}: {}", to_string(r.error().code), r.error().message);
    }
    // The instance is free before its end is recorded: whoever sees the run ended may start the next one.
    {
      std::lock_guard lock(mutex);
      if (auto it = jobs.find(t.spec->id); it != jobs.end() && it->second.running > 0) --it->second.running;
    }
    if (auto w = store->finish_run(t.run); !w) log(fmt::format("job '{}': cannot record the end of run {}: {}", t.spec->id, t.run.id, w.error().message));
    if (auto p = store->prune_runs(t.spec->id, options.history_per_job); !p)
      log(fmt::format("job '{}': cannot prune its run history: {}", t.spec->id, p.error().message));
  }

  void dispatch(std::vector<Task> tasks) {
    if (tasks.empty()) return;
    if (options.run_inline) {
      for (auto& t : tasks) run_task(t);
      return;
    }
    {
      std::lock_guard lock(work_mutex);
      in_progress += tasks.size();
    }
    std::vector<std::function<void()>> jobs;
    jobs.reserve(tasks.size());
    for (auto& t : tasks)
      jobs.emplace_back([this, t = std::move(t)]() mutable {
        run_task(t);
        std::lock_guard lock(work_mutex);
        if (--in_progress == 0) idle.notify_all();
      });
    SchedulerThreadsAccess::of(*threads).submit(client, std::move(jobs));
  }

  // The timer's call: a tick, then how long until the next one.
  milliseconds timed_tick() {
    tick();
    std::lock_guard lock(mutex);
    return until_next();
  }

  std::size_t tick() {
    const auto now_point = now_tp();
    const auto at = floor<seconds>(now_point);
    std::vector<Task> tasks;
    {
      std::lock_guard lock(mutex);
      while (!heap.empty() && heap.top().at <= at) {
        Due due = heap.top();
        heap.pop();
        auto it = jobs.find(due.id);
        if (it == jobs.end() || it->second.version != due.version || it->second.spec.paused || !it->second.next || *it->second.next != due.at)
          continue;  // changed since it was queued
        Entry& e = it->second;
        const auto seed = seed_of(e.spec.id);
        // Every fire time up to now: the late ones within the grace run (once, when coalescing).
        std::deque<SysSeconds> within;
        std::size_t total = 0;
        for (std::optional<SysSeconds> f = due.at; f && *f <= at && total < 1000000; f = e.spec.trigger.next_after(*f, seed)) {
          ++total;
          if (at - *f <= e.spec.misfire_grace) {
            within.push_back(*f);
            if (within.size() > 1000) within.pop_front();
          }
        }
        std::size_t missed = total - within.size();
        std::vector<SysSeconds> fire;
        if (!within.empty()) {
          if (e.spec.coalesce) {
            fire.push_back(within.back());
            missed += within.size() - 1;
          } else {
            fire.assign(within.begin(), within.end());
          }
        }
        e.next = e.spec.trigger.next_after(at, seed);
        bool stored = false;
        for (auto f : fire) {
          if (e.running >= e.spec.max_instances) {
            skipped(e.spec, fmt::format("{} run(s) still in progress (max_instances {})", e.running, e.spec.max_instances), f);
            continue;
          }
          auto run = make_run(e.spec, "schedule", f);
          if (auto w = store->start_run(run, e.next); !w) {
            log(fmt::format("job '{}': cannot record the run, not starting it: {}", e.spec.id, w.error().message));
            continue;
          }
          stored = true;
          ++e.running;
          tasks.push_back(Task{std::move(run), e.snapshot(), nullptr});
        }
        if (missed > 0)
          skipped(e.spec, fmt::format("missed {} fire time(s): later than the misfire grace of {} s{}", missed, e.spec.misfire_grace.count(),
                                      e.spec.coalesce && !fire.empty() ? ", coalesced into one run" : ""),
                  due.at);
        if (!stored && e.spec.persist) (void)store->set_next_run(e.spec.id, e.next);
        schedule(e);
      }
    }
    const auto started = tasks.size();
    dispatch(std::move(tasks));
    return started;
  }

  // ---- plugins' own schedules (manifest `schedules:`) ----------------------------------------------------

  // A plugin's job: {"name", "trigger", "action", "params", ...}; it may only run the plugin's own actions.
  Result<JobSpec> plugin_job(const std::string& plugin, const json::value& entry, std::size_t index) {
    if (!entry.is_object()) return Error{ErrorCode::invalid_argument, "expected {name, trigger, action, params}"};
    const auto& o = entry.get_object();
    json::object spec{{"trigger", o.contains("trigger") ? o.at("trigger") : json::value()}};
    auto name = o.contains("name") && o.at("name").is_string() ? std::string(o.at("name").get_string()) : fmt::format("{}", index);
    spec["id"] = fmt::format("{}:{}", plugin, name);
    spec["name"] = name;
    spec["target"] = json::object{{"plugin", plugin},
                                  {"action", o.contains("action") ? o.at("action") : json::value()},
                                  {"params", o.contains("params") ? o.at("params") : json::value()}};
    for (const char* k : {"misfire_grace_seconds", "coalesce", "max_instances"})
      if (o.contains(k)) spec[k] = o.at(k);
    XCORE_ASSIGN_OR_RETURN(auto job, JobSpec::from_json(spec));
    if (job.trigger.kind == Trigger::Kind::webhook) return Error{ErrorCode::invalid_argument, "trigger: plugins schedule by time (cron, interval, date)"};
    job.owner = plugin;
    job.persist = false;  // declared again by the plugin each time it starts
    return job;
  }

  Result<void> put_plugin_job(JobSpec job) {
    std::lock_guard lock(mutex);
    job.created = now();
    if (job.trigger.kind == Trigger::Kind::interval && !job.trigger.start) job.trigger.start = job.created;
    auto next = first_fire(job, now());
    auto& e = jobs[job.id];
    return replace(e, std::move(job), next);
  }

  void plugin_enabled(const std::string& plugin) {
    auto info = plugins_of->info(plugin);
    if (!info) return;
    const auto& raw = *info->manifest.raw;
    auto it = raw.find("schedules");
    if (it == raw.end() || !it->value().is_array()) return;
    std::size_t i = 0;
    for (const auto& entry : it->value().get_array()) {
      auto job = plugin_job(plugin, entry, i);
      if (job) (void)put_plugin_job(std::move(*job));
      else log(fmt::format("plugin '{}': schedules[{}]: {}", plugin, i, job.error().message));
      ++i;
    }
  }

  void plugin_gone(const std::string& plugin) {
    std::lock_guard lock(mutex);
    for (auto it = jobs.begin(); it != jobs.end();)
      it = it->second.spec.owner == plugin ? jobs.erase(it) : std::next(it);
  }
};

Scheduler::Scheduler(SchedulerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  auto& s = *impl_;
  if (s.options.manager) attach_plugins(*s.options.manager);
  // Last: from here the timer may tick this scheduler and the pool run its jobs.
  if (!s.options.run_inline || s.options.background) {
    s.threads = s.options.threads ? s.options.threads : SchedulerThreads::shared();
    s.client = SchedulerThreadsAccess::of(*s.threads).attach([&s] { return s.timed_tick(); }, s.options.background);
  }
}

Scheduler::~Scheduler() {
  auto& s = *impl_;
  detach_plugins();
  if (!s.client) return;
  auto& threads = SchedulerThreadsAccess::of(*s.threads);
  threads.stop_ticks(s.client);
  wait_idle();  // the jobs already queued run, as they would have
  threads.detach(s.client);
}

void Scheduler::attach_plugins(Manager& manager) {
  detach_plugins();
  auto& s = *impl_;
  s.plugins_of = &manager;
  auto id_of = [](const HookEvent& ev) {
    return ev.payload.is_object() && ev.payload.as_object().contains("plugin") ? std::string(ev.payload.at("plugin").as_string()) : std::string();
  };
  if (auto sub = manager.hooks().subscribe("plugin.enabled", [&s, id_of](const HookEvent& ev) {
        s.plugin_enabled(id_of(ev));
        return HookReply::none();
      }))
    s.plugin_hooks.push_back(std::move(*sub));
  for (const char* gone : {"plugin.disabled", "plugin.unloaded"})
    if (auto sub = manager.hooks().subscribe(gone, [&s, id_of](const HookEvent& ev) {
          s.plugin_gone(id_of(ev));
          return HookReply::none();
        }))
      s.plugin_hooks.push_back(std::move(*sub));
  for (const auto& info : manager.list())
    if (info.state == PluginState::enabled) s.plugin_enabled(info.manifest.id);
  // Plugins schedule their own actions at run time through host services.
  auto sink = std::make_shared<Manager::JobSink>();
  sink->add = [&s](std::string_view plugin, const json::value& job) -> Result<void> {
    XCORE_ASSIGN_OR_RETURN(auto spec, s.plugin_job(std::string(plugin), job, 0));
    return s.put_plugin_job(std::move(spec));
  };
  sink->remove = [&s](std::string_view plugin, std::string_view name) -> Result<void> {
    std::lock_guard lock(s.mutex);
    auto it = s.jobs.find(fmt::format("{}:{}", plugin, name));
    if (it == s.jobs.end() || it->second.spec.owner != plugin)
      return Error{ErrorCode::not_found, fmt::format("plugin '{}' has no job '{}'", plugin, name)};
    s.jobs.erase(it);
    return ok();
  };
  s.sink = sink;
  manager.set_job_sink(std::move(sink));
}

void Scheduler::detach_plugins() {
  auto& s = *impl_;
  if (!s.plugins_of) return;
  s.plugin_hooks.clear();
  s.plugins_of->set_job_sink(nullptr);
  s.sink.reset();
  s.plugins_of = nullptr;
  // The plugins' jobs go with their Manager; they come back when their plugins are enabled again.
  std::lock_guard lock(s.mutex);
  std::erase_if(s.jobs, [](const auto& e) { return !e.second.spec.owner.empty(); });
}

std::size_t Scheduler::plugin_jobs() const {
  std::lock_guard lock(impl_->mutex);
  return static_cast<std::size_t>(std::count_if(impl_->jobs.begin(), impl_->jobs.end(), [](const auto& e) { return !e.second.spec.owner.empty(); }));
}

Result<void> Scheduler::restore() {
  auto& s = *impl_;
  XCORE_ASSIGN_OR_RETURN(const auto interrupted, s.store->interrupt_running(s.now_tp()));
  if (interrupted) s.log(fmt::format("{} run(s) left running by the last process are marked interrupted", interrupted));
  XCORE_ASSIGN_OR_RETURN(auto stored, s.store->jobs());
  std::lock_guard lock(s.mutex);
  for (auto& j : stored) {
    Impl::Entry e{std::move(j.spec), j.next_run, 0, 0, nullptr};
    auto& placed = s.jobs[e.spec.id] = std::move(e);
    s.schedule(placed);
  }
  return ok();
}

Result<std::string> Scheduler::add(JobSpec job) {
  auto& s = *impl_;
  if (job.id.empty()) job.id = new_id();
  if (!valid_id(job.id)) return Error{ErrorCode::invalid_argument, fmt::format("job id '{}': use [A-Za-z0-9._:-], at most 128", job.id)};
  const auto now = s.now();
  if (job.created == SysSeconds{}) job.created = now;
  if (job.trigger.kind == Trigger::Kind::interval && !job.trigger.start) job.trigger.start = job.created;
  auto next = s.first_fire(job, now);
  if (job.trigger.kind == Trigger::Kind::date && !next)
    return Error{ErrorCode::invalid_argument, fmt::format("trigger.at: {} has passed (misfire grace {} s)", format_iso8601(job.trigger.at), job.misfire_grace.count())};
  if (job.trigger.kind == Trigger::Kind::cron && !next)
    return Error{ErrorCode::invalid_argument, fmt::format("trigger.expression: '{}' never fires", job.trigger.cron->text())};
  std::lock_guard lock(s.mutex);
  if (s.jobs.contains(job.id)) return Error{ErrorCode::already_exists, fmt::format("job '{}' exists", job.id)};
  if (job.trigger.kind == Trigger::Kind::webhook)
    for (const auto& [id, e] : s.jobs)
      if (e.spec.trigger.kind == Trigger::Kind::webhook && e.spec.trigger.webhook == job.trigger.webhook)
        return Error{ErrorCode::already_exists, fmt::format("webhook '{}' already triggers job '{}'", job.trigger.webhook, id)};
  if (job.persist) XCORE_TRY(s.store->put_job(StoredJob{job, next}));
  const auto id = job.id;
  auto& placed = s.jobs[id] = Impl::Entry{std::move(job), next, 0, 0, nullptr};
  s.schedule(placed);
  return id;
}

Result<void> Scheduler::update(std::string_view id, JobSpec job) {
  auto& s = *impl_;
  std::lock_guard lock(s.mutex);
  XCORE_ASSIGN_OR_RETURN(auto* e, s.entry(id));
  job.id = id;
  job.created = e->spec.created;
  job.owner = e->spec.owner;
  job.persist = e->spec.persist;
  if (job.trigger.kind == Trigger::Kind::interval && !job.trigger.start) job.trigger.start = job.created;
  auto next = s.first_fire(job, s.now());
  return s.replace(*e, std::move(job), next);
}

Result<void> Scheduler::remove(std::string_view id) {
  auto& s = *impl_;
  std::lock_guard lock(s.mutex);
  XCORE_ASSIGN_OR_RETURN(auto* e, s.entry(id));
  if (e->spec.persist) XCORE_TRY(s.store->remove_job(id));
  s.jobs.erase(s.jobs.find(id));  // found just above
  return ok();
}

Result<void> Scheduler::pause(std::string_view id) {
  auto& s = *impl_;
  std::lock_guard lock(s.mutex);
  XCORE_ASSIGN_OR_RETURN(auto* e, s.entry(id));
  auto spec = e->spec;
  spec.paused = true;
  return s.replace(*e, std::move(spec), e->next);
}

Result<void> Scheduler::resume(std::string_view id) {
  auto& s = *impl_;
  std::lock_guard lock(s.mutex);
  XCORE_ASSIGN_OR_RETURN(auto* e, s.entry(id));
  auto spec = e->spec;
  spec.paused = false;
  // Fires that fell in the pause are not made up: the schedule goes on from now.
  auto next = spec.trigger.next_after(s.now(), seed_of(id));
  return s.replace(*e, std::move(spec), next);
}

Result<std::string> Scheduler::run_now(std::string_view id, const json::value& input, std::string_view reason) {
  auto& s = *impl_;
  Impl::Task task;
  {
    std::lock_guard lock(s.mutex);
    XCORE_ASSIGN_OR_RETURN(auto* found, s.entry(id));
    auto& e = *found;
    if (e.running >= e.spec.max_instances) {
      s.skipped(e.spec, fmt::format("{} (refused): {} run(s) still in progress (max_instances {})", reason, e.running, e.spec.max_instances), std::nullopt);
      Error err{ErrorCode::resource_exhausted, fmt::format("job '{}' has {} run(s) in progress (max_instances {})", id, e.running, e.spec.max_instances)};
      err.details = xcore::json_text::serialize(json::object{{"retry_after", 1}});
      return err;
    }
    auto run = s.make_run(e.spec, std::string(reason), std::nullopt);
    XCORE_TRY(s.store->start_run(run, e.next));
    ++e.running;
    task = Impl::Task{std::move(run), e.snapshot(), input};
  }
  auto run_id = task.run.id;
  std::vector<Impl::Task> tasks;
  tasks.push_back(std::move(task));
  s.dispatch(std::move(tasks));
  return run_id;
}

std::optional<JobState> Scheduler::get(std::string_view id) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->jobs.find(id);
  if (it == impl_->jobs.end()) return std::nullopt;
  return JobState{it->second.spec, it->second.next, it->second.running};
}

std::vector<JobState> Scheduler::list(std::string_view tenant) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<JobState> out;
  for (const auto& [id, e] : impl_->jobs)
    if (tenant.empty() || e.spec.tenant == tenant) out.push_back(JobState{e.spec, e.next, e.running});
  std::sort(out.begin(), out.end(), [](const JobState& a, const JobState& b) { return a.spec.id < b.spec.id; });
  return out;
}

std::optional<JobState> Scheduler::find_webhook(std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  for (const auto& [id, e] : impl_->jobs)
    if (e.spec.trigger.kind == Trigger::Kind::webhook && e.spec.trigger.webhook == name) return JobState{e.spec, e.next, e.running};
  return std::nullopt;
}

std::vector<SysSeconds> Scheduler::preview(std::string_view id, std::size_t count) const {
  auto job = get(id);
  std::vector<SysSeconds> out;
  if (!job) return out;
  auto t = job->next_run;
  while (t && out.size() < count) {
    out.push_back(*t);
    t = job->spec.trigger.next_after(*t, seed_of(id));
  }
  return out;
}

Result<std::vector<RunRecord>> Scheduler::runs(std::string_view id, std::size_t limit) const { return impl_->store->runs(id, limit); }

std::size_t Scheduler::tick() { return impl_->tick(); }

void Scheduler::wait_idle() {
  auto& s = *impl_;
  std::unique_lock lock(s.work_mutex);
  s.idle.wait(lock, [&] { return s.in_progress == 0; });
}

std::size_t Scheduler::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->jobs.size();
}

}  // namespace xcore::inline v1
