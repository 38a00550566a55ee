// Agents: the tool-calling loop against a real OpenAI-compatible server nobody here wrote (@dwmkerr/mock-llm,
// answering by rules matched on each request), over a real tool registry: several steps, parallel calls,
// limits, failures fed back, refusals, approvals (also across a restart), provider fallback and retries,
// hooks, cancellation, streaming and models that write tool calls as text.
#include <doctest/doctest.h>

#include <xcore/agents.hpp>
#include <xcore/hooks.hpp>
#include <xcore/manager.hpp>
#include <xcore/tools.hpp>

#include <httplib.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "support/mock_llm.hpp"
#include "support/test_support.hpp"

using namespace xcore;
using xcore_test::MockLlm;

namespace {

// Rules keyed by a phrase of the task; the first rule is the final answer, "final: <last message>". mock-llm
// takes any truthy JavaScript value as a match, so an empty list matches too: lists are tested by length.
const std::string kRules = R"(streaming:
  chunkSize: 4
  chunkIntervalMs: 1
rules:
  - path: "/v1/chat/completions"
    response:
      status: 200
      content: '{"model":"{{jmes request body.model}}","choices":[{"message":{"role":"assistant","content":"final: {{jmes request body.messages[-1].content}}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'add then echo')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"model":"{{jmes request body.model}}","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_add","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":3}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":7}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'add then echo')]) > `0` && length(body.messages[?role=='tool']) == `1`"
    response:
      status: 200
      content: '{"model":"{{jmes request body.model}}","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_echo","type":"function","function":{"name":"echo","arguments":"{\"text\":\"sum={{jmes request body.messages[-1].content}}\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":30,"completion_tokens":8}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'both at once')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"g1","type":"function","function":{"name":"gate","arguments":"{\"n\":1}"}},{"id":"g2","type":"function","function":{"name":"gate","arguments":"{\"n\":2}"}}]},"finish_reason":"tool_calls"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'loop forever')]) > `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"again","type":"function","function":{"name":"add","arguments":"{\"a\":1,\"b\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":100,"completion_tokens":50}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'try the broken tool')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"b1","type":"function","function":{"name":"broken","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'call something odd')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"s1","type":"function","function":{"name":"secret","arguments":"{}"}},{"id":"s2","type":"function","function":{"name":"no_such_tool","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'delete it')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"d1","type":"function","function":{"name":"delete_file","arguments":"{\"path\":\"/srv/old.log\"}"}},{"id":"d2","type":"function","function":{"name":"add","arguments":"{\"a\":1,\"b\":2}"}}]},"finish_reason":"tool_calls"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'old model')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":"I will add them.\n```json\n{\"name\": \"add\", \"arguments\": {\"a\": 4, \"b\": 5}}\n```"},"finish_reason":"stop"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'bad arguments')]) > `0` && length(body.messages[?role=='tool']) == `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"x1","type":"function","function":{"name":"add","arguments":"{not json"}}]},"finish_reason":"tool_calls"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'wait for cancel')]) > `0`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"h1","type":"function","function":{"name":"hang","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='user' && contains(content, 'answer 500')]) > `0`"
    response:
      status: 500
      content: '{"error":{"message":"the model crashed","type":"server_error"}}'
)";

json::object schema(std::initializer_list<std::pair<const char*, const char*>> props) {
  json::object p;
  json::array required;
  for (const auto& [name, type] : props) {
    p[name] = json::object{{"type", type}};
    required.emplace_back(name);
  }
  return json::object{{"type", "object"}, {"properties", std::move(p)}, {"required", std::move(required)}};
}

// The tools the agents call, registered as host tools, with what they saw.
struct Tools {
  HookBus hooks;
  ToolRegistry registry{&hooks};
  std::vector<ToolRegistration> held;
  std::atomic<int> secret_calls{0}, delete_calls{0}, add_calls{0};
  std::mutex mutex;
  std::condition_variable cv;
  int gate_arrivals = 0;
  bool hang_started = false;
  std::vector<std::string> deleted;
  std::vector<std::string> principals;  // who called add

  Tools() {
    auto add = [this](ToolSpec spec, ToolHandler h) { held.push_back(*registry.add(std::move(spec), std::move(h))); };
    add({"add", "", "adds two numbers", schema({{"a", "number"}, {"b", "number"}})}, [this](const json::value& a, const CallContext& ctx) {
      ++add_calls;
      {
        std::lock_guard lock(mutex);
        principals.push_back(ctx.principal.describe());
      }
      const auto sum = a.at("a").to_number<double>() + a.at("b").to_number<double>();
      return Result<ToolResult>(ToolResult::text(std::to_string(static_cast<long long>(sum))));
    });
    add({"echo", "", "says the text back", schema({{"text", "string"}})},
        [](const json::value& a, const CallContext&) { return Result<ToolResult>(ToolResult::text(std::string(a.at("text").as_string()))); });
    // Answers only once both of a step's calls arrived: the step ran them at once (bounded, so a serial
    // loop fails instead of hanging).
    add({"gate", "", "meets its twin", schema({{"n", "integer"}})}, [this](const json::value& a, const CallContext&) {
      std::unique_lock lock(mutex);
      ++gate_arrivals;
      cv.notify_all();
      const bool both = cv.wait_for(lock, std::chrono::seconds(20), [&] { return gate_arrivals >= 2; });
      if (!both) return Result<ToolResult>(ToolResult::text("alone", true));
      return Result<ToolResult>(ToolResult::text("met " + std::to_string(a.at("n").as_int64())));
    });
    add({"broken", "", "always fails", {}},
        [](const json::value&, const CallContext&) { return Result<ToolResult>(Error{ErrorCode::plugin_error, "the disk is on fire"}); });
    add({"secret", "", "not for agents", {}}, [this](const json::value&, const CallContext&) {
      ++secret_calls;
      return Result<ToolResult>(ToolResult::text("leaked"));
    });
    ToolSpec del{"delete_file", "", "deletes a file", schema({{"path", "string"}})};
    del.annotations["destructiveHint"] = true;
    add(std::move(del), [this](const json::value& a, const CallContext&) {
      ++delete_calls;
      std::lock_guard lock(mutex);
      deleted.emplace_back(a.at("path").as_string());
      return Result<ToolResult>(ToolResult::text("deleted " + std::string(a.at("path").as_string())));
    });
    add({"hang", "", "runs until cancelled", {}}, [this](const json::value&, const CallContext& ctx) {
      {
        std::lock_guard lock(mutex);
        hang_started = true;
      }
      cv.notify_all();
      for (int i = 0; i < 2000 && !ctx.cancel.stop_requested(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return Result<ToolResult>(ctx.cancel.stop_requested() ? Error{ErrorCode::cancelled, "hang was cancelled"} : Error{ErrorCode::timeout, "never cancelled"});
    });
  }
};

Principal user(std::string id, std::vector<std::string> permissions) {
  Principal p;
  p.kind = Principal::Kind::user;
  p.id = std::move(id);
  p.permissions = std::move(permissions);
  return p;
}

std::shared_ptr<ModelClient> client_for(const MockLlm& llm, std::string name = "mock") {
  ProviderSpec p;
  p.name = std::move(name);
  p.base_url = llm.base_url();
  p.default_model = "mock-default";
  p.retry_backoff = std::chrono::milliseconds(1);
  auto c = make_openai_client(p);
  REQUIRE(c);
  return *c;
}

AgentSpec agent(std::vector<std::string> tools) {
  AgentSpec a;
  a.name = "helper";
  a.system = "You help.";
  a.tools = std::move(tools);
  a.owner = "alice";
  return a;
}

struct Fixture {
  MockLlm llm{kRules};
  Tools tools;
  std::shared_ptr<AgentRunStore> store = make_memory_agent_run_store();
  std::shared_ptr<ModelClient> model = client_for(llm);
  Principal alice = user("alice", {"tools.call:*"});

  AgentRuntimeOptions options() {
    AgentRuntimeOptions o;
    o.tools = &tools.registry;
    o.hooks = &tools.hooks;
    o.store = store;
    o.models = [this](const AgentSpec&) { return Result<std::shared_ptr<ModelClient>>(model); };
    return o;
  }
  std::vector<AgentEvent> events(const AgentRun& run) { return *store->events(run.tenant, run.id); }
  std::vector<std::string> types(const AgentRun& run) {
    std::vector<std::string> out;
    for (const auto& e : events(run)) out.push_back(e.type);
    return out;
  }
};

RunRequest task(std::string input) {
  RunRequest r;
  r.input = std::move(input);
  return r;
}

}  // namespace

TEST_CASE("an agent answers a task in several steps with two tools, and the transcript says how") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto a = agent({"add", "echo"});
  a.model = "job-model-7";  // the model is the agent's, and reaches the provider
  auto run = runtime.run(a, f.alice, task("please add then echo"));
  REQUIRE(run);
  CHECK_MESSAGE(run->status == AgentRunStatus::succeeded, (run->error ? run->error->to_string() : ""));
  CHECK(run->output == "final: sum=5");
  CHECK(run->steps == 3);
  CHECK(run->model == "job-model-7");
  CHECK(run->usage.prompt == 60);
  CHECK(run->usage.completion == 20);
  // The conversation: system, user, call add, its result, call echo, its result, the answer.
  REQUIRE(run->messages.size() == 7);
  CHECK(run->messages[3].role == "tool");
  CHECK(run->messages[3].tool_call_id == "call_add");
  CHECK(run->messages[3].content == "5");
  CHECK(f.types(*run) == std::vector<std::string>{"run_started", "model_answer", "tool_call", "tool_result", "model_answer", "tool_call", "tool_result",
                                                   "model_answer", "run_finished"});
  // The tools ran as the agent, on behalf of its owner.
  CHECK(f.tools.principals == std::vector<std::string>{Principal{Principal::Kind::agent, "helper", {}, nullptr}.describe()});
  auto stored = f.store->run("", run->id);
  REQUIRE(stored);
  REQUIRE(stored->has_value());
  CHECK((*stored)->status == AgentRunStatus::succeeded);
}

TEST_CASE("the model sees only the agent's tools that its owner may call") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto names = [&](const AgentSpec& a, const Principal& owner) {
    std::vector<std::string> out;
    auto visible = runtime.visible_tools(a, owner);
    REQUIRE(visible);
    for (const auto& t : *visible) out.emplace_back(t.at("function").at("name").as_string());
    std::sort(out.begin(), out.end());
    return out;
  };
  CHECK(names(agent({"add", "echo"}), f.alice) == std::vector<std::string>{"add", "echo"});
  CHECK(names(agent({"*"}), user("bob", {"tools.call:echo"})) == std::vector<std::string>{"echo"});
  CHECK(names(agent({"add"}), user("carol", {})).empty());
  CHECK(names(agent({}), f.alice).empty());
}

TEST_CASE("tool calls of one step run at the same time") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto run = runtime.run(agent({"gate"}), f.alice, task("both at once"));
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::succeeded);
  std::vector<std::string> results;
  for (const auto& m : run->messages)
    if (m.role == "tool") results.push_back(m.tool_call_id + "=" + m.content);
  CHECK(results == std::vector<std::string>{"g1=met 1", "g2=met 2"});
}

TEST_CASE("a run stops at max_steps, and at its token budget") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto a = agent({"add"});
  a.max_steps = 3;
  auto run = runtime.run(a, f.alice, task("loop forever"));
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::failed);
  REQUIRE(run->error);
  CHECK(run->error->code == ErrorCode::resource_exhausted);
  CHECK(run->error->message.find("max_steps (3)") != std::string::npos);
  CHECK(run->steps == 3);
  CHECK(f.tools.add_calls == 3);

  a.max_steps = 15;
  a.token_budget = 400;  // each answer costs 150
  auto budget = runtime.run(a, f.alice, task("loop forever"));
  REQUIRE(budget);
  CHECK(budget->status == AgentRunStatus::failed);
  CHECK(budget->error->message.find("token budget (400)") != std::string::npos);
  CHECK(budget->steps == 3);
}

TEST_CASE("a failing tool and malformed arguments go back to the model as the tool's result") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto run = runtime.run(agent({"broken"}), f.alice, task("try the broken tool"));
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::succeeded);
  CHECK(run->output == "final: error: plugin_error: the disk is on fire");

  auto bad = runtime.run(agent({"add"}), f.alice, task("bad arguments"));
  REQUIRE(bad);
  CHECK(bad->status == AgentRunStatus::succeeded);
  CHECK(bad->output.find("final: error: the arguments are not valid JSON") == 0);
  CHECK(f.tools.add_calls == 0);
}

TEST_CASE("a tool the agent may not call, or that does not exist, is refused and never runs") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto run = runtime.run(agent({"add"}), f.alice, task("call something odd"));
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::succeeded);
  CHECK(f.tools.secret_calls == 0);
  std::vector<std::string> results;
  for (const auto& m : run->messages)
    if (m.role == "tool") results.push_back(m.content);
  REQUIRE(results.size() == 2);
  CHECK(results[0] == "error: tool 'secret' does not exist or this agent may not call it; the tools it may call are: add");
  CHECK(results[1].find("tool 'no_such_tool' does not exist") != std::string::npos);
}

TEST_CASE("a destructive call waits for approval: approved, it runs with the approved arguments, once") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto a = agent({"delete_file", "add"});
  a.name = "janitor";
  auto run = runtime.run(a, f.alice, task("delete it"));
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::awaiting_approval);
  CHECK(f.tools.delete_calls == 0);
  CHECK(f.tools.add_calls == 1);  // the step's other call did not wait
  auto pending = runtime.approvals("");
  REQUIRE(pending);
  REQUIRE(pending->size() == 1);
  const auto approval = pending->front();
  CHECK(approval.tool == "delete_file");
  CHECK(json::serialize(approval.arguments) == R"({"path":"/srv/old.log"})");
  CHECK(approval.approvers == std::vector<std::string>{"agents.approve:janitor"});

  // Someone without the grant may not decide.
  auto refused = runtime.decide("", approval.id, true, user("mallory", {"tools.call:*"}), "mallory");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::permission_denied);

  auto decided = runtime.decide("", approval.id, true, user("bob", {"agents.approve:janitor"}), "bob");
  REQUIRE(decided);
  auto done = runtime.wait("", run->id, std::chrono::seconds(30));
  REQUIRE(done);
  CHECK(done->status == AgentRunStatus::succeeded);
  CHECK(done->output == "final: deleted /srv/old.log");
  CHECK(f.tools.deleted == std::vector<std::string>{"/srv/old.log"});

  // Used up.
  auto again = runtime.decide("", approval.id, true, user("bob", {"agents.approve:janitor"}), "bob");
  REQUIRE_FALSE(again);
  CHECK(again.error().code == ErrorCode::not_found);
  CHECK(f.tools.delete_calls == 1);
  auto t = f.types(*done);
  CHECK(std::count(t.begin(), t.end(), "approval_requested") == 1);
  CHECK(std::count(t.begin(), t.end(), "approval_decided") == 1);
}

TEST_CASE("a denied call answers the model with the denial; the tool never runs") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto a = agent({"delete_file", "add"});
  auto run = runtime.run(a, f.alice, task("delete it"));
  REQUIRE(run);
  REQUIRE(run->status == AgentRunStatus::awaiting_approval);
  auto pending = *runtime.approvals("");
  REQUIRE(pending.size() == 1);
  REQUIRE(runtime.decide("", pending[0].id, false, f.alice, "alice", "not that file"));  // the owner may decide
  auto done = runtime.wait("", run->id, std::chrono::seconds(30));
  REQUIRE(done);
  CHECK(done->status == AgentRunStatus::succeeded);
  CHECK(done->output == "final: error: the call was denied by alice: not that file");
  CHECK(f.tools.delete_calls == 0);
}

TEST_CASE("a run waiting for approval survives a restart and resumes as its owner is now") {
  Fixture f;
  std::string run_id, approval_id;
  {
    AgentRuntime before(f.options());
    auto run = before.run(agent({"delete_file", "add"}), f.alice, task("delete it"));
    REQUIRE(run);
    REQUIRE(run->status == AgentRunStatus::awaiting_approval);
    run_id = run->id;
    approval_id = run->pending.at(0).id;
  }
  auto options = f.options();
  std::vector<std::string> asked;
  options.owner = [&](std::string_view tenant, std::string_view owner) -> Result<Principal> {
    asked.emplace_back(owner);
    return user(std::string(owner), {"tools.call:*"});
  };
  AgentRuntime after(options);
  REQUIRE(after.restore());
  auto pending = *after.approvals("");
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == approval_id);
  REQUIRE(after.decide("", approval_id, true, user("bob", {"agents.approve:*"}), "bob"));
  auto done = after.wait("", run_id, std::chrono::seconds(30));
  REQUIRE(done);
  CHECK(done->status == AgentRunStatus::succeeded);
  CHECK(asked == std::vector<std::string>{"alice"});
  CHECK(f.tools.deleted == std::vector<std::string>{"/srv/old.log"});
}

TEST_CASE("a run left running by a crash is marked failed at restore") {
  Fixture f;
  AgentRun crashed;
  crashed.id = "r1";
  crashed.agent = "helper";
  crashed.status = AgentRunStatus::running;
  REQUIRE(f.store->put_run(crashed));
  AgentRuntime runtime(f.options());
  REQUIRE(runtime.restore());
  auto r = f.store->run("", "r1");
  REQUIRE(r);
  CHECK((*r)->status == AgentRunStatus::failed);
  CHECK((*r)->error->code == ErrorCode::unavailable);
}

TEST_CASE("agent.before_run may veto a run or rewrite its input; agent.* hooks see the run") {
  Fixture f;
  AgentRuntime runtime(f.options());
  std::vector<std::string> seen;
  auto veto = *f.tools.hooks.subscribe("agent.before_run", [&](const HookEvent& e) -> HookReply {
    const auto input = std::string(e.payload.at("input").as_string());
    if (input.find("forbidden") != std::string::npos) return HookReply::veto("no forbidden tasks");
    if (input == "rewrite me") return json::value(json::object{{"input", "please add then echo"}});
    return {};
  });
  auto steps = *f.tools.hooks.subscribe("agent.reasoning_step", [&](const HookEvent& e) -> HookReply {
    seen.push_back("step " + std::to_string(e.payload.at("step").as_uint64()));
    return {};
  });
  auto after = *f.tools.hooks.subscribe("agent.after_run", [&](const HookEvent& e) -> HookReply {
    seen.push_back(std::string(e.payload.at("status").as_string()));
    return {};
  });
  auto refused = runtime.run(agent({"add"}), f.alice, task("something forbidden"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::permission_denied);
  CHECK(refused.error().message.find("no forbidden tasks") != std::string::npos);

  auto run = runtime.run(agent({"add", "echo"}), f.alice, task("rewrite me"));
  REQUIRE(run);
  CHECK(run->input == "please add then echo");
  CHECK(run->output == "final: sum=5");
  CHECK(seen == std::vector<std::string>{"step 1", "step 2", "step 3", "succeeded"});
}

TEST_CASE("a run is cancelled mid-call") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto id = runtime.start(agent({"hang"}), f.alice, task("wait for cancel"));
  REQUIRE(id);
  {
    std::unique_lock lock(f.tools.mutex);
    REQUIRE(f.tools.cv.wait_for(lock, std::chrono::seconds(30), [&] { return f.tools.hang_started; }));
  }
  REQUIRE(runtime.cancel("", *id));
  auto done = runtime.wait("", *id, std::chrono::seconds(30));
  REQUIRE(done);
  CHECK(done->status == AgentRunStatus::cancelled);
  auto unknown = runtime.cancel("", "nope");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == ErrorCode::not_found);
}

TEST_CASE("a model that writes its tool call as text is understood") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto run = runtime.run(agent({"add"}), f.alice, task("an old model"));
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::succeeded);
  CHECK(run->output == "final: 9");
  CHECK(f.tools.add_calls == 1);
  // Text naming no offered tool is an answer, not a call.
  CHECK(read_text_tool_calls(R"({"name": "rm", "arguments": {}})", {"add"}).empty());
  auto calls = read_text_tool_calls(R"(Sure: {"function": {"name": "add", "arguments": "{\"a\":1}"}} and {"tool": "echo", "args": {"text": "}"}})", {"add", "echo"});
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].arguments == R"({"a":1})");
  CHECK(calls[1].name == "echo");
  CHECK(calls[1].arguments == R"({"text":"}"})");
}

TEST_CASE("streamed text arrives piece by piece and adds up to the answer") {
  Fixture f;
  AgentRuntime runtime(f.options());
  auto request = task("hello there, stream this");
  request.stream_text = true;
  auto run = runtime.run(agent({}), f.alice, request);
  REQUIRE(run);
  CHECK(run->status == AgentRunStatus::succeeded);
  CHECK(run->output == "final: hello there, stream this");
  std::string joined;
  int pieces = 0;
  for (const auto& e : f.events(*run))
    if (e.type == "text") {
      joined += e.data.at("text").as_string();
      ++pieces;
    }
  CHECK(joined == run->output);
  CHECK(pieces > 3);
}

TEST_CASE("a fallback chain moves on when a provider refuses connections or answers 500") {
  MockLlm llm(kRules);
  ProviderSpec down;
  down.name = "down";
  down.base_url = "http://127.0.0.1:" + std::to_string(xcore_test::free_port()) + "/v1";  // nobody listens
  down.max_retries = 1;
  down.retry_backoff = std::chrono::milliseconds(1);
  auto first = *make_openai_client(down);
  auto second = client_for(llm, "backup");
  auto chain = make_fallback_client({{first, ""}, {second, "backup-model"}});
  ChatRequest r;
  r.messages = {ChatMessage::user("hi")};
  auto answer = chain->complete(r);
  REQUIRE(answer);
  CHECK(answer->provider == "backup");
  CHECK(answer->model == "backup-model");
  CHECK(answer->message.content == "final: hi");

  // A provider answering 500 (after its retries) hands over too; the error of the last names them all.
  r.messages = {ChatMessage::user("answer 500 please")};
  auto direct = second->complete(r);
  REQUIRE_FALSE(direct);
  CHECK(direct.error().code == ErrorCode::unavailable);
  CHECK(direct.error().message == "provider 'backup' answered HTTP 500: the model crashed");
  CHECK(direct.error().message.find("500") != std::string::npos);
  auto both = make_fallback_client({{second, ""}, {client_for(llm, "third"), ""}})->complete(r);
  REQUIRE_FALSE(both);
  CHECK(both.error().message.find("every model provider failed (backup: ") == 0);
  CHECK(both.error().message.find("third: provider 'third' answered HTTP 500") != std::string::npos);

  r.messages = {ChatMessage::user("fine now")};
  auto recovered = make_fallback_client({{first, ""}, {second, ""}})->complete(r);
  REQUIRE(recovered);
  CHECK(recovered->provider == "backup");
}

// mock-llm cannot set response headers, so a Retry-After answer comes from a small server of the test's.
TEST_CASE("429 with Retry-After is retried after the delay the provider asked for") {
  httplib::Server server;
  std::atomic<int> hits{0};
  server.Post("/v1/chat/completions", [&](const httplib::Request&, httplib::Response& res) {
    if (hits++ == 0) {
      res.status = 429;
      res.set_header("Retry-After", "7");
      res.set_content(R"({"error":{"message":"slow down"}})", "application/json");
      return;
    }
    res.set_content(R"({"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})", "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  ProviderSpec p;
  p.name = "limited";
  p.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  std::vector<std::chrono::milliseconds> waited;
  ModelClientOptions o;
  o.sleep = [&](std::chrono::milliseconds d, std::stop_token) { waited.push_back(d); };
  auto client = *make_openai_client(p, o);
  ChatRequest r;
  r.messages = {ChatMessage::user("hi")};
  auto answer = client->complete(r);
  CHECK(answer);
  if (answer) {
    CHECK(answer->attempts == 2);
    CHECK(answer->message.content == "ok");
  }
  CHECK(waited == std::vector<std::chrono::milliseconds>{std::chrono::seconds(7)});

  // A Retry-After beyond what the client waits is an error at once, saying so.
  hits = 0;
  p.max_retry_delay = std::chrono::seconds(5);
  waited.clear();
  auto impatient = (*make_openai_client(p, o))->complete(r);
  REQUIRE_FALSE(impatient);
  CHECK(impatient.error().code == ErrorCode::resource_exhausted);
  CHECK(impatient.error().message.find("retry after 7 s") != std::string::npos);
  CHECK(waited.empty());
  server.stop();
  serving.join();
}

TEST_CASE("competencies enable tools, with their prerequisites, and go with their plugin") {
  CompetencyRegistry registry;
  auto math = Competency::from_json(json::parse(R"({"id":"math","name":"Arithmetic","category":"analysis","level":2,"tools":["add"]})"));
  REQUIRE(math);
  auto report = Competency::from_json(json::parse(R"({"id":"report","category":"writing","prerequisites":["math"],"tools":["echo"]})"));
  REQUIRE(report);
  report->plugin = "writer";
  REQUIRE(registry.add(*math));
  REQUIRE(registry.add(*report));
  CHECK(registry.add(*math).error().code == ErrorCode::already_exists);
  auto tools = registry.tools_for({"report"});
  REQUIRE(tools);
  CHECK(*tools == std::vector<std::string>{"echo", "add"});
  CHECK(registry.tools_for({"nope"}).error().code == ErrorCode::not_found);
  CHECK(registry.list("", "writing").size() == 1);
  registry.remove_plugin("writer");
  CHECK(registry.list().size() == 1);

  auto bad = Competency::from_json(json::parse(R"({"id":"x","level":9})"));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "competency.level: expected an integer from 1 to 5");

  // An agent given a competency sees the tools it enables.
  Fixture f;
  auto options = f.options();
  options.competencies = &registry;
  AgentRuntime runtime(options);
  auto a = agent({});
  a.competencies = {"math"};
  auto visible = runtime.visible_tools(a, f.alice);
  REQUIRE(visible);
  REQUIRE(visible->size() == 1);
  CHECK(visible->at(0).at("function").at("name") == "add");
}

TEST_CASE("agents, providers and runs read from JSON name the field that is wrong") {
  auto bad = AgentSpec::from_json(json::parse(R"({"name":"a","max_steps":0})"));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "agent.max_steps: 0 is outside 1..200");
  CHECK(AgentSpec::from_json(json::parse(R"({"name":"a","tools":"add"})")).error().message == "agent.tools: expected a list of strings");
  CHECK(AgentSpec::from_json(json::parse(R"({"name":"a","colour":"red"})")).error().message.find("agent.colour: unknown field") == 0);
  CHECK(AgentSpec::from_json(json::parse(R"({"name":"a b"})")).error().message.find("agent.name") == 0);
  auto ok = AgentSpec::from_json(json::parse(R"({"name":"a","tools":["add","category:math"],"approval":{"tools":["fs.*"]},"temperature":0.5})"));
  REQUIRE(ok);
  auto back = AgentSpec::from_json(ok->to_json());
  REQUIRE(back);
  CHECK(back->approval.tools == std::vector<std::string>{"fs.*"});
  CHECK(ProviderSpec::from_json(json::parse(R"({"name":"p","timeout_ms":5})")).error().message == "provider.timeout_ms: 5 is outside 100..3600000");
  CHECK(make_openai_client(*ProviderSpec::from_json(json::parse(R"({"name":"p","base_url":"ftp://x"})")))
            .error()
            .message.find("provider 'p': base_url 'ftp://x': the scheme must be http or https") == 0);
  CHECK(ChatMessage::from_json(json::parse(R"({"role":"wizard"})")).error().message == "message.role: 'wizard' is not system, user, assistant or tool");
}

// https providers: the certificate is verified, against the CA given or the system's.
TEST_CASE("an https provider is reached when its certificate verifies, and refused naming the CA otherwise") {
  xcore_test::TempDir tmp;
  const auto cert = (tmp / "cert.pem").string(), key = (tmp / "key.pem").string();
  const auto made = xcore_test::run_command("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + key +
                                            " -out " + cert + " 2>&1");
  REQUIRE_MESSAGE(std::filesystem::exists(cert), made);
  httplib::SSLServer server(cert.c_str(), key.c_str());
  REQUIRE(server.is_valid());
  server.Post("/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"message":{"role":"assistant","content":"over tls"},"finish_reason":"stop"}]})", "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  ProviderSpec p;
  p.name = "tls";
  p.base_url = "https://127.0.0.1:" + std::to_string(port) + "/v1";
  p.max_retries = 0;
  ChatRequest r;
  r.messages = {ChatMessage::user("hi")};
  auto unknown_ca = (*make_openai_client(p))->complete(r);
  REQUIRE_FALSE(unknown_ca);
  CHECK_MESSAGE(unknown_ca.error().message.find("did not verify") != std::string::npos, unknown_ca.error().message);
  p.ca_file = cert;
  auto trusted = (*make_openai_client(p))->complete(r);
  CHECK_MESSAGE(trusted, (trusted ? "" : trusted.error().message));
  if (trusted) CHECK(trusted->message.content == "over tls");
  server.stop();
  serving.join();
}
