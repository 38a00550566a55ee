// Agents in the server: one AgentRuntime for every tenant, its providers (the tenant's own and the
// settings'), the owner of an agent as a principal, and agent targets of scheduled tasks.
#include "server_impl.hpp"

#include "mcp/mcp_http_client.hpp"

namespace xcore::server {

Result<void> Server::Impl::start_agents() {
  AgentRuntimeOptions o;
  o.store = db->agent_run_store();
  o.lease = [this](std::string_view tenant) -> Result<AgentTools> {
    XCORE_ASSIGN_OR_RETURN(auto m, wake_tenant(std::string(tenant)));
    return AgentTools{std::shared_ptr<ToolRegistry>(m, &m->tools()), std::shared_ptr<CompetencyRegistry>(m, &m->competencies()),
                      std::shared_ptr<HookBus>(m, &m->hooks())};
  };
  o.models = [this](const AgentSpec& agent) { return model_for(agent); };
  o.owner = [this](std::string_view tenant, std::string_view owner) { return owner_principal(tenant, owner); };
  o.on_event = [this](const AgentRun& run, const AgentEvent& event) {
    if (event.type == "run_finished")
      if (auto r = db->prune_agent_runs(run.tenant, run.agent, config.agent_runs_kept); !r) log(LogLevel::warn, "agents", r.error().message);
    {
      std::lock_guard lock(agent_events_mutex);
      ++agent_events_count;
    }
    agent_events_cv.notify_all();
  };
  o.log = [this](LogLevel level, std::string_view source, std::string_view message) { log(level, source, message); };
  agents = std::make_unique<AgentRuntime>(std::move(o));
  return ok();
}

Result<ProviderSpec> Server::Impl::provider_named(const std::string& tenant, const std::string& name, bool* own) {
  XCORE_ASSIGN_OR_RETURN(auto row, db->definition(tenant, "provider", name));
  if (own) *own = row.has_value();
  if (!row) {
    for (const auto& p : config.providers)
      if (p.name == name) return p;  // the operator's own: not held to the outbound policy
    return Error{ErrorCode::not_found, fmt::format("no model provider '{}'", name)};
  }
  XCORE_ASSIGN_OR_RETURN(auto spec, ProviderSpec::from_json(*row));
  if (!spec.api_key_secret.empty()) {
    XCORE_ASSIGN_OR_RETURN(auto sealed, db->secret(tenant, spec.api_key_secret));
    if (!sealed) return Error{ErrorCode::failed_precondition, fmt::format("provider '{}': its key's secret '{}' is not set", name, spec.api_key_secret)};
    XCORE_ASSIGN_OR_RETURN(spec.api_key, secrets->open(tenant + "/" + spec.api_key_secret, *sealed));
  }
  return spec;
}

Result<std::shared_ptr<ModelClient>> Server::Impl::model_for(const AgentSpec& agent) {
  // The first route is the agent's provider (its model), then its fallbacks ("name" or "name/model").
  std::vector<std::pair<std::string, std::string>> wanted;
  std::string first = agent.provider;
  if (first.empty()) {
    XCORE_ASSIGN_OR_RETURN(auto own, db->definition(agent.tenant, "provider", "default"));
    first = own ? "default" : config.providers.front().name;
  }
  wanted.emplace_back(first, std::string());  // the agent's model goes in each request
  for (const auto& f : agent.fallback) {
    const auto slash = f.find('/');
    wanted.emplace_back(f.substr(0, slash), slash == std::string::npos ? std::string() : f.substr(slash + 1));
  }
  std::vector<ModelRoute> routes;
  for (const auto& [name, model] : wanted) {
    bool own = false;
    XCORE_ASSIGN_OR_RETURN(auto spec, provider_named(agent.tenant, name, &own));
    ModelClientOptions options;
    if (own) {
      XCORE_ASSIGN_OR_RETURN(auto host, mcp::url_host(spec.base_url));
      XCORE_ASSIGN_OR_RETURN(options.pinned_address, outbound_address(host, "model providers registered over the API"));
    }
    XCORE_ASSIGN_OR_RETURN(auto client, make_openai_client(std::move(spec), std::move(options)));
    routes.push_back({std::move(client), model});
  }
  if (routes.size() == 1) return routes.front().client;
  return make_fallback_client(std::move(routes));
}

Result<Principal> Server::Impl::owner_principal(std::string_view tenant, std::string_view owner) {
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(owner.data(), owner.data() + owner.size(), id);
  if (ec != std::errc() || end != owner.data() + owner.size())
    return Error{ErrorCode::failed_precondition, fmt::format("the agent's owner '{}' is not a user of this server", owner)};
  XCORE_ASSIGN_OR_RETURN(auto user, db->user_by_id(id));
  if (!user || user->tenant != tenant)
    return Error{ErrorCode::failed_precondition, fmt::format("the agent's owner (user {}) no longer exists: the agent cannot run", owner)};
  auto role = parse_role(user->role);
  Principal p;
  p.kind = Principal::Kind::user;
  p.id = std::string(owner);
  p.permissions = role_permissions(role.value_or(Role::viewer));
  return p;
}

Result<AgentSpec> Server::Impl::agent_named(const std::string& tenant, const std::string& name) {
  XCORE_ASSIGN_OR_RETURN(auto row, db->definition(tenant, "agent", name));
  if (!row) return Error{ErrorCode::not_found, fmt::format("no agent '{}'", name)};
  XCORE_ASSIGN_OR_RETURN(auto spec, AgentSpec::from_json(*row));
  spec.tenant = tenant;
  return spec;
}

AgentSpec Server::Impl::held_to(AgentSpec agent, const Principal& who) {
  if (who.unrestricted()) return agent;
  if (who.kind == Principal::Kind::user && who.id == agent.owner && !who.on_behalf_of) return agent;
  for (const Principal* p = &who; p; p = p->on_behalf_of.get())
    if (!p->unrestricted()) agent.limits.push_back(p->permissions);
  return agent;
}

Result<json::value> Server::Impl::run_agent_task(const JobSpec& job, std::string task, std::string_view reason) {
  XCORE_ASSIGN_OR_RETURN(auto agent, agent_named(job.tenant, job.target.name));
  XCORE_ASSIGN_OR_RETURN(auto owner, owner_principal(job.tenant, agent.owner));
  // The task runs as whoever scheduled it: the agent is held to their rights too.
  auto spec = held_to(std::move(agent), job.run_as);
  RunRequest request;
  request.input = std::move(task);
  request.trigger = reason == "webhook" ? "webhook" : reason == "manual" ? "manual" : "schedule";
  request.tenant = job.tenant;
  XCORE_ASSIGN_OR_RETURN(auto run, agents->run(spec, owner, std::move(request)));
  json::object out{{"run_id", run.id}, {"agent", run.agent}, {"status", to_string(run.status)}, {"output", run.output}};
  if (run.status == AgentRunStatus::failed || run.status == AgentRunStatus::cancelled) {
    const auto& e = run.error ? *run.error : Error{ErrorCode::internal, "the run failed"};
    return Error{e.code, fmt::format("agent run {} {}: {}", run.id, to_string(run.status), e.message)};
  }
  return json::value(std::move(out));
}

}  // namespace xcore::server
