// /openapi.json, made from the route table: every operation with its operationId, tag, security, path
// parameters (with their patterns), request body and responses, the shared error schema, and the routes
// the caller's tenant's plugins declare.
#include "server_impl.hpp"

namespace xcore::server {

namespace {

json::object json_content(json::value schema) { return json::object{{"application/json", json::object{{"schema", std::move(schema)}}}}; }

json::object schema_ref(std::string_view where) { return json::object{{"$ref", where}}; }

// The error answers, by status: each a component response with the shared error schema.
struct ErrorAnswer {
  int status;
  std::string_view name, description;
};
constexpr ErrorAnswer kErrorAnswers[] = {
    {400, "BadRequest", "the request is malformed: the message names what and where"},
    {401, "Unauthorized", "no valid credentials: log in and send Authorization: Bearer <token>"},
    {403, "Forbidden", "the caller's role, token scopes or tenant do not allow this"},
    {404, "NotFound", "no such thing in the caller's tenant"},
    {405, "MethodNotAllowed", "this server does not offer it (the Allow header lists what it does)"},
    {408, "RequestTimeout", "the request's headers or body did not arrive within the server's deadline; the connection is closed"},
    {409, "Conflict", "it exists already, or the current state forbids it"},
    {412, "PreconditionFailed", "a precondition does not hold (the message says which)"},
    {413, "PayloadTooLarge", "the body is over the server's max_body_bytes"},
    {422, "Incompatible", "the plugin is incompatible with this host or its dependencies"},
    {429, "TooManyRequests", "a rate, login or connection limit: retry after the Retry-After header's seconds"},
    {431, "HeadersTooLarge", "the request's headers are over the server's max_header_bytes"},
    {500, "InternalError", "the server's own failure; its log holds the cause under the request id"},
    {502, "PluginError", "the plugin failed on its own (plugin_error) or crashed (plugin_crashed)"},
    {503, "Unavailable", "not ready, or a plugin or store that cannot answer now"},
    {504, "Timeout", "the call's deadline passed"},
};

const ErrorAnswer& error_answer(int status) {
  for (const auto& e : kErrorAnswers)
    if (e.status == status) return e;
  std::fprintf(stderr, "xcore-server: no description of the error status %d\n", status);
  std::abort();  // a route declared a status the document cannot describe: a bug in the table
}

json::object error_responses() {
  json::object out;
  for (const auto& e : kErrorAnswers) {
    json::object r{{"description", e.description}, {"content", json_content(schema_ref("#/components/schemas/Error"))}};
    if (e.status == 401) r["headers"] = json::object{{"WWW-Authenticate", json::object{{"description", "Bearer"}, {"schema", json::object{{"type", "string"}}}}}};
    if (e.status == 429)
      r["headers"] = json::object{{"Retry-After", json::object{{"description", "seconds to wait"}, {"schema", json::object{{"type", "integer"}}}}}};
    out[e.name] = std::move(r);
  }
  return out;
}

// What a route answers on success: the statuses and schemas of its entry.
json::object success_responses(const RouteSpec& r) {
  json::object out;
  for (const auto& a : r.answers) {
    const bool is_json = a.content_type == "application/json";
    json::value schema = !is_json ? json::value(json::object{{"type", "string"}}) : a.schema.is_null() ? json::value(json::object{}) : a.schema;
    std::string media = a.content_type.substr(0, a.content_type.find(';'));
    // One status may come in several media types (JSON, or an event stream when asked for).
    auto& response = out[std::to_string(a.status)];
    if (!response.is_object()) response = json::object{{"description", r.summary}, {"content", json::object{}}};
    response.as_object()["content"].as_object()[media] = json::object{{"schema", std::move(schema)}};
  }
  return out;
}

json::object operation(const RouteSpec& r, std::string operation_id, const std::vector<std::pair<std::string, std::string>>& parameters) {
  json::object op{{"operationId", std::move(operation_id)}, {"summary", r.summary}, {"tags", json::array{r.tag}}};
  std::string description = r.min_role == Role::anonymous ? "Anyone may call it." : fmt::format("Least role: {}.", role_name(r.min_role));
  if (!r.permission.empty()) description += fmt::format(" A token needs the permission `{}`.", r.permission);
  op["description"] = description;
  if (r.min_role == Role::anonymous) {
    op["security"] = json::array{};
  } else {
    op["security"] = json::array{json::object{{"bearer", json::array{}}}};
    op["x-xcore-role"] = role_name(r.min_role);
    if (!r.permission.empty()) op["x-xcore-permission"] = r.permission;
  }
  json::array params;
  for (const auto& [name, pattern] : parameters) {
    const auto* known = path_parameter(name);
    params.push_back(json::object{{"name", name},
                                  {"in", "path"},
                                  {"required", true},
                                  {"description", known ? std::string(known->description) : std::string("a path parameter the plugin declares")},
                                  {"schema", json::object{{"type", "string"}, {"pattern", fmt::format("^{}$", pattern)}}}});
  }
  if (!params.empty()) op["parameters"] = std::move(params);
  if (r.method != "GET") {
    // The route's own schema, the one its bodies are checked against; any JSON where it declares none.
    json::value schema = r.body_schema.is_null() ? json::value(json::object{{"description", "any JSON"}}) : r.body_schema;
    op["requestBody"] = json::object{{"required", false}, {"description", "JSON; an empty body reads as {}"}, {"content", json_content(std::move(schema))}};
  }
  json::object responses = success_responses(r);
  for (int status : r.error_statuses()) responses[std::to_string(status)] = schema_ref(fmt::format("#/components/responses/{}", error_answer(status).name));
  op["responses"] = std::move(responses);
  return op;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

json::object Server::Impl::openapi_document(const Call& c) {
  json::object paths;
  std::map<std::string, std::string> tags;  // name -> description
  auto add = [&](const RouteSpec& r, std::string operation_id, const std::vector<std::pair<std::string, std::string>>& parameters) {
    auto& entry = paths[r.path];
    if (!entry.is_object()) entry.emplace_object();
    entry.as_object()[lower(r.method)] = operation(r, std::move(operation_id), parameters);
    tags.emplace(r.tag, "");
  };
  for (const auto& r : routes) {
    if (!r.in_document) continue;
    std::vector<std::pair<std::string, std::string>> parameters;
    for (const auto& p : r.parameters) parameters.emplace_back(p, path_parameter(p)->pattern);
    add(r, operation_id(r), parameters);
  }
  // The routes this tenant's enabled plugins declare, each under /plugins/<id>.
  for (const auto& info : c.manager.list()) {
    if (info.state != PluginState::enabled) continue;
    for (const auto& pr : info.routes) {
      RouteSpec r;
      r.method = pr.method;
      r.path = fmt::format("/plugins/{}{}", info.manifest.id, pr.path == "/" ? "" : pr.path);
      r.summary = fmt::format("{}: the plugin's action '{}'", info.manifest.id, pr.action);
      r.min_role = pr.role.empty() ? Role::operator_ : parse_role(pr.role).value_or(Role::admin);
      r.permission = "routes.call:" + info.manifest.id;
      r.tag = "plugin " + info.manifest.id;
      r.answers.push_back(RouteAnswer{200, "application/json", json::object{{"description", "what the action returns (JSON)"}}, nullptr});
      r.declared_errors = {403, 404, 409, 412, 502, 503, 504};
      std::vector<std::pair<std::string, std::string>> parameters;
      for (std::size_t at = r.path.find('{'); at != std::string::npos; at = r.path.find('{', at + 1))
        parameters.emplace_back(r.path.substr(at + 1, r.path.find('}', at) - at - 1), "[^/]+");
      tags.emplace(r.tag, info.manifest.description);
      add(r, fmt::format("{}Plugin_{}_{}", lower(r.method), info.manifest.id, pr.action), parameters);
    }
  }
  json::array tag_list;
  for (const auto& [name, description] : tags)
    tag_list.push_back(json::object{{"name", name}, {"description", description.empty() ? fmt::format("the {} routes", name) : description}});
  return json::object{
      {"openapi", "3.1.0"},
      {"info", json::object{{"title", "xcore-server"},
                            {"version", "1.0.0"},
                            {"description", "The reference server over libxcore: plugins, tools, scheduled tasks, users, tokens and secrets, per tenant. "
                                            "Log in with POST /api/v1/auth/login and send the access token as a bearer token."},
                            {"license", json::object{{"name", "MIT"}, {"identifier", "MIT"}}}}},
      {"servers", json::array{json::object{{"url", "/"}, {"description", "this server"}}}},
      {"security", json::array{json::object{{"bearer", json::array{}}}}},
      {"tags", std::move(tag_list)},
      {"paths", std::move(paths)},
      {"components", json::object{{"securitySchemes", json::object{{"bearer", json::object{{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"},
                                                                                            {"description", "an access token from /api/v1/auth/login, or an API token"}}}}},
                                  {"schemas", api_schemas()},
                                  {"responses", error_responses()}}}};
}

}  // namespace xcore::server
