// Routes: model providers, competencies, agents, their runs (transcripts, live events, cancellation) and
// pending approvals. Everything is the caller's tenant's; names and ids come from the path, never a body.
#include "server_impl.hpp"

#include "mcp/mcp_http_client.hpp"

namespace xcore::server {

namespace {

const char* kProviderSchema =
    R"json({"type":"object","properties":{"name":{"type":"string"},"base_url":{"type":"string"},"api_key_secret":{"type":["string","null"]},"default_model":{"type":"string"},"timeout_ms":{"type":"integer"},"max_retries":{"type":"integer"},"source":{"enum":["tenant","settings"]}},"required":["name","base_url","source"]})json";
const char* kAgentSchema =
    R"json({"type":"object","properties":{"name":{"type":"string"},"provider":{"type":"string"},"model":{"type":"string"},"system":{"type":"string"},"tools":{"type":"array","items":{"type":"string"}},"competencies":{"type":"array","items":{"type":"string"}},"max_steps":{"type":"integer"},"approval":{"type":"object"}},"required":["name","tools"]})json";
const char* kRunSchema =
    R"json({"type":"object","properties":{"id":{"type":"string"},"agent":{"type":"string"},"status":{"enum":["running","awaiting_approval","succeeded","failed","cancelled"]},"input":{"type":"string"},"output":{"type":"string"},"steps":{"type":"integer"},"usage":{"type":"object"},"error":{"type":["object","null"]},"pending_approvals":{"type":"array"}},"required":["id","agent","status"]})json";
const char* kApprovalSchema =
    R"json({"type":"object","properties":{"id":{"type":"string"},"run_id":{"type":"string"},"agent":{"type":"string"},"tool":{"type":"string"},"arguments":{},"reason":{"type":"string"},"approvers":{"type":"array"}},"required":["id","run_id","agent","tool"]})json";

// Fields only the server sets.
Result<void> refuse_server_fields(const json::value& body, std::initializer_list<const char*> fields, std::string_view why) {
  if (!body.is_object()) return Error{ErrorCode::invalid_argument, "expected a JSON object"};
  for (const char* k : fields)
    if (body.get_object().contains(k)) return Error{ErrorCode::invalid_argument, fmt::format("'{}' cannot be given: {}", k, why)};
  return ok();
}

json::object provider_json(const ProviderSpec& p, const char* source) {
  auto o = p.to_json();
  o["source"] = source;
  return o;
}

}  // namespace

void Server::Impl::add_agent_routes() {
  // ---- model providers
  route("GET", "/api/v1/providers", Role::viewer, "this tenant's model providers, and the server's", [this](Call& c) -> Result<Reply> {
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto own, db->definitions(c.who.tenant, "provider"));
    for (const auto& row : own)
      if (auto p = ProviderSpec::from_json(row)) out.push_back(provider_json(*p, "tenant"));
    for (const auto& p : config.providers) out.push_back(provider_json(p, "settings"));
    return Reply{200, json::object{{"providers", std::move(out)}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"providers":{{"type":"array","items":{}}}}},"required":["providers"]}})json", kProviderSchema));

  // A provider is somewhere the server will connect: checked like a url: plugin's host, when it is made
  // and before each run.
  auto checked_provider = [this](const json::value& body) -> Result<ProviderSpec> {
    XCORE_TRY(refuse_server_fields(body, {"api_key", "source"}, "a key is a secret: store it (PUT /api/v1/secrets/{name}) and name it in api_key_secret"));
    XCORE_ASSIGN_OR_RETURN(auto spec, ProviderSpec::from_json(body));
    if (spec.name.empty() || !is_valid_tool_name(spec.name)) return Error{ErrorCode::invalid_argument, fmt::format("provider.name: '{}' must be 1-128 of A-Z a-z 0-9 _ . -", spec.name)};
    XCORE_TRY(make_openai_client(spec));  // the URL is one the client takes
    XCORE_ASSIGN_OR_RETURN(auto host, mcp::url_host(spec.base_url));
    XCORE_TRY(outbound_address(host, "model providers registered over the API"));
    return spec;
  };
  route("POST", "/api/v1/providers", Role::admin, "add a model provider ({name, base_url, api_key_secret, default_model, timeout_ms})",
        [this, checked_provider](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto spec, checked_provider(c.body));
    for (const auto& p : config.providers)
      if (p.name == spec.name) return Error{ErrorCode::already_exists, fmt::format("'{}' is a provider of the server's settings", spec.name)};
    XCORE_TRY(db->put_definition(c.who.tenant, "provider", spec.name, spec.to_json(), true));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "provider created", spec.name, spec.base_url, c.request_id});
    return Reply{201, provider_json(spec, "tenant")};
  }).body(R"json({"type":"object","properties":{"name":{"type":"string","minLength":1},"base_url":{"type":"string"}},"required":["name","base_url"]})json")
    .returns(201, kProviderSchema).errors({409});
  route("PATCH", "/api/v1/providers/{provider}", Role::admin, "change a model provider (the fields given replace its own)", [this, checked_provider](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->definition(c.who.tenant, "provider", c.arg(1)));
    if (!row) return Error{ErrorCode::not_found, fmt::format("no provider '{}' of this tenant", c.arg(1))};
    XCORE_TRY(refuse_server_fields(c.body, {"name"}, "a provider keeps its name"));
    for (const auto& [k, v] : c.body.get_object()) (*row)[k] = v;
    XCORE_ASSIGN_OR_RETURN(auto spec, checked_provider(*row));
    XCORE_TRY(db->put_definition(c.who.tenant, "provider", spec.name, spec.to_json(), false));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "provider changed", spec.name, spec.base_url, c.request_id});
    return Reply{200, provider_json(spec, "tenant")};
  }).body(R"json({"type":"object"})json").returns(200, kProviderSchema).errors({404});
  route("DELETE", "/api/v1/providers/{provider}", Role::admin, "remove a model provider", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->delete_definition(c.who.tenant, "provider", c.arg(1)));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "provider deleted", c.arg(1), "", c.request_id});
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404});

  // ---- competencies
  route("GET", "/api/v1/competencies", Role::viewer, "the competencies this tenant's enabled plugins declare (?category=)", [](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& comp : c.manager.competencies().list({}, c.query("category"))) out.push_back(comp.to_json());
    return Reply{200, json::object{{"competencies", std::move(out)}}};
  }).returns(200, R"json({"type":"object","properties":{"competencies":{"type":"array","items":{"type":"object","properties":{"id":{"type":"string"},"name":{"type":"string"},"description":{"type":"string"},"category":{"type":"string"},"level":{"type":"integer","minimum":1,"maximum":5},"prerequisites":{"type":"array","items":{"type":"string"}},"tools":{"type":"array","items":{"type":"string"}},"plugin":{"type":["string","null"]}},"required":["id","category","level","tools"]}}},"required":["competencies"]})json");

  // ---- agents
  route("GET", "/api/v1/agents", Role::viewer, "this tenant's agents", [this](Call& c) -> Result<Reply> {
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto rows, db->definitions(c.who.tenant, "agent"));
    for (auto& row : rows) {
      row.erase("limits");
      out.push_back(std::move(row));
    }
    return Reply{200, json::object{{"agents", std::move(out)}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"agents":{{"type":"array","items":{}}}}},"required":["agents"]}})json", kAgentSchema));

  // An agent as its author sent it, owned by the author: it acts for them, and never beyond the credential
  // they used (a scoped token's scopes become a limit).
  auto authored = [this](const Call& c, const json::value& body) -> Result<AgentSpec> {
    XCORE_TRY(refuse_server_fields(body, {"owner", "limits", "tenant"}, "the server sets it (an agent acts for whoever created or last changed it)"));
    XCORE_ASSIGN_OR_RETURN(auto spec, AgentSpec::from_json(body));
    spec.tenant = c.who.tenant;
    spec.owner = std::to_string(c.who.user_id);
    if (c.who.principal.kind != Principal::Kind::user) spec.limits.push_back(c.who.principal.permissions);
    if (!spec.provider.empty()) XCORE_TRY(provider_named(c.who.tenant, spec.provider));
    for (const auto& f : spec.fallback) XCORE_TRY(provider_named(c.who.tenant, f.substr(0, f.find('/'))));
    return spec;
  };
  auto shown = [](const AgentSpec& a) {
    auto o = a.to_json();
    o.erase("limits");
    return o;
  };
  route("POST", "/api/v1/agents", Role::operator_, "create an agent ({name, provider, model, system, tools, competencies, max_steps, approval, ...})",
        [this, authored, shown](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto spec, authored(c, c.body));
    XCORE_TRY(db->put_definition(c.who.tenant, "agent", spec.name, spec.to_json(), true));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "agent created", spec.name, "", c.request_id});
    return Reply{201, shown(spec)};
  }).body(R"json({"type":"object","properties":{"name":{"type":"string","minLength":1}},"required":["name"]})json").returns(201, kAgentSchema).errors({404, 409});
  route("GET", "/api/v1/agents/{agent}", Role::viewer, "one agent, with the tools its model would be offered now", [this, shown](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto spec, agent_named(c.who.tenant, c.arg(1)));
    auto o = shown(spec);
    XCORE_ASSIGN_OR_RETURN(auto owner, owner_principal(c.who.tenant, spec.owner));
    XCORE_ASSIGN_OR_RETURN(auto tools, agents->visible_tools(spec, owner));
    o["visible_tools"] = std::move(tools);
    return Reply{200, o};
  }).returns(200, kAgentSchema).errors({404, 412});
  route("PATCH", "/api/v1/agents/{agent}", Role::operator_, "change an agent (the fields given replace its own; it then acts for whoever changed it)",
        [this, authored, shown](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->definition(c.who.tenant, "agent", c.arg(1)));
    if (!row) return Error{ErrorCode::not_found, fmt::format("no agent '{}'", c.arg(1))};
    XCORE_TRY(refuse_server_fields(c.body, {"name", "owner", "limits", "tenant"}, "the server sets it, and an agent keeps its name"));
    for (const auto& [k, v] : c.body.get_object()) (*row)[k] = v;
    row->erase("owner");
    row->erase("limits");
    XCORE_ASSIGN_OR_RETURN(auto spec, authored(c, *row));
    XCORE_TRY(db->put_definition(c.who.tenant, "agent", spec.name, spec.to_json(), false));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "agent changed", spec.name, "", c.request_id});
    return Reply{200, shown(spec)};
  }).body(R"json({"type":"object"})json").returns(200, kAgentSchema).errors({404});
  route("DELETE", "/api/v1/agents/{agent}", Role::operator_, "delete an agent (its runs' history stays)", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->delete_definition(c.who.tenant, "agent", c.arg(1)));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "agent deleted", c.arg(1), "", c.request_id});
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404});

  // ---- runs
  route("POST", "/api/v1/agents/{agent}/run", Role::operator_,
        "run an agent now ({input, stream?}); ?wait=<seconds> answers once the run ends or waits for approval (at most 300 s)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto agent, agent_named(c.who.tenant, c.arg(1)));
    if (!c.body.is_object() || !c.body.get_object().contains("input") || !c.body.at("input").is_string())
      return Error{ErrorCode::invalid_argument, "expected {\"input\": \"the task\"}"};
    XCORE_ASSIGN_OR_RETURN(auto owner, owner_principal(c.who.tenant, agent.owner));
    RunRequest request;
    request.input = std::string(c.body.at("input").as_string());
    request.trigger = "manual";
    if (const auto* stream = c.body.get_object().if_contains("stream"); stream && stream->is_bool()) request.stream_text = stream->as_bool();
    request.tenant = c.who.tenant;
    XCORE_ASSIGN_OR_RETURN(auto id, agents->start(held_to(std::move(agent), c.who.principal), owner, std::move(request)));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "agent run", c.arg(1), id, c.request_id});
    if (auto wait = c.query("wait"); !wait.empty()) {
      const auto seconds = std::clamp(std::atoi(wait.c_str()), 0, 300);
      XCORE_ASSIGN_OR_RETURN(auto run, agents->wait(c.who.tenant, id, std::chrono::seconds(seconds)));
      return Reply{200, run.to_json()};
    }
    return Reply{202, json::object{{"id", id}, {"agent", c.arg(1)}, {"status", "running"}}};
  }).body(R"json({"type":"object","properties":{"input":{"type":"string","description":"the task (required)"},"stream":{"type":"boolean","description":"ask the model to stream: its text arrives as 'text' events"}}})json")
    .returns(200, kRunSchema).returns(202, kRunSchema).errors({404, 412});
  route("GET", "/api/v1/agents/{agent}/runs", Role::viewer, "an agent's runs, newest first (?limit=)", [this](Call& c) -> Result<Reply> {
    std::size_t limit = 50;
    if (auto l = c.query("limit"); !l.empty()) limit = static_cast<std::size_t>(std::clamp(std::atoi(l.c_str()), 1, 1000));
    XCORE_ASSIGN_OR_RETURN(auto runs, db->agent_run_store()->runs(c.who.tenant, c.arg(1), limit));
    // A deleted agent's history stays readable; a name this tenant never used is not found.
    if (runs.empty()) XCORE_TRY(agent_named(c.who.tenant, c.arg(1)));
    json::array out;
    for (const auto& r : runs) out.push_back(r.to_json());
    return Reply{200, json::object{{"runs", std::move(out)}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"runs":{{"type":"array","items":{}}}}},"required":["runs"]}})json", kRunSchema)).errors({404});
  auto run_of = [this](const Call& c) -> Result<AgentRun> {
    XCORE_ASSIGN_OR_RETURN(auto run, db->agent_run_store()->run(c.who.tenant, c.arg(2)));
    if (!run || run->agent != c.arg(1)) return Error{ErrorCode::not_found, fmt::format("agent '{}' has no run '{}'", c.arg(1), c.arg(2))};
    return std::move(*run);
  };
  route("GET", "/api/v1/agents/{agent}/runs/{run}", Role::viewer, "one run: its conversation and its transcript (every step, call, result, tokens, latency)",
        [this, run_of](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto run, run_of(c));
    auto o = run.to_json(/*with_messages=*/true);
    o.erase("agent_spec");
    o.erase("decided");
    XCORE_ASSIGN_OR_RETURN(auto events, db->agent_run_store()->events(c.who.tenant, run.id));
    json::array transcript;
    for (const auto& e : events) transcript.push_back(e.to_json());
    o["transcript"] = std::move(transcript);
    return Reply{200, o};
  }).returns(200, kRunSchema).errors({404});
  route("GET", "/api/v1/agents/{agent}/runs/{run}/events", Role::viewer,
        "a run's transcript events (?after=<seq>); with Accept: text/event-stream, streamed live until the run ends or waits for approval",
        [this, run_of](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto run, run_of(c));
    std::uint64_t after = 0;
    if (auto a = c.query("after"); !a.empty()) after = std::strtoull(a.c_str(), nullptr, 10);
    if (!accepts_event_stream(c.req)) {
      XCORE_ASSIGN_OR_RETURN(auto events, db->agent_run_store()->events(c.who.tenant, run.id, after));
      json::array out;
      for (const auto& e : events) out.push_back(e.to_json());
      return Reply{200, json::object{{"events", std::move(out)}, {"status", to_string(run.status)}}};
    }
    Reply r{200, json::value(), std::string(), "text/event-stream"};
    r.headers.emplace_back("Cache-Control", "no-store");
    r.stream = [this, tenant = c.who.tenant, id = run.id, after](const std::function<bool(std::string_view)>& write) {
      auto* connection = HttpServer::current();
      const int socket = connection ? connection->socket() : -1;
      auto store = db->agent_run_store();
      std::uint64_t seen = after;
      bool open = write(": stream open\n\n");
      while (open) {
        std::uint64_t mark;
        {
          std::lock_guard lock(agent_events_mutex);
          mark = agent_events_count;
        }
        auto events = store->events(tenant, id, seen);
        if (!events) break;
        for (const auto& e : *events) {
          if (!(open = write(fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.type, xcore::json_text::serialize(e.to_json()))))) break;
          seen = e.seq;
        }
        auto now = store->run(tenant, id);
        if (!now || !*now || (*now)->status != AgentRunStatus::running) {
          // Ended or waiting: what was recorded before that is all sent; the stream ends.
          if (auto rest = store->events(tenant, id, seen))
            for (const auto& e : *rest) open = open && write(fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.type, xcore::json_text::serialize(e.to_json())));
          break;
        }
        std::unique_lock lock(agent_events_mutex);
        agent_events_cv.wait_for(lock, std::chrono::seconds(1), [&] { return agent_events_count != mark; });
        lock.unlock();
        if (client_hung_up(socket)) break;
      }
    };
    return r;
  }).returns(200, R"json({"type":"object","properties":{"events":{"type":"array"},"status":{"type":"string"}},"required":["events","status"]})json")
    .returns_text(200, "text/event-stream").errors({404});
  route("POST", "/api/v1/agents/{agent}/runs/{run}/cancel", Role::operator_, "cancel a run under way or waiting for approval", [this, run_of](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto run, run_of(c));
    XCORE_TRY(agents->cancel(c.who.tenant, run.id));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "agent run cancelled", c.arg(1), run.id, c.request_id});
    return Reply{202, json::object{{"id", run.id}, {"agent", run.agent}, {"status", "cancelling"}}};
  }).returns(202, R"json({"type":"object","properties":{"id":{"type":"string"},"status":{"type":"string"}},"required":["id","status"]})json").errors({404, 412});

  // ---- approvals
  route("GET", "/api/v1/approvals", Role::viewer, "tool calls of agent runs waiting for a person's decision, oldest first", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto pending, agents->approvals(c.who.tenant));
    json::array out;
    for (const auto& a : pending) out.push_back(a.to_json());
    return Reply{200, json::object{{"approvals", std::move(out)}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"approvals":{{"type":"array","items":{}}}}},"required":["approvals"]}})json", kApprovalSchema));
  for (const char* verb : {"approve", "deny"}) {
    route("POST", std::string("/api/v1/approvals/{approval}/") + verb, Role::operator_,
          std::string(verb) + " a pending tool call ({note}); the agent's owner or a holder of agents.approve:<agent> may",
          [this, approve = std::string_view(verb) == "approve"](Call& c) -> Result<Reply> {
      std::string note;
      if (c.body.is_object())
        if (const auto* n = c.body.get_object().if_contains("note"); n && n->is_string()) note = std::string(n->as_string());
      // The owner is named by user id; a token's holder is not the owner (its scopes may be narrower).
      Principal who = c.who.principal;
      if (who.kind == Principal::Kind::user) who.id = std::to_string(c.who.user_id);
      XCORE_ASSIGN_OR_RETURN(auto decided, agents->decide(c.who.tenant, c.arg(1), approve, who, c.who.user, note));
      audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, approve ? "tool call approved" : "tool call denied", decided.tool, decided.run_id, c.request_id});
      auto o = decided.to_json();
      o["decision"] = approve ? "approved" : "denied";
      return Reply{200, o};
    }).body(R"json({"type":"object","properties":{"note":{"type":"string"}}})json").returns(200, kApprovalSchema).errors({404});
  }
}

}  // namespace xcore::server
