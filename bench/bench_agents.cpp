// Agent step overhead: an agent run of 5 tool steps (6 model requests) against an OpenAI-compatible server,
// beside, in the same process and run, the same 6 requests sent directly over HTTP (the exact bodies the run
// sent, on a keep-alive connection) and 5 direct invocations of the same tool. What the run costs beyond
// those two is xcore's own share. Prints one JSON line of medians (microseconds).
//   bench_agents BASE_URL [RUNS]
#include <xcore/agents.hpp>
#include <xcore/tools.hpp>

#include <httplib.h>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Records the bodies the run sends, so the direct round trips send the same bytes.
class RecordingClient final : public xcore::ModelClient {
 public:
  explicit RecordingClient(std::shared_ptr<xcore::ModelClient> inner) : inner_(std::move(inner)) {}
  std::string_view name() const override { return inner_->name(); }
  xcore::Result<xcore::ChatResponse> complete(const xcore::ChatRequest& r) override {
    if (recording) {
      requests.push_back(r);
      json::array messages;
      for (const auto& m : r.messages) messages.push_back(m.to_json());
      json::object body{{"model", r.model.empty() ? "bench-model" : r.model}, {"messages", std::move(messages)}};
      if (!r.tools.empty()) body["tools"] = r.tools;
      bodies.push_back(json::serialize(body));
    }
    const auto t0 = Clock::now();
    auto answer = inner_->complete(r);
    in_client_us += std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    return answer;
  }
  double in_client_us = 0;  // time spent in the model client, summed
  bool recording = false;
  std::vector<std::string> bodies;
  std::vector<xcore::ChatRequest> requests;
  std::shared_ptr<xcore::ModelClient> inner_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_agents BASE_URL [RUNS]\n");
    return 2;
  }
  const std::string base = argv[1];
  const int runs = argc > 2 ? std::atoi(argv[2]) : 200;

  xcore::ToolRegistry tools;
  auto add = tools.add({"add", "", "adds two numbers",
                        json::object{{"type", "object"},
                                     {"properties", json::object{{"a", json::object{{"type", "number"}}}, {"b", json::object{{"type", "number"}}}}},
                                     {"required", json::array{"a", "b"}}}},
                       [](const json::value& a, const xcore::CallContext&) {
                         return xcore::Result<xcore::ToolResult>(xcore::ToolResult::text(std::to_string(a.at("a").to_number<double>() + a.at("b").to_number<double>())));
                       });
  if (!add) return 1;
  xcore::ProviderSpec p;
  p.name = "bench";
  p.base_url = base;
  p.default_model = "bench-model";
  auto client = std::make_shared<RecordingClient>(*xcore::make_openai_client(p));
  xcore::AgentRuntimeOptions o;
  o.tools = &tools;
  o.models = [&](const xcore::AgentSpec&) { return xcore::Result<std::shared_ptr<xcore::ModelClient>>(client); };
  xcore::AgentRuntime runtime(std::move(o));
  xcore::AgentSpec agent;
  agent.name = "bench";
  agent.tools = {"add"};
  xcore::Principal owner;
  owner.kind = xcore::Principal::Kind::user;
  owner.id = "bench";
  owner.permissions = {"tools.call:*"};

  auto run_once = [&] {
    xcore::RunRequest r;
    r.input = "five steps please";
    auto run = runtime.run(agent, owner, std::move(r));
    if (!run || run->status != xcore::AgentRunStatus::succeeded || run->steps != 6) {
      std::fprintf(stderr, "the run did not take 5 tool steps: %s\n", run ? (run->error ? run->error->message.c_str() : "?") : run.error().message.c_str());
      std::exit(1);
    }
  };
  client->recording = true;
  run_once();
  client->recording = false;
  const auto bodies = client->bodies;
  const auto requests = client->requests;
  auto client_only = [&] {  // the same requests through xcore's model client, without the loop
    for (const auto& r : requests)
      if (!client->inner_->complete(r)) std::exit(1);
  };

  httplib::Client http(base.substr(0, base.find('/', base.find("://") + 3)));
  http.set_keep_alive(true);
  http.set_tcp_nodelay(true);
  const std::string path = base.substr(base.find('/', base.find("://") + 3)) + "/chat/completions";
  auto direct_round_trips = [&] {
    for (const auto& b : bodies) {
      auto r = http.Post(path, b, "application/json");
      if (!r || r->status != 200) {
        std::fprintf(stderr, "a direct request failed\n");
        std::exit(1);
      }
    }
  };
  const auto args = json::value(json::object{{"a", 1}, {"b", 2}});
  const auto ctx = xcore::CallContext::host();
  auto direct_tools = [&] {
    for (int i = 0; i < 5; ++i)
      if (!tools.invoke("add", args, ctx)) std::exit(1);
  };

  for (int i = 0; i < 20; ++i) {  // warm up all three
    run_once();
    direct_round_trips();
    direct_tools();
    client_only();
  }
  std::vector<double> agent_us, http_us, tool_us, client_us, loop_us;
  auto time = [](auto&& f) {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  };
  // Interleaved, so that the machine's noise falls on all three alike.
  for (int i = 0; i < runs; ++i) {
    client->in_client_us = 0;
    agent_us.push_back(time(run_once));
    loop_us.push_back(agent_us.back() - client->in_client_us);
    http_us.push_back(time(direct_round_trips));
    tool_us.push_back(time(direct_tools));
    client_us.push_back(time(client_only));
  }
  std::printf("{\"agent_run_us\":%.1f,\"direct_http_us\":%.1f,\"direct_tools_us\":%.1f,\"model_client_us\":%.1f,\"loop_us\":%.1f,\"requests\":%zu}\n",
              median(agent_us), median(http_us), median(tool_us), median(client_us), median(loop_us), bodies.size());
  return 0;
}
