// Agents: an LLM tool-calling loop over the tool registry. An agent is data (AgentSpec); a run is one task
// given to it: the model answers with tool calls, the runtime runs them as the agent's principal and feeds
// the results back, step by step, until the model answers in words, a limit is reached, or a tool call waits
// for a person's approval. Runs and their transcripts go through AgentRunStore (the host's persistence).
//
// Hooks (on the runtime's bus): "agent.before_run" (vetoable; a reply {"input": "..."} rewrites the input),
// "agent.reasoning_step" (each model answer), "agent.after_run", "agent.error"; the tool registry's own
// "tool.before_call"/"tool.after_call" see the agent as the principal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/call_context.hpp>
#include <xcore/competencies.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/log.hpp>
#include <xcore/models.hpp>

namespace xcore::inline v1 {

class HookBus;
class ToolRegistry;

// Which tool calls wait for a person. A tool matches when its annotations say destructiveHint (unless
// `destructive` is false) or its name matches one of `tools` ('*' patterns).
struct ApprovalPolicy {
  bool destructive = true;
  std::vector<std::string> tools;
  // Who may decide, besides the agent's owner: permission patterns, one of which the approver must hold
  // (a host maps its roles to permissions; default "agents.approve:<agent>").
  std::vector<std::string> approvers;
};

struct AgentSpec {
  std::string name;      // [A-Za-z0-9_.-], unique per tenant
  std::string provider;  // a provider's name; empty: the host's default
  std::string model;     // empty: the provider's default model
  // More providers tried in turn when the first fails: "name" or "name/model".
  std::vector<std::string> fallback;
  std::string system;    // the system prompt
  // The tools it may call: names ("echo", "core.echo"), "category:<c>", "plugin:<p>" or patterns ("core.*").
  std::vector<std::string> tools;
  std::vector<std::string> competencies;  // each enables its tools (and its prerequisites')
  unsigned max_steps = 15;                // model answers per run
  std::optional<std::uint32_t> max_tokens;     // per model request
  std::optional<std::uint64_t> token_budget;   // per run, prompt and completion together
  std::optional<double> temperature;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};  // per run, approvals' waiting excluded
  ApprovalPolicy approval;
  // Set by the host, never taken from a caller: the user it acts for (a host's user id), and the permission
  // sets it is also held to: what a scoped API token that made it held, what the caller who started a run
  // held. The agent never holds more than any of them.
  std::string owner;
  std::vector<std::vector<std::string>> limits;
  std::string tenant;

  // The API form, also what a run keeps of its agent (owner, limits and tenant included: a host refuses them
  // in what a caller sends). Errors name the field.
  static Result<AgentSpec> from_json(const json::value& v);
  json::object to_json() const;
};

enum class AgentRunStatus : std::uint8_t { running, awaiting_approval, succeeded, failed, cancelled };
std::string_view to_string(AgentRunStatus s) noexcept;
std::optional<AgentRunStatus> agent_run_status_from_string(std::string_view s) noexcept;

// One entry of a run's transcript. Types: "run_started", "model_answer" (text, tool calls, tokens, latency),
// "text" (a streamed piece), "tool_call", "tool_result" (result or error, latency), "approval_requested",
// "approval_decided", "error", "run_finished".
struct AgentEvent {
  std::uint64_t seq = 0;  // 1, 2, ... within the run
  std::string type;
  unsigned step = 0;
  json::object data;
  std::chrono::system_clock::time_point at{};
  json::object to_json() const;
};

// A tool call waiting for a person. Approving runs exactly these arguments, once.
struct PendingApproval {
  std::string id;  // unguessable; made by the runtime
  std::string run_id;
  std::string agent;
  std::string tenant;
  std::string call_id;  // the model's tool call id
  std::string tool;
  json::value arguments;
  std::string reason;                  // why it waits ("destructive", "matches 'fs.*'")
  std::vector<std::string> approvers;  // permission patterns that may decide, besides the owner
  std::string owner;
  std::chrono::system_clock::time_point requested{};
  json::object to_json() const;
};

struct AgentRun {
  std::string id;  // made by the runtime
  std::string agent;
  std::string tenant;
  std::string owner;
  std::string trigger = "manual";  // "manual", "schedule", "webhook", ...
  std::string input;
  std::string output;  // the model's final answer
  AgentRunStatus status = AgentRunStatus::running;
  std::optional<Error> error;
  std::string provider, model;
  unsigned steps = 0;
  TokenUsage usage;
  std::chrono::system_clock::time_point started{}, ended{};
  // What a paused run resumes from: the conversation so far and the agent as it was when the run began.
  std::vector<ChatMessage> messages;
  std::vector<PendingApproval> pending;
  // Calls decided while others of the same step still wait: run (or answered with the denial) on resume.
  struct Decided {
    PendingApproval approval;
    std::optional<std::string> denial;  // set: denied, and this is what the model reads
  };
  std::vector<Decided> decided;
  json::object agent_spec;
  std::chrono::milliseconds active{0};  // time spent running, approvals' waiting excluded

  json::object to_json(bool with_messages = false) const;
  static Result<AgentRun> from_json(const json::value& v);
};

// Where runs, their transcripts and pending approvals outlive the process. Thread-safe.
class AgentRunStore {
 public:
  virtual ~AgentRunStore() = default;
  virtual Result<void> put_run(const AgentRun& run) = 0;  // insert or replace (pending approvals with it)
  virtual Result<std::optional<AgentRun>> run(std::string_view tenant, std::string_view id) = 0;
  virtual Result<std::vector<AgentRun>> runs(std::string_view tenant, std::string_view agent, std::size_t limit) = 0;  // newest first
  virtual Result<void> append_event(std::string_view tenant, std::string_view run_id, const AgentEvent& event) = 0;
  virtual Result<std::vector<AgentEvent>> events(std::string_view tenant, std::string_view run_id, std::uint64_t after_seq = 0) = 0;
  // Every tenant's runs left `running` by a crash (they become failed at restore) and runs awaiting approval.
  virtual Result<std::vector<AgentRun>> unfinished() = 0;
  // One tenant's runs awaiting approval, oldest first.
  virtual Result<std::vector<AgentRun>> waiting(std::string_view tenant) = 0;
};

std::shared_ptr<AgentRunStore> make_memory_agent_run_store();

// Where a run finds its tools and competencies, held for the run (a host whose tenants' Managers come and go
// keeps the tenant's alive through these).
struct AgentTools {
  std::shared_ptr<ToolRegistry> tools;
  std::shared_ptr<CompetencyRegistry> competencies;  // may be null
  std::shared_ptr<HookBus> hooks;                    // where the agent.* hooks go; may be null
};

struct AgentRuntimeOptions {
  ToolRegistry* tools = nullptr;                // the tools of every run, unless `lease` is set
  CompetencyRegistry* competencies = nullptr;   // optional: agents naming competencies need it
  std::function<Result<AgentTools>(std::string_view tenant)> lease;  // instead of tools/competencies
  HookBus* hooks = nullptr;                     // optional: the agent.* hooks (unless `lease` gives a bus)
  // The model client for an agent (its provider, or the host's default; a host may give a fallback chain).
  std::function<Result<std::shared_ptr<ModelClient>>(const AgentSpec& agent)> models;
  // The principal of the agent's owner now, for a run resumed after a restart (permissions may have
  // changed; a deleted owner's run cannot resume). Runs started in this process keep the one they began with.
  std::function<Result<Principal>(std::string_view tenant, std::string_view owner)> owner;
  std::shared_ptr<AgentRunStore> store;  // default: memory
  std::function<std::chrono::system_clock::time_point()> clock;  // default: system_clock::now
  unsigned parallel_tool_calls = 4;       // tool calls of one step run at once
  // Every event of every run, as it is recorded (for live streams).
  std::function<void(const AgentRun& run, const AgentEvent& event)> on_event;
  LogSink log;  // source "agents"
};

struct RunRequest {
  std::string input;
  std::string trigger = "manual";
  std::string tenant;  // the agent's when empty
  std::stop_token cancel;  // besides AgentRuntime::cancel
  bool stream_text = false;  // ask the model to stream; pieces become "text" events
};

class AgentRuntime {
 public:
  explicit AgentRuntime(AgentRuntimeOptions options);
  ~AgentRuntime();  // shutdown()
  // Cancels the runs under way, refuses new ones and waits for the runs on the runtime's threads. Runs
  // awaiting approval stay so in the store.
  void shutdown();
  AgentRuntime(const AgentRuntime&) = delete;
  AgentRuntime& operator=(const AgentRuntime&) = delete;

  // Marks the store's runs left `running` by a crash as failed. Runs awaiting approval stay so.
  Result<void> restore();

  // The tools the agent may call, as its owner's principal allows, in OpenAI function form (what the model sees).
  Result<json::array> visible_tools(const AgentSpec& agent, const Principal& owner) const;

  // Runs on the caller's thread until the run ends or waits for an approval; returns the run as it is then.
  Result<AgentRun> run(const AgentSpec& agent, const Principal& owner, RunRequest request);
  // The same on a thread of the runtime's; returns the run's id at once.
  Result<std::string> start(const AgentSpec& agent, const Principal& owner, RunRequest request);
  // Asks a running run to stop (its model request and tool calls are cancelled); a run awaiting approval
  // ends cancelled at once.
  Result<void> cancel(std::string_view tenant, std::string_view run_id);
  // Waits until a run started here ends or pauses (or the timeout passes), then returns it from the store.
  Result<AgentRun> wait(std::string_view tenant, std::string_view run_id, std::chrono::milliseconds timeout);

  // The pending approvals of a tenant, oldest first.
  Result<std::vector<PendingApproval>> approvals(std::string_view tenant) const;
  // Decides one pending tool call: `who` must be the owner or hold one of its approvers' patterns. The
  // approval is used up; when the run's last pending call is decided, the run resumes on a thread of the
  // runtime's (approved calls run with the arguments approved, denied ones answer the model with the denial).
  Result<PendingApproval> decide(std::string_view tenant, std::string_view approval_id, bool approve, const Principal& who,
                                 std::string_view who_name, std::string_view note = {});

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A tool call written in the text by a model without native tool calling: a JSON object {"name": ...,
// "arguments": {...}} (or {"tool": ...}, {"function": {...}}), alone or in a fenced block, naming one of
// `known`. Empty when there is none.
std::vector<ModelToolCall> read_text_tool_calls(std::string_view text, const std::vector<std::string>& known);

}  // namespace xcore::inline v1
