// Every route the server has, taken from its own /openapi.json (the route table), walked three ways: by
// role, by token scope, and by another tenant's admin, who must find nothing of this tenant's. A route
// added later is in these tests without anyone listing it.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <fmt/format.h>

#include <regex>

using namespace xcore_test;
namespace json = boost::json;

namespace {

struct Operation {
  std::string method, path;  // path with its named parameters, as the document names them
  std::string role;          // "" for routes anyone may call
  std::string permission;    // "" when the route needs none besides its role
};

std::vector<Operation> operations(Api& api) {
  auto doc = api.send("GET", "/openapi.json");
  REQUIRE(doc.status == 200);
  std::vector<Operation> out;
  for (const auto& [path, ops] : doc.body.at("paths").as_object())
    for (const auto& [method, op] : ops.as_object()) {
      Operation o{std::string(method), std::string(path), "", ""};
      std::transform(o.method.begin(), o.method.end(), o.method.begin(), ::toupper);
      if (const auto* r = op.as_object().if_contains("x-xcore-role")) o.role = std::string(r->as_string());
      if (const auto* p = op.as_object().if_contains("x-xcore-permission")) o.permission = std::string(p->as_string());
      out.push_back(std::move(o));
    }
  return out;
}

// The path with its parameters filled in by the route's area: `values` maps an area ("tasks", "plugins",
// ...) to the values of its path's parameters, in the order they appear.
std::string fill(const Operation& op, const std::map<std::string, std::vector<std::string>>& values) {
  static const std::regex area_re(R"(^/(?:api/v1/)?([a-z]+))");
  std::smatch m;
  std::string area = std::regex_search(op.path, m, area_re) ? m[1].str() : "";
  std::string path = op.path;
  const auto it = values.find(area);
  for (std::size_t i = 0;; ++i) {
    auto at = path.find('{');
    if (at == std::string::npos) break;
    REQUIRE_MESSAGE(it != values.end(), "no parameter values for the area '" << area << "' of " << op.path);
    REQUIRE(it->second.size() > i);
    path.replace(at, path.find('}', at) - at + 1, it->second[i]);
  }
  return path;
}

bool has_parameters(const Operation& op) { return op.path.find('{') != std::string::npos; }

int rank(const std::string& role) { return role == "viewer" ? 0 : role == "operator" ? 1 : role == "admin" ? 2 : -1; }

}  // namespace

TEST_CASE("roles and token scopes: every route of the table refuses exactly those below it") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_user(api, admin, "vera", "viewer");
  add_user(api, admin, "otto", "operator");
  add_user(api, admin, "ada", "admin");
  const std::map<std::string, std::string> token{{"anonymous", ""},
                                                 {"viewer", api.login("vera", "password-123")},
                                                 {"operator", api.login("otto", "password-123")},
                                                 {"admin", api.login("ada", "password-123")}};
  // Parameters that exist (or harmlessly do not): the point is whether the role gets past the gate.
  const std::map<std::string, std::vector<std::string>> values{
      {"plugins", {"audit", "x"}}, {"tools", {"echo"}},      {"app", {"core", "echo"}},        {"secrets", {"k1"}},
      {"users", {"nobody-here"}},  {"tokens", {"999999"}},   {"tasks", {"no-such-task"}},      {"webhooks", {"default", "none"}},
      {"providers", {"none"}},     {"agents", {"nobody", "0123456789abcdef0123456789abcdef"}},   {"approvals", {"0123456789abcdef0123456789abcdef"}},
      {"nodes", {"no-node", "no-server"}}};
  const auto ops = operations(api);
  CHECK(ops.size() >= 50);  // plugins' own routes are listed per plugin, and the examples declare none
  for (const auto& op : ops) {
    const auto path = fill(op, values);
    for (const auto& [who, tok] : token) {
      INFO(op.method << " " << path << " as " << who);
      auto a = api.send(op.method, path, op.method == "GET" ? "" : "{}", tok);
      CHECK(a.headers.count("X-Request-Id") == 1);
      if (op.role.empty()) {
        // Anyone's route; plugin routes and webhooks authenticate in their own way (a bearer token, a
        // signature), but never say 403 for want of a role.
        CHECK_MESSAGE(a.status != 403, json::serialize(a.body));
      } else if (rank(who) >= rank(op.role)) {
        CHECK_MESSAGE((a.status != 401 && a.status != 403), json::serialize(a.body));
      } else if (who == "anonymous") {
        CHECK(a.status == 401);
        CHECK(code_of(a) == "unauthenticated");
      } else {
        CHECK(a.status == 403);
        CHECK(code_of(a) == "permission_denied");
      }
    }
  }
  // Scopes: a token holding only a route's permission passes that route's gate; one holding another
  // area's permission does not.
  std::map<std::string, std::string> scoped;
  auto token_for = [&](const std::string& permission) {
    auto& t = scoped[permission];
    if (t.empty()) {
      auto made = api.send("POST", "/api/v1/tokens",
                           json::serialize(json::object{{"name", "only " + permission}, {"role", "admin"}, {"expires_in", 600}, {"scopes", json::array{json::string(permission)}}}),
                           admin);
      REQUIRE_MESSAGE(made.status == 201, json::serialize(made.body));
      t = std::string(made.body.at("token").as_string());
    }
    return t;
  };
  int checked = 0;
  for (const auto& op : ops) {
    if (op.permission.empty()) continue;
    const auto path = fill(op, values);
    INFO(op.method << " " << path << " needing " << op.permission);
    auto with = api.send(op.method, path, op.method == "GET" ? "" : "{}", token_for(op.permission));
    CHECK_MESSAGE((with.status != 401 && with.status != 403), json::serialize(with.body));
    const std::string other = op.permission == "hooks.read" ? "tasks.read" : "hooks.read";
    auto without = api.send(op.method, path, op.method == "GET" ? "" : "{}", token_for(other));
    CHECK(without.status == 403);
    CHECK(json::serialize(without.body).find(op.permission) != std::string::npos);
    ++checked;
  }
  CHECK(checked >= 40);
}

TEST_CASE("tenant isolation: every route naming a resource answers another tenant's admin with 404") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_REMOTE_ALLOWED_HOSTS=127.0.0.1", "XCORE_REMOTE_ALLOW_PRIVATE=1"});
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);  // tenant A: default
  // A's resources: a task, a secret, an API token, a user, a dynamic plugin of its own.
  auto task = api.send("POST", "/api/v1/tasks",
                       R"({"name":"nightly","trigger":{"type":"cron","expression":"0 8 * * *"},"target":{"tool":"echo","arguments":{"m":"hi"}}})", admin);
  REQUIRE(task.status == 201);
  const std::string task_id(task.body.at("id").as_string());
  REQUIRE(api.send("PUT", "/api/v1/secrets/webhook_a", R"({"value":"a's secret"})", admin).status == 200);
  auto tok = api.send("POST", "/api/v1/tokens", R"({"name":"a-token","role":"viewer","expires_in":600})", admin);
  REQUIRE(tok.status == 201);
  const auto token_id = std::to_string(tok.body.at("id").to_number<std::int64_t>());
  add_user(api, admin, "alice", "operator");
  auto dyn = api.send("POST", "/api/v1/plugins/dynamic", R"({"id":"a-dyn","version":"1.0.0","command":["/bin/true"],"enable":false})", admin);
  REQUIRE_MESSAGE(dyn.status == 201, json::serialize(dyn.body));
  // A model provider, an agent and one of its runs (it fails: nothing answers at the provider's address).
  REQUIRE(api.send("POST", "/api/v1/providers", R"({"name":"a-prov","base_url":"http://127.0.0.1:9/v1"})", admin).status == 201);
  REQUIRE(api.send("POST", "/api/v1/agents", R"({"name":"a-agent","provider":"a-prov","tools":["*"]})", admin).status == 201);
  auto run = api.send("POST", "/api/v1/agents/a-agent/run", R"({"input":"hello"})", admin);
  REQUIRE_MESSAGE(run.status == 202, json::serialize(run.body));
  const std::string run_id(run.body.at("id").as_string());
  REQUIRE(api.send("POST", "/api/v1/nodes", R"({"name":"a-node"})", admin).status == 201);

  // Tenant B's admin.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto b = api.login("acme-admin", "password-123", "acme");

  const std::map<std::string, std::vector<std::string>> values{
      {"plugins", {"a-dyn", "x"}}, {"tools", {"a-dyn.anything"}}, {"app", {"a-dyn", "anything"}}, {"secrets", {"webhook_a"}},
      {"users", {"alice"}},        {"tokens", {token_id}},        {"tasks", {task_id}},
      {"providers", {"a-prov"}},   {"agents", {"a-agent", run_id}}, {"approvals", {"0123456789abcdef0123456789abcdef"}},
      {"nodes", {"a-node", "a-server"}}};
  int walked = 0;
  for (const auto& op : operations(api)) {
    if (!has_parameters(op)) continue;
    // A webhook's URL names its tenant and is called by anyone; it is tested with the webhooks.
    if (op.path.starts_with("/api/v1/webhooks/")) continue;
    const auto path = fill(op, values);
    INFO(op.method << " " << path << " as acme's admin");
    // A body that passes validation, so that the answer comes from looking the resource up.
    std::string body = op.method == "GET" ? "" : "{}";
    if (op.method == "PATCH" && op.path.starts_with("/api/v1/users/")) body = R"({"role":"viewer"})";
    if (op.method == "PATCH" && op.path.starts_with("/api/v1/tasks/")) body = R"({"name":"renamed"})";
    auto a = api.send(op.method, path, body, b);
    if (op.method == "PUT" && op.path.starts_with("/api/v1/secrets/")) {
      // Setting a secret names B's own: it can neither see nor touch A's.
      CHECK(a.status == 400);
    } else {
      CHECK_MESSAGE(a.status == 404, json::serialize(a.body));
    }
    ++walked;
  }
  CHECK(walked >= 25);
  // Nothing of A's changed.
  CHECK(api.send("GET", "/api/v1/tasks/" + task_id, "", admin).status == 200);
  CHECK(json::serialize(api.send("GET", "/api/v1/secrets", "", admin).body).find("webhook_a") != std::string::npos);
  CHECK(api.send("GET", "/api/v1/plugins/a-dyn", "", admin).status == 200);
  auto tokens = json::serialize(api.send("GET", "/api/v1/tokens", "", admin).body);
  CHECK(tokens.find("\"revoked\":false") != std::string::npos);
  CHECK(api.login("alice", "password-123").size() > 20);
  CHECK(api.send("GET", "/api/v1/agents/a-agent/runs/" + run_id, "", admin).status == 200);
  CHECK(api.send("GET", "/api/v1/nodes/a-node", "", admin).status == 200);
  CHECK(api.send("GET", "/api/v1/providers", "", b).body.at("providers").as_array().size() == 1);  // the settings' only
}
