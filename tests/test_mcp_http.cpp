// /mcp on the real server: MCP's Streamable HTTP transport, its sessions, the checks the specification asks
// for (Origin, protocol version, session ids), principals and tenants, and the official inspector CLI as a
// client.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace xcore_test;

namespace {

struct McpAnswer {
  int status = 0;
  json::value body;
  httplib::Headers headers;
  std::string header(const char* name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One MCP client over HTTP: a bearer token, and the session its initialize got.
class McpClient {
 public:
  McpClient(int port, std::string token) : client_("127.0.0.1", port), token_(std::move(token)) { client_.set_read_timeout(30, 0); }

  McpAnswer post(const std::string& body, httplib::Headers extra = {}) {
    httplib::Headers h{{"Authorization", "Bearer " + token_}, {"Accept", "application/json, text/event-stream"}};
    if (!session.empty()) h.emplace("Mcp-Session-Id", session);
    if (!protocol.empty()) h.emplace("MCP-Protocol-Version", protocol);
    for (auto& [k, v] : extra) h.emplace(k, v);
    auto r = client_.Post("/mcp", h, body, "application/json");
    REQUIRE(r);
    McpAnswer a{r->status, {}, r->headers};
    boost::system::error_code ec;
    a.body = r->body.empty() ? json::value() : json::parse(r->body, ec);
    return a;
  }
  McpAnswer request(int id, const std::string& method, const json::value& params = json::object{}) {
    return post(json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}));
  }
  McpAnswer initialize(const std::string& version = "2025-11-25") {
    auto a = request(1, "initialize",
                     json::object{{"protocolVersion", version}, {"capabilities", json::object{}}, {"clientInfo", json::object{{"name", "test"}, {"version", "1"}}}});
    REQUIRE_MESSAGE(a.status == 200, json::serialize(a.body));
    session = a.header("Mcp-Session-Id");
    protocol = std::string(a.body.at("result").at("protocolVersion").as_string());
    CHECK(post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").status == 202);
    return a;
  }
  McpAnswer send(const char* method) { return send_with(method, {}); }
  McpAnswer send_with(const char* method, const httplib::Headers& extra) {
    httplib::Headers h{{"Authorization", "Bearer " + token_}, {"Mcp-Session-Id", session}};
    for (const auto& [k, v] : extra) h.emplace(k, v);
    auto r = std::string(method) == "GET" ? client_.Get("/mcp", h) : client_.Delete("/mcp", h);
    REQUIRE(r);
    return McpAnswer{r->status, {}, r->headers};
  }
  std::vector<std::string> tool_names() {
    auto a = request(2, "tools/list");
    REQUIRE_MESSAGE(a.status == 200, json::serialize(a.body));
    std::vector<std::string> names;
    for (const auto& t : a.body.at("result").at("tools").as_array()) names.emplace_back(t.at("name").as_string());
    return names;
  }

  std::string session, protocol;

 private:
  httplib::Client client_;
  std::string token_;
};

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("/mcp: initialize makes a session; tools are listed and called; failures are the tool's answer, faults are protocol errors") {
  TempDir tmp;
  ServerProcess server(tmp / "data");
  Api api(server.port());
  McpClient mcp(server.port(), api.login("admin", kAdminPassword));

  auto init = mcp.initialize();
  CHECK(init.body.at("result").at("serverInfo").at("name") == "xcore-server");
  CHECK(mcp.session.size() >= 32);
  // An unknown version gets the newest this server speaks; a known older one is kept.
  McpClient older(server.port(), api.login("admin", kAdminPassword));
  CHECK(older.initialize("2025-03-26").body.at("result").at("protocolVersion") == "2025-03-26");
  McpClient future(server.port(), api.login("admin", kAdminPassword));
  CHECK(future.initialize("2099-01-01").body.at("result").at("protocolVersion") == "2025-11-25");

  auto names = mcp.tool_names();
  CHECK(has(names, "calculate"));
  CHECK(has(names, "recent_calls"));

  auto called = mcp.request(3, "tools/call", json::object{{"name", "core.calculate"}, {"arguments", json::object{{"expression", "6*7"}}}});
  REQUIRE(called.status == 200);
  CHECK(called.body.at("result").at("structuredContent").at("result") == 42);
  CHECK(called.body.at("result").at("isError") == false);

  // Arguments that fail the input schema: an isError result naming what was expected (2025-11-25).
  auto invalid = mcp.request(4, "tools/call", json::object{{"name", "core.calculate"}, {"arguments", json::object{{"expression", 7}}}});
  REQUIRE(invalid.status == 200);
  CHECK(invalid.body.at("result").at("isError") == true);
  CHECK(json::serialize(invalid.body).find("expected string, got integer") != std::string::npos);
  // The tool's own failure likewise.
  auto failed = mcp.request(5, "tools/call", json::object{{"name", "core.calculate"}, {"arguments", json::object{{"expression", "1/0"}}}});
  CHECK(failed.body.at("result").at("isError") == true);
  // No such tool, no such method: JSON-RPC errors.
  CHECK(mcp.request(6, "tools/call", json::object{{"name", "nope"}}).body.at("error").at("code") == -32602);
  CHECK(mcp.request(7, "resources/nope").body.at("error").at("code") == -32601);
  CHECK(mcp.request(8, "ping").body.at("result").as_object().empty());

  // A batch (2025-03-26) answers each request in one array.
  auto batch = mcp.post(R"([{"jsonrpc":"2.0","id":10,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},)"
                        R"({"jsonrpc":"2.0","id":11,"method":"tools/list"}])");
  REQUIRE(batch.status == 200);
  CHECK(batch.body.as_array().size() == 2);
}

TEST_CASE("/mcp refuses what the specification says to refuse: sessions, versions, origins, streams") {
  TempDir tmp;
  ServerProcess server(tmp / "data", {"XCORE_MCP_ALLOWED_ORIGINS=https://app.example"});
  Api api(server.port());
  const auto admin = api.login("admin", kAdminPassword);
  McpClient mcp(server.port(), admin);
  mcp.initialize();

  SUBCASE("a request without a session, or with one that does not exist") {
    McpClient none(server.port(), admin);
    CHECK(none.request(2, "tools/list").status == 400);
    none.session = "not-a-session";
    CHECK(none.request(2, "tools/list").status == 404);
  }
  SUBCASE("another principal cannot use a session it has seen") {
    add_user(api, admin, "eve", "admin");
    McpClient eve(server.port(), api.login("eve", "password-123"));
    eve.session = mcp.session;
    CHECK(eve.request(2, "tools/list").status == 404);
    CHECK(mcp.request(2, "tools/list").status == 200);  // and it is still the owner's
  }
  SUBCASE("a protocol version it does not speak") {
    CHECK(mcp.post(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", {{"MCP-Protocol-Version", "1999-01-01"}}).status == 400);
  }
  SUBCASE("a browser page from an origin not in the settings (DNS rebinding)") {
    CHECK(mcp.post(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", {{"Origin", "http://evil.example"}}).status == 403);
    CHECK(mcp.post(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", {{"Origin", "https://app.example"}}).status == 200);
    // A page of this machine's own loopback names is no rebinding: its Origin keeps the name it was loaded from.
    CHECK(mcp.post(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", {{"Origin", "http://127.0.0.1:3000"}}).status == 200);
    CHECK(mcp.post(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", {{"Origin", "http://localhost.evil.example"}}).status == 403);
    CHECK(mcp.post(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", {{"Origin", "http://127.0.0.1:3000.evil.example"}}).status == 403);
  }
  SUBCASE("no token") {
    httplib::Client raw("127.0.0.1", server.port());
    auto r = raw.Post("/mcp", R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 401);
  }
  SUBCASE("GET opens a stream only for a client that takes one; DELETE ends the session") {
    auto get = mcp.send("GET");  // no Accept: text/event-stream
    CHECK(get.status == 400);
    CHECK(mcp.send("DELETE").status == 204);
    CHECK(mcp.request(2, "tools/list").status == 404);
    CHECK(mcp.send("DELETE").status == 404);
  }
}

TEST_CASE("/mcp: a session's own stream (GET) hears that tools come and go, one stream per session, a bounded number in all") {
  TempDir tmp;
  stage(test_plugins() / "probe", tmp / "plugins");
  ServerProcess server(tmp / "data", {"XCORE_MCP_MAX_STREAMS=1"}, tmp / "plugins");
  Api api(server.port());
  const auto token = api.login("admin", kAdminPassword);
  McpClient mcp(server.port(), token);
  auto init = mcp.initialize();
  CHECK(init.body.at("result").at("capabilities").at("tools").at("listChanged") == true);

  // The stream, read on a thread of its own until the server ends it.
  std::mutex mutex;
  std::condition_variable heard;
  std::vector<std::string> events;
  std::atomic<bool> opened = false;
  int status = 0;
  std::thread listener([&] {
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(30, 0);
    std::string pending;
    auto r = client.Get(
        "/mcp", {{"Authorization", "Bearer " + token}, {"Accept", "text/event-stream"}, {"Mcp-Session-Id", mcp.session}, {"MCP-Protocol-Version", mcp.protocol}},
        [&](const httplib::Response& res) {
          status = res.status;
          return true;
        },
        [&](const char* data, std::size_t size) {
          std::lock_guard lock(mutex);
          opened = true;
          pending.append(data, size);
          for (auto end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
            if (auto at = pending.find("data: "); at < end) events.push_back(pending.substr(at + 6, end - at - 6));
            pending.erase(0, end + 2);
          }
          heard.notify_all();
          return true;
        });
  });
  {
    std::unique_lock lock(mutex);
    REQUIRE(heard.wait_for(lock, std::chrono::seconds(10), [&] { return opened.load(); }));
  }
  // One stream per session, and this server holds one in all.
  CHECK(mcp.send_with("GET", {{"Accept", "text/event-stream"}}).status == 409);
  McpClient other(server.port(), token);
  other.initialize();
  auto busy = other.send_with("GET", {{"Accept", "text/event-stream"}});
  CHECK(busy.status == 429);

  // A plugin disabled: the session hears that the tools changed.
  REQUIRE(api.send("POST", "/api/v1/plugins/probe/disable", "{}", token).status == 200);
  {
    std::unique_lock lock(mutex);
    CHECK(heard.wait_for(lock, std::chrono::seconds(10), [&] {
      return std::any_of(events.begin(), events.end(), [](const std::string& e) { return e.find("notifications/tools/list_changed") != std::string::npos; });
    }));
  }
  // The session ends, and its stream with it.
  CHECK(mcp.send("DELETE").status == 204);
  listener.join();
  CHECK(status == 200);

  // A client that hangs up its stream frees the place at once (its socket is watched, not only written):
  // this one closes the connection as soon as the stream's first bytes are in.
  httplib::Client leaving("127.0.0.1", server.port());
  bool streamed = false;
  (void)leaving.Get("/mcp", {{"Authorization", "Bearer " + token}, {"Accept", "text/event-stream"}, {"Mcp-Session-Id", other.session}},
                    [&](const char*, std::size_t) {
                      streamed = true;
                      return false;
                    });
  REQUIRE(streamed);
  McpClient third(server.port(), token);
  third.initialize();
  int got = 0;
  for (int i = 0; i < 50 && got != 200; ++i) {  // bounded: the server looks every second
    httplib::Client probe("127.0.0.1", server.port());
    probe.set_read_timeout(0, 200000);  // the stream stays open: its status is all we wait for
    httplib::Request req;
    req.method = "GET";
    req.path = "/mcp";
    req.headers = {{"Authorization", "Bearer " + token}, {"Accept", "text/event-stream"}, {"Mcp-Session-Id", third.session}};
    req.response_handler = [&](const httplib::Response& r) {
      got = r.status;
      return false;
    };
    (void)probe.send(req);
    if (got != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(got == 200);
}

TEST_CASE("/mcp shows a principal the tools it may call, of its own tenant only") {
  TempDir tmp;
  ServerProcess server(tmp / "data");
  Api api(server.port());
  const auto admin = api.login("admin", kAdminPassword);

  // A viewer holds no tools.call: it is shown no tool, and a call reads as a call of no tool at all.
  add_user(api, admin, "vera", "viewer");
  McpClient viewer(server.port(), api.login("vera", "password-123"));
  viewer.initialize();
  CHECK(viewer.tool_names().empty());
  CHECK(viewer.request(3, "tools/call", json::object{{"name", "core.calculate"}, {"arguments", json::object{{"expression", "1"}}}})
            .body.at("error").at("code") == -32602);

  // Another tenant sees its own plugins: none enabled yet, then core once it enables it.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  const auto acme = api.login("acme-admin", "password-123", "acme");
  McpClient other(server.port(), acme);
  other.initialize();
  CHECK(other.tool_names().empty());
  REQUIRE(api.send("POST", "/api/v1/plugins/core/enable", "", acme).status == 200);
  auto names = other.tool_names();
  CHECK(has(names, "calculate"));
  CHECK_FALSE(has(names, "recent_calls"));  // audit is the default tenant's
  // A session is its tenant's: the default tenant's admin cannot use acme's.
  McpClient intruder(server.port(), admin);
  intruder.session = other.session;
  CHECK(intruder.request(2, "tools/list").status == 404);
}

TEST_CASE("/mcp: notifications/cancelled stops the request it names, in flight on another connection") {
  TempDir tmp;
  stage(test_plugins() / "probe", tmp / "plugins");
  ServerProcess server(tmp / "data", {}, tmp / "plugins");
  Api api(server.port());
  const auto token = api.login("admin", kAdminPassword);
  McpClient mcp(server.port(), token);
  mcp.initialize();
  // probe.hold runs until it is released or its call is cancelled.
  std::atomic<bool> answered = false;
  McpAnswer held;
  std::thread caller([&] {
    McpClient same(server.port(), token);
    same.session = mcp.session;
    same.protocol = mcp.protocol;
    held = same.request(42, "tools/call", json::object{{"name", "probe.hold"}, {"arguments", json::object{}}});
    answered = true;
  });
  // The cancel may overtake the call: sent again until the call has answered (bounded: 10 s).
  for (int i = 0; i < 2000 && !answered; ++i) {
    CHECK(mcp.post(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":42,"reason":"test"}})").status == 202);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  caller.join();
  REQUIRE(answered);
  REQUIRE_MESSAGE(held.status == 200, json::serialize(held.body));
  CHECK(held.body.at("error").at("code") == xcore::jsonrpc_code(xcore::ErrorCode::cancelled));
  CHECK(json::serialize(held.body).find("cancelled by the client") != std::string::npos);
  // The session goes on.
  CHECK(mcp.request(43, "ping").status == 200);
}

namespace {

// A tools/call whose answer is read as it arrives: each SSE event's data, parsed, goes to on_event (on this
// thread) as soon as it is in. The answer's Content-Type is returned.
std::string call_streaming(int port, const McpClient& mcp, const std::string& token, const json::object& params,
                           const std::function<void(const json::value&)>& on_event) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/mcp";
  req.headers = {{"Authorization", "Bearer " + token}, {"Accept", "application/json, text/event-stream"}, {"Content-Type", "application/json"},
                 {"Mcp-Session-Id", mcp.session}, {"MCP-Protocol-Version", mcp.protocol}};
  req.body = json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", 7}, {"method", "tools/call"}, {"params", params}});
  std::string pending;
  req.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
    pending.append(data, size);
    for (auto end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
      const auto event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (auto at = event.find("data: "); at != std::string::npos) on_event(json::parse(event.substr(at + 6)));
    }
    return true;
  };
  auto r = client.send(req);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return r->get_header_value("Content-Type");
}

// The conformance fixture plugin staged into `plugins`, trusted (in process) or sandboxed, with or without
// the permissions that let it ask the client.
void stage_fixture(const fs::path& plugins, bool sandboxed, bool may_ask_client) {
  auto dir = stage(fs::path(XCORE_CONFORMANCE_PLUGIN_DIR) / "conformance", plugins);
  std::string manifest = "id: conformance\nversion: 1.0.0\nentry: libconformance.so\n";
  manifest += sandboxed ? "mode: sandboxed\n" : "mode: trusted\n";
  if (may_ask_client) manifest += "permissions: [client.request:sampling/createMessage, client.request:elicitation/create]\n";
  write_file(dir / "plugin.yaml", manifest);
}

json::value params_of(const json::value& message) { return message.at("params"); }

// The server with the fixture plugin, its admin's token, and an MCP client of its own.
struct FixtureServer {
  TempDir tmp;
  ServerProcess server;
  Api api;
  std::string token;
  McpClient mcp;
  FixtureServer(bool sandboxed, bool may_ask_client)
      : server((stage_fixture(tmp / "plugins", sandboxed, may_ask_client), tmp / "data"), {}, tmp / "plugins"),  // staged, then started
        api(server.port()),
        token(api.login("admin", kAdminPassword)),
        mcp(server.port(), token) {}
};

}  // namespace

TEST_CASE("/mcp answers a listening client's tool call as an SSE stream: progress and log messages as they happen, requests to the client answered by POST") {
  for (const bool sandboxed : {false, true}) {
    CAPTURE(sandboxed);
    FixtureServer f(sandboxed, true);
    auto& [tmp, server, api, token, mcp] = f;
    mcp.initialize();

    // Nobody listens yet (no progressToken, no log level, no capabilities): a plain JSON answer.
    auto plain = mcp.request(3, "tools/call", json::object{{"name", "test_tool_with_progress"}, {"arguments", json::object{}}});
    REQUIRE(plain.status == 200);
    CHECK(plain.header("Content-Type") == "application/json");
    CHECK(plain.body.at("result").at("isError") == false);

    // Progress: three notifications carrying the request's token, then the result, on one stream.
    std::vector<json::value> events;
    auto type = call_streaming(server.port(), mcp, token,
                               json::object{{"name", "test_tool_with_progress"}, {"arguments", json::object{}}, {"_meta", {{"progressToken", "p-1"}}}},
                               [&](const json::value& e) { events.push_back(e); });
    CHECK(type == "text/event-stream");
    REQUIRE(events.size() == 4);
    for (int i = 0; i < 3; ++i) {
      CHECK(events[i].at("method") == "notifications/progress");
      CHECK(params_of(events[i]).at("progressToken") == "p-1");
      CHECK(params_of(events[i]).at("progress").to_number<double>() == 50.0 * i);
      CHECK(params_of(events[i]).at("total").to_number<double>() == 100.0);
    }
    CHECK(events[3].at("id") == 7);
    CHECK(events[3].at("result").at("isError") == false);

    // Log messages at or above the level the client set, none below it.
    REQUIRE(mcp.request(4, "logging/setLevel", json::object{{"level", "info"}}).status == 200);
    events.clear();
    call_streaming(server.port(), mcp, token, json::object{{"name", "test_tool_with_logging"}, {"arguments", json::object{}}},
                   [&](const json::value& e) { events.push_back(e); });
    REQUIRE(events.size() == 4);
    CHECK(events[0].at("method") == "notifications/message");
    CHECK(params_of(events[0]).at("level") == "info");
    CHECK(params_of(events[0]).at("data") == "Tool execution started");
    CHECK(params_of(events[2]).at("data") == "Tool execution completed");
    REQUIRE(mcp.request(5, "logging/setLevel", json::object{{"level", "error"}}).status == 200);
    events.clear();
    call_streaming(server.port(), mcp, token, json::object{{"name", "test_tool_with_logging"}, {"arguments", json::object{}}},
                   [&](const json::value& e) { events.push_back(e); });
    REQUIRE(events.size() == 1);
    CHECK(events[0].at("result").at("isError") == false);
    // An unknown level is refused, naming the ones there are.
    auto bad = mcp.request(6, "logging/setLevel", json::object{{"level", "loud"}});
    CHECK(json::serialize(bad.body).find("debug, info, notice") != std::string::npos);

    // Sampling: this client did not declare it, so the tool is told so (as its result's error).
    events.clear();
    call_streaming(server.port(), mcp, token, json::object{{"name", "test_sampling"}, {"arguments", {{"prompt", "hi"}}}},
                   [&](const json::value& e) { events.push_back(e); });
    REQUIRE(events.size() == 1);
    CHECK(events[0].at("result").at("isError") == true);
    CHECK(json::serialize(events[0]).find("did not declare the 'sampling' capability") != std::string::npos);

    // A client that declares it gets the request on the call's stream and answers with a POST.
    McpClient sampler(server.port(), token);
    auto init = sampler.request(1, "initialize", json::object{{"protocolVersion", "2025-11-25"}, {"capabilities", {{"sampling", json::object{}}}},
                                                              {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
    sampler.session = init.header("Mcp-Session-Id");
    sampler.protocol = "2025-11-25";
    events.clear();
    call_streaming(server.port(), sampler, token, json::object{{"name", "test_sampling"}, {"arguments", {{"prompt", "Say hello"}}}},
                   [&](const json::value& e) {
                     events.push_back(e);
                     if (!e.as_object().contains("method") || e.at("method") != "sampling/createMessage") return;
                     CHECK(params_of(e).at("messages").at(0).at("content").at("text") == "Say hello");
                     json::object answer{{"role", "assistant"}, {"content", {{"type", "text"}, {"text", "hello from the model"}}}, {"model", "m"}};
                     McpClient responder(server.port(), token);
                     responder.session = sampler.session;
                     responder.protocol = sampler.protocol;
                     CHECK(responder.post(json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", e.at("id")}, {"result", answer}})).status == 202);
                   });
    REQUIRE(events.size() == 2);
    CHECK(events[1].at("result").at("content").at(0).at("text") == "LLM response: hello from the model");
  }
}

TEST_CASE("/mcp serves the plugins' resources, templates, prompts and completions, from trusted and sandboxed plugins alike") {
  for (const bool sandboxed : {false, true}) {
    CAPTURE(sandboxed);
    FixtureServer f(sandboxed, false);
    auto& [tmp, server, api, token, mcp] = f;
    auto init = mcp.initialize();
    const auto& capabilities = init.body.at("result").at("capabilities");
    CHECK(capabilities.at("resources").at("subscribe") == true);
    CHECK(capabilities.at("prompts").is_object());
    CHECK(capabilities.at("completions").is_object());

    auto listed = json::serialize(mcp.request(2, "resources/list").body);
    CHECK(listed.find(R"("uri":"test://static-text")") != std::string::npos);
    CHECK(listed.find("test://template/") == std::string::npos);  // templates are listed apart
    CHECK(json::serialize(mcp.request(3, "resources/templates/list").body).find(R"("uriTemplate":"test://template/{id}/data")") != std::string::npos);
    auto read = mcp.request(4, "resources/read", json::object{{"uri", "test://template/42/data"}});
    REQUIRE_MESSAGE(read.body.as_object().contains("result"), json::serialize(read.body));
    CHECK(read.body.at("result").at("contents").at(0).at("uri") == "test://template/42/data");
    CHECK(json::parse(read.body.at("result").at("contents").at(0).at("text").as_string()).at("id") == "42");
    auto blob = mcp.request(5, "resources/read", json::object{{"uri", "test://static-binary"}});
    CHECK(blob.body.at("result").at("contents").at(0).at("mimeType") == "image/png");
    // What nobody has, and what is malformed, are errors that say which.
    auto missing = mcp.request(6, "resources/read", json::object{{"uri", "test://nothing-here"}});
    CHECK(json::serialize(missing.body).find("no plugin has resource 'test://nothing-here'") != std::string::npos);
    auto no_uri = mcp.request(7, "resources/read", json::object{{"uri", 5}});
    CHECK(json::serialize(no_uri.body).find("params.uri must be a string") != std::string::npos);
    auto plain = mcp.request(8, "resources/subscribe", json::object{{"uri", "test://static-text"}});
    CHECK(json::serialize(plain.body).find("cannot be subscribed to") != std::string::npos);
    CHECK(mcp.request(9, "resources/subscribe", json::object{{"uri", "test://watched-resource"}}).body.at("result") == json::object());

    CHECK(json::serialize(mcp.request(10, "prompts/list").body).find(R"("name":"test_prompt_with_arguments")") != std::string::npos);
    auto got = mcp.request(11, "prompts/get", json::object{{"name", "test_prompt_with_arguments"}, {"arguments", {{"arg1", "a"}, {"arg2", "b"}}}});
    CHECK(got.body.at("result").at("messages").at(0).at("content").at("text") == "Prompt with arguments: arg1='a', arg2='b'");
    auto short_of = mcp.request(12, "prompts/get", json::object{{"name", "test_prompt_with_arguments"}, {"arguments", {{"arg1", "a"}}}});
    CHECK(json::serialize(short_of.body).find("needs the argument 'arg2'") != std::string::npos);
    auto completed = mcp.request(13, "completion/complete", json::object{{"ref", {{"type", "ref/prompt"}, {"name", "test_prompt_with_arguments"}}},
                                                                          {"argument", {{"name", "arg1"}, {"value", "par"}}}});
    CHECK(completed.body.at("result").at("completion").at("values") == json::array{"paris", "park", "party"});
    auto narrowed = mcp.request(14, "completion/complete", json::object{{"ref", {{"type", "ref/prompt"}, {"name", "test_prompt_with_arguments"}}},
                                                                         {"argument", {{"name", "arg1"}, {"value", "park"}}}});
    CHECK(narrowed.body.at("result").at("completion").at("values") == json::array{"park"});
  }
}

TEST_CASE("a principal reads a plugin's resources and prompts only with resources.read and prompts.get for it") {
  TempDir tmp;
  stage_fixture(tmp / "plugins", false, false);
  ServerProcess server(tmp / "data", {}, tmp / "plugins");
  Api api(server.port());
  const auto admin = api.login("admin", kAdminPassword);
  // A token scoped to tool calls: the plugin's resources and prompts do not exist for it.
  auto made = api.send("POST", "/api/v1/tokens", R"({"name":"tools-only","role":"operator","expires_in":600,"scopes":["tools.call:*"]})", admin);
  REQUIRE_MESSAGE(made.status == 201, json::serialize(made.body));
  McpClient tools_only(server.port(), std::string(made.body.at("token").as_string()));
  tools_only.initialize();
  CHECK(tools_only.request(2, "resources/list").body.at("result").at("resources").as_array().empty());
  CHECK(tools_only.request(3, "prompts/list").body.at("result").at("prompts").as_array().empty());
  auto read = tools_only.request(4, "resources/read", json::object{{"uri", "test://static-text"}});
  CHECK(json::serialize(read.body).find("no plugin has resource 'test://static-text'") != std::string::npos);
  auto get = tools_only.request(5, "prompts/get", json::object{{"name", "test_simple_prompt"}});
  CHECK(json::serialize(get.body).find("no plugin has prompt 'test_simple_prompt'") != std::string::npos);
  // A viewer holds both.
  REQUIRE(api.send("POST", "/api/v1/users", R"({"username":"vera","password":"vera-password-1","role":"viewer"})", admin).status == 201);
  McpClient viewer(server.port(), api.login("vera", "vera-password-1"));
  viewer.initialize();
  CHECK(viewer.request(2, "resources/read", json::object{{"uri", "test://static-text"}}).body.at("result").at("contents").at(0).at("text") ==
        "This is the content of the static text resource.");
}

TEST_CASE("a plugin asks its caller's client only what its manifest grants (client.request:<method>)") {
  FixtureServer f(false, false);
  auto& [tmp, server, api, token, mcp] = f;
  auto init = mcp.request(1, "initialize", json::object{{"protocolVersion", "2025-11-25"}, {"capabilities", {{"sampling", json::object{}}, {"elicitation", json::object{}}}},
                                                       {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
  mcp.session = init.header("Mcp-Session-Id");
  mcp.protocol = "2025-11-25";
  std::vector<json::value> events;
  call_streaming(server.port(), mcp, token, json::object{{"name", "test_sampling"}, {"arguments", {{"prompt", "spend the user's tokens"}}}},
                 [&](const json::value& e) { events.push_back(e); });
  // No request reached the client; the tool's answer names the permission it lacks.
  REQUIRE(events.size() == 1);
  CHECK(events[0].at("result").at("isError") == true);
  CHECK(json::serialize(events[0]).find("needs the permission 'client.request:sampling/createMessage'") != std::string::npos);
}

TEST_CASE("the official TypeScript SDK client runs a session through /mcp: list, progress, cancel, resources, prompts, completion, end") {
  TempDir tmp;
  stage_fixture(tmp / "plugins", false, false);
  stage(test_plugins() / "probe", tmp / "plugins");
  ServerProcess server(tmp / "data", {}, tmp / "plugins");
  Api api(server.port());
  const auto token = api.login("admin", kAdminPassword);
  // The SDK resolves from the peers' node_modules: the script runs from there.
  auto cwd = peers_dir() / "run";
  fs::create_directories(cwd);
  fs::copy_file(fs::path(XCORE_TEST_SOURCE_DIR) / "mcp" / "sdk_session.mjs", cwd / "sdk_session.mjs", fs::copy_options::overwrite_existing);
  auto out = run_command("cd " + cwd.string() + " && timeout 60 node sdk_session.mjs http://127.0.0.1:" + std::to_string(server.port()) + "/mcp " + token);
  CHECK_MESSAGE(out.find("sdk session: ok") != std::string::npos, out);
}

TEST_CASE("the official inspector CLI lists and calls the server's tools through /mcp") {
  auto cli = peers_dir() / "node_modules" / ".bin" / "mcp-inspector-cli";
  REQUIRE_MESSAGE(fs::exists(cli), "run tests/peers/install.sh first");
  TempDir tmp;
  ServerProcess server(tmp / "data");
  Api api(server.port());
  const auto token = api.login("admin", kAdminPassword);
  auto cwd = peers_dir() / "run";
  fs::create_directories(cwd);
  const std::string base = "cd " + cwd.string() + " && timeout 60 " + cli.string() + " --cli http://127.0.0.1:" + std::to_string(server.port()) +
                           "/mcp --transport http --header 'Authorization: Bearer " + token + "'";
  auto listed = run_command(base + " --method tools/list");
  CHECK_MESSAGE(listed.find("\"calculate\"") != std::string::npos, listed);
  auto called = run_command(base + " --method tools/call --tool-name core.calculate --tool-arg 'expression=6*7'");
  CHECK_MESSAGE(called.find("\"result\": 42") != std::string::npos, called);
}
