// Routes: plugins and their lifecycle, tools, actions, routes plugins contribute, hooks.
#include "server_impl.hpp"

namespace xcore::server {

void Server::Impl::add_plugin_routes() {

  // ---- plugins
  route("GET", "/api/v1/plugins", Role::viewer, "this tenant's registered plugins (?state=)", [this](Call& c) -> Result<Reply> {
    json::array out;
    auto state = c.query("state");
    XCORE_ASSIGN_OR_RETURN(auto regs, registrations_of(c.who.tenant));
    for (const auto& info : c.manager.list()) {
      auto reg = regs.find(info.manifest.id);
      if (reg == regs.end()) continue;
      if (!state.empty() && to_string(info.state) != state) continue;
      out.push_back(plugin_json(info, &reg->second));
    }
    return Reply{200, json::object{{"plugins", std::move(out)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/PluginList"})json");
  route("GET", "/api/v1/plugins/available", Role::viewer, "plugins in the plugin folders not registered for this tenant", [this](Call& c) -> Result<Reply> {
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto regs, registrations_of(c.who.tenant));
    for (const auto& info : c.manager.list())
      if (!regs.contains(info.manifest.id)) out.push_back(plugin_json(info, nullptr));
    return Reply{200, json::object{{"plugins", std::move(out)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/PluginList"})json");
  route("GET", "/api/v1/plugins/stats", Role::viewer, "call statistics per plugin", [this](Call& c) -> Result<Reply> {
    json::object out;
    XCORE_ASSIGN_OR_RETURN(auto regs, registrations_of(c.who.tenant));
    for (const auto& info : c.manager.list())
      if (auto reg = regs.find(info.manifest.id); reg != regs.end()) out[info.manifest.id] = plugin_json(info, &reg->second).at("stats");
    return Reply{200, json::object{{"stats", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["stats"],"properties":{"stats":{"type":"object","description":"by plugin id","additionalProperties":{"$ref":"#/components/schemas/PluginStats"}}}})json");
  route("GET", "/api/v1/plugins/health", Role::viewer, "health of every enabled plugin", [this](Call& c) -> Result<Reply> {
    json::object out;
    XCORE_ASSIGN_OR_RETURN(auto regs, registrations_of(c.who.tenant));
    for (const auto& info : c.manager.list()) {
      if (!regs.contains(info.manifest.id) || info.state != PluginState::enabled) continue;
      auto h = c.manager.health(info.manifest.id);
      out[info.manifest.id] = h ? *h : error_body(h.error(), c.request_id).at("error");
    }
    return Reply{200, json::object{{"health", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["health"],"properties":{"health":{"type":"object","description":"by plugin id: its health answer, or the error ({code, message}) that came instead","additionalProperties":{"$ref":"#/components/schemas/Health"}}}})json");
  route("POST", "/api/v1/plugins/discover", Role::admin, "read the configured plugin folders again", [](Call& c) -> Result<Reply> {
    auto report = c.manager.discover();
    json::array found, problems;
    for (const auto& f : report.found) found.emplace_back(f);
    for (const auto& p : report.problems) problems.push_back(json::object{{"code", to_string(p.code)}, {"message", p.message}});
    return Reply{200, json::object{{"found", std::move(found)}, {"problems", std::move(problems)}}};
  }).returns(200, R"json({"type":"object","required":["found","problems"],"properties":{"found":{"type":"array","items":{"type":"string"}},"problems":{"type":"array","items":{"type":"object","required":["code","message"],"properties":{"code":{"type":"string"},"message":{"type":"string"}}}}}})json");
  route("POST", "/api/v1/plugins/dynamic", Role::admin, "register an MCP server as a plugin: a command run in the sandbox, or a url reached over Streamable HTTP", [this](Call& c) -> Result<Reply> {
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected a manifest object: {id, version, command or url, ...}"};
    // Data only: an external command, always sandboxed, or a server elsewhere; never a binary for this
    // process to load. A url's host is checked when the plugin connects (remote_hosts.cpp).
    json::object manifest;
    for (const auto& [k, v] : c.body.get_object()) {
      if (k == "enable") continue;
      if (k == "entry" || k == "mode" || k == "cwd")
        return Error{ErrorCode::invalid_argument, fmt::format("'{}' cannot be set: a dynamic plugin is a command run in the sandbox, from its own folder, or a url", std::string_view(k))};
      manifest[k] = v;
    }
    manifest["mode"] = "sandboxed";
    if (manifest.contains("command") == manifest.contains("url"))
      return Error{ErrorCode::invalid_argument, "give one of 'command' (the argv of an MCP stdio server) or 'url' (an MCP server's Streamable HTTP endpoint)"};
    XCORE_ASSIGN_OR_RETURN(auto parsed, parse_manifest(xcore::json_text::serialize(manifest), "dynamic plugin"));
    const auto pid = parsed.manifest.id;
    XCORE_TRY(grant_policy(c.who.tenant, parsed.manifest));
    if (c.manager.info(pid)) return Error{ErrorCode::already_exists, fmt::format("plugin '{}' already exists", pid)};
    auto folder = dynamic_dir(c.who.tenant) / pid;
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot create {}: {}", folder.string(), ec.message())};
    {
      std::ofstream out(folder / "plugin.json");
      out << xcore::json_text::serialize(manifest);
      if (!out) return Error{ErrorCode::unavailable, fmt::format("cannot write {}", (folder / "plugin.json").string())};
    }
    ::chmod(folder.c_str(), 0755);  // the sandbox's user starts the command from here
    ::chmod((folder / "plugin.json").c_str(), 0644);
    auto added = c.manager.add(folder);
    if (!added) {
      std::filesystem::remove_all(folder, ec);
      return std::move(added).error();
    }
    // Registered either way: enable() records it (also when it fails); otherwise it is recorded here.
    const bool enable = !c.body.get_object().contains("enable") || c.body.at("enable") == true;
    if (enable) XCORE_TRY(c.manager.enable(pid));
    else XCORE_TRY(db->put_registration(RegistrationRow{c.who.tenant, pid, parsed.manifest.version.to_string(), false, "{}", 0, 0}));
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, pid));
    XCORE_ASSIGN_OR_RETURN(auto body, plugin_json(info, c.who.tenant));
    return Reply{201, std::move(body)};
  }).body(R"json({"type":"object","description":"a plugin manifest whose command is an MCP stdio server, or whose url is an MCP server's Streamable HTTP endpoint","properties":{"id":{"type":"string","minLength":1},"version":{"type":"string","minLength":1},"command":{"type":"array","items":{"type":"string"},"minItems":1},"url":{"type":"string","minLength":1},"headers":{"type":"object","additionalProperties":{"type":"string"}},"bearer_secret":{"type":"string"},"enable":{"type":"boolean"}},"required":["id","version"]})json").returns(201, R"json({"$ref":"#/components/schemas/Plugin"})json").errors({409, 412, 422, 502, 503, 504});
  route("POST", "/api/v1/plugins/{plugin}/save", Role::admin, "persist a dynamic plugin's manifest in the plugin folder", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    const auto source = info.manifest.file;
    if (source.parent_path().parent_path() != dynamic_dir(c.who.tenant))
      return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' is not a dynamic plugin: it is in {}", c.arg(1), source.parent_path().string())};
    // Into the tenant's own plugin folder: one tenant's save never replaces another's plugin.
    auto target = saved_dir(c.who.tenant) / c.arg(1);
    std::error_code ec;
    if (std::filesystem::exists(target, ec)) return Error{ErrorCode::already_exists, fmt::format("{} exists", target.string())};
    std::filesystem::create_directories(target, ec);
    if (ec || !std::filesystem::copy_file(source, target / "plugin.json", ec))
      return Error{ErrorCode::unavailable, fmt::format("cannot save to {}: {}", target.string(), ec.message())};
    return Reply{200, json::object{{"saved", (target / "plugin.json").string()}}};
  }).returns(200, R"json({"type":"object","required":["saved"],"properties":{"saved":{"type":"string","description":"the manifest file written"}}})json").errors({404, 409, 412, 503});
  route("GET", "/api/v1/plugins/{plugin}", Role::viewer, "one plugin", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    XCORE_ASSIGN_OR_RETURN(auto body, plugin_json(info, c.who.tenant));
    return Reply{200, std::move(body)};
  }).returns(200, R"json({"$ref":"#/components/schemas/Plugin"})json").errors({404});
  route("GET", "/api/v1/plugins/{plugin}/health", Role::viewer, "one plugin's health", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    XCORE_ASSIGN_OR_RETURN(auto h, c.manager.health(info.manifest.id));
    return Reply{200, h};
  }).returns(200, R"json({"$ref":"#/components/schemas/Health"})json").errors({404, 412, 502, 503, 504});
  route("GET", "/api/v1/plugins/{plugin}/tools", Role::viewer, "one plugin's tools (MCP shape)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    ToolFilter f;
    f.plugin = info.manifest.id;
    return Reply{200, json::object{{"tools", c.manager.tools().export_mcp(f)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/ToolList"})json").errors({404});
  // Lifecycle: enable and disable register the plugin for the tenant; load, unload and reload are admin's.
  for (const char* verb : {"enable", "disable", "load", "unload", "reload"}) {
    const std::string v = verb;
    const Role min = (v == "enable" || v == "disable" || v == "reload") ? Role::operator_ : Role::admin;
    route("POST", "/api/v1/plugins/{plugin}/" + v, min, v + " a plugin", [this, v](Call& c) -> Result<Reply> {
      const auto pid = c.arg(1);
      XCORE_TRY(known(c.manager, pid));
      // The Manager records what each operation changed in the tenant's registrations (cascades and
      // dependencies included), and brings a failed plugin it reloads back to what its registration asks.
      Result<void> r = ok();
      if (v == "enable") r = c.manager.enable(pid);
      else if (v == "disable") r = c.manager.disable(pid, UnloadOptions{c.query("cascade") == "true"});
      else if (v == "load") r = c.manager.load(pid);
      else if (v == "unload") r = c.manager.unload(pid, UnloadOptions{c.query("cascade") == "true"});
      else r = c.manager.reload(pid);
      XCORE_TRY(r);
      XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, pid));
      XCORE_ASSIGN_OR_RETURN(auto body, plugin_json(info, c.who.tenant));
      return Reply{200, std::move(body)};
    }).returns(200, R"json({"$ref":"#/components/schemas/Plugin"})json").errors({404, 409, 412, 422, 502, 503, 504});
  }
  route("GET", "/api/v1/plugins/{plugin}/config", Role::viewer, "a plugin's config", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    json::object out{{"config", info.config}};
    if (info.manifest.config_schema) out["schema"] = *info.manifest.config_schema;
    return Reply{200, out};
  }).returns(200, R"json({"type":"object","required":["config"],"properties":{"config":{"type":"object"},"schema":{"type":"object","description":"the plugin's config_schema"}}})json").errors({404});
  route("PUT", "/api/v1/plugins/{plugin}/config", Role::operator_, "replace a plugin's config (validated by its config_schema)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "the config must be a JSON object"};
    XCORE_TRY(config_allowed(c.who, info, c.body.get_object()));
    XCORE_TRY(c.manager.set_config(c.arg(1), c.body.get_object()));  // recorded in the registration
    return Reply{200, json::object{{"config", c.body}}};
  }).body(R"json({"type":"object","description":"the plugin's whole config, checked against its config_schema"})json").returns(200, R"json({"type":"object","required":["config"],"properties":{"config":{"type":"object"}}})json").errors({404, 409, 412, 502, 503, 504});

  // ---- tools and actions
  route("GET", "/api/v1/tools", Role::viewer, "tools (?category=, ?plugin=, ?format=mcp|openai)", [](Call& c) -> Result<Reply> {
    ToolFilter f;
    f.category = c.query("category");
    f.plugin = c.query("plugin");
    f.tenant = c.who.tenant;
    auto format = c.query("format");
    if (format == "openai") return Reply{200, json::object{{"tools", c.manager.tools().export_openai(f)}}};
    if (!format.empty() && format != "mcp") return Error{ErrorCode::invalid_argument, fmt::format("format '{}': expected mcp or openai", format)};
    return Reply{200, json::object{{"tools", c.manager.tools().export_mcp(f)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/ToolList"})json");
  route("POST", "/api/v1/tools/{tool}/invoke", Role::operator_, "call a tool; the body is its arguments", [](Call& c) -> Result<Reply> {
    json::value args = c.body.is_null() ? json::value(json::object{}) : c.body;
    XCORE_ASSIGN_OR_RETURN(auto r, c.manager.call_tool(c.arg(1), args, context_of(c)));
    return Reply{200, r.to_mcp()};
  }).body(R"json({"type":"object","description":"the tool's arguments, checked against its inputSchema"})json").returns(200, R"json({"$ref":"#/components/schemas/ToolResult"})json").errors({404, 409, 412, 502, 503, 504});
  route("POST", "/app/{plugin}/{action}", Role::operator_, "a plugin action; the body is its parameters", [](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto r, c.manager.call_action(c.arg(1), c.arg(2), c.body, context_of(c)));
    return Reply{200, r};
  }).returns(200, R"json({"description":"what the action returns (JSON)"})json").errors({404, 409, 412, 502, 503, 504});
  // Routes plugins declare in their manifests, under /plugins/<id>/...: looked up on each request in the
  // tenant's current catalogue, so they come and go with the plugin (and change with a reload).
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    route(method, "/plugins/{plugin}{path}", Role::anonymous, "a route a plugin declares in its manifest", [this, method = std::string(method)](Call& c) -> Result<Reply> {
      if (c.who.role == Role::anonymous) return Error{ErrorCode::unauthenticated, "log in first: plugin routes need a bearer token"};
      const auto plugin = c.arg(1);
      auto info = c.manager.info(plugin);
      if (!info || info->state != PluginState::enabled) return Error{ErrorCode::not_found, fmt::format("no enabled plugin '{}'", plugin)};
      const std::string path = c.arg(2).empty() ? "/" : c.arg(2);
      auto found = match_route(info->routes, method, path);
      if (found.route) {
        const auto& r = *found.route;
        // The Manager admitted only our role names; a route that names none asks for an operator.
        const auto needed = r.role.empty() ? std::optional(Role::operator_) : parse_role(r.role);
        if (!needed) return Error{ErrorCode::internal, fmt::format("plugin '{}' route {} {} names the unknown role '{}'", plugin, r.method, r.path, r.role)};
        if (c.who.role < *needed)
          return Error{ErrorCode::permission_denied, fmt::format("this route needs the {} role; you have {}", role_name(*needed), role_name(c.who.role))};
        if (!c.who.principal.holds("routes.call:" + plugin))
          return Error{ErrorCode::permission_denied, fmt::format("this route needs the permission 'routes.call:{}'", plugin)};
        json::object query;
        for (const auto& [k, v] : c.req.params) query[k] = v;
        json::object request{{"method", method}, {"path", path}, {"params", std::move(found.params)}, {"query", std::move(query)}, {"body", c.body}};
        // The route's role was checked: its action is the caller's to call through this route.
        auto ctx = context_of(c);
        ctx.principal.permissions.push_back(fmt::format("actions.call:{}/{}", plugin, r.action));
        XCORE_ASSIGN_OR_RETURN(auto out, c.manager.call_action(plugin, r.action, request, ctx));
        return Reply{200, out};
      }
      return Error{ErrorCode::not_found, fmt::format("plugin '{}' has no route {} {}", plugin, method, path)};
    }, /*permission=*/{}, /*in_document=*/false).returns(200, R"json({"description":"what the route's action returns (JSON)"})json").errors({403, 404, 409, 412, 502, 503, 504});  // the document lists each plugin's routes instead
  }
  route("GET", "/api/v1/hooks", Role::viewer, "hooks and their subscribers", [](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& h : c.manager.hooks().list())
      out.push_back(json::object{{"name", h.spec.name}, {"description", h.spec.description}, {"historic", h.spec.historic}, {"handlers", h.handlers},
                                 {"wrappers", h.wrappers}, {"calls", h.calls}, {"failures", h.failures}});
    return Reply{200, json::object{{"hooks", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["hooks"],"properties":{"hooks":{"type":"array","items":{"$ref":"#/components/schemas/Hook"}}}})json");

}

}  // namespace xcore::server
