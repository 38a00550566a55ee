// Remote nodes in the server: the NodeHub on its own address (config.node_listen), nodes authenticated by
// their token's hash against the nodes table, and their tools put into their tenant's Manager, which a
// connected node keeps awake (it holds the Manager, so the tenant is never parked under it).
#include "server_impl.hpp"

#include "nodes/command_policy.hpp"

namespace xcore::server {

namespace {
// A node's name becomes its tools' prefix and a path segment.
bool valid_node_name(std::string_view n) {
  if (n.empty() || n.size() > 40 || n.front() == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}
std::string iso(std::chrono::system_clock::time_point t) { return format_iso8601(std::chrono::floor<std::chrono::seconds>(t)); }
std::string iso(std::int64_t unix_seconds) { return format_iso8601(std::chrono::sys_seconds(std::chrono::seconds(unix_seconds))); }
}  // namespace

Result<void> Server::Impl::start_nodes() {
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
    if (!name || !name->is_string() || !valid_node_name(name->get_string()))
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
}

}  // namespace xcore::server
