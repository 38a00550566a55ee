// The memory job store: what a host without a database gets (SchedulerOptions::store left empty).
#include <xcore/scheduler.hpp>

#include <algorithm>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace xcore::inline v1 {

using std::chrono::system_clock;

namespace {

// The memory store: what a host without a database gets.
class MemoryJobStore final : public JobStore {
 public:
  Result<void> put_job(const StoredJob& job) override {
    std::lock_guard lock(mutex_);
    jobs_[job.spec.id] = job;
    return ok();
  }
  Result<void> remove_job(std::string_view id) override {
    std::lock_guard lock(mutex_);
    jobs_.erase(std::string(id));
    runs_.erase(std::string(id));
    return ok();
  }
  Result<std::vector<StoredJob>> jobs() override {
    std::lock_guard lock(mutex_);
    std::vector<StoredJob> out;
    for (const auto& [id, j] : jobs_) out.push_back(j);
    return out;
  }
  Result<void> start_run(const RunRecord& run, std::optional<SysSeconds> next_run) override {
    std::lock_guard lock(mutex_);
    if (auto it = jobs_.find(run.job_id); it != jobs_.end()) it->second.next_run = next_run;
    runs_[run.job_id].push_front(run);
    return ok();
  }
  Result<void> set_next_run(std::string_view id, std::optional<SysSeconds> next_run) override {
    std::lock_guard lock(mutex_);
    if (auto it = jobs_.find(std::string(id)); it != jobs_.end()) it->second.next_run = next_run;
    return ok();
  }
  Result<void> finish_run(const RunRecord& run) override {
    std::lock_guard lock(mutex_);
    for (auto& r : runs_[run.job_id])
      if (r.id == run.id) r = run;
    return ok();
  }
  Result<void> add_run(const RunRecord& run) override {
    std::lock_guard lock(mutex_);
    runs_[run.job_id].push_front(run);
    return ok();
  }
  Result<std::vector<RunRecord>> runs(std::string_view job_id, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<RunRecord> out;
    auto it = runs_.find(std::string(job_id));
    if (it == runs_.end()) return out;
    for (const auto& r : it->second) {
      if (out.size() >= limit) break;
      out.push_back(r);
    }
    return out;
  }
  Result<std::size_t> interrupt_running(system_clock::time_point now) override {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (auto& [id, list] : runs_)
      for (auto& r : list)
        if (r.status == RunStatus::running) {
          r.status = RunStatus::interrupted;
          r.ended = now;
          r.error = "the process ended during the run";
          ++n;
        }
    return n;
  }
  Result<void> prune_runs(std::string_view job_id, std::size_t keep) override {
    std::lock_guard lock(mutex_);
    auto& list = runs_[std::string(job_id)];
    while (list.size() > keep) list.pop_back();
    return ok();
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, StoredJob> jobs_;
  std::unordered_map<std::string, std::deque<RunRecord>> runs_;
};

}  // namespace

std::shared_ptr<JobStore> make_memory_job_store() { return std::make_shared<MemoryJobStore>(); }

}  // namespace xcore::inline v1
