// Attacks on xcore-server as an outsider, an operator, and another tenant's admin: each one the review
// found, refused now. The real server on 127.0.0.1, an ephemeral port.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <fstream>

#include "database.hpp"
#include "jwt.hpp"

using namespace xcore_test;
namespace json = boost::json;

namespace {

std::string make_token(Api& api, const std::string& maker, const std::string& body) {
  auto r = api.send("POST", "/api/v1/tokens", body, maker);
  REQUIRE_MESSAGE(r.status == 201, json::serialize(r.body));
  return std::string(r.body.at("token").as_string());
}

}  // namespace

TEST_CASE("an operator cannot widen the file tools' root, and nobody can point it into the data folder") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_user(api, admin, "otto", "operator");
  auto op = api.login("otto", "password-123");
  // The review's attack: root at the data folder, then read master.key.
  auto r = api.send("PUT", "/api/v1/plugins/files/config", json::serialize(json::object{{"root", (tmp / "var").string()}}), op);
  CHECK(r.status == 403);
  CHECK(message_of(r).find("'root'") != std::string::npos);
  CHECK(message_of(r).find("privileged") != std::string::npos);
  CHECK(api.send("PUT", "/api/v1/plugins/files/config", R"({"root":"/"})", op).status == 403);
  // Unprivileged keys stay the operator's.
  CHECK(api.send("PUT", "/api/v1/plugins/files/config", R"({"max_file_bytes":4096})", op).status == 200);
  // The server's own admin may set root, but never into (or above) the data folder.
  for (const auto& bad : {(tmp / "var").string(), (tmp / "var" / "plugins" / "default").string(), std::string("/"), tmp.path().string(),
                          (tmp / "elsewhere" / ".." / "var").string()}) {
    auto refused = api.send("PUT", "/api/v1/plugins/files/config", json::serialize(json::object{{"root", bad}}), admin);
    CHECK_MESSAGE(refused.status == 403, bad);
    CHECK(message_of(refused).find("data folder") != std::string::npos);
  }
  auto files = tmp / "files";
  fs::create_directories(files);
  fs::permissions(files, fs::perms::all);  // the sandbox's user (on a root host) writes there
  write_file(files / "note.txt", "hello");
  REQUIRE(api.send("PUT", "/api/v1/plugins/files/config", json::serialize(json::object{{"root", files.string()}}), admin).status == 200);
  auto read = api.send("POST", "/api/v1/tools/files.read_file/invoke", R"({"path":"note.txt"})", op);
  CHECK(read.status == 200);
  auto escape = api.send("POST", "/api/v1/tools/files.read_file/invoke", R"({"path":"../var/master.key"})", op);
  CHECK((escape.status >= 400 || escape.body.at("isError") == true));

  // Another tenant's admin is no operator of the server: the root is not theirs to set.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto acme = api.login("acme-admin", "password-123", "acme");
  REQUIRE(api.send("POST", "/api/v1/plugins/files/enable", "", acme).status == 200);
  CHECK(api.send("PUT", "/api/v1/plugins/files/config", R"({"root":"/etc"})", acme).status == 403);
  // The file tools run sandboxed, not in the server's process, and by default in the tenant's own folder.
  auto info = api.send("GET", "/api/v1/plugins/files", "", acme);
  CHECK(info.body.at("mode") == "sandboxed");
  CHECK(info.body.at("runner").at("kind") == "sandbox");
  REQUIRE(api.send("POST", "/api/v1/tools/files.write_file/invoke", R"({"path":"mine.txt","content":"acme's"})", acme).status == 200);
  CHECK(fs::exists(tmp / "var" / "plugins" / "acme" / "files" / "files" / "mine.txt"));
  CHECK(api.send("GET", "/api/v1/plugins/core", "", acme).body.at("mode") == "trusted");  // echo, calculate: no reach
}

TEST_CASE("API tokens are narrowed by scopes within their role and their maker, and need a lifetime") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  // expires_in <= 0 used to mean "never"; now a lifetime or an explicit never is required.
  for (const char* body : {R"({"name":"t","role":"viewer"})", R"({"name":"t","role":"viewer","expires_in":0})", R"({"name":"t","role":"viewer","expires_in":-5})"}) {
    auto r = api.send("POST", "/api/v1/tokens", body, admin);
    CHECK(r.status == 400);
    CHECK(message_of(r).find("never") != std::string::npos);
  }
  auto forever = api.send("POST", "/api/v1/tokens", R"({"name":"t","role":"viewer","never":true})", admin);
  CHECK(forever.status == 201);
  CHECK(forever.body.at("expires_at") == 0);
  // A scope beyond the token's role is refused by name.
  auto wide = api.send("POST", "/api/v1/tokens", R"({"name":"t","role":"viewer","expires_in":60,"scopes":["tools.call:*"]})", admin);
  CHECK(wide.status == 400);
  CHECK(message_of(wide).find("tools.call:*") != std::string::npos);

  auto echo_only = make_token(api, admin, R"({"name":"echo","role":"operator","expires_in":600,"scopes":["tools.call:core.echo"]})");
  CHECK(api.send("POST", "/api/v1/tools/echo/invoke", R"({"x":1})", echo_only).status == 200);
  auto calc = api.send("POST", "/api/v1/tools/calculate/invoke", R"({"expression":"1+1"})", echo_only);
  CHECK(calc.status == 403);
  CHECK(message_of(calc).find("tools.call:core.calculate") != std::string::npos);
  CHECK(api.send("GET", "/api/v1/plugins", "", echo_only).status == 403);
  CHECK(api.send("POST", "/app/core/echo", "{}", echo_only).status == 403);
  CHECK(api.send("GET", "/api/v1/tasks", "", echo_only).status == 403);
  auto me = api.send("GET", "/api/v1/auth/me", "", echo_only);  // auth.read is not in the scopes either
  CHECK(me.status == 403);

  auto reader = make_token(api, admin, R"({"name":"tasks","role":"viewer","expires_in":600,"scopes":["tasks.read","auth.read"]})");
  CHECK(api.send("GET", "/api/v1/tasks", "", reader).status == 200);
  CHECK(api.send("GET", "/api/v1/plugins", "", reader).status == 403);
  CHECK(api.send("GET", "/api/v1/auth/me", "", reader).body.at("permissions").as_array().size() == 2);

  // A narrowed admin token cannot mint a token wider than itself.
  auto narrow_admin = make_token(api, admin, R"({"name":"na","role":"admin","expires_in":600,"scopes":["tokens.write","tools.call:core.echo"]})");
  auto escalate = api.send("POST", "/api/v1/tokens", R"({"name":"x","role":"admin","expires_in":600})", narrow_admin);
  CHECK(escalate.status == 403);
  auto within = api.send("POST", "/api/v1/tokens", R"({"name":"y","role":"operator","expires_in":600,"scopes":["tools.call:core.echo"]})", narrow_admin);
  CHECK(within.status == 201);
  // Refusals by principals are audited.
  auto audit = json::serialize(api.send("GET", "/api/v1/audit?limit=200", "", admin).body);
  CHECK(audit.find("denied POST /api/v1/tools/calculate/invoke") != std::string::npos);
}

TEST_CASE("a role change, a password change or a deletion ends the user's tokens on the next request") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_user(api, admin, "ada", "admin");
  auto login = api.send("POST", "/api/v1/auth/login", R"({"username":"ada","password":"password-123"})");
  REQUIRE(login.status == 200);
  std::string access(login.body.at("access_token").as_string()), refresh(login.body.at("refresh_token").as_string());
  auto machine = make_token(api, access, R"({"name":"ada-ci","role":"admin","never":true})");
  REQUIRE(api.send("GET", "/api/v1/users", "", access).status == 200);
  REQUIRE(api.send("GET", "/api/v1/users", "", machine).status == 200);

  // Downgrade: the old admin token and everything ada made stop at once.
  REQUIRE(api.send("PATCH", "/api/v1/users/ada", R"({"role":"viewer"})", admin).status == 200);
  auto after = api.send("GET", "/api/v1/users", "", access);
  CHECK(after.status == 401);
  CHECK(message_of(after).find("log in again") != std::string::npos);
  CHECK(api.send("GET", "/api/v1/users", "", machine).status == 401);
  CHECK(api.send("POST", "/api/v1/auth/refresh", json::serialize(json::object{{"refresh_token", refresh}})).status == 401);
  auto viewer = api.login("ada", "password-123");
  CHECK(api.send("GET", "/api/v1/auth/me", "", viewer).body.at("role") == "viewer");
  CHECK(api.send("GET", "/api/v1/users", "", viewer).status == 403);

  // A password change ends the sessions too.
  REQUIRE(api.send("PATCH", "/api/v1/users/ada", R"({"password":"password-456"})", admin).status == 200);
  CHECK(api.send("GET", "/api/v1/auth/me", "", viewer).status == 401);

  // Deletion: the token cannot act, nor mint a token, nor speak for a new user of the same name.
  auto last = api.login("ada", "password-456");
  REQUIRE(api.send("DELETE", "/api/v1/users/ada", "", admin).status == 200);
  CHECK(api.send("GET", "/api/v1/auth/me", "", last).status == 401);
  CHECK(api.send("POST", "/api/v1/tokens", R"({"name":"ghost","role":"viewer","never":true})", last).status == 401);
  add_user(api, admin, "ada", "admin");
  CHECK(api.send("GET", "/api/v1/auth/me", "", last).status == 401);
  // A token forged for another tenant's user id with this tenant's name is refused too.
  auto now = xcore::server::unix_now();
  auto forged = xcore::server::sign_jwt(xcore::server::Claims{"1", "acme", "admin", "access", now, now + 60, 1, 0, {}, {}}, jwt_key());
  CHECK(api.send("GET", "/api/v1/auth/me", "", forged).status == 401);
  // nbf: a token not valid yet is refused.
  auto early = xcore::server::sign_jwt(xcore::server::Claims{"1", "default", "admin", "access", now, now + 7200, 1, now + 3600, {}, {}}, jwt_key());
  auto e = api.send("GET", "/api/v1/auth/me", "", early);
  CHECK(e.status == 401);
  CHECK(message_of(e).find("nbf") != std::string::npos);
}

TEST_CASE("refresh tokens are single use; a spent one shown again revokes its whole family") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto login = api.send("POST", "/api/v1/auth/login", json::serialize(json::object{{"username", "admin"}, {"password", kAdminPassword}}));
  REQUIRE(login.status == 200);
  auto refresh_with = [&](const json::value& token) { return api.send("POST", "/api/v1/auth/refresh", json::serialize(json::object{{"refresh_token", token}})); };
  auto first = refresh_with(login.body.at("refresh_token"));
  REQUIRE(first.status == 200);
  CHECK(first.body.at("refresh_token") != login.body.at("refresh_token"));
  // The stolen copy of the first refresh token comes back: reuse. Its family ends, the rotated one too.
  auto reuse = refresh_with(login.body.at("refresh_token"));
  CHECK(reuse.status == 401);
  CHECK(message_of(reuse).find("used before") != std::string::npos);
  CHECK(refresh_with(first.body.at("refresh_token")).status == 401);
  // Another login is another family, untouched.
  auto other = api.send("POST", "/api/v1/auth/login", json::serialize(json::object{{"username", "admin"}, {"password", kAdminPassword}}));
  CHECK(refresh_with(other.body.at("refresh_token")).status == 200);
}

TEST_CASE("user names are per tenant and validated; refusals reveal nothing of other tenants") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  for (std::string bad : {std::string("a\nb"), std::string("\x1b[31mred"), std::string(100000, 'x'), std::string("nul\0x", 5), std::string("sp ace"), std::string()}) {
    auto r = api.send("POST", "/api/v1/users", json::serialize(json::object{{"username", bad}, {"password", "password-123"}, {"role", "viewer"}}), admin);
    CHECK(r.status == 400);
  }
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  add_user(api, admin, "bob@example.com", "viewer");
  auto acme = api.login("acme-admin", "password-123", "acme");
  // The same name in acme is acme's own user: no 409 that would reveal default's bob.
  auto r = api.send("POST", "/api/v1/users", R"({"username":"bob@example.com","password":"password-789","role":"viewer"})", acme);
  CHECK(r.status == 201);
  CHECK(api.send("POST", "/api/v1/users", R"({"username":"bob@example.com","password":"password-789","role":"viewer"})", acme).status == 409);
  // Each logs in to its own tenant with its own password.
  CHECK(api.send("GET", "/api/v1/auth/me", "", api.login("bob@example.com", "password-789", "acme")).body.at("tenant") == "acme");
  CHECK(api.send("GET", "/api/v1/auth/me", "", api.login("bob@example.com", "password-123")).body.at("tenant") == "default");
  CHECK(api.send("POST", "/api/v1/auth/login", R"({"username":"bob@example.com","password":"password-789"})").status == 401);
}

TEST_CASE("tasks: ids are the server's, and a second tenant reaches none of the first's runs") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto acme = api.login("acme-admin", "password-123", "acme");
  REQUIRE(api.send("POST", "/api/v1/plugins/core/enable", "", acme).status == 200);
  auto mine = api.send("POST", "/api/v1/tasks", R"({"trigger":{"type":"interval","seconds":3600},"target":{"plugin":"core","action":"echo","params":{"who":"default"}}})", admin);
  REQUIRE(mine.status == 201);
  const std::string id(mine.body.at("id").as_string());
  REQUIRE(api.send("POST", "/api/v1/tasks/" + id + "/run", "", admin).status == 202);
  // The attack: the same id posted by the second tenant. Refused; and the id reaches nothing there.
  auto same = api.send("POST", "/api/v1/tasks", json::serialize(json::object{{"id", id}, {"trigger", json::object{{"type", "interval"}, {"seconds", 60}}},
                                                                              {"target", json::object{{"tool", "echo"}}}}), acme);
  CHECK(same.status == 400);
  CHECK(api.send("GET", "/api/v1/tasks/" + id + "/runs", "", acme).status == 404);
  CHECK(api.send("DELETE", "/api/v1/tasks/" + id, "", acme).status == 404);
  CHECK(api.send("POST", "/api/v1/tasks/" + id + "/run", "", acme).status == 404);
  CHECK(api.send("GET", "/api/v1/tasks/" + id, "", admin).status == 200);
  // A webhook's key lives under webhook_: a task may not point at another secret.
  auto oracle = api.send("POST", "/api/v1/tasks", R"({"trigger":{"type":"webhook","name":"probe","secret":"db_password"},"target":{"tool":"echo"}})", admin);
  CHECK(oracle.status == 400);
  CHECK(message_of(oracle).find("webhook_") != std::string::npos);
  // Webhook names are per tenant: both may use "deploy".
  const char* hook = R"({"trigger":{"type":"webhook","name":"deploy"},"target":{"plugin":"core","action":"echo"}})";
  CHECK(api.send("POST", "/api/v1/tasks", hook, admin).status == 201);
  auto theirs = api.send("POST", "/api/v1/tasks", hook, acme);
  CHECK(theirs.status == 201);
  CHECK(theirs.body.at("webhook_url") == "/api/v1/webhooks/acme/deploy");
}

TEST_CASE("a tenant's dynamic plugin gets no grant outside its own folder, and nobody's reaches the data folder") {
  TempDir tmp;
  ServerProcess server(tmp / "var");
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto acme = api.login("acme-admin", "password-123", "acme");
  auto dynamic = [&](const std::string& grant) {
    return json::serialize(json::object{{"id", "spy"}, {"version", "1.0.0"}, {"command", json::array{"/bin/true"}},
                                        {"permissions", json::array{json::string(grant)}}, {"enable", false}});
  };
  const auto data = (tmp / "var").string();
  // The review's attacks: read master.key, read or overwrite another tenant's plugin data.
  for (const auto& grant : {"fs.read:" + data, "fs.write:" + data + "/plugins/default", "fs.read:" + data + "/master.key"}) {
    auto r = api.send("POST", "/api/v1/plugins/dynamic", dynamic(grant), acme);
    CHECK_MESSAGE(r.status == 403, grant);
    CHECK(message_of(r).find(grant) != std::string::npos);
    CHECK(api.send("POST", "/api/v1/plugins/dynamic", dynamic(grant), admin).status == 403);  // not even the server's operator
  }
  auto etc = api.send("POST", "/api/v1/plugins/dynamic", dynamic("fs.read:/etc"), acme);
  CHECK(etc.status == 403);
  CHECK(message_of(etc).find("its own folder") != std::string::npos);
  CHECK(api.send("POST", "/api/v1/plugins/dynamic", dynamic("network"), acme).status == 403);
  // Its own folder is its own.
  auto own = api.send("POST", "/api/v1/plugins/dynamic", dynamic("fs.write:" + data + "/plugins/acme/spy"), acme);
  CHECK_MESSAGE(own.status == 201, json::serialize(own.body));
}

TEST_CASE("plugins from the plugin folders get their grants only within the policy of the tenant enabling them") {
  TempDir tmp;
  auto plugins = tmp / "plugins";
  fs::create_directories(tmp / "shared");
  const auto shared = (tmp / "shared").string();
  const auto data = (tmp / "var").string();
  stage(test_plugins() / "probe", plugins);
  // One server per case: the probe's manifest grants `grant`; the default tenant and acme enable it.
  auto enable_with = [&](const std::string& grant, std::vector<std::string> env) {
    write_file(plugins / "probe" / "plugin.yaml", fmt::format("id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: sandboxed\npermissions: [\"{}\"]\n", grant));
    ServerProcess server(tmp / "var", std::move(env), plugins);
    Api api(server.port());
    auto admin = api.login("admin", kAdminPassword);
    api.send("POST", "/api/v1/plugins/probe/disable", "", admin);  // registered (and maybe enabled) at an earlier start
    auto own = api.send("POST", "/api/v1/plugins/probe/enable", "", admin);
    if (api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201) add_user(api, admin, "acme-admin", "admin", "acme");
    auto acme = api.login("acme-admin", "password-123", "acme");
    api.send("POST", "/api/v1/plugins/probe/disable", "", acme);
    auto theirs = api.send("POST", "/api/v1/plugins/probe/enable", "", acme);
    return std::pair{own, theirs};
  };
  SUBCASE("a folder outside the tenant's own: the server's own tenant, or a tenant when grants.fs lists it") {
    auto [own, theirs] = enable_with("fs.read:" + shared, {});
    CHECK_MESSAGE(own.status == 200, json::serialize(own.body));
    CHECK(theirs.status == 403);
    CHECK(message_of(theirs).find("fs.read:" + shared) != std::string::npos);
    CHECK(message_of(theirs).find("grants.fs") != std::string::npos);
    auto [own2, listed] = enable_with("fs.read:" + shared, {"XCORE_GRANT_FS=" + shared});
    CHECK(own2.status == 200);
    CHECK_MESSAGE(listed.status == 200, json::serialize(listed.body));
  }
  SUBCASE("network: the server's own tenant, or a tenant grants.network names") {
    auto [own, theirs] = enable_with("network", {});
    CHECK_MESSAGE(own.status == 200, json::serialize(own.body));
    CHECK(theirs.status == 403);
    CHECK(message_of(theirs).find("grants.network") != std::string::npos);
    auto [own2, listed] = enable_with("network", {"XCORE_GRANT_NETWORK=acme"});
    CHECK_MESSAGE(listed.status == 200, json::serialize(listed.body));
  }
  SUBCASE("the data folder: nobody, whatever the settings say") {
    auto [own, theirs] = enable_with("fs.read:" + data, {"XCORE_GRANT_FS=" + data});
    CHECK(own.status == 403);
    CHECK(message_of(own).find("data folder") != std::string::npos);
    CHECK(theirs.status == 403);
  }
}

TEST_CASE("on a root host each tenant's sandboxed plugins run as a uid of their own, their data folders closed to the others") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: per-tenant sandbox uids apply when the server runs as root");
    return;
  }
  TempDir tmp;
  auto plugins = tmp / "plugins";
  stage(test_plugins() / "probe", plugins);
  write_file(plugins / "probe" / "plugin.yaml", "id: probe\nversion: 1.0.0\nentry: libprobe.so\nmode: sandboxed\n");
  ServerProcess server(tmp / "var", {"XCORE_SANDBOX_UIDS=3100000-3100001"}, plugins);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  REQUIRE(api.send("POST", "/api/v1/plugins/probe/enable", "", admin).status == 200);
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto acme = api.login("acme-admin", "password-123", "acme");
  REQUIRE(api.send("POST", "/api/v1/plugins/probe/enable", "", acme).status == 200);
  auto uid_of = [&](const std::string& token) {
    auto info = api.send("GET", "/api/v1/plugins/probe", "", token);
    const auto pid = info.body.at("runner").at("pid").to_number<int>();
    // The runner's process is the sandbox's launcher; the plugin runs below it (under a reaper). The
    // uid that counts is that of the deepest process, the plugin's.
    auto uid_and_children = [](int p) {
      std::ifstream status(fmt::format("/proc/{}/status", p));
      std::string line;
      unsigned long uid = 0;
      while (std::getline(status, line))
        if (line.starts_with("Uid:")) uid = std::stoul(line.substr(4));
      std::ifstream kids(fmt::format("/proc/{}/task/{}/children", p, p));
      std::vector<int> children;
      for (int c; kids >> c;) children.push_back(c);
      return std::pair{uid, children};
    };
    unsigned long uid = 0;
    for (std::vector<int> level{pid}; !level.empty();) {
      std::vector<int> next;
      for (int p : level) {
        auto [u, children] = uid_and_children(p);
        uid = u;
        next.insert(next.end(), children.begin(), children.end());
      }
      level = std::move(next);
    }
    return uid;
  };
  const auto mine = uid_of(admin), theirs = uid_of(acme);
  CHECK(mine == 3100000);
  CHECK(theirs == 3100001);
  // The range is used up: the next tenant is refused whole, by name, and can be created once it is widened.
  auto third = api.send("POST", "/api/v1/tenants", R"({"id":"globex"})", admin);
  CHECK(third.status == 429);
  CHECK(message_of(third).find("sandbox uid range 3100000-3100001 is used up") != std::string::npos);
  CHECK(json::serialize(api.send("GET", "/api/v1/tenants", "", admin).body).find("globex") == std::string::npos);
  CHECK(api.send("POST", "/api/v1/tenants", R"({"id":"globex"})", admin).status == 429);  // not 409: nothing was left behind
  for (const auto& [tenant, uid] : {std::pair{"default", mine}, std::pair{"acme", theirs}}) {
    struct stat st {};
    REQUIRE(::stat((tmp / "var" / "plugins" / tenant / "probe").c_str(), &st) == 0);
    CHECK(st.st_uid == uid);
    CHECK((st.st_mode & 0777) == 0700);
  }
}

TEST_CASE("a database that cannot answer is the server's error (500, cause logged), never a refused credential") {
  TempDir tmp;
  const auto log_file = tmp / "server.log";
  ServerProcess server(tmp / "var", {}, XCORE_EXAMPLE_PLUGIN_DIR, log_file);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  const auto token = make_token(api, admin, R"({"name":"probe","role":"viewer","expires_in":600})");
  REQUIRE(api.send("GET", "/api/v1/auth/me", "", token).status == 200);
  // Every page of the database, its write-ahead log and its index overwritten: the next query fails.
  for (const char* name : {"xcore.db", "xcore.db-wal", "xcore.db-shm"}) {
    const auto file = tmp / "var" / name;
    if (!fs::exists(file)) continue;
    std::ofstream out(file, std::ios::binary | std::ios::in | std::ios::out);
    out << std::string(static_cast<std::size_t>(fs::file_size(file)), 'X');
  }
  auto r = api.send("GET", "/api/v1/auth/me", "", token);
  CHECK(r.status == 500);
  CHECK_MESSAGE(message_of(r).find("could not be checked") != std::string::npos, json::serialize(r.body));
  // A route's own write fails the same way (the admin's user is in memory, so its token still checks out).
  auto write = api.send("POST", "/api/v1/users", R"({"username":"late","password":"password-123","role":"viewer"})", admin);
  CHECK(write.status == 500);
  // Reads too: an empty list would read as "nothing there".
  for (const char* path : {"/api/v1/secrets", "/api/v1/users", "/api/v1/tokens", "/api/v1/tenants", "/api/v1/plugins"}) {
    INFO(path);
    CHECK(api.send("GET", path, "", admin).status == 500);
  }
  // And the log says why, for each.
  std::ifstream in(log_file);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_MESSAGE(log.find("cannot check the credential: database:") != std::string::npos, log);
  CHECK_MESSAGE(log.find("POST /api/v1/users: database:") != std::string::npos, log);
}
