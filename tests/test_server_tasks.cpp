// Scheduled tasks and signed webhooks through xcore-server: the tasks API, persistence across restarts, a
// run cut short by SIGKILL, and every way a webhook delivery can be wrong.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <fmt/format.h>

#include <thread>

#include "database.hpp"

using namespace xcore_test;
namespace json = boost::json;

namespace {

// Polls a task's runs until the newest is no longer running (bounded: the run itself is what we wait for).
json::array settled_runs(Api& api, const std::string& token, const std::string& id, std::size_t want = 1) {
  json::array runs;
  for (int i = 0; i < 500; ++i) {
    auto a = api.send("GET", "/api/v1/tasks/" + id + "/runs", "", token);
    REQUIRE(a.status == 200);
    runs = a.body.as_array();
    if (runs.size() >= want && runs[0].at("status") != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return runs;
}

struct Signed {
  std::string timestamp, signature;
};
Signed sign(const std::string& key, const std::string& body, std::int64_t at = xcore::server::unix_now()) {
  auto ts = std::to_string(at);
  return {ts, "sha256=" + xcore::server::hex_encode(xcore::server::hmac_sha256(key, ts + "." + body))};
}

httplib::Result deliver(int port, const std::string& name, const std::string& body, const Signed& s) {
  httplib::Client c("127.0.0.1", port);
  httplib::Headers h;
  if (!s.timestamp.empty()) h.emplace("X-Xcore-Timestamp", s.timestamp);
  if (!s.signature.empty()) h.emplace("X-Xcore-Signature", s.signature);
  return c.Post("/api/v1/webhooks/default/" + name, h, body, "application/json");
}

}  // namespace

TEST_CASE("tasks: create, inspect, run, pause, change and delete; runs newest first; restart keeps them") {
  TempDir tmp;
  std::string id;
  {
    ServerProcess server(tmp / "var");
    Api api(server.port());
    auto admin = api.login("admin", kAdminPassword);
    auto created = api.send("POST", "/api/v1/tasks",
                            R"({"name":"nightly","trigger":{"type":"cron","expression":"0 8 * * *"},"target":{"tool":"echo","arguments":{"message":"hi"}}})", admin);
    REQUIRE_MESSAGE(created.status == 201, json::serialize(created.body));
    id = std::string(created.body.at("id").as_string());
    CHECK(created.body.at("tenant") == "default");
    CHECK(created.body.at("next_run").as_string().ends_with("T08:00:00Z"));
    auto one = api.send("GET", "/api/v1/tasks/" + id, "", admin);
    CHECK(one.body.at("next_runs").as_array().size() == 5);

    // Interval and date triggers, and an action target.
    CHECK(api.send("POST", "/api/v1/tasks", R"({"name":"often","trigger":{"type":"interval","seconds":30},"target":{"plugin":"core","action":"echo","params":{"x":1}}})", admin).status == 201);
    CHECK(api.send("POST", "/api/v1/tasks", R"({"name":"once","trigger":{"type":"date","at":"2099-12-01T08:00:00Z"},"target":{"tool":"echo"}})", admin).status == 201);
    auto bad = api.send("POST", "/api/v1/tasks", R"({"name":"bad","trigger":{"type":"cron","expression":"0 25 * * *"},"target":{"tool":"echo"}})", admin);
    CHECK(bad.status == 400);
    CHECK(json::serialize(bad.body).find("hour: 25 is out of range") != std::string::npos);
    CHECK(api.send("GET", "/api/v1/tasks", "", admin).body.at("tasks").as_array().size() == 3);

    REQUIRE(api.send("POST", "/api/v1/tasks/" + id + "/run", "", admin).status == 202);
    auto runs = settled_runs(api, admin, id);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].at("status") == "succeeded");
    CHECK(runs[0].at("reason") == "manual");
    for (const char* k : {"start", "end", "duration_ms", "result"}) CHECK_MESSAGE(runs[0].as_object().contains(k), k);
    // A bare POST (no body, no Content-Length, as `curl -X POST` sends it) is a POST with an empty object.
    // The first run is recorded as ended (settled_runs): its instance is free, so this one is admitted at once.
    const auto bare = raw_request(server.port(), fmt::format("POST /api/v1/tasks/{}/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", id, admin));
    REQUIRE_MESSAGE(bare.starts_with("HTTP/1.1 202"), bare);
    runs = settled_runs(api, admin, id, 2);
    CHECK(runs.size() == 2);
    CHECK(runs[0].at("start").as_string() >= runs[1].at("start").as_string());

    auto paused = api.send("POST", "/api/v1/tasks/" + id + "/pause", "", admin);
    CHECK(paused.body.at("paused") == true);
    auto patched = api.send("PATCH", "/api/v1/tasks/" + id, R"({"trigger":{"type":"cron","expression":"30 6 * * MON"}})", admin);
    REQUIRE(patched.status == 200);
    CHECK(patched.body.at("trigger").at("expression") == "30 6 * * MON");
    CHECK(patched.body.at("name") == "nightly");
    CHECK(api.send("GET", "/api/v1/tasks/nope", "", admin).status == 404);
    CHECK(api.send("POST", "/api/v1/tasks", "{}", api.login("admin", kAdminPassword)).status == 400);
  }
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto one = api.send("GET", "/api/v1/tasks/" + id, "", admin);
  REQUIRE(one.status == 200);
  CHECK(one.body.at("paused") == true);
  CHECK(one.body.at("trigger").at("expression") == "30 6 * * MON");
  CHECK(api.send("GET", "/api/v1/tasks/" + id + "/runs", "", admin).body.as_array().size() == 2);
  REQUIRE(api.send("DELETE", "/api/v1/tasks/" + id, "", admin).status == 200);
  CHECK(api.send("GET", "/api/v1/tasks/" + id, "", admin).status == 404);
}

TEST_CASE("tasks belong to their tenant; viewers read them, operators change them") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"vera","password":"password-123","role":"viewer"})", admin).status == 201);
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"acme-op","password":"password-123","role":"operator","tenant":"acme"})", admin).status == 201);
  auto viewer = api.login("vera", "password-123");
  auto acme = api.login("acme-op", "password-123", "acme");
  // The tenant, the id and who the task runs as are the server's to set, never the body's.
  for (const char* field : {R"("tenant":"acme")", R"("id":"mine")", R"("run_as":{"kind":"host"})", R"("owner":"core")"}) {
    auto refused = api.send("POST", "/api/v1/tasks", std::string(R"({"trigger":{"type":"interval","seconds":3600},"target":{"tool":"echo"},)") + field + "}", admin);
    CHECK(refused.status == 400);
    CHECK(json::serialize(refused.body).find("the server sets it") != std::string::npos);
  }
  auto t = api.send("POST", "/api/v1/tasks", R"({"trigger":{"type":"interval","seconds":3600},"target":{"tool":"echo"}})", admin);
  REQUIRE(t.status == 201);
  CHECK(t.body.at("tenant") == "default");
  CHECK(t.body.at("run_as").at("kind") == "user");
  const std::string id(t.body.at("id").as_string());
  CHECK(api.send("GET", "/api/v1/tasks/" + id, "", viewer).status == 200);
  CHECK(api.send("POST", "/api/v1/tasks/" + id + "/run", "", viewer).status == 403);
  CHECK(api.send("GET", "/api/v1/tasks/" + id, "", acme).status == 404);
  CHECK(api.send("DELETE", "/api/v1/tasks/" + id, "", acme).status == 404);
  CHECK(api.send("GET", "/api/v1/tasks", "", acme).body.at("tasks").as_array().empty());
  CHECK(api.send("GET", "/api/v1/tasks", "").status == 401);
}

TEST_CASE("a run cut short by SIGKILL is marked interrupted at the next start, and recorded once") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  std::string id;
  {
    ServerProcess server(tmp / "var", {}, plugins);
    Api api(server.port());
    auto admin = api.login("admin", kAdminPassword);
    // The probe's "hold" tool blocks until released: the run is in progress when the server dies.
    auto t = api.send("POST", "/api/v1/tasks", R"({"trigger":{"type":"interval","seconds":3600},"target":{"tool":"hold"}})", admin);
    REQUIRE(t.status == 201);
    id = std::string(t.body.at("id").as_string());
    REQUIRE(api.send("POST", "/api/v1/tasks/" + id + "/run", "", admin).status == 202);
    for (int i = 0; i < 500 && api.send("POST", "/app/probe/held", "", admin).body != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto runs = api.send("GET", "/api/v1/tasks/" + id + "/runs", "", admin).body.as_array();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].at("status") == "running");
    server.stop(SIGKILL);
  }
  ServerProcess server(tmp / "var", {}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto runs = api.send("GET", "/api/v1/tasks/" + id + "/runs", "", admin).body.as_array();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].at("status") == "interrupted");
  CHECK(runs[0].as_object().contains("end"));
}

TEST_CASE("webhooks: a signed delivery runs the task with its body; bad signatures, stale timestamps and replays are refused") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto t = api.send("POST", "/api/v1/tasks", R"({"name":"deploy","trigger":{"type":"webhook","name":"deploy"},"target":{"plugin":"core","action":"echo","params":{"env":"prod"}}})", admin);
  REQUIRE_MESSAGE(t.status == 201, json::serialize(t.body));
  const std::string id(t.body.at("id").as_string());
  CHECK(t.body.at("webhook_url") == "/api/v1/webhooks/default/deploy");
  CHECK(t.body.at("next_run").is_null());
  const std::string body = R"({"ref":"main","commit":"abc123"})";

  // No secret yet: the delivery cannot be checked, so it is not run (and the answer is the same as for a
  // wrong signature: nothing tells which webhooks or secrets exist).
  CHECK(deliver(server.port(), "deploy", body, sign("whatever", body))->status == 401);
  REQUIRE(api.send("PUT", "/api/v1/secrets/webhook_deploy", R"({"value":"hook-key-123"})", admin).status == 200);

  auto good = sign("hook-key-123", body);
  auto r = deliver(server.port(), "deploy", body, good);
  REQUIRE(r);
  CHECK_MESSAGE(r->status == 202, r->body);
  auto runs = settled_runs(api, admin, id);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].at("reason") == "webhook");
  CHECK(runs[0].at("result").at("env") == "prod");   // the task's params
  CHECK(runs[0].at("result").at("commit") == "abc123");  // and the delivery's body

  CHECK(deliver(server.port(), "deploy", body, good)->status == 409);                                   // replay
  CHECK(deliver(server.port(), "deploy", body, sign("wrong-key", body))->status == 401);                // signature
  CHECK(deliver(server.port(), "deploy", R"({"ref":"evil"})", sign("hook-key-123", body))->status == 401);  // body changed
  CHECK(deliver(server.port(), "deploy", body, sign("hook-key-123", body, xcore::server::unix_now() - 3600))->status == 401);  // stale
  CHECK(deliver(server.port(), "deploy", body, Signed{})->status == 401);                              // unsigned
  auto unknown = deliver(server.port(), "nope", body, sign("hook-key-123", body));
  CHECK(unknown->status == 401);
  CHECK(unknown->body.find("the signature does not match") != std::string::npos);
  auto stale = deliver(server.port(), "deploy", body, sign("hook-key-123", body, xcore::server::unix_now() + 3600));
  CHECK(stale->body.find("window") != std::string::npos);
  CHECK(settled_runs(api, admin, id).size() == 1);  // none of those ran

  // One task per webhook name.
  CHECK(api.send("POST", "/api/v1/tasks", R"({"trigger":{"type":"webhook","name":"deploy"},"target":{"tool":"echo"}})", admin).status == 409);
}

TEST_CASE("tenants park when idle and wake by themselves: a parked tenant's task fires, runs its tool and keeps its plugins") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_TENANT_IDLE_SECONDS=1"});
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto state_of = [&](const std::string& tenant) {
    auto list = api.send("GET", "/api/v1/tenants", "", admin);  // the default tenant's request: wakes no other
    REQUIRE(list.status == 200);
    for (const auto& t : list.body.at("tenants").as_array())
      if (t.at("id").as_string() == tenant) return std::string(t.at("state").as_string());
    return std::string("missing");
  };
  auto wait_for_state = [&](const std::string& tenant, const std::string& want) {
    for (int i = 0; i < 400; ++i) {  // bounded: 20 s
      if (state_of(tenant) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  CHECK(state_of("acme") == "parked");  // made, not started: nothing of it runs until it is used
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto acme = api.login("acme-admin", "password-123", "acme");
  REQUIRE(api.send("POST", "/api/v1/plugins/core/enable", "", acme).status == 200);
  CHECK(state_of("acme") == "running");
  auto created = api.send("POST", "/api/v1/tasks", R"({"name":"tick","trigger":{"type":"interval","seconds":3},"target":{"tool":"echo","arguments":{"message":"while parked"}}})", acme);
  REQUIRE_MESSAGE(created.status == 201, json::serialize(created.body));
  const std::string id(created.body.at("id").as_string());

  // Idle for a second: parked, its Manager and plugins gone. Then nothing but its task can start it again.
  REQUIRE(wait_for_state("acme", "parked"));
  REQUIRE(wait_for_state("acme", "running"));
  // That run woke it, called the tool in the woken tenant (core enabled again from its registration) and
  // succeeded.
  auto runs = settled_runs(api, acme, id);
  REQUIRE(!runs.empty());
  const auto& newest = runs[0].as_object();
  CHECK(newest.at("reason") == "schedule");
  CHECK_MESSAGE(newest.at("status") == "succeeded", json::serialize(newest));
  CHECK(json::serialize(newest.at("result")).find("while parked") != std::string::npos);
  CHECK(api.send("GET", "/api/v1/plugins/core", "", acme).body.at("state") == "enabled");
}
