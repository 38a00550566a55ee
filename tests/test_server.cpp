// xcore-server, the real binary on 127.0.0.1 with an ephemeral port: auth, roles, tenants, secrets,
// persistence across restarts, bad input, and a hard kill in the middle of writes.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <httplib.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fmt/format.h>
#include <fstream>
#include <thread>

#include "crypto.hpp"
#include "database.hpp"
#include "jwt.hpp"

using namespace xcore_test;
namespace json = boost::json;

// The role and scope matrix over every route is generated from the route table: test_security_routes.cpp.
TEST_CASE("metrics: per-tool counters and latency histograms, per-plugin calls, process figures, in Prometheus text") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/tools/calculate/invoke", R"({"expression":"2*3"})", admin).status == 200);
  httplib::Client raw("127.0.0.1", server.port());
  auto metrics = raw.Get("/metrics", httplib::Headers{{"Authorization", "Bearer " + admin}});
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type").starts_with("text/plain"));
  for (const char* line : {"xcore_tool_calls_total{tenant=\"default\",tool=\"core.calculate\"} 1",
                           "xcore_tool_duration_seconds_bucket{tenant=\"default\",tool=\"core.calculate\",le=\"+Inf\"} 1",
                           "xcore_tool_duration_seconds_count{tenant=\"default\",tool=\"core.calculate\"} 1",
                           "xcore_plugin_calls_total{tenant=\"default\",plugin=\"core\"} 1", "process_resident_memory_bytes "})
    CHECK_MESSAGE(metrics->body.find(line) != std::string::npos, line);
  CHECK(metrics->body.find("le=\"inf\"") == std::string::npos);
}

TEST_CASE("tenants: another tenant's admin neither sees nor calls this tenant's plugins, and is no admin here") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme","name":"Acme"})", admin).status == 201);
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"acme-admin","password":"password-123","role":"admin","tenant":"acme"})", admin).status == 201);
  auto acme = api.login("acme-admin", "password-123", "acme");
  CHECK(api.send("GET", "/api/v1/auth/me", "", acme).body.at("tenant") == "acme");
  // Nothing registered for acme: no plugins listed, no tools, calls refused.
  CHECK(api.send("GET", "/api/v1/plugins", "", acme).body.at("plugins").as_array().empty());
  CHECK(api.send("GET", "/api/v1/tools", "", acme).body.at("tools").as_array().empty());
  CHECK(api.send("POST", "/app/core/echo", "{}", acme).status >= 400);
  CHECK(api.send("POST", "/api/v1/tools/calculate/invoke", R"({"expression":"1+1"})", acme).status >= 400);
  // Acme's admin manages acme only.
  CHECK(api.send("GET", "/api/v1/tenants", "", acme).status == 403);
  CHECK(api.send("POST", "/api/v1/users", R"({"username":"intruder","password":"password-123","role":"admin","tenant":"default"})", acme).status == 403);
  // Enabling in acme is acme's alone: disabling in default leaves acme's running.
  REQUIRE(api.send("POST", "/api/v1/plugins/core/enable", "", acme).status == 200);
  CHECK(api.send("POST", "/app/core/echo", R"({"t":"acme"})", acme).body.at("t") == "acme");
  // audit (enabled in default) depends on core: disabling core needs a cascade.
  CHECK(api.send("POST", "/api/v1/plugins/core/disable", "", admin).status == 409);
  REQUIRE(api.send("POST", "/api/v1/plugins/core/disable?cascade=true", "", admin).status == 200);
  CHECK(api.send("POST", "/app/core/echo", R"({"t":"acme"})", acme).status == 200);
  CHECK(api.send("POST", "/app/core/echo", "{}", admin).status >= 400);
  // Secrets are per tenant too.
  REQUIRE(api.send("PUT", "/api/v1/secrets/shared_name", R"({"value":"acme's"})", acme).status == 200);
  CHECK(api.send("GET", "/api/v1/secrets", "", admin).body.at("secrets").as_array().empty());
}

TEST_CASE("tokens: tampered, expired, alg none, refresh tokens and API tokens") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto now = xcore::server::unix_now();
  using xcore::server::Claims;

  // A valid token signed with the server's key works; one day past its expiry it does not.
  // Tokens name the user by id (the first admin is 1) and carry the user's generation.
  auto good = xcore::server::sign_jwt(Claims{"1", "default", "admin", "access", now, now + 60, 1}, jwt_key());
  CHECK(api.send("GET", "/api/v1/auth/me", "", good).status == 200);
  auto expired = xcore::server::sign_jwt(Claims{"1", "default", "admin", "access", now - 90000, now - 86400, 1}, jwt_key());
  auto a = api.send("GET", "/api/v1/auth/me", "", expired);
  CHECK(a.status == 401);
  CHECK(std::string(a.body.at("error").at("message").as_string()).find("expired") != std::string::npos);

  // A viewer's token with its role edited to admin: the signature no longer matches.
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"vera","password":"password-123","role":"viewer"})", admin).status == 201);
  auto viewer = api.login("vera", "password-123");
  // Admins change roles and passwords; a refresh picks up the new role.
  CHECK(api.send("PATCH", "/api/v1/users/admin", R"({"role":"viewer"})", admin).status == 409);
  CHECK(api.send("PATCH", "/api/v1/users/vera", R"({"password":"short"})", admin).status == 400);
  CHECK(api.send("PATCH", "/api/v1/users/nobody", R"({"role":"viewer"})", admin).status == 404);
  REQUIRE(api.send("PATCH", "/api/v1/users/vera", R"({"role":"operator","password":"password-456"})", admin).status == 200);
  CHECK(api.send("POST", "/api/v1/auth/login", R"({"username":"vera","password":"password-123"})").status == 401);
  CHECK(api.send("GET", "/api/v1/auth/me", "", api.login("vera", "password-456")).body.at("role") == "operator");
  auto dot1 = viewer.find('.'), dot2 = viewer.rfind('.');
  auto payload = json::parse(*xcore::server::base64url_decode(viewer.substr(dot1 + 1, dot2 - dot1 - 1))).as_object();
  payload["role"] = "admin";
  auto tampered = viewer.substr(0, dot1 + 1) + xcore::server::base64url_encode(json::serialize(payload)) + viewer.substr(dot2);
  a = api.send("GET", "/api/v1/users", "", tampered);
  CHECK(a.status == 401);
  CHECK(std::string(a.body.at("error").at("message").as_string()).find("signature") != std::string::npos);

  // alg none, and an algorithm other than HS256, are refused by name.
  for (const char* alg : {"none", "HS512", "RS256"}) {
    auto header = xcore::server::base64url_encode(std::string(R"({"alg":")") + alg + R"(","typ":"JWT"})");
    json::object claims{{"sub", "admin"}, {"tenant", "default"}, {"role", "admin"}, {"typ", "access"}};
    claims["iat"] = now;
    claims["exp"] = now + 600;
    auto body = xcore::server::base64url_encode(json::serialize(claims));
    a = api.send("GET", "/api/v1/users", "", header + "." + body + ".");
    CHECK(a.status == 401);
    CHECK(std::string(a.body.at("error").at("message").as_string()).find(alg) != std::string::npos);
  }
  CHECK(api.send("GET", "/api/v1/users", "", "not-a-token").status == 401);

  // A refresh token gets new tokens, but never authorizes a request itself.
  auto login = api.send("POST", "/api/v1/auth/login", json::serialize(json::object{{"username", "admin"}, {"password", kAdminPassword}}));
  std::string refresh(login.body.at("refresh_token").as_string());
  CHECK(api.send("GET", "/api/v1/auth/me", "", refresh).status == 401);
  auto renewed = api.send("POST", "/api/v1/auth/refresh", json::serialize(json::object{{"refresh_token", refresh}}));
  REQUIRE(renewed.status == 200);
  CHECK(api.send("GET", "/api/v1/auth/me", "", std::string(renewed.body.at("access_token").as_string())).status == 200);

  // API tokens: shown once, stored hashed, revocable.
  auto created = api.send("POST", "/api/v1/tokens", R"({"name":"ci","role":"operator","expires_in":3600})", admin);
  REQUIRE(created.status == 201);
  std::string machine(created.body.at("token").as_string());
  CHECK(api.send("POST", "/app/core/echo", R"({"m":1})", machine).body.at("m") == 1);
  CHECK(api.send("GET", "/api/v1/users", "", machine).status == 403);
  CHECK(json::serialize(api.send("GET", "/api/v1/tokens", "", admin).body).find(machine) == std::string::npos);
  REQUIRE(api.send("DELETE", "/api/v1/tokens/" + std::to_string(created.body.at("id").to_number<int>()), "", admin).status == 200);
  CHECK(api.send("POST", "/app/core/echo", "{}", machine).status == 401);
}

TEST_CASE("login attempts are rate-limited per user name and address") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  for (int i = 0; i < 5; ++i) CHECK(api.send("POST", "/api/v1/auth/login", R"({"username":"admin","password":"wrong"})").status == 401);
  auto a = api.send("POST", "/api/v1/auth/login", json::serialize(json::object{{"username", "admin"}, {"password", kAdminPassword}}));
  CHECK(a.status == 429);
  CHECK(a.headers.count("Retry-After") == 1);
}

TEST_CASE("secrets: sealed in the database, never returned; bad input gets clean errors") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_MAX_BODY_BYTES=4096"});
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  const std::string value = "sk-live-PLAINTEXT-MARKER-0123456789";
  REQUIRE(api.send("PUT", "/api/v1/secrets/openai_key", json::serialize(json::object{{"value", value}}), admin).status == 200);
  auto listed = api.send("GET", "/api/v1/secrets", "", admin);
  CHECK(listed.body.at("secrets") == json::array{"openai_key"});
  CHECK(json::serialize(listed.body).find(value) == std::string::npos);
  for (const char* f : {"xcore.db", "xcore.db-wal"}) {
    std::ifstream in(tmp / "var" / f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(bytes.find(value) == std::string::npos);
    CHECK(bytes.find("PLAINTEXT-MARKER") == std::string::npos);
  }
  struct stat st {};
  REQUIRE(::stat((tmp / "var").c_str(), &st) == 0);
  CHECK((st.st_mode & 066) == 0);  // searchable by the sandbox's user, listable by nobody else
  for (const char* f : {"xcore.db", "xcore.db-wal"}) {
    REQUIRE(::stat((tmp / "var" / f).c_str(), &st) == 0);
    CHECK_MESSAGE((st.st_mode & 077) == 0, f);
  }

  auto bad = api.send("POST", "/app/core/echo", "{not json", admin);
  CHECK(bad.status == 400);
  CHECK(code_of(bad) == "invalid_argument");
  auto big = api.send("POST", "/app/core/echo", std::string(8192, ' '), admin);
  CHECK(big.status == 413);
  CHECK(code_of(big) == "invalid_argument");
  auto unknown = api.send("GET", "/api/v1/nothing-here", "", admin);
  CHECK(unknown.status == 404);
  CHECK(code_of(unknown) == "not_found");
  for (const char* path : {"/api/v1/plugins/..%2F..%2Fetc", "/api/v1/plugins/../../etc/passwd", "/app/../api/v1/users"}) {
    auto a = api.send("GET", path, "", admin);
    CHECK(a.status >= 400);
    CHECK(a.status < 500);
    CHECK(a.body.is_object());
  }
  auto missing = api.send("GET", "/api/v1/plugins/no-such-plugin", "", admin);
  CHECK(missing.status == 404);
  auto invalid_config = api.send("PUT", "/api/v1/plugins/audit/config", R"({"keep":"many"})", admin);
  CHECK(invalid_config.status == 400);
}

TEST_CASE("a restart keeps registrations, configs and secrets") {
  TempDir tmp;
  {
    ServerProcess server(tmp / "var");
    Api api(server.port());
    auto admin = api.login("admin", kAdminPassword);
    REQUIRE(api.send("POST", "/api/v1/plugins/audit/disable", "", admin).status == 200);
    fs::create_directories(tmp / "files");
    REQUIRE(api.send("PUT", "/api/v1/plugins/files/config", json::serialize(json::object{{"root", (tmp / "files").string()}}), admin).status == 200);
    REQUIRE(api.send("PUT", "/api/v1/secrets/kept", R"({"value":"v"})", admin).status == 200);
    CHECK(WIFEXITED(server.stop(SIGTERM)));
  }
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto audit = api.send("GET", "/api/v1/plugins/audit", "", admin);
  CHECK(audit.body.at("enabled") == false);
  CHECK(audit.body.at("state") != "enabled");
  CHECK(api.send("GET", "/api/v1/plugins/core", "", admin).body.at("state") == "enabled");
  CHECK(api.send("GET", "/api/v1/plugins/files/config", "", admin).body.at("config").at("root") == json::value((tmp / "files").string()));
  CHECK(api.send("GET", "/api/v1/plugins/files", "", admin).body.at("state") == "enabled");
  CHECK(api.send("GET", "/api/v1/secrets", "", admin).body.at("secrets") == json::array{"kept"});
}

TEST_CASE("SIGKILL during a burst of writes leaves a consistent database") {
  TempDir tmp;
  std::atomic<int> written = 0;
  {
    ServerProcess server(tmp / "var");
    Api login(server.port());
    auto admin = login.login("admin", kAdminPassword);
    std::atomic<bool> stop = false;
    std::atomic<int> finished = 0;
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w)
      writers.emplace_back([&, w] {
        httplib::Client c("127.0.0.1", server.port());
        httplib::Headers h{{"Authorization", "Bearer " + admin}};
        for (int i = 0; !stop && i < 2000; ++i) {
          auto r = c.Put(fmt::format("/api/v1/secrets/s{}_{}", w, i), h, R"({"value":"x"})", "application/json");
          if (r && r->status == 200) ++written;
        }
        ++finished;
      });
    // Writers that all end before 40 writes (a server that died) fail the test instead of hanging it.
    while (written < 40 && finished < 4) std::this_thread::yield();
    CHECK(written >= 40);
    server.stop(SIGKILL);
    stop = true;
    for (auto& t : writers) t.join();
  }
  {
    SQLite::Database db((tmp / "var" / "xcore.db").string(), SQLite::OPEN_READWRITE);
    CHECK(db.execAndGet("PRAGMA integrity_check").getString() == "ok");
    // Every write the server acknowledged is there.
    CHECK(db.execAndGet("SELECT COUNT(*) FROM secrets").getInt() >= written.load());
  }
  ServerProcess again(tmp / "var");
  Api api(again.port());
  auto admin = api.login("admin", kAdminPassword);
  CHECK(api.send("GET", "/api/v1/secrets", "", admin).body.at("secrets").as_array().size() >= static_cast<std::size_t>(written.load()));
}

TEST_CASE("plugin routes: mounted under /plugins/<id>, with the declared role, rate-limited per tenant, gone with the plugin") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(example_plugins() / "core", plugins);
  std::ifstream in(plugins / "core" / "plugin.yaml");
  std::string manifest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(plugins / "core" / "plugin.yaml", manifest +
                                                   "limits:\n  rate: {calls: 5, per_seconds: 60}\n"
                                                   "routes:\n"
                                                   "  - {method: GET, path: \"/echo/{word}\", action: echo, role: viewer}\n"
                                                   "  - {method: POST, path: /admin-only, action: info, role: admin}\n");
  ServerProcess server(tmp / "var", {}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"vera","password":"password-123","role":"viewer"})", admin).status == 201);
  auto viewer = api.login("vera", "password-123");

  auto a = api.send("GET", "/plugins/core/echo/hello?x=1", "", viewer);
  REQUIRE_MESSAGE(a.status == 200, json::serialize(a.body));
  CHECK(a.body.at("params").at("word") == "hello");
  CHECK(a.body.at("query").at("x") == "1");
  CHECK(a.body.at("method") == "GET");
  CHECK(api.send("GET", "/plugins/core/echo/hello", "").status == 401);
  CHECK(api.send("POST", "/plugins/core/admin-only", "{}", viewer).status == 403);
  CHECK(api.send("POST", "/plugins/core/admin-only", "{}", admin).status == 200);
  CHECK(api.send("GET", "/plugins/core/nowhere", "", viewer).status == 404);
  CHECK(api.send("DELETE", "/plugins/core/echo/hello", "", admin).status == 404);

  // Five calls a minute for the tenant (two were made above), whichever door they come through.
  CHECK(api.send("POST", "/app/core/echo", "{}", admin).status == 200);
  CHECK(api.send("POST", "/api/v1/tools/echo/invoke", "{}", admin).status == 200);
  CHECK(api.send("GET", "/plugins/core/echo/x", "", viewer).status == 200);
  auto limited = api.send("GET", "/plugins/core/echo/y", "", viewer);
  CHECK(limited.status == 429);
  CHECK(code_of(limited) == "resource_exhausted");
  REQUIRE(limited.headers.count("Retry-After") == 1);
  CHECK(std::stoi(limited.headers.find("Retry-After")->second) >= 1);

  REQUIRE(api.send("POST", "/api/v1/plugins/core/disable?cascade=true", "", admin).status == 200);
  CHECK(api.send("GET", "/plugins/core/echo/hello", "", viewer).status == 404);
}

TEST_CASE("dynamic plugins: an external MCP server registered over HTTP runs sandboxed, survives a restart, and can be saved") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  fs::create_directories(plugins);
  stage(example_plugins() / "core", plugins);
  const auto everything = peer_script("server-everything");
  json::object manifest{{"id", "everything"},
                        {"version", "2026.8.31"},
                        {"command", json::array{"node", everything.string(), "stdio"}},
                        {"permissions", json::array{json::string("fs.read:" + peers_dir().string())}}};
  {
    ServerProcess server(tmp / "var", {}, plugins);
    Api api(server.port());
    auto admin = api.login("admin", kAdminPassword);
    // Only a command, never a binary for the server's own process.
    auto with_entry = manifest;
    with_entry["entry"] = "libevil.so";
    CHECK(api.send("POST", "/api/v1/plugins/dynamic", json::serialize(with_entry), admin).status == 400);
    auto bad = manifest;
    bad["version"] = "one";
    auto refused = api.send("POST", "/api/v1/plugins/dynamic", json::serialize(bad), admin);
    CHECK(refused.status == 400);
    CHECK(json::serialize(refused.body).find("version") != std::string::npos);

    auto a = api.send("POST", "/api/v1/plugins/dynamic", json::serialize(manifest), admin);
    REQUIRE_MESSAGE(a.status == 201, json::serialize(a.body));
    CHECK(a.body.at("mode") == "sandboxed");
    CHECK(a.body.at("state") == "enabled");
    auto echo = api.send("POST", "/api/v1/tools/everything.echo/invoke", R"({"message":"over http"})", admin);
    REQUIRE_MESSAGE(echo.status == 200, json::serialize(echo.body));
    CHECK(json::serialize(echo.body).find("over http") != std::string::npos);
    CHECK(api.send("POST", "/api/v1/plugins/dynamic", json::serialize(manifest), admin).status == 409);
  }
  ServerProcess server(tmp / "var", {}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  CHECK(api.send("GET", "/api/v1/plugins/everything", "", admin).body.at("state") == "enabled");
  CHECK(api.send("POST", "/api/v1/plugins/core/save", "", admin).status == 412);  // not a dynamic plugin
  REQUIRE(api.send("POST", "/api/v1/plugins/everything/save", "", admin).status == 200);
  CHECK(fs::exists(tmp / "var" / "saved" / "default" / "everything" / "plugin.json"));  // the tenant's own folder
  CHECK_FALSE(fs::exists(plugins / "everything"));
}

TEST_CASE("plugins read their tenant's secrets that their manifest grants, and no others") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  write_file(plugins / "probe" / "plugin.yaml", "id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: sandboxed\npermissions: [\"secrets.read:api_*\"]\n");
  ServerProcess server(tmp / "var", {}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("PUT", "/api/v1/secrets/api_key", R"({"value":"sealed-value"})", admin).status == 200);
  REQUIRE(api.send("PUT", "/api/v1/secrets/db_password", R"({"value":"hunter2"})", admin).status == 200);
  auto got = api.send("POST", "/app/probe/secret", R"({"name":"api_key"})", admin);
  REQUIRE_MESSAGE(got.status == 200, json::serialize(got.body));
  CHECK(got.body == "sealed-value");
  auto denied = api.send("POST", "/app/probe/secret", R"({"name":"db_password"})", admin);
  CHECK(denied.status == 403);
  CHECK(json::serialize(denied.body).find("hunter2") == std::string::npos);
  // Another tenant's plugin, granted the same names, reads its own tenant's store only.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"acme-admin","password":"password-123","role":"admin","tenant":"acme"})", admin).status == 201);
  auto acme = api.login("acme-admin", "password-123", "acme");
  REQUIRE(api.send("POST", "/api/v1/plugins/probe/enable", "", acme).status == 200);
  CHECK(api.send("POST", "/app/probe/secret", R"({"name":"api_key"})", acme).status == 404);
}

TEST_CASE("plugin routes registered at load time come and go with that load") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  write_file(plugins / "probe" / "plugin.yaml", "id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: sandboxed\n");
  ServerProcess server(tmp / "var", {}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  CHECK(api.send("GET", "/plugins/probe/ctx/42", "", admin).status == 404);
  auto added = api.send("POST", "/app/probe/add_route", R"({"route":{"method":"GET","path":"/ctx/{n}","action":"context","role":"viewer"}})", admin);
  REQUIRE_MESSAGE(added.status == 200, json::serialize(added.body));
  auto a = api.send("GET", "/plugins/probe/ctx/42", "", admin);
  REQUIRE_MESSAGE(a.status == 200, json::serialize(a.body));
  CHECK(a.body.at("tenant") == "default");
  CHECK(api.send("POST", "/app/probe/add_route", R"({"route":{"method":"GET","path":"/ctx/{n}","action":"context"}})", admin).status == 409);
  CHECK(api.send("POST", "/app/probe/add_route", R"({"route":{"method":"GET","path":"../x","action":"context"}})", admin).status == 400);
  // Roles are the server's: one it does not define is refused, naming the ones it does.
  auto unknown_role = api.send("POST", "/app/probe/add_route", R"({"route":{"method":"GET","path":"/r","action":"context","role":"root"}})", admin);
  CHECK(unknown_role.status == 400);
  CHECK(json::serialize(unknown_role.body).find("its roles: viewer, operator, admin") != std::string::npos);
  REQUIRE(api.send("POST", "/api/v1/plugins/probe/reload", "", admin).status == 200);
  CHECK(api.send("GET", "/plugins/probe/ctx/42", "", admin).status == 404);  // a new load registers its own
}

TEST_CASE("a failed plugin reloaded over HTTP comes back to what its registration asks for") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "hostile", plugins);
  ServerProcess server(tmp / "var", {}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/plugins/hostile/enable", "", admin).status == 200);
  // Past its crash budget (3 in the window) it is failed.
  for (int i = 0; i < 6 && api.send("GET", "/api/v1/plugins/hostile", "", admin).body.at("state") != "failed"; ++i)
    api.send("POST", "/api/v1/tools/hostile.abort/invoke", "{}", admin);
  REQUIRE(api.send("GET", "/api/v1/plugins/hostile", "", admin).body.at("state") == "failed");
  auto reloaded = api.send("POST", "/api/v1/plugins/hostile/reload", "", admin);
  REQUIRE_MESSAGE(reloaded.status == 200, json::serialize(reloaded.body));
  CHECK(reloaded.body.at("state") == "enabled");
  CHECK(api.send("POST", "/api/v1/tools/hostile.ok/invoke", "{}", admin).status == 200);
}
