// Remote nodes through xcore-server: created over the API (token shown once), a real xcore-node dialling the
// server's node address, its tools listed and called through the API and /mcp, other tenants seeing
// nothing, token rotation and deletion dropping it, a server restart it comes back from by itself, and the
// server's command policy narrowing the node's own.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "support/mock_llm.hpp"
#include "support/node_process.hpp"
#include "support/server_harness.hpp"

using namespace xcore_test;
namespace json = boost::json;

namespace {

struct NodeServer {
  int node_port = free_port();
  std::vector<std::string> env() const { return {fmt::format("XCORE_NODE_LISTEN=127.0.0.1:{}", node_port)}; }
  std::string url() const { return fmt::format("ws://127.0.0.1:{}/nodes", node_port); }
};

std::string create_node(Api& api, const std::string& admin, const std::string& body) {
  auto r = api.send("POST", "/api/v1/nodes", body, admin);
  REQUIRE_MESSAGE(r.status == 201, json::serialize(r.body));
  std::string token(r.body.at("token").as_string());
  CHECK(token.starts_with("xcn_"));
  return token;
}

bool serves(Api& api, const std::string& token, const std::string& tool) {
  auto r = api.send("GET", "/api/v1/tools", "", token);
  return r.status == 200 && json::serialize(r.body).find("\"" + tool + "\"") != std::string::npos;
}

bool online(Api& api, const std::string& token, const std::string& node) {
  auto r = api.send("GET", "/api/v1/nodes/" + node, "", token);
  return r.status == 200 && r.body.at("online") == true;
}

json::value invoke(Api& api, const std::string& token, const std::string& tool, const std::string& args, int expect = 200) {
  auto r = api.send("POST", "/api/v1/tools/" + tool + "/invoke", args, token);
  REQUIRE_MESSAGE(r.status == expect, json::serialize(r.body));
  return r.body;
}

}  // namespace

TEST_CASE("a node made over the API serves its tools through the API and /mcp, to its tenant only") {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "root");
  write_file(tmp / "root/hello.txt", "from the edge");
  NodeServer ns;
  ServerProcess server(tmp / "var", ns.env());
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);

  CHECK(api.send("POST", "/api/v1/nodes", R"({"name":"Bad Name"})", admin).status == 400);
  CHECK(api.send("POST", "/api/v1/nodes", R"({"name":"edge1","token":"mine"})", admin).status == 400);
  auto token = create_node(api, admin, R"({"name":"edge1","labels":["lab"]})");
  CHECK(api.send("POST", "/api/v1/nodes", R"({"name":"edge1"})", admin).status == 409);
  auto listed = api.send("GET", "/api/v1/nodes", "", admin);
  REQUIRE(listed.status == 200);
  REQUIRE(listed.body.at("nodes").as_array().size() == 1);
  CHECK(listed.body.at("nodes").at(0).at("online") == false);
  CHECK_FALSE(listed.body.at("nodes").at(0).as_object().contains("token"));  // shown once, stored hashed

  NodeProcess node(ns.url(), token, "edge1", tmp / "node.log", {"--root", (tmp / "root").string(), "--label", "gpu"});
  REQUIRE_MESSAGE(eventually([&] { return online(api, admin, "edge1"); }), node.output());
  auto got = api.send("GET", "/api/v1/nodes/edge1", "", admin);
  CHECK(got.body.at("labels") == json::array{"lab"});
  CHECK(got.body.at("node_labels") == json::array{"gpu"});
  CHECK(got.body.at("version").as_string().size() > 0);
  const auto& tools = got.body.at("tools").as_array();
  CHECK(std::find(tools.begin(), tools.end(), json::value("edge1.read_file")) != tools.end());
  auto catalogue = api.send("GET", "/api/v1/tools", "", admin);
  CHECK(json::serialize(catalogue.body).find("\"edge1.read_file\"") != std::string::npos);

  auto r = invoke(api, admin, "edge1.read_file", R"({"path":"hello.txt"})");
  CHECK(r.at("structuredContent").at("content") == "from the edge");
  auto outside = invoke(api, admin, "edge1.read_file", R"({"path":"/etc/passwd"})");
  CHECK(outside.at("isError") == true);

  // Through /mcp, as any MCP client would.
  httplib::Client mcp("127.0.0.1", server.port());
  httplib::Headers h{{"Authorization", "Bearer " + admin}, {"Accept", "application/json, text/event-stream"}};
  auto init = mcp.Post("/mcp", h, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})", "application/json");
  REQUIRE(init);
  REQUIRE(init->status == 200);
  h.emplace("Mcp-Session-Id", init->get_header_value("Mcp-Session-Id"));
  h.emplace("MCP-Protocol-Version", "2025-11-25");
  auto call = mcp.Post("/mcp", h, R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"edge1.system_stats","arguments":{}}})", "application/json");
  REQUIRE(call);
  CHECK_MESSAGE(call->body.find("\"hostname\"") != std::string::npos, call->body);

  // Another tenant's admin: no node, no tool.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "boss", "admin", "acme");
  auto boss = api.login("boss", "password-123", "acme");
  CHECK(api.send("GET", "/api/v1/nodes", "", boss).body.at("nodes").as_array().empty());
  CHECK(api.send("GET", "/api/v1/nodes/edge1", "", boss).status == 404);
  CHECK(api.send("DELETE", "/api/v1/nodes/edge1", "", boss).status == 404);
  CHECK(api.send("POST", "/api/v1/nodes/edge1/token", "", boss).status == 404);
  CHECK(api.send("POST", "/api/v1/tools/edge1.read_file/invoke", R"({"path":"hello.txt"})", boss).status == 404);
  // A viewer reads, and may not create.
  add_user(api, admin, "watcher", "viewer");
  auto viewer = api.login("watcher", "password-123");
  CHECK(api.send("GET", "/api/v1/nodes", "", viewer).status == 200);
  CHECK(api.send("POST", "/api/v1/nodes", R"({"name":"sneaky"})", viewer).status == 403);
}

TEST_CASE("a node's token rotated or the node deleted drops it at once; after a server restart it comes back by itself") {
  TempDir tmp;
  NodeServer ns;
  auto server = std::make_unique<ServerProcess>(tmp / "var", ns.env());
  auto api = std::make_unique<Api>(server->port());
  auto admin = api->login("admin", kAdminPassword);
  auto token = create_node(*api, admin, R"({"name":"edge1"})");
  auto node = std::make_unique<NodeProcess>(ns.url(), token, "edge1", tmp / "node.log");
  REQUIRE_MESSAGE(eventually([&] { return online(*api, admin, "edge1"); }), node->output());

  // The server restarts: the node was not told, and dials again until it is back.
  server.reset();
  server = std::make_unique<ServerProcess>(tmp / "var", ns.env());
  api = std::make_unique<Api>(server->port());
  admin = api->login("admin", kAdminPassword);
  REQUIRE_MESSAGE(eventually([&] { return online(*api, admin, "edge1"); }), node->output());
  invoke(*api, admin, "edge1.system_stats", "{}");

  auto rotated = api->send("POST", "/api/v1/nodes/edge1/token", "", admin);
  REQUIRE(rotated.status == 200);
  CHECK(online(*api, admin, "edge1") == false);  // dropped before the answer
  CHECK(api->send("POST", "/api/v1/tools/edge1.system_stats/invoke", "{}", admin).status == 404);
  CHECK(eventually([&] { return node->output().find("unknown node token") != std::string::npos; }));  // the old token is refused

  node = std::make_unique<NodeProcess>(ns.url(), std::string(rotated.body.at("token").as_string()), "edge1", tmp / "node2.log");
  REQUIRE_MESSAGE(eventually([&] { return online(*api, admin, "edge1"); }), node->output());
  CHECK(api->send("DELETE", "/api/v1/nodes/edge1", "", admin).status == 200);
  CHECK(api->send("GET", "/api/v1/nodes/edge1", "", admin).status == 404);
  CHECK(api->send("POST", "/api/v1/tools/edge1.system_stats/invoke", "{}", admin).status == 404);
  auto audit = api->send("GET", "/api/v1/audit", "", admin);
  CHECK(json::serialize(audit.body).find("node token rotated") != std::string::npos);
}

TEST_CASE("the server's command policy for a node narrows the node's own") {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "root");
  write_file(tmp / "policy.json", R"({"rules": [{"allow": "/usr/bin/*"}]})");
  NodeServer ns;
  ServerProcess server(tmp / "var", ns.env());
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto bad = api.send("POST", "/api/v1/nodes", R"({"name":"edge1","policy":{"rules":[{"allow":"echo"}]}})", admin);
  CHECK(bad.status == 400);
  CHECK(json::serialize(bad.body).find("rules[0].allow") != std::string::npos);
  auto token = create_node(api, admin, R"({"name":"edge1","policy":{"rules":[{"allow":"/usr/bin/echo"}]}})");
  NodeProcess node(ns.url(), token, "edge1", tmp / "node.log",
                   {"--root", (tmp / "root").string(), "--allow-exec", "--command-policy", (tmp / "policy.json").string()});
  REQUIRE_MESSAGE(eventually([&] { return online(api, admin, "edge1"); }), node.output());

  auto echo = invoke(api, admin, "edge1.exec_command", R"({"argv":["echo","hi"]})");
  CHECK(echo.at("structuredContent").at("stdout") == "hi\n");
  auto ls = invoke(api, admin, "edge1.exec_command", R"({"argv":["ls"]})");
  CHECK(ls.at("isError") == true);
  CHECK(json::serialize(ls).find("the host's policy") != std::string::npos);

  // Changed over the API: the node has it at once.
  auto patched = api.send("PATCH", "/api/v1/nodes/edge1", R"({"policy":{"rules":[{"allow":"/usr/bin/ls"}]}})", admin);
  REQUIRE_MESSAGE(patched.status == 200, json::serialize(patched.body));
  CHECK(eventually([&] { return invoke(api, admin, "edge1.exec_command", R"({"argv":["ls"]})").at("isError") == false; }, std::chrono::seconds(5)));
  CHECK(invoke(api, admin, "edge1.exec_command", R"({"argv":["echo","hi"]})").at("isError") == true);
  // The server allowing everything widens nothing: inline code stays refused by the node.
  CHECK(api.send("PATCH", "/api/v1/nodes/edge1", R"({"policy":{"rules":[{"allow":"*"}]}})", admin).status == 200);
  CHECK(eventually([&] { return invoke(api, admin, "edge1.exec_command", R"({"argv":["echo","x"]})").at("isError") == false; }, std::chrono::seconds(5)));
  auto sh = invoke(api, admin, "edge1.exec_command", R"({"argv":["sh","-c","echo owned"]})");
  CHECK(sh.at("isError") == true);
}

TEST_CASE("an agent run calls a node's tool like any other") {
  const std::string rules = R"(rules:
  - path: "/v1/chat/completions"
    response:
      status: 200
      content: '{"model":"m","choices":[{"message":{"role":"assistant","content":"final: done after {{jmes request length(body.messages)}} messages"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"model":"m","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"edge1_system_stats","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":7}}'
)";
  MockLlm llm(rules);
  TempDir tmp;
  NodeServer ns;
  auto env = ns.env();
  env.insert(env.end(), {"XCORE_REMOTE_ALLOWED_HOSTS=127.0.0.1", "XCORE_REMOTE_ALLOW_PRIVATE=1"});
  ServerProcess server(tmp / "var", env);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto token = create_node(api, admin, R"({"name":"edge1"})");
  NodeProcess node(ns.url(), token, "edge1", tmp / "node.log");
  REQUIRE_MESSAGE(eventually([&] { return online(api, admin, "edge1"); }), node.output());
  auto p = api.send("POST", "/api/v1/providers", json::serialize(json::object{{"name", "mock"}, {"base_url", llm.base_url()}, {"default_model", "m"}}), admin);
  REQUIRE_MESSAGE(p.status == 201, json::serialize(p.body));
  auto a = api.send("POST", "/api/v1/agents", R"({"name":"ops","provider":"mock","tools":["edge1.*"]})", admin);
  REQUIRE_MESSAGE(a.status == 201, json::serialize(a.body));
  auto shown = api.send("GET", "/api/v1/agents/ops", "", admin);
  // Offered under its function-calling name (dots are not allowed there).
  CHECK_MESSAGE(json::serialize(shown.body).find("\"edge1_system_stats\"") != std::string::npos, json::serialize(shown.body));

  auto ran = api.send("POST", "/api/v1/agents/ops/run?wait=60", R"({"input":"how is the edge doing?"})", admin);
  REQUIRE_MESSAGE(ran.status == 200, json::serialize(ran.body));
  CHECK_MESSAGE(ran.body.at("status") == "succeeded", json::serialize(ran.body));
  auto run = api.send("GET", "/api/v1/agents/ops/runs/" + std::string(ran.body.at("id").as_string()), "", admin);
  REQUIRE(run.status == 200);
  // The node answered: its figures are the tool's result in the conversation.
  CHECK_MESSAGE(json::serialize(run.body.at("messages")).find("hostname") != std::string::npos, json::serialize(run.body));
}

TEST_CASE("an admin starts an MCP preset on a node over the API: its tools join the tenant's, other tenants and viewers cannot") {
  TempDir tmp;
  REQUIRE_MESSAGE(std::filesystem::exists(peer_script("server-memory")), "run tests/peers/install.sh first");
  std::filesystem::create_directories(tmp / "root/notes");
  std::filesystem::permissions(tmp / "root/notes", std::filesystem::perms::all);
  write_file(tmp / "root/notes/todo.md", "- water the plants");
  // An operator's presets beside the built-in ones: one more, and a bad file is refused at start.
  write_file(tmp / "presets.yaml", "presets:\n  notes:\n    description: the notes folder, read-only\n    package: \"@modelcontextprotocol/server-filesystem\"\n"
                                   "    version: \"2026.8.31\"\n    entry: dist/index.js\n    args: [\"{mounts}\"]\n    mounts: {min: 1, max: 1}\n");
  write_file(tmp / "xcore.yaml", "nodes:\n  mcp_presets: [presets.yaml]\n");
  NodeServer ns;
  auto env = ns.env();
  env.push_back("XCORE_CONFIG=" + (tmp / "xcore.yaml").string());
  ServerProcess server(tmp / "var", env);
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);

  auto presets = api.send("GET", "/api/v1/mcp-presets", "", admin);
  REQUIRE(presets.status == 200);
  const auto text = json::serialize(presets.body);
  for (const char* name : {"\"filesystem\"", "\"memory\"", "\"everything\"", "\"notes\""}) CHECK_MESSAGE(text.find(name) != std::string::npos, name);

  auto token = create_node(api, admin, R"({"name":"edge1"})");
  CHECK(api.send("POST", "/api/v1/nodes/edge1/mcp", R"({"preset":"memory"})", admin).status == 503);  // not connected
  NodeProcess node(ns.url(), token, "edge1", tmp / "node.log",
                   {"--root", (tmp / "root").string(), "--allow-mcp", "--mcp-cache", peers_dir().string(), "--state", (tmp / "state").string()});
  REQUIRE_MESSAGE(eventually([&] { return online(api, admin, "edge1"); }), node.output());

  auto unknown = api.send("POST", "/api/v1/nodes/edge1/mcp", R"({"preset":"postgres"})", admin);
  CHECK(unknown.status == 400);
  CHECK(json::serialize(unknown.body).find("no preset 'postgres' (known: everything, filesystem, memory, notes)") != std::string::npos);
  auto outside = api.send("POST", "/api/v1/nodes/edge1/mcp", fmt::format(R"({{"preset":"notes","mounts":["{}"]}})", tmp.path().string()), admin);
  CHECK(outside.status == 403);
  CHECK(json::serialize(outside.body).find("outside the folders this node serves") != std::string::npos);

  auto started = api.send("POST", "/api/v1/nodes/edge1/mcp", R"({"preset":"memory"})", admin);
  REQUIRE_MESSAGE(started.status == 201, json::serialize(started.body), node.output());
  const auto& tools = started.body.at("tools").as_array();
  CHECK(std::find(tools.begin(), tools.end(), json::value("edge1.create_entities")) != tools.end());
  REQUIRE_MESSAGE(eventually([&] { return serves(api, admin, "edge1.create_entities"); }), node.output());
  auto made = invoke(api, admin, "edge1.create_entities", R"({"entities":[{"name":"plants","entityType":"chore","observations":["water weekly"]}]})");
  CHECK_FALSE((made.as_object().contains("isError") && made.at("isError") == true));
  auto graph = invoke(api, admin, "edge1.read_graph", "{}");
  CHECK(json::serialize(graph).find("water weekly") != std::string::npos);

  auto notes = api.send("POST", "/api/v1/nodes/edge1/mcp", fmt::format(R"({{"preset":"notes","mounts":["{}"]}})", (tmp / "root/notes").string()), admin);
  REQUIRE_MESSAGE(notes.status == 201, json::serialize(notes.body));
  CHECK(notes.body.at("id") == "notes");
  CHECK(notes.body.at("writable") == false);
  REQUIRE(eventually([&] { return serves(api, admin, "edge1.read_text_file"); }));
  auto todo = invoke(api, admin, "edge1.read_text_file", fmt::format(R"({{"path":"{}"}})", (tmp / "root/notes/todo.md").string()));
  CHECK(json::serialize(todo).find("water the plants") != std::string::npos);
  // Mounted read-only: the server may try, the sandbox refuses. (Its write_file meets the node's own
  // write_file by name, so it is served as notes.write_file.)
  auto write = invoke(api, admin, "edge1.notes.write_file", fmt::format(R"({{"path":"{}","content":"x"}})", (tmp / "root/notes/new.md").string()));
  CHECK(write.at("isError") == true);
  CHECK_FALSE(std::filesystem::exists(tmp / "root/notes/new.md"));

  auto listed = api.send("GET", "/api/v1/nodes/edge1/mcp", "", admin);
  REQUIRE(listed.status == 200);
  CHECK(listed.body.at("servers").as_array().size() == 2);

  // Another tenant's admin reaches none of it; a viewer reads and may not start or stop.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "boss", "admin", "acme");
  auto boss = api.login("boss", "password-123", "acme");
  CHECK(api.send("GET", "/api/v1/nodes/edge1/mcp", "", boss).status == 404);
  CHECK(api.send("POST", "/api/v1/nodes/edge1/mcp", R"({"preset":"everything"})", boss).status == 404);
  CHECK(api.send("DELETE", "/api/v1/nodes/edge1/mcp/memory", "", boss).status == 404);
  CHECK(api.send("POST", "/api/v1/tools/edge1.read_graph/invoke", "{}", boss).status == 404);
  add_user(api, admin, "watcher", "viewer");
  auto viewer = api.login("watcher", "password-123");
  CHECK(api.send("GET", "/api/v1/nodes/edge1/mcp", "", viewer).status == 200);
  CHECK(api.send("POST", "/api/v1/nodes/edge1/mcp", R"({"preset":"everything"})", viewer).status == 403);
  CHECK(api.send("DELETE", "/api/v1/nodes/edge1/mcp/memory", "", viewer).status == 403);

  CHECK(api.send("DELETE", "/api/v1/nodes/edge1/mcp/memory", "", admin).status == 200);
  CHECK(eventually([&] { return !serves(api, admin, "edge1.read_graph"); }));
  CHECK(api.send("DELETE", "/api/v1/nodes/edge1/mcp/memory", "", admin).status == 404);
  auto audit = api.send("GET", "/api/v1/audit?limit=50", "", admin);
  CHECK(json::serialize(audit.body).find("node mcp started") != std::string::npos);
  CHECK(json::serialize(audit.body).find("node mcp stopped") != std::string::npos);
}
