// Remote nodes in the server: the NodeHub on its own address (config.node_listen), nodes authenticated by
// their token's hash against the nodes table, and their tools put into their tenant's Manager, which a
// connected node keeps awake (it holds the Manager, so the tenant is never parked under it).
#include "server_impl.hpp"

#include "nodes/command_policy.hpp"

namespace xcore::server {

namespace {
std::string iso(std::chrono::system_clock::time_point t) { return format_iso8601(std::chrono::floor<std::chrono::seconds>(t)); }
std::string iso(std::int64_t unix_seconds) { return format_iso8601(std::chrono::sys_seconds(std::chrono::seconds(unix_seconds))); }
}  // namespace

Result<void> Server::Impl::start_nodes() {
  for (const auto& file : config.node_mcp_presets) XCORE_TRY(mcp_presets.add_file(file));
  if (config.node_listen.empty()) return ok();
  ServerConfig where;
  XCORE_TRY(parse_listen(config.node_listen, where));
  NodeHubOptions o;
  o.address = where.host;
  o.port = static_cast<std::uint16_t>(where.port);
  o.tls_cert_file = config.node_tls_cert_file;
  o.tls_key_file = config.node_tls_key_file;
  o.log = [this](LogLevel level, std::string_view source, std::string_view message) { log(level, source, message); };
  o.authenticate = [this](std::string_view token, std::string_view claimed) -> Result<NodeIdentity> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->node_by_token(sha256_hex(token)));
    if (!row) return Error{ErrorCode::unauthenticated, "unknown node token (revoked, rotated, or never issued)"};
    if (row->name != claimed)
      return Error{ErrorCode::permission_denied, fmt::format("this token is node '{}''s; the node calls itself '{}'", row->name, claimed)};
    NodeIdentity id{row->tenant, row->name, {}};
    if (const auto* p = row->spec.if_contains("policy"); p && p->is_object()) id.policy = p->get_object();
    return id;
  };
  o.registry_for = [this](const std::string& tenant) -> Result<NodeRegistry> {
    XCORE_ASSIGN_OR_RETURN(auto manager, wake_tenant(tenant));
    return NodeRegistry{&manager->tools(), manager};
  };
  o.on_change = [this](const NodeInfo& n, bool online, const std::optional<Error>& why) {
    (void)db->node_seen(n.tenant, n.name, unix_now(), n.version);
    audit->record(AuditRow{0, 0, n.tenant, "", online ? "node online" : "node offline", n.name,
                           online ? fmt::format("from {} with {} tools", n.remote_address, n.tools.size()) : (why ? why->message : std::string()), ""});
  };
  nodes = std::make_unique<NodeHub>(std::move(o));
  auto port = nodes->start();
  if (!port) {
    nodes.reset();
    return Error{port.error().code, fmt::format("nodes: {}", port.error().message)};
  }
  node_port = *port;
  return ok();
}

json::object Server::Impl::node_json(const NodeRow& row) const {
  json::object o{{"name", row.name}, {"created_at", iso(row.created_at)}};
  o["labels"] = row.spec.contains("labels") ? row.spec.at("labels") : json::array();
  o["policy"] = row.spec.contains("policy") ? row.spec.at("policy") : json::value(nullptr);
  o["created_by"] = row.spec.contains("created_by") ? row.spec.at("created_by") : json::value("");
  auto online = nodes ? nodes->find(row.tenant, row.name) : std::nullopt;
  o["online"] = online.has_value();
  o["version"] = online ? online->version : row.version;
  o["last_seen"] = online ? json::value(iso(online->last_seen))
                 : row.last_seen ? json::value(iso(row.last_seen)) : json::value(nullptr);
  json::array tools;
  if (online) {
    for (const auto& t : online->tools) tools.emplace_back(t);
    o["connected_at"] = iso(online->connected_at);
    o["remote_address"] = online->remote_address;
    json::array labels;
    for (const auto& l : online->labels) labels.emplace_back(l);
    o["node_labels"] = std::move(labels);  // what the node says of itself (--label)
  }
  o["tools"] = std::move(tools);
  return o;
}

void Server::Impl::add_node_routes() {
  const std::string node_schema =
      R"json({"type":"object","properties":{"name":{"type":"string"},"labels":{"type":"array","items":{"type":"string"}},"policy":{"type":["object","null"]},"online":{"type":"boolean"},"version":{"type":"string"},"last_seen":{"type":["string","null"]},"connected_at":{"type":"string"},"remote_address":{"type":"string"},"tools":{"type":"array","items":{"type":"string"}},"created_at":{"type":"string"},"created_by":{"type":"string"},"token":{"type":"string","description":"shown once, when the node is created or its token rotated"}},"required":["name","online","tools"]})json";

  // What an admin may set of a node: its labels and the server's command policy (checked as the node will).
  auto node_fields = [](const json::value& body, json::object& spec) -> Result<void> {
    if (!body.is_object()) return Error{ErrorCode::invalid_argument, "expected a JSON object"};
    for (const auto& [k, v] : body.get_object()) {
      if (k == "name") continue;
      if (k == "labels") {
        if (!v.is_array()) return Error{ErrorCode::invalid_argument, "labels: expected a list of strings"};
        for (const auto& l : v.get_array())
          if (!l.is_string() || l.get_string().size() > 128) return Error{ErrorCode::invalid_argument, "labels: expected strings of at most 128 characters"};
        spec["labels"] = v;
      } else if (k == "policy") {
        if (v.is_null()) {
          spec.erase("policy");
          continue;
        }
        if (auto p = xcore::nodes::CommandPolicy::from_json(v); !p) return Error{ErrorCode::invalid_argument, fmt::format("policy: {}", p.error().message)};
        spec["policy"] = v;
      } else {
        return Error{ErrorCode::invalid_argument, fmt::format("'{}' cannot be set (a node has name, labels and policy)", std::string_view(k))};
      }
    }
    return ok();
  };

  route("GET", "/api/v1/nodes", Role::viewer, "this tenant's remote nodes: online or not, last seen, version, tools, labels", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto rows, db->nodes(c.who.tenant));
    json::array out;
    for (const auto& r : rows) out.push_back(node_json(r));
    return Reply{200, json::object{{"nodes", std::move(out)}, {"listening", nodes != nullptr}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"nodes":{{"type":"array","items":{}}},"listening":{{"type":"boolean"}}}},"required":["nodes"]}})json", node_schema));

  route("POST", "/api/v1/nodes", Role::admin, "create a node ({name, labels?, policy?}); its token is shown once", [this, node_fields](Call& c) -> Result<Reply> {
    const auto* name = c.body.is_object() ? c.body.get_object().if_contains("name") : nullptr;
    if (!name || !name->is_string() || !is_node_name(name->get_string()))
      return Error{ErrorCode::invalid_argument, "name: 1-40 of a-z 0-9 - (not starting with -): it prefixes the node's tools"};
    NodeRow row;
    row.tenant = c.who.tenant;
    row.name = std::string(name->get_string());
    row.spec["created_by"] = c.who.user;
    XCORE_TRY(node_fields(c.body, row.spec));
    row.created_at = unix_now();
    const auto token = "xcn_" + random_token(32);
    XCORE_TRY(db->create_node(row, sha256_hex(token)));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "node created", row.name, "", c.request_id});
    auto out = node_json(row);
    out["token"] = token;
    return Reply{201, std::move(out)};
  }).body(R"json({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]})json").returns(201, node_schema).errors({409});

  route("GET", "/api/v1/nodes/{node}", Role::viewer, "one remote node", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->node(c.who.tenant, c.arg(1)));
    if (!row) return Error{ErrorCode::not_found, fmt::format("no node '{}' of this tenant", c.arg(1))};
    return Reply{200, node_json(*row)};
  }).returns(200, node_schema).errors({404});

  route("PATCH", "/api/v1/nodes/{node}", Role::admin, "change a node's labels or the server's command policy for it (sent to it at once if online)",
        [this, node_fields](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->node(c.who.tenant, c.arg(1)));
    if (!row) return Error{ErrorCode::not_found, fmt::format("no node '{}' of this tenant", c.arg(1))};
    if (const auto* n = c.body.is_object() ? c.body.get_object().if_contains("name") : nullptr; n && *n != json::value(row->name))
      return Error{ErrorCode::invalid_argument, "name: a node keeps its name (create another)"};
    XCORE_TRY(node_fields(c.body, row->spec));
    XCORE_TRY(db->set_node_spec(c.who.tenant, row->name, row->spec));
    if (nodes && c.body.get_object().contains("policy")) {
      const auto* p = row->spec.if_contains("policy");
      // No policy of the server's: the node's own alone, which an empty list of rules cannot say; allow all.
      (void)nodes->set_policy(c.who.tenant, row->name, p ? p->get_object() : json::object{{"rules", json::array{json::object{{"allow", "*"}}}}});
    }
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "node changed", row->name, "", c.request_id});
    return Reply{200, node_json(*row)};
  }).body(R"json({"type":"object"})json").returns(200, node_schema).errors({404});

  route("DELETE", "/api/v1/nodes/{node}", Role::admin, "delete a node: its token stops working and it is dropped at once", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->delete_node(c.who.tenant, c.arg(1)));
    if (nodes) nodes->disconnect(c.who.tenant, c.arg(1), "the node was deleted");
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "node deleted", c.arg(1), "", c.request_id});
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404});

  route("POST", "/api/v1/nodes/{node}/token", Role::admin, "rotate a node's token: the new one is shown once; the old one stops working and the node is dropped",
        [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->node(c.who.tenant, c.arg(1)));
    if (!row) return Error{ErrorCode::not_found, fmt::format("no node '{}' of this tenant", c.arg(1))};
    const auto token = "xcn_" + random_token(32);
    XCORE_TRY(db->set_node_token(c.who.tenant, row->name, sha256_hex(token)));
    if (nodes) nodes->disconnect(c.who.tenant, row->name, "its token was rotated");
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "node token rotated", row->name, "", c.request_id});
    auto out = node_json(*row);
    out["token"] = token;
    return Reply{200, std::move(out)};
  }).returns(200, node_schema).errors({404});

  add_node_mcp_routes();
}

// MCP servers on a node: presets from the catalogue (config.node_mcp_presets on top of the built-in one)
// with the folders an admin chose, or servers already running there, by URL. The node checks them again.
void Server::Impl::add_node_mcp_routes() {
  const std::string preset_schema =
      R"json({"type":"object","properties":{"name":{"type":"string"},"description":{"type":"string"},"package":{"type":"string"},"version":{"type":"string"},"mounts":{"type":"object","properties":{"min":{"type":"integer"},"max":{"type":"integer"},"writable":{"type":"boolean"}}}},"required":["name","package","version","mounts"]})json";
  const std::string server_schema =
      R"json({"type":"object","properties":{"id":{"type":"string"},"preset":{"type":"string"},"url":{"type":"string"},"mounts":{"type":"array","items":{"type":"string"}},"writable":{"type":"boolean"},"package":{"type":"string"},"state":{"type":"string"},"error":{"type":"string"},"tools":{"type":"array","items":{"type":"string"},"description":"as the tenant calls them, <node>.<tool>"}},"required":["id","state","tools"]})json";

  // The node names its tools as it serves them; the tenant calls them "<node>.<tool>".
  auto as_tenant_sees = [](const std::string& node, json::object server) {
    if (auto* tools = server.if_contains("tools"); tools && tools->is_array())
      for (auto& t : tools->as_array())
        if (t.is_string()) t = json::value(fmt::format("{}.{}", node, std::string_view(t.get_string())));
    return server;
  };
  // The node must be this tenant's before anything is asked of it.
  auto this_tenants = [this](Call& c) -> Result<void> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->node(c.who.tenant, c.arg(1)));
    if (!row) return Error{ErrorCode::not_found, fmt::format("no node '{}' of this tenant", c.arg(1))};
    if (!nodes || !nodes->find(c.who.tenant, row->name)) return Error{ErrorCode::unavailable, fmt::format("node '{}' is not connected", row->name)};
    return ok();
  };

  route("GET", "/api/v1/mcp-presets", Role::viewer, "the MCP servers a node can be asked to start, with the folders each takes", [this](Call&) -> Result<Reply> {
    json::array out;
    for (const auto& p : mcp_presets.list()) {
      auto o = p.to_json();
      o.erase("args");  // how it is started is the node's business; what it needs is shown
      o.erase("env");
      o["name"] = p.name;
      out.push_back(std::move(o));
    }
    return Reply{200, json::object{{"presets", std::move(out)}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"presets":{{"type":"array","items":{}}}}},"required":["presets"]}})json", preset_schema));

  route("GET", "/api/v1/nodes/{node}/mcp", Role::viewer, "the MCP servers running on a node (it must be online)", [this, this_tenants, as_tenant_sees](Call& c) -> Result<Reply> {
    XCORE_TRY(this_tenants(c));
    XCORE_ASSIGN_OR_RETURN(auto listed, nodes->list_mcp(c.who.tenant, c.arg(1)));
    json::array out;
    if (auto* servers = listed.if_contains("servers"); servers && servers->is_array())
      for (auto& s : servers->as_array())
        if (s.is_object()) out.push_back(as_tenant_sees(c.arg(1), std::move(s.as_object())));
    return Reply{200, json::object{{"servers", std::move(out)}}};
  }).returns(200, fmt::format(R"json({{"type":"object","properties":{{"servers":{{"type":"array","items":{}}}}},"required":["servers"]}})json", server_schema)).errors({404, 503});

  route("POST", "/api/v1/nodes/{node}/mcp", Role::admin,
        "start an MCP server on a node: {preset, mounts, id?} from the catalogue, the mounts being folders inside the node's --root folders; "
        "or {url, id} for one already running on the node (loopback). Its tools join as the node's",
        [this, this_tenants, as_tenant_sees](Call& c) -> Result<Reply> {
    XCORE_TRY(this_tenants(c));  // another tenant's node is not found, whatever the body says
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected a JSON object: {preset, mounts} or {url, id}"};
    const auto& b = c.body.get_object();
    for (const auto& [k, v] : b)
      if (k != "preset" && k != "mounts" && k != "id" && k != "url")
        return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a field here (preset, mounts, id, url)", std::string_view(k))};
    McpServerRequest request;
    if (const auto* url = b.if_contains("url")) {
      if (b.contains("preset") || b.contains("mounts")) return Error{ErrorCode::invalid_argument, "give either {preset, mounts} or {url, id}"};
      if (!url->is_string()) return Error{ErrorCode::invalid_argument, "url: expected a string"};
      request.url = std::string(url->get_string());
    } else {
      const auto* name = b.if_contains("preset");
      if (!name || !name->is_string()) return Error{ErrorCode::invalid_argument, "preset: expected a preset's name (GET /api/v1/mcp-presets), or give url"};
      const auto* preset = mcp_presets.find(name->get_string());
      if (!preset) {
        std::vector<std::string> known;
        for (const auto& p : mcp_presets.list()) known.push_back(p.name);
        return Error{ErrorCode::invalid_argument, fmt::format("preset: no preset '{}' (known: {})", std::string_view(name->get_string()), fmt::join(known, ", "))};
      }
      request.preset = *preset;
      if (const auto* mounts = b.if_contains("mounts")) {
        if (!mounts->is_array()) return Error{ErrorCode::invalid_argument, "mounts: expected a list of folders on the node"};
        for (const auto& m : mounts->get_array()) {
          if (!m.is_string()) return Error{ErrorCode::invalid_argument, "mounts: expected a list of folders on the node"};
          request.mounts.emplace_back(m.get_string());
        }
      }
    }
    const auto* id = b.if_contains("id");
    if (id && !id->is_string()) return Error{ErrorCode::invalid_argument, "id: expected a string"};
    request.id = id ? std::string(id->get_string()) : request.preset ? request.preset->name : std::string();
    if (request.id.empty()) return Error{ErrorCode::invalid_argument, "id: a server given by url needs an id (1-40 of a-z 0-9 -)"};
    XCORE_ASSIGN_OR_RETURN(auto started, nodes->start_mcp(c.who.tenant, c.arg(1), request));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "node mcp started", c.arg(1),
                           request.preset ? fmt::format("{} as '{}', mounts: {}", request.preset->name, request.id, fmt::join(request.mounts, ", "))
                                          : fmt::format("{} as '{}'", request.url, request.id),
                           c.request_id});
    return Reply{201, as_tenant_sees(c.arg(1), std::move(started))};
  }).body(R"json({"type":"object","properties":{"preset":{"type":"string"},"mounts":{"type":"array","items":{"type":"string"}},"id":{"type":"string"},"url":{"type":"string"}}})json")
    .returns(201, server_schema).errors({404, 409, 503});

  route("DELETE", "/api/v1/nodes/{node}/mcp/{server}", Role::admin, "stop an MCP server on a node and remove it there", [this, this_tenants](Call& c) -> Result<Reply> {
    XCORE_TRY(this_tenants(c));
    XCORE_TRY(nodes->stop_mcp(c.who.tenant, c.arg(1), c.arg(2)));
    audit->record(AuditRow{0, 0, c.who.tenant, c.who.user, "node mcp stopped", c.arg(1), c.arg(2), c.request_id});
    return Reply{200, json::object{{"deleted", c.arg(2)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404, 503});
}

}  // namespace xcore::server
