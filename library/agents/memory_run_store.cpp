// The default AgentRunStore: memory only.
#include <xcore/agents.hpp>

#include <map>
#include <mutex>

namespace xcore::inline v1 {

namespace {

class MemoryAgentRunStore final : public AgentRunStore {
 public:
  Result<void> put_run(const AgentRun& run) override {
    std::lock_guard lock(mutex_);
    runs_[{run.tenant, run.id}] = run;
    return ok();
  }
  Result<std::optional<AgentRun>> run(std::string_view tenant, std::string_view id) override {
    std::lock_guard lock(mutex_);
    auto it = runs_.find({std::string(tenant), std::string(id)});
    if (it == runs_.end()) return std::optional<AgentRun>();
    return std::optional<AgentRun>(it->second);
  }
  Result<std::vector<AgentRun>> runs(std::string_view tenant, std::string_view agent, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<AgentRun> out;
    for (const auto& [key, r] : runs_)
      if (r.tenant == tenant && (agent.empty() || r.agent == agent)) out.push_back(r);
    std::sort(out.begin(), out.end(), [](const AgentRun& a, const AgentRun& b) { return a.started > b.started; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  Result<void> append_event(std::string_view tenant, std::string_view run_id, const AgentEvent& event) override {
    std::lock_guard lock(mutex_);
    events_[{std::string(tenant), std::string(run_id)}].push_back(event);
    return ok();
  }
  Result<std::vector<AgentEvent>> events(std::string_view tenant, std::string_view run_id, std::uint64_t after_seq) override {
    std::lock_guard lock(mutex_);
    std::vector<AgentEvent> out;
    if (auto it = events_.find({std::string(tenant), std::string(run_id)}); it != events_.end())
      for (const auto& e : it->second)
        if (e.seq > after_seq) out.push_back(e);
    return out;
  }
  Result<std::vector<AgentRun>> waiting(std::string_view tenant) override {
    std::lock_guard lock(mutex_);
    std::vector<AgentRun> out;
    for (const auto& [key, r] : runs_)
      if (r.tenant == tenant && r.status == AgentRunStatus::awaiting_approval) out.push_back(r);
    std::sort(out.begin(), out.end(), [](const AgentRun& a, const AgentRun& b) { return a.started < b.started; });
    return out;
  }
  Result<std::vector<AgentRun>> unfinished() override {
    std::lock_guard lock(mutex_);
    std::vector<AgentRun> out;
    for (const auto& [key, r] : runs_)
      if (r.status == AgentRunStatus::running || r.status == AgentRunStatus::awaiting_approval) out.push_back(r);
    return out;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, AgentRun> runs_;
  std::map<std::pair<std::string, std::string>, std::vector<AgentEvent>> events_;
};

}  // namespace

std::shared_ptr<AgentRunStore> make_memory_agent_run_store() { return std::make_shared<MemoryAgentRunStore>(); }

}  // namespace xcore::inline v1
