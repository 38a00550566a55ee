// The API's description and metrics, checked by the tools their readers use: /openapi.json made from the
// route table and linted by Redocly's CLI (pinned, from tests/peers/install.sh), /metrics checked by
// promtool (Debian's prometheus package). The real server on 127.0.0.1, an ephemeral port.
#include <doctest/doctest.h>

#include "support/peers.hpp"
#include "support/server_harness.hpp"

#include "route_table.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <set>

using namespace xcore_test;
namespace json = boost::json;

namespace {

// Runs a shell command; its exit status and what it printed (standard error too, unless it is dropped).
std::pair<int, std::string> run(const std::string& command, bool with_stderr = true) {
  std::string out;
  FILE* p = ::popen((command + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("/openapi.json: every operation of the route table, named parameters, shared errors; Redocly finds nothing wrong") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto doc = api.send("GET", "/openapi.json");
  REQUIRE(doc.status == 200);
  const auto& paths = doc.body.at("paths").as_object();

  // Operations that used to be missing (one method per path was kept) are there, each with its id.
  std::set<std::string> ids;
  std::size_t operations = 0;
  for (const auto& [path, methods] : paths) {
    CHECK_MESSAGE(std::string_view(path).find("{p1}") == std::string_view::npos, path);  // named, not numbered
    CHECK_MESSAGE(std::string_view(path).find('(') == std::string_view::npos, path);   // no regex
    for (const auto& [method, op] : methods.as_object()) {
      ++operations;
      CHECK_MESSAGE(ids.insert(std::string(op.at("operationId").as_string())).second, op.at("operationId"));
      CHECK(op.at("tags").as_array().size() == 1);
      // Every operation says what it answers: a success status with its body's schema (no generic
      // "object or array"), and its errors as references to the shared error answers.
      std::size_t successes = 0;
      for (const auto& [status, answer] : op.at("responses").as_object()) {
        const int code = std::stoi(std::string(status));
        if (code < 300) {
          ++successes;
          // One media type, or JSON and an event stream of the same (a transcript, live when asked for).
          const auto& content = answer.at("content").as_object();
          REQUIRE_MESSAGE((content.size() == 1 || (content.size() == 2 && content.contains("application/json") && content.contains("text/event-stream"))),
                          method << " " << path);
          const json::value generic = json::parse(R"({"type":["object","array"]})");
          CHECK_MESSAGE(content.begin()->value().at("schema") != generic, method << " " << path);
        } else {
          CHECK_MESSAGE(answer.at("$ref").as_string().starts_with("#/components/responses/"), method << " " << path << " " << status);
        }
      }
      CHECK_MESSAGE(successes >= 1, method << " " << path);
      CHECK_MESSAGE(op.at("responses").as_object().contains("500"), method << " " << path);
    }
  }
  CHECK(operations >= 50);
  for (auto [path, method] : {std::pair{"/api/v1/tasks", "get"}, {"/api/v1/tasks", "post"}, {"/api/v1/tasks/{task}", "get"}, {"/api/v1/tasks/{task}", "patch"},
                              {"/api/v1/secrets/{secret}", "put"}, {"/api/v1/users", "get"}, {"/api/v1/tenants", "get"}, {"/api/v1/tokens", "get"}})
    CHECK_MESSAGE((paths.contains(path) && paths.at(path).as_object().contains(method)), method << " " << path);
  const auto& invoke = paths.at("/api/v1/tools/{tool}/invoke").at("post");
  CHECK(invoke.at("parameters").at(0).at("name") == "tool");
  CHECK(invoke.at("parameters").at(0).at("schema").at("pattern").as_string().starts_with("^"));
  CHECK(invoke.at("responses").at("401").at("$ref") == "#/components/responses/Unauthorized");
  CHECK(invoke.at("responses").at("502").at("$ref") == "#/components/responses/PluginError");
  CHECK(invoke.at("x-xcore-role") == "operator");
  CHECK(paths.at("/healthz").at("get").at("security").as_array().empty());
  CHECK(doc.body.at("components").at("schemas").as_object().contains("Error"));
  // Answers name their shapes: one plugin is a Plugin, a task created is a Task with 201.
  CHECK(paths.at("/api/v1/plugins/{plugin}").at("get").at("responses").at("200").at("content").at("application/json").at("schema").at("$ref") ==
        "#/components/schemas/Plugin");
  CHECK(paths.at("/api/v1/tasks").at("post").at("responses").as_object().contains("201"));
  CHECK(paths.at("/api/v1/plugins/{plugin}").at("get").at("responses").at("404").at("$ref") == "#/components/responses/NotFound");
  CHECK(paths.at("/metrics").at("get").at("responses").at("200").at("content").as_object().contains("text/plain"));
  // A route's body schema is in the document and is what the server checks bodies against.
  const auto& users = paths.at("/api/v1/users").at("post").at("requestBody").at("content").at("application/json").at("schema");
  CHECK(users.at("required") == json::array{"username", "password", "role"});
  auto admin = api.login("admin", kAdminPassword);
  auto wizard = api.send("POST", "/api/v1/users", R"({"username":"w","password":"password-123","role":"wizard"})", admin);
  CHECK(wizard.status == 400);
  CHECK_MESSAGE(message_of(wizard).find("/role") != std::string::npos, message_of(wizard));
  CHECK(wizard.body.at("error").at("details").at("path") == "/role");  // details are JSON, for programs
  CHECK(wizard.body.at("error").at("details").at("errors").at(0).at("path") == "/role");
  auto nameless = api.send("POST", "/api/v1/users", R"({"password":"password-123","role":"viewer"})", admin);
  CHECK(nameless.status == 400);
  CHECK_MESSAGE(message_of(nameless).find("username") != std::string::npos, message_of(nameless));

  const auto file = tmp / "openapi.json";
  std::ofstream(file) << json::serialize(doc.body);
  const auto redocly = peers_dir() / "node_modules" / ".bin" / "redocly";
  REQUIRE_MESSAGE(fs::exists(redocly), "tests/peers/install.sh installs @redocly/cli: " << redocly);
  // Its JSON report on stdout (the banner about Node's version goes to stderr).
  auto [status, output] = run(redocly.string() + " lint --format=json " + file.string(), /*with_stderr=*/false);
  CHECK_MESSAGE(status == 0, output);
  boost::system::error_code ec;
  auto report = json::parse(output, ec);
  REQUIRE_MESSAGE(!ec, output);
  CHECK_MESSAGE(report.at("totals").at("errors") == 0, output);
  CHECK_MESSAGE(report.at("totals").at("warnings") == 0, output);
}

TEST_CASE("/metrics: HELP and TYPE on every family, requests by method, route template and status; promtool finds nothing") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("GET", "/api/v1/plugins/core", "", admin).status == 200);
  REQUIRE(api.send("GET", "/api/v1/plugins/nope", "", admin).status == 404);
  REQUIRE(api.send("GET", "/no/such/route").status == 404);
  REQUIRE(api.send("POST", "/api/v1/tools/echo/invoke", R"({"x":1})", admin).status == 200);
  auto m = api.send("GET", "/metrics", "", admin);
  REQUIRE(m.status == 200);
  const std::string text(m.body.as_string());
  // A template, not the path asked: the label's values are bounded by the route table.
  CHECK(text.find(R"(xcore_http_requests_total{method="GET",route="/api/v1/plugins/{plugin}",status="200"} 1)") != std::string::npos);
  CHECK(text.find(R"(xcore_http_requests_total{method="GET",route="/api/v1/plugins/{plugin}",status="404"} 1)") != std::string::npos);
  CHECK(text.find(R"(xcore_http_requests_total{method="any",route="unmatched",status="404"} 1)") != std::string::npos);
  CHECK(text.find("/api/v1/plugins/core") == std::string::npos);
  CHECK(text.find(R"(xcore_http_request_duration_seconds_bucket{method="POST",route="/api/v1/tools/{tool}/invoke",le="+Inf"} 1)") != std::string::npos);
  CHECK(text.find("# HELP xcore_http_connections_open ") != std::string::npos);
  CHECK(text.find("# HELP xcore_tool_duration_seconds ") != std::string::npos);

  const auto file = tmp / "metrics.txt";
  std::ofstream(file) << text;
  auto [status, output] = run("promtool check metrics < " + file.string());
  CHECK_MESSAGE(status == 0, output);
  CHECK_MESSAGE(output.empty(), output);
}

TEST_CASE("/docs renders the document in Chromium, authorizes with a token and calls operations from the page") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE_MESSAGE(fs::exists("/usr/bin/chromium"), "scripts/install-deps.sh installs Debian's chromium");
  const auto shot = tmp / "docs.png";
  auto [status, output] = run(fmt::format("PEERS_DIR={} node {} http://127.0.0.1:{}/docs {} {}", peers_dir().string(), XCORE_DOCS_CHECK, server.port(), admin,
                                          shot.string()),
                              /*with_stderr=*/false);
  REQUIRE_MESSAGE(status == 0, output);
  boost::system::error_code ec;
  auto seen = json::parse(output, ec);
  REQUIRE_MESSAGE(!ec, output);
  const auto doc = api.send("GET", "/openapi.json", "", admin);
  std::size_t operations = 0;
  for (const auto& [path, methods] : doc.body.at("paths").as_object()) operations += methods.as_object().size();
  CHECK(seen.at("operations") == operations);  // every operation of the document is on the page
  CHECK(seen.at("who") == "admin · admin · tenant default");
  CHECK(seen.at("me").at("status").as_string().starts_with("200 OK"));
  CHECK(json::parse(seen.at("me").at("response").as_string()).at("user") == "admin");
  CHECK(seen.at("plugin").at("status").as_string().ends_with("GET /api/v1/plugins/core"));
  CHECK(json::parse(seen.at("plugin").at("response").as_string()).at("state") == "enabled");
  CHECK_MESSAGE(seen.at("errors").as_array().empty(), seen.at("errors"));
  CHECK(fs::file_size(shot) > 10'000);  // a page was drawn, not an empty frame
}

TEST_CASE("a route's entry checks its answers: declared statuses only, bodies matching their schemas") {
  xcore::server::RouteSpec r;
  r.method = "GET";
  r.path = "/api/v1/tokens";
  r.min_role = xcore::server::Role::admin;
  xcore::server::compile_route(r);
  r.returns(200, R"json({"type":"object","required":["tokens"],"properties":{"tokens":{"type":"array","items":{"allOf":[{"$ref":"#/components/schemas/ApiToken"}],"properties":{"token":{"not":{}}}}}}})json")
      .errors({404});
  const json::value listed = json::parse(R"({"tokens":[{"id":1,"name":"ci","role":"viewer","expires_at":0}]})");
  CHECK(r.check_answer(200, listed));
  // A handler that starts listing token values is refused by the shape its entry publishes.
  auto leaking = json::parse(R"({"tokens":[{"id":1,"name":"ci","role":"viewer","expires_at":0,"token":"xct_secret"}]})");
  auto refused = r.check_answer(200, leaking);
  REQUIRE_FALSE(refused);
  CHECK_MESSAGE(refused.error().message.find("GET /api/v1/tokens") != std::string::npos, refused.error().message);
  CHECK_MESSAGE(refused.error().message.find("/tokens/0/token") != std::string::npos, refused.error().message);
  // A wrong type is named with its path, through the shared schema's reference.
  auto typed = r.check_answer(200, json::parse(R"({"tokens":[{"id":"one","name":"ci","role":"viewer","expires_at":0}]})"));
  REQUIRE_FALSE(typed);
  CHECK_MESSAGE(typed.error().message.find("/tokens/0/id") != std::string::npos, typed.error().message);
  // Statuses: the declared success and errors (common, by kind, declared); anything else is named.
  const json::value error = json::parse(R"({"error":{"code":"not_found","message":"no"},"request_id":"r"})");
  CHECK(r.check_answer(404, error));
  CHECK(r.check_answer(403, error));  // it needs a role
  CHECK(r.check_answer(401, error));  // common
  auto conflict = r.check_answer(409, error);
  REQUIRE_FALSE(conflict);
  CHECK_MESSAGE(conflict.error().message.find("409") != std::string::npos, conflict.error().message);
  auto created = r.check_answer(201, listed);
  REQUIRE_FALSE(created);
  CHECK_MESSAGE(created.error().message.find("201") != std::string::npos, created.error().message);
  // An error answer has the shared error shape.
  CHECK_FALSE(r.check_answer(404, json::parse(R"({"message":"no"})")));
  CHECK(r.error_statuses() == std::vector<int>{400, 401, 403, 404, 408, 429, 431, 500});
}
