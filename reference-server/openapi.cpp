// /openapi.json, made from the route table: every operation with its operationId, tag, security, path
// parameters (with their patterns), request body and responses, the shared error schema, and the routes
// the caller's tenant's plugins declare.
#include "server_impl.hpp"

namespace xcore::server {

namespace {

json::object json_content(json::value schema) { return json::object{{"application/json", json::object{{"schema", std::move(schema)}}}}; }

json::object ref(std::string_view where) { return json::object{{"$ref", where}}; }

// The shared answers, by status: the error shape every refusal has.
json::object error_responses() {
  auto error = [](std::string_view description) {
    return json::object{{"description", description}, {"content", json_content(ref("#/components/schemas/Error"))}};
  };
  json::object out{{"BadRequest", error("the request is malformed: the message names what and where")},
                   {"Unauthorized", error("no valid credentials: log in and send Authorization: Bearer <token>")},
                   {"Forbidden", error("the caller's role, token scopes or tenant do not allow this")},
                   {"NotFound", error("no such thing in the caller's tenant")},
                   {"Conflict", error("the current state forbids it")},
                   {"PayloadTooLarge", error("the body is over the server's max_body_bytes")},
                   {"TooManyRequests", error("a rate, login or connection limit: retry after the Retry-After header's seconds")},
                   {"InternalError", error("the server's own failure; its log holds the cause under the request id")},
                   {"PluginError", error("the plugin failed on its own (plugin_error) or crashed (plugin_crashed)")}};
  out["Unauthorized"].as_object()["headers"] =
      json::object{{"WWW-Authenticate", json::object{{"description", "Bearer"}, {"schema", json::object{{"type", "string"}}}}}};
  out["TooManyRequests"].as_object()["headers"] =
      json::object{{"Retry-After", json::object{{"description", "seconds to wait"}, {"schema", json::object{{"type", "integer"}}}}}};
  return out;
}

json::object error_schema() {
  return json::object{
      {"type", "object"},
      {"required", json::array{"error", "request_id"}},
      {"properties",
       json::object{{"error", json::object{{"type", "object"},
                                           {"required", json::array{"code", "message"}},
                                           {"properties", json::object{{"code", json::object{{"type", "string"},
                                                                                             {"description", "a stable code: invalid_argument, not_found, "
                                                                                                             "permission_denied, unauthenticated, resource_exhausted, "
                                                                                                             "timeout, plugin_error, internal, ..."}}},
                                                                       {"message", json::object{{"type", "string"}}},
                                                                       {"details", json::object{{"description", "JSON the code defines, or null"}}}}}}},
                    {"request_id", json::object{{"type", "string"}}}}}};
}

// What a route answers on success, by its content type.
json::object success_response(const RouteSpec& r) {
  if (r.path == "/metrics")
    return json::object{{"description", "the Prometheus text format"}, {"content", json::object{{"text/plain", json::object{{"schema", json::object{{"type", "string"}}}}}}}};
  if (r.path == "/docs")
    return json::object{{"description", "a page that renders this document"}, {"content", json::object{{"text/html", json::object{{"schema", json::object{{"type", "string"}}}}}}}};
  return json::object{{"description", r.summary}, {"content", json_content(json::object{{"type", json::array{"object", "array"}}})}};
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
  json::object responses{{"2XX", success_response(r)}, {"400", ref("#/components/responses/BadRequest")}};
  if (r.min_role != Role::anonymous || r.path.starts_with("/plugins/")) {
    responses["401"] = ref("#/components/responses/Unauthorized");
    responses["403"] = ref("#/components/responses/Forbidden");
  }
  if (!r.parameters.empty() || r.path.starts_with("/plugins/")) responses["404"] = ref("#/components/responses/NotFound");
  if (r.method != "GET") {
    responses["409"] = ref("#/components/responses/Conflict");
    responses["413"] = ref("#/components/responses/PayloadTooLarge");
  }
  responses["429"] = ref("#/components/responses/TooManyRequests");
  responses["500"] = ref("#/components/responses/InternalError");
  if (r.path.starts_with("/app/") || r.path.starts_with("/plugins/") || r.path.ends_with("/invoke"))
    responses["502"] = ref("#/components/responses/PluginError");
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
                                  {"schemas", json::object{{"Error", error_schema()}}},
                                  {"responses", error_responses()}}}};
}

}  // namespace xcore::server
