// xcore::Scheduler: jobs on cron, interval, one-shot date or webhook triggers that call a tool, a plugin
// action or a host callback; misfire grace, coalescing, max instances, pause and resume, previews, run
// history. Every fire is recorded once: the store moves a job's next fire time and records the run as
// started in one step, so a crash neither loses a fire nor repeats it (the run is marked interrupted at the
// next start). Time comes from an injectable clock; tests call tick() instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/cron.hpp>
#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/log.hpp>

namespace xcore::inline v1 {

class Manager;

using SysSeconds = std::chrono::sys_seconds;

// "2026-12-01T08:00:00Z", "2026-12-01T10:00:00+02:00" (fractions of a second are dropped).
Result<SysSeconds> parse_iso8601(std::string_view text);
std::string format_iso8601(SysSeconds t);
std::string format_iso8601_ms(std::chrono::system_clock::time_point t);

struct Trigger {
  enum class Kind : std::uint8_t { cron, interval, date, webhook };
  Kind kind = Kind::cron;
  std::optional<CronExpression> cron;
  std::chrono::minutes utc_offset{0};   // cron: fields read at this fixed offset
  std::chrono::seconds interval{0};     // interval
  std::chrono::seconds jitter{0};       // interval: each fire is delayed by up to this much
  std::optional<SysSeconds> start;      // interval: the grid's origin (default: when the job was added)
  SysSeconds at{};                      // date
  std::string webhook;                  // webhook: its name, unique per tenant, in the host's webhook URL
  std::string webhook_secret;           // webhook: the secret holding the HMAC key (default webhook_<name>)

  // {"type":"cron","expression":"0 8 * * *","utc_offset":"+02:00"} | {"type":"interval","seconds":30,
  // "jitter_seconds":5,"start":"..."} | {"type":"date","at":"2026-12-01T08:00:00Z"} |
  // {"type":"webhook","name":"deploy","secret":"..."}. Errors name the field.
  static Result<Trigger> from_json(const json::value& v);
  json::object to_json() const;
  // The first fire strictly after `after`; `seed` spreads interval jitter per job. nullopt: no more fires.
  std::optional<SysSeconds> next_after(SysSeconds after, std::uint64_t seed = 0) const;
};

struct JobTarget {
  enum class Kind : std::uint8_t { tool, action, callback, agent };
  Kind kind = Kind::tool;
  std::string name;       // tool name, action name, callback name, or agent name
  std::string plugin;     // action: the plugin
  json::value arguments;  // tool arguments, action params, callback input, or the agent's task (a string)
  // {"tool":"echo","arguments":{...}} | {"plugin":"core","action":"echo","params":{...}} |
  // {"callback":"cleanup","input":{...}} | {"agent":"reporter","input":"Summarise yesterday's errors"}
  static Result<JobTarget> from_json(const json::value& v);
  json::object to_json() const;
};

struct JobSpec {
  std::string id;  // assigned by add() when empty
  std::string name;
  std::string tenant;
  Trigger trigger;
  JobTarget target;
  std::chrono::seconds misfire_grace{60};  // a fire later than this is skipped, not run
  bool coalesce = true;                    // several missed fires run once
  unsigned max_instances = 1;              // runs of this job at once; more are skipped
  bool paused = false;
  std::string owner;                       // the plugin that declared it (its jobs go with it)
  // Who the runs call as. A job built in C++ is the host's own; one read from JSON runs as the "run_as"
  // it names, or as nobody (every call denied) when it names none: a host that accepts jobs from outside
  // sets this to the principal that asked. A plugin's jobs run as that plugin.
  Principal run_as = Principal::host();
  bool persist = true;                     // false: not written to the store (declared in a manifest)
  SysSeconds created{};

  static Result<JobSpec> from_json(const json::value& v);
  json::object to_json() const;
};

enum class RunStatus : std::uint8_t { running, succeeded, failed, interrupted, skipped };
std::string_view to_string(RunStatus s) noexcept;
bool parse_run_status(std::string_view s, RunStatus& out) noexcept;

struct RunRecord {
  std::string id, job_id;
  RunStatus status = RunStatus::running;
  std::string reason;  // "schedule", "manual", "webhook", or why it was skipped
  std::optional<SysSeconds> scheduled_for;
  std::chrono::system_clock::time_point started{}, ended{};
  json::value result;
  std::string error;
  json::object to_json() const;
};

struct StoredJob {
  JobSpec spec;
  std::optional<SysSeconds> next_run;
};

// Where jobs and runs outlive the process. Implementations must make start_run() atomic.
class JobStore {
 public:
  virtual ~JobStore() = default;
  virtual Result<void> put_job(const StoredJob& job) = 0;  // insert or replace
  virtual Result<void> remove_job(std::string_view id) = 0;
  virtual Result<std::vector<StoredJob>> jobs() = 0;
  // In one step: the job's next fire time moves to `next_run` and `run` is recorded as started.
  virtual Result<void> start_run(const RunRecord& run, std::optional<SysSeconds> next_run) = 0;
  virtual Result<void> set_next_run(std::string_view job_id, std::optional<SysSeconds> next_run) = 0;
  virtual Result<void> finish_run(const RunRecord& run) = 0;  // status, end, result or error
  virtual Result<void> add_run(const RunRecord& run) = 0;     // a complete record (skipped fires)
  virtual Result<std::vector<RunRecord>> runs(std::string_view job_id, std::size_t limit) = 0;  // newest first
  virtual Result<std::size_t> interrupt_running(std::chrono::system_clock::time_point now) = 0;  // at start
  virtual Result<void> prune_runs(std::string_view job_id, std::size_t keep) = 0;
};

// The default store: memory only.
std::shared_ptr<JobStore> make_memory_job_store();

struct JobState {
  JobSpec spec;
  std::optional<SysSeconds> next_run;
  unsigned running = 0;
};

using JobCallback = std::function<Result<json::value>(const json::value& input, const JobSpec& job)>;

// The threads Schedulers share: one timer thread ("xcore-sched") that ticks each Scheduler when its earliest
// fire is due, and a bounded pool ("xcore-job") that runs their jobs, taking one job from each Scheduler in
// turn so that one busy Scheduler (a tenant's) cannot hold back another's. A host with a Scheduler per
// tenant has the same threads for one tenant or ten thousand. SchedulerThreads::shared() is the process's
// default; a host may make its own (its own pool size) and pass it in SchedulerOptions::threads. It must
// outlive the Schedulers that use it (they hold a shared_ptr to it).
class SchedulerThreads {
 public:
  explicit SchedulerThreads(unsigned workers = 4);
  ~SchedulerThreads();
  SchedulerThreads(const SchedulerThreads&) = delete;
  SchedulerThreads& operator=(const SchedulerThreads&) = delete;

  // Made on first use, with 4 workers.
  static std::shared_ptr<SchedulerThreads> shared();
  unsigned workers() const;

  struct Impl;

 private:
  friend struct SchedulerThreadsAccess;  // the Scheduler's way in (library-internal)
  std::unique_ptr<Impl> impl_;
};

struct SchedulerOptions {
  std::function<std::chrono::system_clock::time_point()> clock;  // default: system_clock::now
  std::shared_ptr<JobStore> store;                                // default: memory
  Manager* manager = nullptr;           // runs tool and action targets; its plugins' `schedules:` join
  // Instead of `manager`, for a host whose Managers come and go (tenants started on demand, parked when
  // idle): called for each run of a tool or action target, it returns the Manager to run it in, kept alive
  // for the run (and may start it). Plugins' own schedules join through attach_plugins().
  std::function<Result<std::shared_ptr<Manager>>()> manager_lease;
  std::map<std::string, JobCallback> callbacks;  // callback targets by name
  // Runs an agent target: the job (its run_as and tenant), the task (the target's input, and a webhook's
  // body after it), and why it runs ("schedule", "webhook", "manual"). Its result is the run's. Without it,
  // agent targets fail.
  std::function<Result<json::value>(const JobSpec& job, std::string task, std::string_view reason)> agents;
  std::shared_ptr<SchedulerThreads> threads;  // who ticks and runs jobs; default: SchedulerThreads::shared()
  bool run_inline = false;              // jobs run inside tick() or run_now(), on the caller's thread (tests)
  std::size_t history_per_job = 100;    // runs kept per job
  bool background = true;               // the timer thread calls tick() when something is due; false: tests do
  LogSink log;  // source "scheduler"; default: discard
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);
  ~Scheduler();  // no more ticks; waits for its queued and running jobs
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Reads the store: jobs come back with their next fire times (missed ones follow the misfire rules
  // at the next tick), runs left `running` by a crash become `interrupted`. Call once, before anything.
  Result<void> restore();

  Result<std::string> add(JobSpec job);
  Result<void> update(std::string_view id, JobSpec job);  // keeps the id and the creation time
  Result<void> remove(std::string_view id);
  Result<void> pause(std::string_view id);
  Result<void> resume(std::string_view id);
  // Starts a run now, outside the schedule (input: the webhook's body, or null).
  Result<std::string> run_now(std::string_view id, const json::value& input = nullptr, std::string_view reason = "manual");

  std::optional<JobState> get(std::string_view id) const;
  std::vector<JobState> list(std::string_view tenant = {}) const;
  std::optional<JobState> find_webhook(std::string_view name) const;
  std::vector<SysSeconds> preview(std::string_view id, std::size_t count) const;
  Result<std::vector<RunRecord>> runs(std::string_view id, std::size_t limit = 100) const;

  // The Manager whose plugins' own schedules (manifest `schedules:`, host().schedule) join this scheduler,
  // until detach_plugins(): their jobs go with it. `manager` in the options is attached at construction.
  void attach_plugins(Manager& manager);
  void detach_plugins();
  // Jobs that plugins scheduled (they stop when their Manager is detached).
  std::size_t plugin_jobs() const;

  // Starts every run that is due at the clock's time; returns how many started. The background thread
  // calls it; tests drive it.
  std::size_t tick();
  // Waits until no run is in progress.
  void wait_idle();
  std::size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xcore::inline v1
