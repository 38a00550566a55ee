// The agent run loop: model answer, tool calls (in parallel, as the agent's principal), results back, until a
// final answer, a limit, a cancellation or an approval to wait for.
#include <xcore/agents.hpp>
#include <xcore/hooks.hpp>
#include <xcore/tools.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/glob.hpp"
#include "core/random_token.hpp"
#include "core/thread_name.hpp"

namespace xcore::inline v1 {

namespace {

using Clock = std::chrono::system_clock;
using Key = std::pair<std::string, std::string>;  // (tenant, run id)

std::string function_name_of(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');  // OpenAI function names: [a-zA-Z0-9_-]
  return name;
}

// A tool the agent may call: the name the model sees, the registry's qualified name, whether it waits.
struct AllowedTool {
  std::string function_name;
  std::string qualified;
  std::vector<std::string> permissions;
  bool destructive = false;
};

struct Toolset {
  json::array functions;  // OpenAI form
  std::vector<AllowedTool> tools;
  const AllowedTool* find(std::string_view function_name) const {
    // The name offered, or the tool's qualified name as written or as a function name ("core.echo", "core_echo").
    for (const auto& t : tools)
      if (t.function_name == function_name || t.qualified == function_name) return &t;
    for (const auto& t : tools)
      if (function_name_of(t.qualified) == function_name) return &t;
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& t : tools) out.push_back(t.function_name);
    return out;
  }
};

bool selected(const ToolInfo& t, const std::vector<std::string>& selectors) {
  for (const auto& s : selectors) {
    if (s.starts_with("category:")) {
      if (t.spec.category == std::string_view(s).substr(9)) return true;
    } else if (s.starts_with("plugin:")) {
      if (t.spec.plugin == std::string_view(s).substr(7)) return true;
    } else if (glob_match(s, t.exposed_name) || glob_match(s, t.qualified_name)) {
      return true;
    }
  }
  return false;
}

bool owner_may_call(const Principal& owner, const ToolInfo& t) {
  if (owner.unrestricted()) return true;
  if (!owner.allows("tools.call:" + t.qualified_name) && !owner.allows("tools.call:" + t.exposed_name)) return false;
  for (const auto& need : t.spec.permissions)
    if (!owner.allows(need)) return false;
  return true;
}


// What the model reads back for a call: the structured result as JSON, else the text blocks; failures say so.
std::string result_text(const Result<ToolResult>& r) {
  if (!r) return fmt::format("error: {}: {}", to_string(r.error().code), r.error().message);
  std::string text;
  if (!r->structured.is_null()) {
    text = json::serialize(r->structured);
  } else {
    for (const auto& block : r->content)
      if (block.is_object())
        if (auto t = block.as_object().find("text"); t != block.as_object().end() && t->value().is_string()) {
          if (!text.empty()) text += "\n";
          text += t->value().as_string();
        }
  }
  return r->is_error ? "error: " + text : text;
}

json::object tool_calls_json(const std::vector<ModelToolCall>& calls) {
  json::array a;
  for (const auto& c : calls) a.push_back(json::object{{"id", c.id}, {"name", c.name}, {"arguments", c.arguments}});
  return json::object{{"tool_calls", std::move(a)}};
}

}  // namespace

struct AgentRuntime::Impl {
  AgentRuntimeOptions o;

  struct Live {
    std::stop_source stop;
    bool done = false;  // ended or paused
  };
  mutable std::mutex mutex;
  std::condition_variable changed;
  std::map<Key, std::shared_ptr<Live>> live;    // runs under way in this process
  std::map<Key, Principal> owners;              // owners of runs started here (paused ones included)
  std::map<Key, std::uint64_t> next_seq;        // event numbers of runs seen here
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::list<Worker> workers;
  bool closing = false;
  std::mutex decide_mutex;  // the read-modify-write of a run's pending approvals in the store

  Clock::time_point now() const { return o.clock ? o.clock() : Clock::now(); }
  void log(LogLevel level, std::string message) const {
    if (o.log) o.log(level, "agents", message);
  }

  // ---- tools the agent may call -------------------------------------------------------------------------

  // The run's tools: leased from the host, or the ones given (not owned: the host keeps them alive).
  Result<AgentTools> lease(std::string_view tenant) const {
    if (o.lease) return o.lease(tenant);
    if (!o.tools) return Error{ErrorCode::failed_precondition, "the agent runtime has no tool registry"};
    return AgentTools{std::shared_ptr<ToolRegistry>(std::shared_ptr<ToolRegistry>(), o.tools),
                      std::shared_ptr<CompetencyRegistry>(std::shared_ptr<CompetencyRegistry>(), o.competencies),
                      std::shared_ptr<HookBus>(std::shared_ptr<HookBus>(), o.hooks)};
  }

  Result<Toolset> toolset(const AgentSpec& agent, const Principal& owner, const AgentTools& held) const {
    std::vector<std::string> selectors = agent.tools;
    if (!agent.competencies.empty()) {
      if (!held.competencies) return Error{ErrorCode::failed_precondition, fmt::format("agent '{}' names competencies, but this host has none", agent.name)};
      XCORE_ASSIGN_OR_RETURN(auto enabled, held.competencies->tools_for(agent.competencies, agent.tenant));
      selectors.insert(selectors.end(), enabled.begin(), enabled.end());
    }
    Toolset set;
    if (selectors.empty()) return set;
    ToolFilter filter;
    filter.tenant = agent.tenant;
    std::set<std::string> taken;
    for (const auto& t : held.tools->list(filter)) {
      if (!selected(t, selectors) || !owner_may_call(owner, t)) continue;
      auto fname = function_name_of(t.exposed_name);
      if (!taken.insert(fname).second) continue;
      AllowedTool allowed{fname, t.qualified_name, t.spec.permissions, false};
      if (auto d = t.spec.annotations.find("destructiveHint"); d != t.spec.annotations.end() && d->value().is_bool()) allowed.destructive = d->value().as_bool();
      json::object fn{{"name", fname},
                      {"description", t.spec.description.empty() ? t.spec.title : t.spec.description},
                      {"parameters", t.spec.input_schema.empty() ? json::object{{"type", "object"}, {"properties", json::object{}}} : t.spec.input_schema}};
      set.functions.push_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
      set.tools.push_back(std::move(allowed));
    }
    return set;
  }

  // The owner as the agent may act for them: held to each of the agent's limits too (a chain of principals,
  // every link of which must allow what is done).
  static Principal acting_owner(const AgentSpec& agent, const Principal& owner) {
    Principal acting = owner;
    for (const auto& set : agent.limits) {
      Principal capped;
      capped.kind = Principal::Kind::api_token;
      capped.id = fmt::format("a limit on {}", owner.id);
      capped.permissions = set;
      capped.on_behalf_of = std::make_shared<const Principal>(std::move(acting));
      acting = std::move(capped);
    }
    return acting;
  }

  // The agent's own principal: exactly its tools, on behalf of its owner (a tool's required permissions must
  // then be held by both).
  static Principal agent_principal(const AgentSpec& agent, const Principal& owner, const Toolset& set) {
    Principal p;
    p.kind = Principal::Kind::agent;
    p.id = agent.name;
    for (const auto& t : set.tools) {
      p.permissions.push_back("tools.call:" + t.qualified);
      p.permissions.insert(p.permissions.end(), t.permissions.begin(), t.permissions.end());
    }
    p.on_behalf_of = std::make_shared<const Principal>(owner);
    return p;
  }

  std::optional<std::string> approval_reason(const AgentSpec& agent, const AllowedTool& t) const {
    if (agent.approval.destructive && t.destructive) return std::string("the tool is marked destructive");
    for (const auto& pattern : agent.approval.tools)
      if (glob_match(pattern, t.qualified) || glob_match(pattern, t.function_name)) return fmt::format("the agent's approval policy names '{}'", pattern);
    return std::nullopt;
  }

  // ---- transcript ---------------------------------------------------------------------------------------

  void record(AgentRun& run, std::string type, unsigned step, json::object data) {
    AgentEvent e;
    {
      std::lock_guard lock(mutex);
      e.seq = ++next_seq[{run.tenant, run.id}];
    }
    e.type = std::move(type);
    e.step = step;
    e.data = std::move(data);
    e.at = now();
    if (auto r = o.store->append_event(run.tenant, run.id, e); !r) log(LogLevel::error, fmt::format("run {}: event not stored: {}", run.id, r.error().message));
    if (o.on_event) o.on_event(run, e);
  }

  // A run read back from the store (after a restart, or paused) goes on numbering its events after the
  // last one stored.
  Result<void> continue_numbering(const AgentRun& run) {
    XCORE_ASSIGN_OR_RETURN(auto events, o.store->events(run.tenant, run.id));
    std::lock_guard lock(mutex);
    auto& seq = next_seq[{run.tenant, run.id}];
    seq = std::max(seq, events.empty() ? std::uint64_t{0} : events.back().seq);
    return ok();
  }

  void save(const AgentRun& run) {
    if (auto r = o.store->put_run(run); !r) log(LogLevel::error, fmt::format("run {}: not stored: {}", run.id, r.error().message));
  }

  HookOutcome emit(std::string_view hook, json::object payload, std::string_view tenant) {
    std::shared_ptr<HookBus> bus;
    if (o.lease) {
      if (auto held = o.lease(tenant)) bus = held->hooks;
    } else {
      bus = std::shared_ptr<HookBus>(std::shared_ptr<HookBus>(), o.hooks);
    }
    if (!bus || !bus->has_subscribers(hook)) return {};
    return bus->emit(hook, payload, tenant);
  }

  void finish(AgentRun& run, AgentRunStatus status, std::optional<Error> error, Clock::time_point resumed_at) {
    run.status = status;
    run.error = std::move(error);
    run.ended = now();
    run.active += std::chrono::duration_cast<std::chrono::milliseconds>(run.ended - resumed_at);
    run.pending.clear();
    if (run.error) {
      record(run, "error", run.steps, json::object{{"code", to_string(run.error->code)}, {"message", run.error->message}});
      emit("agent.error", json::object{{"run_id", run.id}, {"agent", run.agent}, {"code", to_string(run.error->code)}, {"message", run.error->message}}, run.tenant);
    }
    record(run, "run_finished", run.steps, json::object{{"status", to_string(status)}, {"output", run.output}, {"steps", run.steps},
                                                        {"total_tokens", run.usage.total()}, {"active_ms", run.active.count()}});
    save(run);
    emit("agent.after_run", json::object{{"run_id", run.id}, {"agent", run.agent}, {"status", to_string(status)}, {"output", run.output},
                                         {"steps", run.steps}, {"total_tokens", run.usage.total()}},
         run.tenant);
  }

  // ---- one call ----------------------------------------------------------------------------------------

  struct CallOutcome {
    std::string text;
    bool error = false;
    std::int64_t latency_ms = 0;
  };

  static CallOutcome invoke(ToolRegistry& tools, const AllowedTool& tool, const json::value& arguments, const CallContext& ctx) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = tools.invoke(tool.qualified, arguments, ctx);
    CallOutcome out{result_text(r), !r || r->is_error, 0};
    out.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    return out;
  }

  // ---- the loop ----------------------------------------------------------------------------------------

  // Runs `run` from where it stands (a fresh run, or one whose approvals were all decided) until it ends or
  // pauses. `decided`: approved calls to run first (with their approved arguments) and denied ones' answers.
  void execute(AgentRun& run, const AgentSpec& agent, const Principal& owner, std::stop_token cancel, bool stream_text,
               std::vector<std::pair<PendingApproval, std::optional<std::string>>> decided = {}) {
    const auto resumed_at = now();
    auto held = lease(run.tenant);
    if (!held) return finish(run, AgentRunStatus::failed, held.error(), resumed_at);
    auto& tools = *held->tools;
    const auto acting = acting_owner(agent, owner);
    auto toolset_r = toolset(agent, acting, *held);
    if (!toolset_r) return finish(run, AgentRunStatus::failed, toolset_r.error(), resumed_at);
    const auto set = std::move(*toolset_r);
    const auto principal = agent_principal(agent, acting, set);
    auto model_r = o.models ? o.models(agent) : Result<std::shared_ptr<ModelClient>>(Error{ErrorCode::failed_precondition, "no model providers are configured"});
    if (!model_r) return finish(run, AgentRunStatus::failed, model_r.error(), resumed_at);
    auto model = *model_r;
    const auto deadline = resumed_at + (agent.timeout - std::min(agent.timeout, run.active));
    auto context = [&] {
      CallContext ctx;
      ctx.tenant = run.tenant;
      ctx.user = run.owner;
      ctx.principal = principal;
      ctx.deadline = deadline;
      ctx.cancel = cancel;
      return ctx;
    };

      for (auto& [approval, denial] : decided) {
      const auto* tool = set.find(approval.tool);
      CallOutcome out;
      if (denial) out = {*denial, true, 0};
      else if (!tool) out = {fmt::format("error: tool '{}' is no longer available to this agent", approval.tool), true, 0};
      else out = invoke(tools, *tool, approval.arguments, context());
      record(run, "tool_result", run.steps, json::object{{"id", approval.call_id}, {"name", approval.tool}, {"result", out.text}, {"is_error", out.error}, {"latency_ms", out.latency_ms}});
      run.messages.push_back(ChatMessage::tool(approval.call_id, out.text));
    }
    run.pending.clear();

    ChatRequest request;
    request.model = agent.model;
    request.tools = set.functions;
    request.max_tokens = agent.max_tokens;
    request.temperature = agent.temperature;
    request.deadline = deadline;
    request.cancel = cancel;
    while (true) {
      if (cancel.stop_requested()) return finish(run, AgentRunStatus::cancelled, Error{ErrorCode::cancelled, "the run was cancelled"}, resumed_at);
      if (now() >= deadline)
        return finish(run, AgentRunStatus::failed, Error{ErrorCode::timeout, fmt::format("the run took longer than its {} s", agent.timeout.count() / 1000)}, resumed_at);
      if (run.steps >= agent.max_steps)
        return finish(run, AgentRunStatus::failed,
                      Error{ErrorCode::resource_exhausted, fmt::format("max_steps ({}) reached without a final answer", agent.max_steps)}, resumed_at);
      if (agent.token_budget && run.usage.total() >= *agent.token_budget)
        return finish(run, AgentRunStatus::failed,
                      Error{ErrorCode::resource_exhausted, fmt::format("the token budget ({}) is spent: {} tokens used", *agent.token_budget, run.usage.total())}, resumed_at);

      // The conversation is lent to the request, not copied.
      request.messages = std::move(run.messages);
      const unsigned step = run.steps + 1;
      if (stream_text) request.on_text = [&](std::string_view text) { record(run, "text", step, json::object{{"text", text}}); };
      const auto t0 = std::chrono::steady_clock::now();
      auto answer = model->complete(request);
      const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
      run.messages = std::move(request.messages);
      if (!answer) {
        const auto status = answer.error().code == ErrorCode::cancelled ? AgentRunStatus::cancelled : AgentRunStatus::failed;
        return finish(run, status, answer.error(), resumed_at);
      }
      run.steps = step;
      run.usage += answer->usage;
      run.provider = answer->provider;
      run.model = answer->model;
      auto message = std::move(answer->message);
      bool from_text = false;
      if (message.tool_calls.empty() && !set.tools.empty()) {
        message.tool_calls = read_text_tool_calls(message.content, set.names());
        from_text = !message.tool_calls.empty();
      }
      auto data = tool_calls_json(message.tool_calls);
      data["text"] = message.content;
      data["finish_reason"] = answer->finish_reason;
      data["prompt_tokens"] = answer->usage.prompt;
      data["completion_tokens"] = answer->usage.completion;
      data["latency_ms"] = latency / 1000;
      data["latency_us"] = latency;
      data["model"] = answer->model;
      data["provider"] = answer->provider;
      data["attempts"] = answer->attempts;
      if (from_text) data["tool_calls_from_text"] = true;
      record(run, "model_answer", step, data);
      emit("agent.reasoning_step", json::object{{"run_id", run.id}, {"agent", run.agent}, {"step", step}, {"text", message.content},
                                                {"tool_calls", data["tool_calls"]}},
           run.tenant);
      run.messages.push_back(message);
      if (message.tool_calls.empty()) {
        run.output = message.content;
        return finish(run, AgentRunStatus::succeeded, std::nullopt, resumed_at);
      }

      // Sort the calls: refused at once (unknown tool, malformed arguments), waiting for approval, or run now.
      struct Planned {
        const ModelToolCall* call;
        const AllowedTool* tool = nullptr;
        json::value arguments;
        std::optional<CallOutcome> outcome;
      };
      std::vector<Planned> planned;
      std::vector<PendingApproval> pending;
      for (const auto& call : message.tool_calls) {
        record(run, "tool_call", step, json::object{{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}});
        Planned p{&call, nullptr, nullptr, std::nullopt};
        p.tool = set.find(call.name);
        if (!p.tool) {
          auto known = set.names();
          std::string list;
          for (const auto& n : known) list += fmt::format("{}{}", list.empty() ? "" : ", ", n);
          p.outcome = CallOutcome{fmt::format("error: tool '{}' does not exist or this agent may not call it; the tools it may call are: {}", call.name,
                                              list.empty() ? "none" : list),
                                  true, 0};
        } else {
          boost::system::error_code ec;
          p.arguments = call.arguments.empty() ? json::value(json::object{}) : json::parse(call.arguments, ec);
          if (ec) p.outcome = CallOutcome{fmt::format("error: the arguments are not valid JSON ({}): {}", ec.message(), call.arguments), true, 0};
          else if (auto reason = approval_reason(agent, *p.tool)) {
            PendingApproval a;
            a.id = random_token();
            a.run_id = run.id;
            a.agent = run.agent;
            a.tenant = run.tenant;
            a.call_id = call.id;
            a.tool = p.tool->function_name;
            a.arguments = p.arguments;
            a.reason = *reason;
            a.approvers = agent.approval.approvers.empty() ? std::vector<std::string>{"agents.approve:" + agent.name} : agent.approval.approvers;
            a.owner = run.owner;
            a.requested = now();
            pending.push_back(std::move(a));
            continue;
          }
        }
        planned.push_back(std::move(p));
      }
      // The calls to run go at once, at most parallel_tool_calls together; the first of each batch on this
      // thread (a step with one call starts no thread).
      std::vector<std::size_t> to_run;
      for (std::size_t i = 0; i < planned.size(); ++i)
        if (!planned[i].outcome) to_run.push_back(i);
      const std::size_t width = std::max(1u, o.parallel_tool_calls);
      for (std::size_t from = 0; from < to_run.size(); from += width) {
        const std::size_t end = std::min(to_run.size(), from + width);
        std::vector<std::thread> helpers;
        for (std::size_t k = from + 1; k < end; ++k) {
          helpers.emplace_back([&, i = to_run[k]] { planned[i].outcome = invoke(tools, *planned[i].tool, planned[i].arguments, context()); });
          name_thread(helpers.back(), "xcore-agent-tool");
        }
        planned[to_run[from]].outcome = invoke(tools, *planned[to_run[from]].tool, planned[to_run[from]].arguments, context());
        for (auto& t : helpers) t.join();
      }
      for (const auto& p : planned) {
        record(run, "tool_result", step,
               json::object{{"id", p.call->id}, {"name", p.call->name}, {"result", p.outcome->text}, {"is_error", p.outcome->error}, {"latency_ms", p.outcome->latency_ms}});
        run.messages.push_back(ChatMessage::tool(p.call->id, p.outcome->text));
      }
      if (!pending.empty()) {
        run.pending = std::move(pending);
        run.status = AgentRunStatus::awaiting_approval;
        run.active += std::chrono::duration_cast<std::chrono::milliseconds>(now() - resumed_at);
        for (const auto& a : run.pending) {
          record(run, "approval_requested", step, a.to_json());
          log(LogLevel::info, fmt::format("run {} of agent '{}' waits for approval {} of '{}'", run.id, run.agent, a.id, a.tool));
        }
        save(run);
        return;
      }
      save(run);
    }
  }

  // ---- runs on the runtime's threads -------------------------------------------------------------------

  void spawn(std::function<void()> body) {
    std::lock_guard lock(mutex);
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->finished->load()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    auto finished = std::make_shared<std::atomic<bool>>(false);
    workers.push_back(Worker{std::thread([body = std::move(body), finished] {
                               body();
                               finished->store(true);
                             }),
                             finished});
    name_thread(workers.back().thread, "xcore-agent");
  }

  std::shared_ptr<Live> track(const AgentRun& run, const Principal& owner) {
    std::lock_guard lock(mutex);
    auto& l = live[{run.tenant, run.id}];
    if (!l) l = std::make_shared<Live>();
    owners[{run.tenant, run.id}] = owner;
    if (closing) l->stop.request_stop();
    return l;
  }

  void untrack(const AgentRun& run) {
    {
      std::lock_guard lock(mutex);
      const Key key{run.tenant, run.id};
      if (auto it = live.find(key); it != live.end()) it->second->done = true;
      live.erase(key);
      if (run.status != AgentRunStatus::awaiting_approval) {
        owners.erase(key);
        next_seq.erase(key);
      }
    }
    changed.notify_all();
  }

  // A run's whole life from here, with its cancellation joined to the request's.
  void drive(AgentRun& run, const AgentSpec& agent, const Principal& owner, std::stop_token outer, bool stream,
             std::vector<std::pair<PendingApproval, std::optional<std::string>>> decided = {}) {
    auto l = track(run, owner);
    std::stop_callback forward(outer, [l] { l->stop.request_stop(); });
    execute(run, agent, owner, l->stop.get_token(), stream, std::move(decided));
    untrack(run);
  }

  Result<AgentRun> begin(const AgentSpec& agent_in, const Principal& owner, RunRequest& request) {
    {
      std::lock_guard lock(mutex);
      if (closing) return Error{ErrorCode::unavailable, "the agent runtime is shutting down"};
    }
    AgentSpec agent = agent_in;
    if (!request.tenant.empty()) agent.tenant = request.tenant;
    AgentRun run;
    run.id = random_token();
    run.agent = agent.name;
    run.tenant = agent.tenant;
    run.owner = agent.owner.empty() ? owner.id : agent.owner;
    run.trigger = request.trigger;
    run.input = request.input;
    run.started = now();
    run.agent_spec = agent.to_json();
    run.agent_spec["tenant"] = agent.tenant;
    run.agent_spec["owner"] = run.owner;
    // agent.before_run may refuse the run or rewrite its input.
    auto before = emit("agent.before_run", json::object{{"run_id", run.id}, {"agent", agent.name}, {"input", run.input}, {"trigger", run.trigger}, {"owner", run.owner}},
                       agent.tenant);
    if (before.vetoed)
      return Error{ErrorCode::permission_denied, fmt::format("agent.before_run refused the run{}: {}", before.vetoed_by.empty() ? "" : " (" + before.vetoed_by + ")", before.veto_reason)};
    for (const auto& reply : before.results)
      if (reply.is_object())
        if (auto in = reply.as_object().find("input"); in != reply.as_object().end() && in->value().is_string()) run.input = std::string(in->value().as_string());
    if (!agent.system.empty()) run.messages.push_back(ChatMessage::system(agent.system));
    run.messages.push_back(ChatMessage::user(run.input));
    XCORE_TRY(o.store->put_run(run));
    record(run, "run_started", 0, json::object{{"input", run.input}, {"trigger", run.trigger}, {"model", agent.model}, {"provider", agent.provider}});
    return run;
  }

  // The agent as the run began (its spec is kept with the run).
  static Result<AgentSpec> spec_of(const AgentRun& run) { return AgentSpec::from_json(run.agent_spec); }
};

AgentRuntime::AgentRuntime(AgentRuntimeOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->o = std::move(options);
  if (!impl_->o.store) impl_->o.store = make_memory_agent_run_store();
  if (impl_->o.hooks) {
    (void)impl_->o.hooks->define({"agent.before_run", "an agent run is about to start: veto it, or reply {\"input\": ...} to rewrite its input", false, false, true});
    (void)impl_->o.hooks->define({"agent.reasoning_step", "the model answered one step of an agent run", false, false, false});
    (void)impl_->o.hooks->define({"agent.after_run", "an agent run ended", false, false, false});
    (void)impl_->o.hooks->define({"agent.error", "an agent run failed", false, false, false});
  }
}

AgentRuntime::~AgentRuntime() { shutdown(); }

void AgentRuntime::shutdown() {
  std::list<Impl::Worker> workers;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->closing = true;
    for (auto& [key, l] : impl_->live) l->stop.request_stop();
    workers = std::move(impl_->workers);
  }
  for (auto& w : workers) w.thread.join();
}

Result<void> AgentRuntime::restore() {
  XCORE_ASSIGN_OR_RETURN(auto runs, impl_->o.store->unfinished());
  for (auto& run : runs) {
    if (run.status != AgentRunStatus::running) continue;
    {
      std::lock_guard lock(impl_->mutex);
      if (impl_->live.contains({run.tenant, run.id})) continue;
    }
    XCORE_TRY(impl_->continue_numbering(run));
    impl_->finish(run, AgentRunStatus::failed, Error{ErrorCode::unavailable, "the host stopped while the run was under way"}, run.ended == Clock::time_point{} ? impl_->now() : run.ended);
    std::lock_guard lock(impl_->mutex);
    impl_->next_seq.erase({run.tenant, run.id});
  }
  return ok();
}

Result<json::array> AgentRuntime::visible_tools(const AgentSpec& agent, const Principal& owner) const {
  XCORE_ASSIGN_OR_RETURN(auto held, impl_->lease(agent.tenant));
  XCORE_ASSIGN_OR_RETURN(auto set, impl_->toolset(agent, Impl::acting_owner(agent, owner), held));
  return std::move(set.functions);
}

Result<AgentRun> AgentRuntime::run(const AgentSpec& agent, const Principal& owner, RunRequest request) {
  XCORE_ASSIGN_OR_RETURN(auto run, impl_->begin(agent, owner, request));
  AgentSpec spec = agent;
  spec.tenant = run.tenant;
  impl_->drive(run, spec, owner, request.cancel, request.stream_text);
  return run;
}

Result<std::string> AgentRuntime::start(const AgentSpec& agent, const Principal& owner, RunRequest request) {
  XCORE_ASSIGN_OR_RETURN(auto run, impl_->begin(agent, owner, request));
  AgentSpec spec = agent;
  spec.tenant = run.tenant;
  const auto id = run.id;
  (void)impl_->track(run, owner);  // visible to cancel() and wait() before the thread runs
  impl_->spawn([impl = impl_, run = std::move(run), spec = std::move(spec), owner, request = std::move(request)]() mutable {
    impl->drive(run, spec, owner, request.cancel, request.stream_text);
  });
  return id;
}

Result<void> AgentRuntime::cancel(std::string_view tenant, std::string_view run_id) {
  {
    std::lock_guard lock(impl_->mutex);
    if (auto it = impl_->live.find({std::string(tenant), std::string(run_id)}); it != impl_->live.end()) {
      it->second->stop.request_stop();
      return ok();
    }
  }
  XCORE_ASSIGN_OR_RETURN(auto stored, impl_->o.store->run(tenant, run_id));
  if (!stored) return Error{ErrorCode::not_found, fmt::format("no run '{}'", run_id)};
  if (stored->status != AgentRunStatus::awaiting_approval)
    return Error{ErrorCode::failed_precondition, fmt::format("run '{}' is {}; only a running or waiting run can be cancelled", run_id, to_string(stored->status))};
  stored->tenant = std::string(tenant);
  XCORE_TRY(impl_->continue_numbering(*stored));
  impl_->finish(*stored, AgentRunStatus::cancelled, Error{ErrorCode::cancelled, "the run was cancelled while it waited for approval"}, impl_->now());
  impl_->untrack(*stored);
  return ok();
}

Result<AgentRun> AgentRuntime::wait(std::string_view tenant, std::string_view run_id, std::chrono::milliseconds timeout) {
  {
    std::unique_lock lock(impl_->mutex);
    impl_->changed.wait_for(lock, timeout, [&] { return !impl_->live.contains({std::string(tenant), std::string(run_id)}); });
  }
  XCORE_ASSIGN_OR_RETURN(auto stored, impl_->o.store->run(tenant, run_id));
  if (!stored) return Error{ErrorCode::not_found, fmt::format("no run '{}'", run_id)};
  return std::move(*stored);
}

Result<std::vector<PendingApproval>> AgentRuntime::approvals(std::string_view tenant) const {
  XCORE_ASSIGN_OR_RETURN(auto runs, impl_->o.store->waiting(tenant));
  std::vector<PendingApproval> out;
  for (const auto& r : runs)
    if (r.tenant == tenant)
      for (auto a : r.pending) {
        a.tenant = r.tenant;
        out.push_back(std::move(a));
      }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.requested < b.requested; });
  return out;
}

Result<PendingApproval> AgentRuntime::decide(std::string_view tenant, std::string_view approval_id, bool approve, const Principal& who, std::string_view who_name,
                                             std::string_view note) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->closing) return Error{ErrorCode::unavailable, "the agent runtime is shutting down"};
  }
  // Decisions are serialized: one approval cannot be used twice, and a run resumes once.
  std::lock_guard decide_lock(impl_->decide_mutex);
  XCORE_ASSIGN_OR_RETURN(auto runs, impl_->o.store->waiting(tenant));
  std::optional<AgentRun> run;
  std::optional<PendingApproval> approval;
  for (auto& r : runs) {
    if (r.tenant != tenant || r.status != AgentRunStatus::awaiting_approval) continue;
    for (const auto& a : r.pending)
      if (a.id == approval_id) {
        approval = a;
        run = std::move(r);
        break;
      }
    if (run) break;
  }
  if (!run) return Error{ErrorCode::not_found, fmt::format("no pending approval '{}' (it may have been decided already)", approval_id)};
  approval->tenant = run->tenant;
  const bool owner = who.kind == Principal::Kind::user && who.id == run->owner;
  bool may = who.unrestricted() || owner;
  for (const auto& pattern : approval->approvers) may = may || who.holds(pattern);
  if (!may) {
    std::string list;
    for (const auto& p : approval->approvers) list += fmt::format("{}{}", list.empty() ? "" : ", ", p);
    return Error{ErrorCode::permission_denied, fmt::format("{} may not decide approval '{}': only the agent's owner or a holder of {} may", who.describe(), approval_id, list)};
  }
  // Used up now, whatever follows.
  auto& pending = run->pending;
  pending.erase(std::remove_if(pending.begin(), pending.end(), [&](const auto& a) { return a.id == approval_id; }), pending.end());
  XCORE_TRY(impl_->continue_numbering(*run));
  std::optional<std::string> denial;
  if (!approve) denial = fmt::format("error: the call was denied by {}{}{}", who_name.empty() ? who.describe() : std::string(who_name), note.empty() ? "" : ": ", note);
  // Decisions waiting for the run's last one are kept in the run's events; the answers go in the order taken.
  impl_->record(*run, "approval_decided", run->steps,
                json::object{{"approval_id", approval->id}, {"id", approval->call_id}, {"tool", approval->tool}, {"approved", approve}, {"by", who_name.empty() ? who.describe() : std::string(who_name)},
                             {"note", note}, {"arguments", approval->arguments}});
  run->decided.push_back({*approval, denial});
  if (!pending.empty()) {  // others of the step still wait: this decision is kept with the run
    XCORE_TRY(impl_->o.store->put_run(*run));
    return std::move(*approval);
  }
  // The last decision: resume with all of them.
  std::vector<std::pair<PendingApproval, std::optional<std::string>>> all;
  for (auto& d : run->decided) all.emplace_back(std::move(d.approval), std::move(d.denial));
  run->decided.clear();
  XCORE_ASSIGN_OR_RETURN(auto spec, Impl::spec_of(*run));
  Principal owner_principal;
  {
    std::lock_guard lock(impl_->mutex);
    if (auto it = impl_->owners.find({run->tenant, run->id}); it != impl_->owners.end()) owner_principal = it->second;
    else if (!impl_->o.owner)
      return Error{ErrorCode::failed_precondition, fmt::format("run '{}' cannot resume: its owner is not known to this process", run->id)};
  }
  if (owner_principal.kind == Principal::Kind::anonymous && impl_->o.owner) {
    auto p = impl_->o.owner(run->tenant, run->owner);
    if (!p) {
      auto r = std::move(*run);
      impl_->finish(r, AgentRunStatus::failed, Error{p.error().code, fmt::format("the run cannot resume as its owner '{}': {}", r.owner, p.error().message)}, impl_->now());
      return std::move(*approval);
    }
    owner_principal = std::move(*p);
  }
  run->status = AgentRunStatus::running;
  XCORE_TRY(impl_->o.store->put_run(*run));
  {
    std::lock_guard lock(impl_->mutex);
    impl_->live[{run->tenant, run->id}] = std::make_shared<Impl::Live>();  // wait() sees it at once
  }
  impl_->spawn([impl = impl_, run = std::move(*run), spec = std::move(spec), owner_principal, all = std::move(all)]() mutable {
    impl->drive(run, spec, owner_principal, {}, false, std::move(all));
  });
  return std::move(*approval);
}

}  // namespace xcore::inline v1
