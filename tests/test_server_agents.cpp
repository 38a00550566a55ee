// Agents through xcore-server against mock-llm: providers and agents as a tenant's data, a run from creation to
// transcript (and its live event stream), an agent job started by a signed webhook, approvals over the API
// (surviving a restart), and the refusals: a provider the outbound policy forbids, fields only the server
// sets, an agent made with a scoped token held to its scopes.
#include <doctest/doctest.h>

#include "support/mock_llm.hpp"
#include "support/server_harness.hpp"

#include <fmt/format.h>

#include <thread>

#include "crypto.hpp"
#include "database.hpp"

using namespace xcore_test;
namespace json = boost::json;

namespace {

// The final answer does not quote the last message: a tool's JSON result would break mock-llm's template.
const std::string kRules = R"(streaming:
  chunkSize: 8
  chunkIntervalMs: 1
rules:
  - path: "/v1/chat/completions"
    response:
      status: 200
      content: '{"model":"{{jmes request body.model}}","choices":[{"message":{"role":"assistant","content":"final: done after {{jmes request length(body.messages)}} messages"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'echo please')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"model":"{{jmes request body.model}}","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"echo","arguments":"{\"text\":\"hi\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":7}}'
)";

// The server may reach mock-llm on loopback only when its outbound policy says so.
std::vector<std::string> reach_loopback() { return {"XCORE_REMOTE_ALLOWED_HOSTS=127.0.0.1", "XCORE_REMOTE_ALLOW_PRIVATE=1"}; }

void add_provider(Api& api, const std::string& token, const MockLlm& llm) {
  auto p = api.send("POST", "/api/v1/providers", json::serialize(json::object{{"name", "mock"}, {"base_url", llm.base_url()}, {"default_model", "mock-1"}}), token);
  REQUIRE_MESSAGE(p.status == 201, json::serialize(p.body));
}

// Polls until the run is no longer running (bounded).
json::value settled_run(Api& api, const std::string& token, const std::string& agent, const std::string& id) {
  json::value run;
  for (int i = 0; i < 500; ++i) {
    auto a = api.send("GET", "/api/v1/agents/" + agent + "/runs/" + id, "", token);
    REQUIRE(a.status == 200);
    run = a.body;
    if (run.at("status") != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return run;
}

std::vector<std::string> transcript_types(const json::value& run) {
  std::vector<std::string> out;
  for (const auto& e : run.at("transcript").as_array()) out.emplace_back(e.at("type").as_string());
  return out;
}

}  // namespace

TEST_CASE("an agent from creation to transcript: provider, agent, run, runs, transcript and its event stream") {
  MockLlm llm(kRules);
  TempDir tmp;
  ServerProcess server(tmp / "var", reach_loopback());
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_provider(api, admin, llm);
  auto providers = api.send("GET", "/api/v1/providers", "", admin);
  REQUIRE(providers.status == 200);
  CHECK(providers.body.at("providers").as_array().size() == 2);  // the tenant's and the settings' (LM Studio)
  CHECK(providers.body.at("providers").at(1).at("base_url") == "http://localhost:1234/v1");

  auto created = api.send("POST", "/api/v1/agents", R"({"name":"helper","provider":"mock","model":"job-model","system":"Be brief.","tools":["core.echo"]})", admin);
  REQUIRE_MESSAGE(created.status == 201, json::serialize(created.body));
  CHECK(created.body.at("owner") == "1");
  auto shown = api.send("GET", "/api/v1/agents/helper", "", admin);
  REQUIRE(shown.status == 200);
  REQUIRE(shown.body.at("visible_tools").as_array().size() == 1);
  CHECK(shown.body.at("visible_tools").at(0).at("function").at("name") == "echo");

  auto ran = api.send("POST", "/api/v1/agents/helper/run?wait=60", R"({"input":"echo please"})", admin);
  REQUIRE_MESSAGE(ran.status == 200, json::serialize(ran.body));
  CHECK_MESSAGE(ran.body.at("status") == "succeeded", json::serialize(ran.body));
  CHECK(ran.body.at("model") == "job-model");  // the agent's model reached the provider
  CHECK(ran.body.at("output").as_string().starts_with("final: "));
  CHECK(ran.body.at("usage").at("total_tokens") == 42);
  const std::string id(ran.body.at("id").as_string());

  auto runs = api.send("GET", "/api/v1/agents/helper/runs", "", admin);
  REQUIRE(runs.status == 200);
  REQUIRE(runs.body.at("runs").as_array().size() == 1);
  auto run = api.send("GET", "/api/v1/agents/helper/runs/" + id, "", admin);
  REQUIRE(run.status == 200);
  CHECK(transcript_types(run.body) == std::vector<std::string>{"run_started", "model_answer", "tool_call", "tool_result", "model_answer", "run_finished"});
  CHECK(run.body.at("messages").as_array().size() == 5);  // system, user, the call, its result, the answer
  const auto& answer = run.body.at("transcript").at(1).at("data");
  CHECK(answer.at("prompt_tokens") == 20);
  CHECK(answer.at("latency_ms").is_int64());

  // The event stream of a finished run sends its transcript and ends.
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(30, 0);
  auto sse = c.Get("/api/v1/agents/helper/runs/" + id + "/events", {{"Authorization", "Bearer " + admin}, {"Accept", "text/event-stream"}});
  REQUIRE(sse);
  CHECK(sse->status == 200);
  CHECK(sse->get_header_value("Content-Type").starts_with("text/event-stream"));
  CHECK(sse->body.find("event: run_started") != std::string::npos);
  CHECK(sse->body.find("event: run_finished") != std::string::npos);
  auto after = api.send("GET", "/api/v1/agents/helper/runs/" + id + "/events?after=4", "", admin);
  REQUIRE(after.status == 200);
  CHECK(after.body.at("events").as_array().size() == 2);

  // Another agent's run, or a run id of the wrong shape, is not found.
  CHECK(api.send("GET", "/api/v1/agents/other/runs/" + id, "", admin).status == 404);
  CHECK(api.send("GET", "/api/v1/agents/helper/runs/nope", "", admin).status == 404);
}

TEST_CASE("an agent job started by a signed webhook: the body reaches the agent, the run is recorded") {
  MockLlm llm(kRules);
  TempDir tmp;
  ServerProcess server(tmp / "var", reach_loopback());
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_provider(api, admin, llm);
  REQUIRE(api.send("POST", "/api/v1/agents", R"({"name":"deployer","provider":"mock","tools":["core.echo"]})", admin).status == 201);
  auto task = api.send("POST", "/api/v1/tasks", R"({"name":"on-deploy","trigger":{"type":"webhook","name":"deploy"},"target":{"agent":"deployer","input":"A deploy happened."}})", admin);
  REQUIRE_MESSAGE(task.status == 201, json::serialize(task.body));
  CHECK(task.body.at("target").at("agent") == "deployer");
  REQUIRE(api.send("PUT", "/api/v1/secrets/webhook_deploy", R"({"value":"hook-key-123"})", admin).status == 200);
  const std::string body = R"({"ref":"main","commit":"abc123"})";
  const auto ts = std::to_string(xcore::server::unix_now());
  httplib::Client c("127.0.0.1", server.port());
  auto delivered = c.Post("/api/v1/webhooks/default/deploy",
                          {{"X-Xcore-Timestamp", ts}, {"X-Xcore-Signature", "sha256=" + xcore::server::hex_encode(xcore::server::hmac_sha256("hook-key-123", ts + "." + body))}},
                          body, "application/json");
  REQUIRE(delivered);
  CHECK_MESSAGE(delivered->status == 202, delivered->body);
  json::array runs;
  for (int i = 0; i < 500 && runs.empty(); ++i) {
    auto a = api.send("GET", "/api/v1/agents/deployer/runs", "", admin);
    runs = a.body.at("runs").as_array();
    if (runs.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(runs.size() == 1);
  const std::string id(runs[0].at("id").as_string());
  auto run = settled_run(api, admin, "deployer", id);
  CHECK(run.at("status") == "succeeded");
  CHECK(run.at("trigger") == "webhook");
  const std::string input(run.at("input").as_string());
  CHECK(input.find("A deploy happened.") == 0);
  CHECK(input.find(R"("commit":"abc123")") != std::string::npos);
  // The task's own run says how the agent's ended.
  auto task_runs = api.send("GET", "/api/v1/tasks/" + std::string(task.body.at("id").as_string()) + "/runs", "", admin);
  REQUIRE(task_runs.status == 200);
  REQUIRE(task_runs.body.as_array().size() == 1);
  for (int i = 0; i < 500 && task_runs.body.as_array()[0].at("status") == "running"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    task_runs = api.send("GET", "/api/v1/tasks/" + std::string(task.body.at("id").as_string()) + "/runs", "", admin);
  }
  CHECK(task_runs.body.as_array()[0].at("status") == "succeeded");
  CHECK(task_runs.body.as_array()[0].at("result").at("run_id") == json::value(id));
}

TEST_CASE("approvals over the API: the call waits, survives a restart, a viewer cannot decide, the owner approves once") {
  MockLlm llm(kRules);
  TempDir tmp;
  std::string run_id, approval_id;
  {
    ServerProcess server(tmp / "var", reach_loopback());
    Api api(server.port());
    auto admin = api.login("admin", kAdminPassword);
    add_provider(api, admin, llm);
    REQUIRE(api.send("POST", "/api/v1/agents", R"({"name":"careful","provider":"mock","tools":["core.echo"],"approval":{"tools":["core.echo"]}})", admin).status == 201);
    auto ran = api.send("POST", "/api/v1/agents/careful/run?wait=60", R"({"input":"echo please"})", admin);
    REQUIRE(ran.status == 200);
    CHECK(ran.body.at("status") == "awaiting_approval");
    run_id = std::string(ran.body.at("id").as_string());
    auto pending = api.send("GET", "/api/v1/approvals", "", admin);
    REQUIRE(pending.status == 200);
    REQUIRE(pending.body.at("approvals").as_array().size() == 1);
    CHECK(pending.body.at("approvals").at(0).at("tool") == "echo");
    CHECK(pending.body.at("approvals").at(0).at("arguments").at("text") == "hi");
    approval_id = std::string(pending.body.at("approvals").at(0).at("id").as_string());
  }
  ServerProcess server(tmp / "var", reach_loopback());
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_user(api, admin, "vera", "viewer");
  auto viewer = api.login("vera", "password-123");
  auto listed = api.send("GET", "/api/v1/approvals", "", viewer);
  REQUIRE(listed.status == 200);
  CHECK(listed.body.at("approvals").as_array().size() == 1);
  CHECK(api.send("POST", "/api/v1/approvals/" + approval_id + "/approve", "{}", viewer).status == 403);
  // Another tenant's admin sees none of it.
  REQUIRE(api.send("POST", "/api/v1/tenants", R"({"id":"acme"})", admin).status == 201);
  add_user(api, admin, "acme-admin", "admin", "acme");
  auto other = api.login("acme-admin", "password-123", "acme");
  CHECK(api.send("GET", "/api/v1/approvals", "", other).body.at("approvals").as_array().empty());
  CHECK(api.send("POST", "/api/v1/approvals/" + approval_id + "/approve", "{}", other).status == 404);
  CHECK(api.send("GET", "/api/v1/agents/careful/runs/" + run_id, "", other).status == 404);
  auto approved = api.send("POST", "/api/v1/approvals/" + approval_id + "/approve", R"({"note":"fine"})", admin);
  REQUIRE_MESSAGE(approved.status == 200, json::serialize(approved.body));
  CHECK(approved.body.at("decision") == "approved");
  CHECK(api.send("POST", "/api/v1/approvals/" + approval_id + "/approve", "{}", admin).status == 404);  // used up
  auto run = settled_run(api, admin, "careful", run_id);
  CHECK(run.at("status") == "succeeded");
  auto types = transcript_types(run);
  CHECK(std::count(types.begin(), types.end(), "approval_decided") == 1);
}

TEST_CASE("refusals: a provider beyond the outbound policy, a key in the body, server-set fields, a scoped token's agent") {
  TempDir tmp;
  ServerProcess server(tmp / "var");  // no host allowed for what a tenant registers
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  auto inward = api.send("POST", "/api/v1/providers", R"({"name":"meta","base_url":"http://169.254.169.254/v1"})", admin);
  CHECK(inward.status == 403);
  CHECK(message_of(inward).find("remote_plugins.allowed_hosts") != std::string::npos);
  auto keyed = api.send("POST", "/api/v1/providers", R"({"name":"x","base_url":"https://api.example.com/v1","api_key":"sk-123"})", admin);
  CHECK(keyed.status == 400);
  CHECK(message_of(keyed).find("api_key_secret") != std::string::npos);
  CHECK(api.send("POST", "/api/v1/agents", R"({"name":"a","tools":[],"owner":"2"})", admin).status == 400);
  CHECK(api.send("POST", "/api/v1/agents", R"({"name":"a","tools":[],"limits":[]})", admin).status == 400);
  CHECK(api.send("POST", "/api/v1/agents", R"({"name":"a","provider":"nowhere","tools":[]})", admin).status == 404);
  auto bad = api.send("POST", "/api/v1/agents", R"({"name":"a","tools":"all"})", admin);
  CHECK(bad.status == 400);
  CHECK(message_of(bad) == "agent.tools: expected a list of strings");

  // A token scoped to one tool makes an agent asking for every tool: the agent sees that one.
  auto token = api.send("POST", "/api/v1/tokens", R"({"name":"narrow","role":"operator","expires_in":3600,"scopes":["agents.write","agents.read","tools.call:core.echo"]})", admin);
  REQUIRE_MESSAGE(token.status == 201, json::serialize(token.body));
  const std::string narrow(token.body.at("token").as_string());
  auto made = api.send("POST", "/api/v1/agents", R"({"name":"wide","tools":["*"]})", narrow);
  REQUIRE_MESSAGE(made.status == 201, json::serialize(made.body));
  auto shown = api.send("GET", "/api/v1/agents/wide", "", admin);
  REQUIRE(shown.status == 200);
  REQUIRE(shown.body.at("visible_tools").as_array().size() == 1);
  CHECK(shown.body.at("visible_tools").at(0).at("function").at("name") == "echo");
  CHECK(api.send("DELETE", "/api/v1/agents/wide", "", admin).status == 200);
  CHECK(api.send("GET", "/api/v1/agents/wide", "", admin).status == 404);
}

TEST_CASE("over the API: a waiting run is cancelled and its approval goes; a streamed run records its text as it came") {
  MockLlm llm(kRules);
  TempDir tmp;
  ServerProcess server(tmp / "var", reach_loopback());
  Api api(server.port());
  auto admin = api.login("admin", kAdminPassword);
  add_provider(api, admin, llm);
  REQUIRE(api.send("POST", "/api/v1/agents", R"({"name":"careful","provider":"mock","tools":["core.echo"],"approval":{"tools":["core.*"]}})", admin).status == 201);
  auto ran = api.send("POST", "/api/v1/agents/careful/run?wait=60", R"({"input":"echo please"})", admin);
  REQUIRE(ran.status == 200);
  REQUIRE(ran.body.at("status") == "awaiting_approval");
  const std::string id(ran.body.at("id").as_string());
  auto cancelled = api.send("POST", "/api/v1/agents/careful/runs/" + id + "/cancel", "{}", admin);
  CHECK_MESSAGE(cancelled.status == 202, json::serialize(cancelled.body));
  auto run = settled_run(api, admin, "careful", id);
  CHECK(run.at("status") == "cancelled");
  CHECK(api.send("GET", "/api/v1/approvals", "", admin).body.at("approvals").as_array().empty());
  CHECK(api.send("POST", "/api/v1/agents/careful/runs/" + id + "/cancel", "{}", admin).status == 412);  // ended already

  auto streamed = api.send("POST", "/api/v1/agents/careful/run?wait=60", R"({"input":"just say something long enough to stream","stream":true})", admin);
  REQUIRE(streamed.status == 200);
  CHECK(streamed.body.at("status") == "succeeded");
  auto full = api.send("GET", "/api/v1/agents/careful/runs/" + std::string(streamed.body.at("id").as_string()), "", admin);
  std::string joined;
  for (const auto& e : full.body.at("transcript").as_array())
    if (e.at("type") == "text") joined += e.at("data").at("text").as_string();
  CHECK(json::value(joined) == streamed.body.at("output"));
  CHECK(joined.size() > 8);
}
