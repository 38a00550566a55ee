// Agents, runs, events and approvals as JSON: the API's form and what stores keep.
#include <xcore/agents.hpp>
#include <xcore/tools.hpp>

#include <fmt/format.h>

namespace xcore::inline v1 {

namespace {

using Clock = std::chrono::system_clock;

std::int64_t millis(Clock::time_point t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count(); }
Clock::time_point from_millis(std::int64_t ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

// Field readers that name the field in their errors.
struct Reader {
  const json::object& o;
  std::string_view where;

  const json::value* get(std::string_view key) const {
    auto it = o.find(key);
    return it == o.end() || it->value().is_null() ? nullptr : &it->value();
  }
  Result<void> text(std::string_view key, std::string& out) const {
    const auto* v = get(key);
    if (!v) return ok();
    if (!v->is_string()) return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: expected a string", where, key)};
    out = std::string(v->as_string());
    return ok();
  }
  Result<void> list(std::string_view key, std::vector<std::string>& out) const {
    const auto* v = get(key);
    if (!v) return ok();
    if (!v->is_array()) return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: expected a list of strings", where, key)};
    out.clear();
    for (const auto& s : v->as_array()) {
      if (!s.is_string() || s.as_string().empty())
        return Error{ErrorCode::invalid_argument, fmt::format("{}.{}[{}]: expected a non-empty string", where, key, out.size())};
      out.emplace_back(s.as_string());
    }
    return ok();
  }
  Result<std::optional<std::int64_t>> integer(std::string_view key, std::int64_t lo, std::int64_t hi) const {
    const auto* v = get(key);
    if (!v) return std::optional<std::int64_t>();
    if (!v->is_int64() && !(v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)))
      return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: expected an integer", where, key)};
    const auto n = v->is_int64() ? v->as_int64() : static_cast<std::int64_t>(v->as_uint64());
    if (n < lo || n > hi) return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: {} is outside {}..{}", where, key, n, lo, hi)};
    return std::optional<std::int64_t>(n);
  }
  Result<void> boolean(std::string_view key, bool& out) const {
    const auto* v = get(key);
    if (!v) return ok();
    if (!v->is_bool()) return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: expected true or false", where, key)};
    out = v->as_bool();
    return ok();
  }
  Result<void> only(std::initializer_list<std::string_view> known) const {
    for (const auto& [k, _] : o)
      if (std::find(known.begin(), known.end(), std::string_view(k)) == known.end()) {
        std::string names;
        for (auto n : known) names += fmt::format("{}{}", names.empty() ? "" : ", ", n);
        return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: unknown field (expected {})", where, std::string_view(k), names)};
      }
    return ok();
  }
};

json::object error_json(const Error& e) { return json::object{{"code", to_string(e.code)}, {"message", e.message}}; }

}  // namespace

std::string_view to_string(AgentRunStatus s) noexcept {
  switch (s) {
    case AgentRunStatus::running: return "running";
    case AgentRunStatus::awaiting_approval: return "awaiting_approval";
    case AgentRunStatus::succeeded: return "succeeded";
    case AgentRunStatus::failed: return "failed";
    case AgentRunStatus::cancelled: return "cancelled";
  }
  return "running";
}

std::optional<AgentRunStatus> agent_run_status_from_string(std::string_view s) noexcept {
  for (auto st : {AgentRunStatus::running, AgentRunStatus::awaiting_approval, AgentRunStatus::succeeded, AgentRunStatus::failed, AgentRunStatus::cancelled})
    if (to_string(st) == s) return st;
  return std::nullopt;
}

Result<AgentSpec> AgentSpec::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "agent: expected an object"};
  Reader r{v.as_object(), "agent"};
  XCORE_TRY(r.only({"name", "provider", "model", "fallback", "system", "tools", "competencies", "max_steps", "max_tokens", "token_budget",
                    "temperature", "timeout_ms", "approval", "owner", "limits", "tenant"}));
  AgentSpec a;
  XCORE_TRY(r.text("name", a.name));
  if (a.name.empty() || !is_valid_tool_name(a.name))
    return Error{ErrorCode::invalid_argument, fmt::format("agent.name: '{}' must be 1-128 of A-Z a-z 0-9 _ . -", a.name)};
  XCORE_TRY(r.text("provider", a.provider));
  XCORE_TRY(r.text("model", a.model));
  XCORE_TRY(r.list("fallback", a.fallback));
  XCORE_TRY(r.text("system", a.system));
  XCORE_TRY(r.text("owner", a.owner));
  XCORE_TRY(r.text("tenant", a.tenant));
  if (const auto* limits = r.get("limits")) {
    if (!limits->is_array()) return Error{ErrorCode::invalid_argument, "agent.limits: expected a list of permission lists"};
    for (const auto& l : limits->as_array()) {
      if (!l.is_array()) return Error{ErrorCode::invalid_argument, "agent.limits: expected a list of permission lists"};
      auto& set = a.limits.emplace_back();
      for (const auto& p : l.as_array()) {
        if (!p.is_string()) return Error{ErrorCode::invalid_argument, "agent.limits: expected a list of permission lists"};
        set.emplace_back(p.as_string());
      }
    }
  }
  XCORE_TRY(r.list("tools", a.tools));
  XCORE_TRY(r.list("competencies", a.competencies));
  XCORE_ASSIGN_OR_RETURN(auto steps, r.integer("max_steps", 1, 200));
  if (steps) a.max_steps = static_cast<unsigned>(*steps);
  XCORE_ASSIGN_OR_RETURN(auto tokens, r.integer("max_tokens", 1, 1000000));
  if (tokens) a.max_tokens = static_cast<std::uint32_t>(*tokens);
  XCORE_ASSIGN_OR_RETURN(auto budget, r.integer("token_budget", 1, INT64_MAX));
  if (budget) a.token_budget = static_cast<std::uint64_t>(*budget);
  XCORE_ASSIGN_OR_RETURN(auto timeout, r.integer("timeout_ms", 1000, 24 * 3600 * 1000));
  if (timeout) a.timeout = std::chrono::milliseconds(*timeout);
  if (const auto* t = r.get("temperature")) {
    if (!t->is_number() || t->to_number<double>() < 0 || t->to_number<double>() > 2)
      return Error{ErrorCode::invalid_argument, "agent.temperature: expected a number from 0 to 2"};
    a.temperature = t->to_number<double>();
  }
  if (const auto* ap = r.get("approval")) {
    if (!ap->is_object()) return Error{ErrorCode::invalid_argument, "agent.approval: expected an object {destructive, tools, approvers}"};
    Reader ar{ap->as_object(), "agent.approval"};
    XCORE_TRY(ar.only({"destructive", "tools", "approvers"}));
    XCORE_TRY(ar.boolean("destructive", a.approval.destructive));
    XCORE_TRY(ar.list("tools", a.approval.tools));
    XCORE_TRY(ar.list("approvers", a.approval.approvers));
  }
  return a;
}

json::object AgentSpec::to_json() const {
  json::object o{{"name", name},
                 {"provider", provider},
                 {"model", model},
                 {"fallback", strings(fallback)},
                 {"system", system},
                 {"tools", strings(tools)},
                 {"competencies", strings(competencies)},
                 {"max_steps", max_steps},
                 {"timeout_ms", timeout.count()},
                 {"approval", json::object{{"destructive", approval.destructive}, {"tools", strings(approval.tools)}, {"approvers", strings(approval.approvers)}}}};
  o["max_tokens"] = max_tokens ? json::value(*max_tokens) : json::value(nullptr);
  o["token_budget"] = token_budget ? json::value(*token_budget) : json::value(nullptr);
  o["temperature"] = temperature ? json::value(*temperature) : json::value(nullptr);
  if (!owner.empty()) o["owner"] = owner;
  if (!limits.empty()) {
    json::array l;
    for (const auto& set : limits) l.push_back(strings(set));
    o["limits"] = std::move(l);
  }
  return o;
}

json::object AgentEvent::to_json() const {
  return json::object{{"seq", seq}, {"type", type}, {"step", step}, {"data", data}, {"at_ms", millis(at)}};
}

json::object PendingApproval::to_json() const {
  return json::object{{"id", id},       {"run_id", run_id},         {"agent", agent},   {"call_id", call_id},
                      {"tool", tool},   {"arguments", arguments},   {"reason", reason}, {"approvers", strings(approvers)},
                      {"owner", owner}, {"requested_ms", millis(requested)}};
}

json::object AgentRun::to_json(bool with_messages) const {
  json::object o{{"id", id},
                 {"agent", agent},
                 {"owner", owner},
                 {"trigger", trigger},
                 {"input", input},
                 {"output", output},
                 {"status", to_string(status)},
                 {"provider", provider},
                 {"model", model},
                 {"steps", steps},
                 {"usage", json::object{{"prompt_tokens", usage.prompt}, {"completion_tokens", usage.completion}, {"total_tokens", usage.total()}}},
                 {"started_ms", millis(started)},
                 {"active_ms", active.count()}};
  o["ended_ms"] = ended == Clock::time_point{} ? json::value(nullptr) : json::value(millis(ended));
  o["error"] = error ? json::value(error_json(*error)) : json::value(nullptr);
  json::array p;
  for (const auto& a : pending) p.push_back(a.to_json());
  o["pending_approvals"] = std::move(p);
  if (with_messages) {
    json::array d;
    for (const auto& x : decided) {
      auto e = x.approval.to_json();
      e["denial"] = x.denial ? json::value(*x.denial) : json::value(nullptr);
      d.push_back(std::move(e));
    }
    o["decided"] = std::move(d);
    json::array m;
    for (const auto& msg : messages) m.push_back(msg.to_json());
    o["messages"] = std::move(m);
    o["agent_spec"] = agent_spec;
  }
  return o;
}

Result<AgentRun> AgentRun::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "run: expected an object"};
  const auto& o = v.as_object();
  Reader r{o, "run"};
  AgentRun run;
  XCORE_TRY(r.text("id", run.id));
  XCORE_TRY(r.text("agent", run.agent));
  XCORE_TRY(r.text("owner", run.owner));
  XCORE_TRY(r.text("trigger", run.trigger));
  XCORE_TRY(r.text("input", run.input));
  XCORE_TRY(r.text("output", run.output));
  XCORE_TRY(r.text("provider", run.provider));
  XCORE_TRY(r.text("model", run.model));
  std::string status;
  XCORE_TRY(r.text("status", status));
  auto st = agent_run_status_from_string(status);
  if (!st) return Error{ErrorCode::invalid_argument, fmt::format("run.status: '{}' is not a run status", status)};
  run.status = *st;
  XCORE_ASSIGN_OR_RETURN(auto steps, r.integer("steps", 0, 100000));
  run.steps = static_cast<unsigned>(steps.value_or(0));
  XCORE_ASSIGN_OR_RETURN(auto started, r.integer("started_ms", 0, INT64_MAX));
  run.started = from_millis(started.value_or(0));
  XCORE_ASSIGN_OR_RETURN(auto ended, r.integer("ended_ms", 0, INT64_MAX));
  if (ended) run.ended = from_millis(*ended);
  XCORE_ASSIGN_OR_RETURN(auto active, r.integer("active_ms", 0, INT64_MAX));
  run.active = std::chrono::milliseconds(active.value_or(0));
  if (const auto* u = r.get("usage"); u && u->is_object()) {
    Reader ur{u->as_object(), "run.usage"};
    XCORE_ASSIGN_OR_RETURN(auto prompt, ur.integer("prompt_tokens", 0, INT64_MAX));
    XCORE_ASSIGN_OR_RETURN(auto completion, ur.integer("completion_tokens", 0, INT64_MAX));
    run.usage.prompt = static_cast<std::uint64_t>(prompt.value_or(0));
    run.usage.completion = static_cast<std::uint64_t>(completion.value_or(0));
  }
  if (const auto* e = r.get("error"); e && e->is_object()) {
    Error err;
    Reader er{e->as_object(), "run.error"};
    std::string code;
    XCORE_TRY(er.text("code", code));
    XCORE_TRY(er.text("message", err.message));
    if (!parse_error_code(code, err.code)) err.code = ErrorCode::internal;
    run.error = std::move(err);
  }
  if (const auto* m = r.get("messages"); m && m->is_array())
    for (const auto& msg : m->as_array()) {
      XCORE_ASSIGN_OR_RETURN(auto parsed, ChatMessage::from_json(msg));
      run.messages.push_back(std::move(parsed));
    }
  auto approvals = [&](std::string_view key, auto&& add) -> Result<void> {
    const auto* p = r.get(key);
    if (!p) return ok();
    if (!p->is_array()) return Error{ErrorCode::invalid_argument, fmt::format("run.{}: expected a list", key)};
    for (const auto& a : p->as_array()) {
      if (!a.is_object()) return Error{ErrorCode::invalid_argument, fmt::format("run.{}: expected objects", key)};
      Reader ar{a.as_object(), "run.approval"};
      PendingApproval pa;
      XCORE_TRY(ar.text("id", pa.id));
      XCORE_TRY(ar.text("run_id", pa.run_id));
      XCORE_TRY(ar.text("agent", pa.agent));
      XCORE_TRY(ar.text("call_id", pa.call_id));
      XCORE_TRY(ar.text("tool", pa.tool));
      XCORE_TRY(ar.text("reason", pa.reason));
      XCORE_TRY(ar.text("owner", pa.owner));
      XCORE_TRY(ar.list("approvers", pa.approvers));
      if (const auto* args = ar.get("arguments")) pa.arguments = *args;
      XCORE_ASSIGN_OR_RETURN(auto requested, ar.integer("requested_ms", 0, INT64_MAX));
      pa.requested = from_millis(requested.value_or(0));
      std::optional<std::string> denial;
      if (const auto* d = ar.get("denial"); d && d->is_string()) denial = std::string(d->as_string());
      add(std::move(pa), std::move(denial));
    }
    return ok();
  };
  XCORE_TRY(approvals("pending_approvals", [&](PendingApproval pa, std::optional<std::string>) { run.pending.push_back(std::move(pa)); }));
  XCORE_TRY(approvals("decided", [&](PendingApproval pa, std::optional<std::string> denial) { run.decided.push_back({std::move(pa), std::move(denial)}); }));
  if (const auto* s = r.get("agent_spec"); s && s->is_object()) run.agent_spec = s->as_object();
  return run;
}

}  // namespace xcore::inline v1
