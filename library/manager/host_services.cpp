// The host services a plugin calls by name (runners/runner.hpp names them): one entry each, over the typed
// methods of GenerationServices, which check the manifest's permissions. Every transport reaches them
// through here: the C ABI's call_host and its fixed members, and the sandbox's xcore/host/<name>.
#include "manager/generation.hpp"
#include <xcore/json_text.hpp>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "mcp/mcp_server.hpp"
#include "sandbox/wire.hpp"

namespace xcore::inline v1 {
namespace {

using Handler = Result<json::value> (*)(GenerationServices&, const json::object& request, const CallContext& ctx);

struct HostService {
  std::string_view name;
  Handler run;
};

// A request's field: absent is null.
json::value field(const json::object& r, std::string_view k) {
  const auto* v = r.if_contains(k);
  return v ? *v : json::value();
}

// A request's string field, which must be there.
Result<std::string_view> text(const json::object& r, std::string_view service, std::string_view k) {
  const auto* v = r.if_contains(k);
  if (!v || !v->is_string())
    return Error{ErrorCode::invalid_argument, fmt::format("host service '{}': the request needs '{}', a string", service, k),
                 xcore::json_text::serialize(json::object{{"field", k}})};
  return std::string_view(v->get_string());
}

json::value done() { return json::object{}; }

// A request's number field, which must be there.
Result<double> number(const json::object& r, std::string_view service, std::string_view k) {
  const auto* v = r.if_contains(k);
  if (!v || !v->is_number()) return Error{ErrorCode::invalid_argument, fmt::format("host service '{}': the request needs '{}', a number", service, k)};
  return v->to_number<double>();
}

const HostService kServices[] = {
    {host_service::emit_hook,
     [](GenerationServices& s, const json::object& r, const CallContext& ctx) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto hook, text(r, host_service::emit_hook, "hook"));
       // In the tenant of the call the plugin serves, never another's: a plugin cannot reach the handlers
       // another tenant's plugins or host registered.
       const auto* t = r.if_contains("tenant");
       const std::string_view tenant = t && t->is_string() ? std::string_view(t->get_string()) : std::string_view(ctx.tenant);
       if (tenant != ctx.tenant)
         return Error{ErrorCode::permission_denied, fmt::format("host service 'emit_hook': tenant '{}' is not the tenant of the call being served ('{}')", tenant, ctx.tenant)};
       XCORE_ASSIGN_OR_RETURN(auto outcome, s.emit_hook(hook, field(r, "payload"), tenant));
       return wire::outcome_to_json(outcome);
     }},
    {host_service::call_tool,
     [](GenerationServices& s, const json::object& r, const CallContext& ctx) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto name, text(r, host_service::call_tool, "name"));
       const auto* a = r.if_contains("arguments");
       XCORE_ASSIGN_OR_RETURN(auto result, s.call_tool(name, a ? *a : json::value(json::object()), ctx));
       return result.to_mcp();
     }},
    {host_service::call_action,
     [](GenerationServices& s, const json::object& r, const CallContext& ctx) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto plugin, text(r, host_service::call_action, "plugin"));
       XCORE_ASSIGN_OR_RETURN(auto action, text(r, host_service::call_action, "action"));
       return s.call_action(plugin, action, field(r, "params"), ctx);
     }},
    {host_service::config,
     [](GenerationServices& s, const json::object&, const CallContext&) -> Result<json::value> { return s.config(); }},
    {host_service::register_tool,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto spec, ToolSpec::from_json(field(r, "tool")));
       XCORE_TRY(s.register_tool(std::move(spec)));
       return done();
     }},
    {host_service::unregister_tool,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto name, text(r, host_service::unregister_tool, "name"));
       XCORE_TRY(s.unregister_tool(name));
       return done();
     }},
    {host_service::secret,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto name, text(r, host_service::secret, "name"));
       XCORE_ASSIGN_OR_RETURN(auto value, s.secret(name));
       return json::object{{"value", value}};
     }},
    {host_service::schedule,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_TRY(s.schedule_job(field(r, "job")));
       return done();
     }},
    {host_service::unschedule,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto name, text(r, host_service::unschedule, "name"));
       XCORE_TRY(s.unschedule_job(name));
       return done();
     }},
    {host_service::register_route,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_TRY(s.register_route(field(r, "route")));
       return done();
     }},
    {host_service::declare_competency,
     [](GenerationServices& s, const json::object& r, const CallContext&) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto competency, Competency::from_json(field(r, "competency")));
       XCORE_TRY(s.declare_competency(std::move(competency)));
       return done();
     }},
    {host_service::progress,
     [](GenerationServices&, const json::object& r, const CallContext& ctx) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto done, number(r, host_service::progress, "progress"));
       std::optional<double> total;
       if (r.contains("total")) {
         XCORE_ASSIGN_OR_RETURN(auto t, number(r, host_service::progress, "total"));
         total = t;
       }
       const auto* message = r.if_contains("message");
       if (message && !message->is_string()) return Error{ErrorCode::invalid_argument, "host service 'progress': 'message' must be a string"};
       if (ctx.peer) ctx.peer->progress(done, total, message ? std::string_view(message->get_string()) : std::string_view());
       return json::object{{"delivered", ctx.peer != nullptr}};
     }},
    {host_service::caller_log,
     [](GenerationServices&, const json::object& r, const CallContext& ctx) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto level, text(r, host_service::caller_log, "level"));
       if (mcp::log_level_index(level) < 0)
         return Error{ErrorCode::invalid_argument, fmt::format("host service 'caller_log': level '{}' is not one of debug, info, notice, warning, "
                                                               "error, critical, alert, emergency", level)};
       const auto* logger = r.if_contains("logger");
       if (logger && !logger->is_string()) return Error{ErrorCode::invalid_argument, "host service 'caller_log': 'logger' must be a string"};
       if (ctx.peer)
         ctx.peer->log(level, logger ? std::string_view(logger->get_string()) : std::string_view(), field(r, "data"));
       return json::object{{"delivered", ctx.peer != nullptr}};
     }},
    {host_service::client_request,
     [](GenerationServices& s, const json::object& r, const CallContext& ctx) -> Result<json::value> {
       XCORE_ASSIGN_OR_RETURN(auto method, text(r, host_service::client_request, "method"));
       XCORE_TRY(s.may_ask_client(method));
       if (!ctx.peer)
         return Error{ErrorCode::failed_precondition,
                      fmt::format("host service 'client_request': the caller of this call has no client to ask '{}' (only a call from an MCP "
                                  "client that keeps its stream open can be asked)", method)};
       const auto* params = r.if_contains("params");
       if (params && !params->is_object()) return Error{ErrorCode::invalid_argument, "host service 'client_request': 'params' must be an object"};
       static const json::object none;
       return ctx.peer->request(method, params ? params->get_object() : none, ctx);
     }},
};

}  // namespace

Result<json::value> GenerationServices::call(std::string_view service, const json::object& request, const CallContext& ctx) {
  for (const auto& s : kServices)
    if (s.name == service) return s.run(*this, request, ctx);
  if (!host_service::by_name(service))
    return Error{ErrorCode::invalid_argument, fmt::format("host service '{}' cannot be called by name: it has its own member of the host table", service)};
  return Error{ErrorCode::not_found, fmt::format("no host service named '{}'", service)};
}

}  // namespace xcore::inline v1
