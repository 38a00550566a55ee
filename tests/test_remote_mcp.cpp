// `url:` plugins: MCP servers reached over Streamable HTTP join a Manager like any plugin. Against the MCP
// project's reference server (server-everything in its Streamable HTTP mode) and against our own /mcp;
// a server that dies fails calls with `unavailable` and is used again when it returns. And the server's
// policy over where a plugin registered over the API may connect.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <xcore/manager.hpp>

#include <atomic>
#include <mutex>

using namespace xcore_test;
using xcore::CallContext;
using xcore::ErrorCode;

namespace {

// server-everything in Streamable HTTP mode, on `port`, until destroyed (or stop()).
class EverythingServer {
 public:
  explicit EverythingServer(int port) : port_(port) { start(); }
  ~EverythingServer() { stop(); }
  void start() {
    const auto script = peer_script("server-everything");
    REQUIRE_MESSAGE(fs::exists(script), "run tests/peers/install.sh first");
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = spawn_process({"/usr/bin/env", "node", script.string(), "streamableHttp"}, {"PORT=" + std::to_string(port_), "PATH=/usr/local/bin:/usr/bin:/bin"},
                         out[1], {}, /*both=*/true);
    ::close(out[1]);
    // It says when it listens (bounded by the pipe closing if it dies first).
    std::string seen;
    char buf[256];
    while (seen.find("listening on port") == std::string::npos) {
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      seen.append(buf, static_cast<std::size_t>(n));
    }
    output_ = out[0];  // kept open (and drained by nobody: it writes little) so that it never gets SIGPIPE
    REQUIRE_MESSAGE(seen.find("listening on port") != std::string::npos, seen);
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    ::close(output_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/mcp"; }

 private:
  int port_;
  pid_t pid_ = -1;
  int output_ = -1;
};

// The caller of a call: what the tool sent it while it ran, and its answer to sampling.
struct RecordingPeer final : xcore::CallPeer {
  std::mutex mutex;
  std::vector<double> progress_seen;
  std::vector<std::string> requests;
  void progress(double done, std::optional<double>, std::string_view) override {
    std::lock_guard lock(mutex);
    progress_seen.push_back(done);
  }
  void log(std::string_view, std::string_view, const json::value&) override {}
  xcore::Result<json::value> request(std::string_view method, const json::object&, const CallContext&) override {
    std::lock_guard lock(mutex);
    requests.emplace_back(method);
    if (method == "roots/list") return json::value(json::object{{"roots", json::array()}});  // the server may ask while a call runs
    return json::value(json::object{{"role", "assistant"}, {"content", {{"type", "text"}, {"text", "sampled by the test"}}}, {"model", "test-model"}});
  }
};

std::string text_of(const xcore::ToolResult& r) {
  std::string out;
  for (const auto& c : r.content)
    if (c.is_object() && c.as_object().contains("text")) out += std::string(c.at("text").as_string());
  return out;
}

struct RemoteHost {
  TempDir tmp;
  CapturedLog log;
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
  std::map<std::string, std::string> secrets;
  std::unique_ptr<xcore::Manager> manager;

  void start(const std::string& manifest) {
    write_file(tmp / "plugins" / "remote" / "plugin.yaml", manifest);
    auto o = test_options(tmp, tmp / "plugins", log);
    o.clock = [this] { return now; };
    o.secrets = [this](std::string_view, std::string_view name) -> xcore::Result<std::string> {
      auto it = secrets.find(std::string(name));
      if (it == secrets.end()) return xcore::Error{ErrorCode::not_found, "no such secret"};
      return it->second;
    };
    manager = std::make_unique<xcore::Manager>(std::move(o));
    for (const auto& p : manager->discover().problems) problems += p.message + "\n";
  }
  std::string problems;  // what discovery found wrong
};

}  // namespace

TEST_CASE("a url: plugin is server-everything over Streamable HTTP: its tools, progress and sampling reach the caller; it fails while the server is down and comes back") {
  const int port = free_port();
  EverythingServer everything(port);
  RemoteHost h;
  h.start("id: remote\nversion: 1.0.0\nurl: " + everything.url() + "\n");
  auto enabled = h.manager->enable("remote");
  REQUIRE_MESSAGE(enabled.ok(), enabled.error().message);
  CHECK(h.manager->info("remote")->runner.at("kind") == "remote_mcp");
  REQUIRE(h.manager->tools().find("remote.echo"));

  auto echoed = h.manager->call_tool("remote.echo", J(R"({"message":"over http"})"), CallContext::host());
  REQUIRE_MESSAGE(echoed.ok(), echoed.error().message);
  CHECK(text_of(*echoed) == "Echo: over http");

  // Progress and a request to the caller's client go to the caller of the call.
  auto peer = std::make_shared<RecordingPeer>();
  auto ctx = CallContext::host();
  ctx.peer = peer;
  auto long_op = h.manager->call_tool("remote.trigger-long-running-operation", J(R"({"duration":0.3,"steps":3})"), ctx);
  REQUIRE_MESSAGE(long_op.ok(), long_op.error().message);
  CHECK(peer->progress_seen == std::vector<double>{1, 2, 3});
  auto sampled = h.manager->call_tool("remote.trigger-sampling-request", J(R"({"prompt":"hello"})"), ctx);
  REQUIRE_MESSAGE(sampled.ok(), sampled.error().message);
  CHECK(std::count(peer->requests.begin(), peer->requests.end(), "sampling/createMessage") == 1);
  CHECK(text_of(*sampled).find("sampled by the test") != std::string::npos);
  // Its resources and prompts join the Manager's.
  auto resources = h.manager->serve_mcp("resources/list", J("{}"), CallContext::host());
  REQUIRE(resources.ok());
  CHECK_FALSE(resources->at("resources").as_array().empty());

  // The server dies: calls fail with `unavailable`, and fail at once while the backoff lasts.
  everything.stop();
  auto down = h.manager->call_tool("remote.echo", J(R"({"message":"x"})"), CallContext::host());
  REQUIRE_FALSE(down.ok());
  CHECK(down.error().code == ErrorCode::unavailable);
  CHECK(down.error().message.find(everything.url()) != std::string::npos);
  auto waiting = h.manager->call_tool("remote.echo", J(R"({"message":"x"})"), CallContext::host());
  CHECK(waiting.error().message.find("trying again in") != std::string::npos);
  // It comes back on the same port: once the backoff has passed, the next call opens a new session.
  everything.start();
  h.now += std::chrono::minutes(1);
  auto again = h.manager->call_tool("remote.echo", J(R"({"message":"back"})"), CallContext::host());
  REQUIRE_MESSAGE(again.ok(), again.error().message);
  CHECK(text_of(*again) == "Echo: back");
}

TEST_CASE("a url: plugin over our own /mcp, with its bearer token from the secrets store") {
  TempDir tmp;
  ServerProcess server(tmp / "data");
  Api api(server.port());
  const auto admin = api.login("admin", kAdminPassword);
  auto made = api.send("POST", "/api/v1/tokens", R"({"name":"remote","role":"operator","expires_in":600})", admin);
  REQUIRE_MESSAGE(made.status == 201, json::serialize(made.body));
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/mcp";
  const std::string manifest = "id: remote\nversion: 1.0.0\nurl: " + url + "\nbearer_secret: xcore-token\npermissions: [secrets.read:xcore-token]\n";

  SUBCASE("the token opens the tools") {
    RemoteHost h;
    h.secrets["xcore-token"] = std::string(made.body.at("token").as_string());
    h.start(manifest);
    auto enabled = h.manager->enable("remote");
    REQUIRE_MESSAGE(enabled.ok(), enabled.error().message);
    auto r = h.manager->call_tool("remote.echo", J(R"({"text":"through two xcores"})"), CallContext::host());
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(json::serialize(r->structured).find("through two xcores") != std::string::npos);
  }
  SUBCASE("a wrong token is refused by name") {
    RemoteHost h;
    h.secrets["xcore-token"] = "not-a-token";
    h.start(manifest);
    auto enabled = h.manager->enable("remote");
    REQUIRE_FALSE(enabled.ok());
    CHECK(enabled.error().code == ErrorCode::unauthenticated);
    CHECK(enabled.error().message.find(url) != std::string::npos);
  }
  SUBCASE("a manifest that reads a secret without the grant is refused") {
    RemoteHost h;
    h.start("id: remote\nversion: 1.0.0\nurl: " + url + "\nbearer_secret: xcore-token\n");
    CHECK_FALSE(h.manager->enable("remote").ok());
    INFO(h.problems);
    CHECK(h.problems.find("field 'bearer_secret': the secret 'xcore-token' is read for the plugin: add 'secrets.read:xcore-token' to its permissions") !=
          std::string::npos);
  }
}

TEST_CASE("POST /plugins/dynamic takes url: manifests, reaching only allowed hosts and, unless allowed, public addresses") {
  const int port = free_port();
  EverythingServer everything(port);
  const std::string body = R"({"id":"remote","version":"1.0.0","url":")" + everything.url() + R"("})";

  SUBCASE("no host allowed: refused, naming the setting") {
    TempDir tmp;
    ServerProcess server(tmp / "data");
    Api api(server.port());
    const auto admin = api.login("admin", kAdminPassword);
    auto r = api.send("POST", "/api/v1/plugins/dynamic", body, admin);
    CHECK(r.status == 403);
    CHECK(json::serialize(r.body).find("remote_plugins.allowed_hosts") != std::string::npos);
  }
  SUBCASE("an allowed host that is loopback: refused unless private addresses are allowed") {
    TempDir tmp;
    ServerProcess server(tmp / "data", {"XCORE_REMOTE_ALLOWED_HOSTS=127.0.0.1,tools.example.com"});
    Api api(server.port());
    const auto admin = api.login("admin", kAdminPassword);
    auto r = api.send("POST", "/api/v1/plugins/dynamic", body, admin);
    CHECK(r.status == 403);
    CHECK(json::serialize(r.body).find("resolves to 127.0.0.1, a loopback, private or link-local address") != std::string::npos);
    // A host not listed is refused before it is looked up.
    auto other = api.send("POST", "/api/v1/plugins/dynamic", R"({"id":"meta","version":"1.0.0","url":"http://169.254.169.254/latest"})", admin);
    CHECK(other.status == 403);
    CHECK(json::serialize(other.body).find("'169.254.169.254' is not among the hosts") != std::string::npos);
  }
  SUBCASE("allowed host and private addresses allowed: registered, and its tools answer") {
    TempDir tmp;
    ServerProcess server(tmp / "data", {"XCORE_REMOTE_ALLOWED_HOSTS=127.0.0.1", "XCORE_REMOTE_ALLOW_PRIVATE=1"});
    Api api(server.port());
    const auto admin = api.login("admin", kAdminPassword);
    auto r = api.send("POST", "/api/v1/plugins/dynamic", body, admin);
    REQUIRE_MESSAGE(r.status == 201, json::serialize(r.body));
    auto echoed = api.send("POST", "/api/v1/tools/remote.echo/invoke", R"({"message":"via the API"})", admin);
    REQUIRE_MESSAGE(echoed.status == 200, json::serialize(echoed.body));
    CHECK(json::serialize(echoed.body).find("Echo: via the API") != std::string::npos);
  }
}
