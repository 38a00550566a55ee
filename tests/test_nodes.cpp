// Remote nodes: real xcore-node processes dialling a NodeHub on loopback; the command policy's checks.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <future>

#include <xcore/hooks.hpp>
#include <xcore/nodes.hpp>
#include <xcore/tools.hpp>

#include "net/websocket.hpp"
#include "nodes/command_policy.hpp"
#include "support/node_host.hpp"
#include "support/node_process.hpp"
#include "support/process.hpp"
#include "support/test_support.hpp"

using namespace xcore;
using xcore_test::J;
using xcore_test::TempDir;
using xcore_test::NodeProcess;
using xcore_test::eventually;
using xcore_test::Host;
namespace fs = std::filesystem;

namespace {

CallContext caller(const std::string& tenant) {
  CallContext c;
  c.tenant = tenant;
  c.principal.kind = Principal::Kind::user;
  c.principal.id = "7";
  c.principal.permissions = {"tools.call:*"};
  return c;
}

}  // namespace

TEST_CASE("a node's tools join its tenant's registry as <node>.<tool>, are called like local ones, and leave with it") {
  TempDir tmp;
  fs::create_directories(tmp / "root/sub");
  xcore_test::write_file(tmp / "root/sub/hello.txt", "hello from the node");
  xcore_test::write_file(tmp / "secret.txt", "not yours");
  Host host;
  host.tokens["tok-a"] = NodeIdentity{"acme", "edge1"};
  host.start(host.options());
  auto& acme = host.tools("acme");
  auto& other = host.tools("globex");

  NodeProcess node(host.url(), "tok-a", "edge1", tmp / "node.log", {"--root", (tmp / "root").string(), "--label", "gpu"});
  // Its tools are registered first, then the hub lists it online.
  REQUIRE_MESSAGE(eventually([&] { return host.hub->find("acme", "edge1").has_value(); }), node.output());
  CHECK(acme.find("edge1.read_file", "acme").has_value());
  CHECK_FALSE(other.find("edge1.read_file", "globex"));  // another tenant's registry never sees it
  auto info = host.hub->find("acme", "edge1");
  REQUIRE(info);
  CHECK(info->labels == std::vector<std::string>{"gpu"});
  CHECK(std::find(info->tools.begin(), info->tools.end(), "edge1.system_stats") != info->tools.end());
  CHECK(std::find(info->tools.begin(), info->tools.end(), "edge1.exec_command") == info->tools.end());  // off by default
  CHECK_FALSE(host.hub->find("globex", "edge1"));

  // Called through the registry: permission gate, validation and metrics as for any tool.
  auto r = acme.invoke("edge1.read_file", J(R"({"path":"sub/hello.txt"})"), caller("acme"));
  REQUIRE(r);
  CHECK_FALSE(r->is_error);
  CHECK(r->structured.at("content") == "hello from the node");
  auto outside = acme.invoke("edge1.read_file", J(fmt::format(R"({{"path":"{}"}})", (tmp / "secret.txt").string())), caller("acme"));
  REQUIRE(outside);
  CHECK(outside->is_error);
  CHECK(json_text::serialize(outside->to_mcp()).find("outside the folders") != std::string::npos);
  auto dotdot = acme.invoke("edge1.read_file", J(R"({"path":"../secret.txt"})"), caller("acme"));
  REQUIRE(dotdot);
  CHECK(dotdot->is_error);
  auto bad_args = acme.invoke("edge1.read_file", J(R"({"path":3})"), caller("acme"));
  CHECK_FALSE(bad_args);  // the schema the node gave is checked here, before the node is asked
  CallContext nobody;
  nobody.tenant = "acme";
  CHECK(acme.invoke("edge1.system_stats", J("{}"), nobody).error().code == ErrorCode::permission_denied);
  CHECK(acme.find("edge1.read_file", "acme")->metrics.calls >= 3);

  node.kill();
  CHECK(eventually([&] { return !acme.find("edge1.read_file", "acme").has_value(); }, std::chrono::seconds(2)));
  CHECK_FALSE(host.hub->find("acme", "edge1"));
  std::lock_guard lock(host.mutex);
  CHECK(host.events == std::vector<std::string>{"acme/edge1 online", "acme/edge1 offline"});
}

TEST_CASE("a node killed mid-call fails that call with unavailable at once, and a restarted node comes back") {
  TempDir tmp;
  fs::create_directories(tmp / "root");
  xcore_test::write_file(tmp / "policy.json", R"({"rules": [{"allow": "/usr/bin/sleep"}, {"allow": "/usr/bin/echo"}]})");
  Host host;
  host.tokens["tok"] = NodeIdentity{"acme", "edge1"};
  host.start(host.options());
  auto& tools = host.tools("acme");
  std::vector<std::string> exec{"--root", (tmp / "root").string(), "--allow-exec", "--command-policy", (tmp / "policy.json").string()};
  auto node = std::make_unique<NodeProcess>(host.url(), "tok", "edge1", tmp / "node.log", exec);
  REQUIRE_MESSAGE(eventually([&] { return tools.find("edge1.exec_command", "acme").has_value(); }), node->output());

  auto echo = tools.invoke("edge1.exec_command", J(R"({"argv":["echo","hi"]})"), caller("acme"));
  REQUIRE(echo);
  CHECK(echo->structured.at("stdout") == "hi\n");

  std::atomic<bool> done{false};
  Result<ToolResult> slow = Error{ErrorCode::internal, "not run"};
  std::thread t([&] {
    slow = tools.invoke("edge1.exec_command", J(R"({"argv":["sleep","30"]})"), caller("acme"));
    done = true;
  });
  // The call is on the node (its sleep is running) when the node dies. Only the node's own child is looked
  // for, and ended: other tests may run a sleep of their own.
  std::string sleep_pid;
  REQUIRE(eventually([&] {
    sleep_pid = xcore_test::run_command(fmt::format("pgrep -P {} -x sleep", node->pid));
    return sleep_pid.find_first_of("0123456789") != std::string::npos;
  }));
  const auto killed_at = std::chrono::steady_clock::now();
  node->kill();
  REQUIRE(eventually([&] { return done.load(); }, std::chrono::seconds(5)));
  t.join();
  CHECK(std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(1));
  REQUIRE_FALSE(slow);
  CHECK(slow.error().code == ErrorCode::unavailable);
  CHECK(slow.error().message.find("edge1") != std::string::npos);
  (void)xcore_test::run_command("kill " + sleep_pid.substr(0, sleep_pid.find('\n')));
  CHECK_FALSE(tools.find("edge1.exec_command", "acme"));

  node = std::make_unique<NodeProcess>(host.url(), "tok", "edge1", tmp / "node2.log", exec);
  CHECK(eventually([&] { return tools.find("edge1.exec_command", "acme").has_value(); }));
}

TEST_CASE("deadlines and cancellation cross the wire") {
  TempDir tmp;
  fs::create_directories(tmp / "root");
  xcore_test::write_file(tmp / "policy.json", R"({"rules": [{"allow": "/usr/bin/sleep"}]})");
  Host host;
  host.tokens["tok"] = NodeIdentity{"acme", "edge1"};
  host.start(host.options());
  auto& tools = host.tools("acme");
  NodeProcess node(host.url(), "tok", "edge1", tmp / "node.log", {"--root", (tmp / "root").string(), "--allow-exec", "--command-policy", (tmp / "policy.json").string()});
  REQUIRE_MESSAGE(eventually([&] { return tools.find("edge1.exec_command", "acme").has_value(); }), node.output());

  auto ctx = caller("acme");
  ctx.with_deadline_in(std::chrono::milliseconds(300));
  auto late = tools.invoke("edge1.exec_command", J(R"({"argv":["sleep","20"]})"), ctx);
  // The node's own run of the command stops at the same deadline it was given; either side may say so first.
  if (late) {
    CHECK(late->is_error);
    CHECK(late->structured.at("timed_out") == true);
  } else {
    CHECK(late.error().code == ErrorCode::timeout);
  }

  std::stop_source stop;
  auto c2 = caller("acme");
  c2.cancel = stop.get_token();
  std::thread canceller([&] {
    (void)eventually([&] { return xcore_test::run_command(fmt::format("pgrep -P {} -x sleep", node.pid)).find_first_of("0123456789") != std::string::npos; });
    stop.request_stop();
  });
  auto cancelled = tools.invoke("edge1.exec_command", J(R"({"argv":["sleep","21"]})"), c2);
  canceller.join();
  REQUIRE_FALSE(cancelled);
  CHECK(cancelled.error().code == ErrorCode::cancelled);
  // The node was told and ended the command: no sleep 21 is left.
  CHECK(eventually([&] { return xcore_test::run_command(fmt::format("pgrep -P {} -x sleep", node.pid)).find_first_of("0123456789") == std::string::npos; }, std::chrono::seconds(3)));
}

TEST_CASE("a wrong token, another node's token and a revoked one are refused") {
  TempDir tmp;
  Host host;
  host.tokens["tok-a"] = NodeIdentity{"acme", "edge1"};
  host.tokens["tok-b"] = NodeIdentity{"globex", "edge2"};
  host.start(host.options());
  net::WsEngine engine;
  auto dial = [&](std::string token, std::string name) {
    net::WsDialOptions d;
    d.url = host.url();
    d.headers["Authorization"] = "Bearer " + token;
    d.headers["X-Xcore-Node"] = name;
    return engine.dial(d);
  };
  auto wrong = dial("forged", "edge1");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == ErrorCode::unauthenticated);
  CHECK(wrong.error().message.find("unknown node token") != std::string::npos);
  auto theirs = dial("tok-b", "edge1");  // another tenant's node's token
  REQUIRE_FALSE(theirs);
  CHECK(theirs.error().code == ErrorCode::permission_denied);
  net::WsDialOptions no_token;
  no_token.url = host.url();
  auto anonymous = engine.dial(no_token);
  REQUIRE_FALSE(anonymous);
  CHECK(anonymous.error().message.find("Bearer") != std::string::npos);

  // A real node whose token is revoked while it is connected: dropped at once, and refused when it dials again.
  auto& tools = host.tools("acme");
  NodeProcess node(host.url(), "tok-a", "edge1", tmp / "node.log");
  REQUIRE_MESSAGE(eventually([&] { return tools.find("edge1.system_stats", "acme").has_value(); }), node.output());
  {
    std::lock_guard lock(host.mutex);
    host.tokens.erase("tok-a");
  }
  CHECK(host.hub->disconnect("acme", "edge1", "its token was revoked"));
  CHECK_FALSE(tools.find("edge1.system_stats", "acme"));
  CHECK(eventually([&] { return node.output().find("unknown node token") != std::string::npos; }));
  CHECK_FALSE(host.hub->find("acme", "edge1"));
}

TEST_CASE("nodes come back by themselves after the host restarts") {
  TempDir tmp;
  Host host;
  host.tokens["tok"] = NodeIdentity{"acme", "edge1"};
  host.start(host.options());
  const auto port = host.hub->port();
  auto& tools = host.tools("acme");
  NodeProcess node(host.url(), "tok", "edge1", tmp / "node.log");
  REQUIRE_MESSAGE(eventually([&] { return tools.find("edge1.system_stats", "acme").has_value(); }), node.output());
  host.hub.reset();
  CHECK_FALSE(tools.find("edge1.system_stats", "acme"));
  host.start(host.options(port));
  CHECK_MESSAGE(eventually([&] { return tools.find("edge1.system_stats", "acme").has_value(); }), node.output());
  auto r = tools.invoke("edge1.system_stats", J("{}"), caller("acme"));
  REQUIRE(r);
  CHECK(r->structured.at("cpus").as_int64() >= 1);
}

TEST_CASE("a node that floods messages or sends an oversized one is dropped; the hub and other nodes go on") {
  TempDir tmp;
  Host host;
  host.tokens["good"] = NodeIdentity{"acme", "good"};
  host.tokens["bad"] = NodeIdentity{"acme", "bad"};
  auto o = host.options();
  o.max_message = 1u << 20;
  o.messages_per_second = 200;
  host.start(o);
  auto& tools = host.tools("acme");
  NodeProcess good(host.url(), "good", "good", tmp / "good.log");
  REQUIRE_MESSAGE(eventually([&] { return tools.find("good.system_stats", "acme").has_value(); }), good.output());

  net::WsEngine engine;
  net::WsDialOptions d;
  d.url = host.url();
  d.headers["Authorization"] = "Bearer bad";
  d.headers["X-Xcore-Node"] = "bad";
  auto closed_with = [&](std::shared_ptr<net::WsLink> link) {
    auto why = std::make_shared<std::promise<Error>>();
    auto f = why->get_future();
    link->start([](std::string) {}, [why](const Error& e) { why->set_value(e); });
    return f;
  };

  SUBCASE("100 MB in one frame") {
    auto link = engine.dial(d);
    REQUIRE(link);
    auto why = closed_with(*link);
    (void)(*link)->send(std::string(100u << 20, 'x'));
    REQUIRE(why.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  }
  SUBCASE("thousands of messages a second") {
    auto link = engine.dial(d);
    REQUIRE(link);
    auto why = closed_with(*link);
    for (int i = 0; i < 5000 && !(*link)->closed(); ++i) (void)(*link)->send(R"({"jsonrpc":"2.0","method":"notifications/noise"})");
    REQUIRE(why.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  }
  SUBCASE("not JSON-RPC") {
    auto link = engine.dial(d);
    REQUIRE(link);
    auto why = closed_with(*link);
    (void)(*link)->send("this is not JSON");
    REQUIRE(why.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  }
  CHECK_FALSE(host.hub->find("acme", "bad"));
  auto r = tools.invoke("good.system_stats", J("{}"), caller("acme"));
  REQUIRE(r);
  CHECK_FALSE(r->is_error);
}

TEST_CASE("wss: the node verifies the host against a CA file or a pinned key, and refuses otherwise") {
  TempDir tmp;
  const auto cert = (tmp / "cert.pem").string(), key = (tmp / "key.pem").string();
  const auto made = xcore_test::run_command("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + key +
                                            " -out " + cert);
  REQUIRE_MESSAGE(fs::exists(cert), made);
  auto pin = xcore_test::run_command("openssl x509 -in " + cert + " -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1");
  while (!pin.empty() && (pin.back() == '\n' || pin.back() == ' ')) pin.pop_back();
  REQUIRE(pin.size() == 64);

  Host host;
  host.tokens["tok"] = NodeIdentity{"acme", "edge1"};
  auto o = host.options();
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  host.start(o);
  const auto url = fmt::format("wss://127.0.0.1:{}/nodes", host.hub->port());
  net::WsEngine engine;
  auto dial = [&](std::string ca, std::string pinned) {
    net::WsDialOptions d;
    d.url = url;
    d.headers["Authorization"] = "Bearer tok";
    d.headers["X-Xcore-Node"] = "edge1";
    d.ca_file = std::move(ca);
    d.pinned_sha256 = std::move(pinned);
    return engine.dial(d);
  };
  auto unknown = dial("", "");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("does not verify") != std::string::npos);
  auto wrong_pin = dial("", std::string(64, 'a'));
  REQUIRE_FALSE(wrong_pin);
  CHECK(wrong_pin.error().message.find("pinned") != std::string::npos);
  CHECK(dial(cert, ""));
  CHECK(dial("", pin));

  auto& tools = host.tools("acme");
  host.hub->disconnect("acme", "edge1", "test");
  NodeProcess node(url, "tok", "edge1", tmp / "node.log", {"--pin-sha256", pin});
  CHECK_MESSAGE(eventually([&] { return tools.find("edge1.system_stats", "acme").has_value(); }), node.output());
}

TEST_CASE("an idle ws:// link outlives its connect and idle timeouts: pings keep it open") {
  // The dial's connect timeout once stayed on the TCP stream under a ws:// link and dropped every idle
  // node when it ran out; the pings that should keep an idle link open are what this waits on.
  // What the engine's threads write outlives the engine: declared first, it goes last.
  std::mutex mutex;
  std::vector<std::shared_ptr<net::WsLink>> accepted;
  std::atomic<bool> closed{false};
  std::string why;
  net::WsEngine engine;
  net::WsListenOptions lo;
  lo.limits.idle_timeout = std::chrono::milliseconds(400);
  auto port = engine.listen(lo, [&](const net::WsUpgrade&) -> Result<std::function<void(std::shared_ptr<net::WsLink>)>> {
    return std::function<void(std::shared_ptr<net::WsLink>)>([&](std::shared_ptr<net::WsLink> link) {
      link->start([](std::string) {}, [](const Error&) {});
      std::lock_guard lock(mutex);
      accepted.push_back(std::move(link));
    });
  });
  REQUIRE(port);
  net::WsDialOptions d;
  d.url = fmt::format("ws://127.0.0.1:{}/nodes", *port);
  d.connect_timeout = std::chrono::milliseconds(200);
  d.limits.idle_timeout = std::chrono::milliseconds(400);
  auto link = engine.dial(d);
  REQUIRE(link);
  (*link)->start([](std::string) {}, [&](const Error& e) {
    why = e.message;
    closed = true;  // after `why`: whoever sees it closed sees why
  });
  // Bounded: several connect timeouts and idle periods pass with nothing sent but pings.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const bool dropped = closed.load();
  CHECK_MESSAGE(!dropped, (dropped ? why : std::string()));
  CHECK((*link)->send(R"({"jsonrpc":"2.0","method":"still/here"})"));
  (*link)->close("done");
  CHECK(eventually([&] { return closed.load(); }));
  std::lock_guard lock(mutex);
  for (auto& a : accepted) a->close("done");
}

TEST_CASE("a node serves the sandboxed shell plugin from --plugins: its tools join as the node's") {
  TempDir tmp;
  Host host;
  host.tokens["tok-a"] = NodeIdentity{"acme", "edge1"};
  host.start(host.options());
  auto& tools = host.tools("acme");
  NodeProcess node(host.url(), "tok-a", "edge1", tmp / "node.log", {"--plugins", XCORE_EXTRA_PLUGIN_DIR});
  REQUIRE_MESSAGE(eventually([&] { return tools.find("edge1.python_eval", "acme").has_value(); }), node.output());
  CHECK(tools.find("edge1.git_status", "acme"));
  auto r = tools.invoke("edge1.python_eval", J(R"js({"code": "print(6 * 7)"})js"), caller("acme"));
  REQUIRE(r);
  CHECK_FALSE(r->is_error);
  CHECK(r->structured.at("stdout") == "42\n");
  auto rm = tools.invoke("edge1.run_command", J(R"({"argv": ["rm", "-rf", "/"]})"), caller("acme"));
  CHECK((!rm || rm->is_error));
}

// A network namespace of the test's own, joined to this one by a veth pair: a node on "another machine",
// and a link that can be cut. Root only; removed (with its pair) when it goes.
struct NetNamespace {
  std::string name, host_if, host_ip, node_ip;
  bool ok = false;
  std::string problem;
  NetNamespace() {
    const auto id = std::to_string(::getpid() % 100000);
    name = "xcore-t" + id;
    host_if = "xcv" + id + "h";
    const int subnet = static_cast<int>(::getpid() % 250) + 1;
    host_ip = fmt::format("10.213.{}.1", subnet);
    node_ip = fmt::format("10.213.{}.2", subnet);
    const auto node_if = "xcv" + id + "n";
    for (const auto& cmd : {fmt::format("ip netns add {}", name), fmt::format("ip link add {} type veth peer name {}", host_if, node_if),
                            fmt::format("ip link set {} netns {}", node_if, name), fmt::format("ip addr add {}/30 dev {}", host_ip, host_if),
                            fmt::format("ip link set {} up", host_if), fmt::format("ip netns exec {} ip addr add {}/30 dev {}", name, node_ip, node_if),
                            fmt::format("ip netns exec {} ip link set {} up", name, node_if), fmt::format("ip netns exec {} ip link set lo up", name)}) {
      auto out = xcore_test::run_command(cmd + " && echo done");
      if (out.find("done") == std::string::npos) {
        problem = cmd + ": " + out;
        return;
      }
    }
    ok = true;
  }
  void link(bool up) const { (void)xcore_test::run_command(fmt::format("ip link set {} {}", host_if, up ? "up" : "down")); }
  ~NetNamespace() {
    (void)xcore_test::run_command(fmt::format("ip link del {}", host_if));
    (void)xcore_test::run_command(fmt::format("ip netns del {}", name));
  }
};

TEST_CASE("a node in a network namespace of its own: it serves across the veth, and a cut link drops it until the link is back") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: network namespaces need root");
    return;
  }
  NetNamespace ns;
  REQUIRE_MESSAGE(ns.ok, ns.problem);
  TempDir tmp;
  Host host;
  host.tokens["tok-a"] = NodeIdentity{"acme", "edge1"};
  auto o = host.options();
  o.address = ns.host_ip;  // not loopback: the node reaches it only through the pair
  o.idle_timeout = std::chrono::milliseconds(800);
  host.start(o);
  auto& tools = host.tools("acme");
  const auto url = fmt::format("ws://{}:{}/nodes", ns.host_ip, host.hub->port());
  // `ip netns exec` execs the node in the namespace: the pid is the node's.
  xcore_test::NodeProcess node(url, "tok-a", "edge1", tmp / "node.log", {}, {}, {"/usr/sbin/ip", "netns", "exec", ns.name});
  REQUIRE_MESSAGE(eventually([&] { return host.hub->find("acme", "edge1").has_value(); }), node.output());
  CHECK(host.hub->find("acme", "edge1")->remote_address.starts_with(ns.node_ip));
  auto r = tools.invoke("edge1.system_stats", J("{}"), caller("acme"));
  REQUIRE(r);
  CHECK_FALSE(r->is_error);

  // The wire goes dead (no FIN, no RST): the host's pings go unanswered and it lets the node go.
  ns.link(false);
  CHECK(eventually([&] { return !tools.find("edge1.system_stats", "acme").has_value(); }, std::chrono::seconds(5)));
  CHECK_FALSE(host.hub->find("acme", "edge1"));
  auto lost = tools.invoke("edge1.system_stats", J("{}"), caller("acme"));
  CHECK_FALSE(lost);
  // Back: the node finds its old connection gone and dials again.
  ns.link(true);
  CHECK_MESSAGE(eventually([&] { return tools.find("edge1.system_stats", "acme").has_value(); }, std::chrono::seconds(30)), node.output());
}

// ---- the command policy ----------------------------------------------------------------------------------

TEST_CASE("the command policy decides on the resolved program: bypass attempts are refused") {
  TempDir tmp;
  auto policy = nodes::CommandPolicy::from_json(J(R"({"rules": [
      {"allow": "/usr/bin/*"},
      {"deny": "/usr/bin/rm"},
      {"approve": "/usr/bin/git", "arguments": "push*"}
  ]})"));
  REQUIRE(policy);
  auto verdict = [&](std::vector<std::string> argv) {
    auto d = nodes::decide(*policy, argv, tmp.path());
    REQUIRE_MESSAGE(d, d.error().message);
    return d->verdict;
  };
  using V = nodes::CommandDecision::Verdict;
  CHECK(verdict({"echo", "hello"}) == V::allow);
  CHECK(verdict({"/usr/bin/rm", "-rf", "/tmp/x"}) == V::deny);
  CHECK(verdict({"rm", "x"}) == V::deny);                           // found on the PATH
  CHECK(verdict({"/bin/rm", "x"}) == V::deny);                      // /bin is a link to /usr/bin here
  CHECK(verdict({"../../../../../../usr/bin/rm", "x"}) == V::deny);  // relative, with ..
  fs::create_symlink("/usr/bin/rm", tmp / "harmless");
  CHECK(verdict({(tmp / "harmless").string(), "x"}) == V::deny);     // a symlink to a denied program
  CHECK(verdict({"./harmless", "x"}) == V::deny);
  CHECK(verdict({"sh", "-c", "rm -rf /"}) == V::deny);               // inline code cannot be checked
  CHECK(verdict({"bash", "-ec", "ls"}) == V::deny);
  CHECK(verdict({"python3", "-c", "import os"}) == V::deny);
  CHECK(verdict({"env", "rm", "x"}) == V::deny);                     // launchers are looked through
  CHECK(verdict({"env", "A=1", "nice", "-n", "5", "rm", "x"}) == V::deny);
  CHECK(verdict({"timeout", "5", "rm", "x"}) == V::deny);
  CHECK(verdict({"echo", "a;", "rm", "x"}) == V::deny);              // shell syntax in an argument
  CHECK(verdict({"echo", "$(rm x)"}) == V::deny);
  CHECK(verdict({"echo", "`rm x`"}) == V::deny);
  CHECK(verdict({"echo", "a | rm"}) == V::deny);
  CHECK(verdict({"git", "push", "origin"}) == V::approve);
  CHECK(verdict({"git", "status"}) == V::allow);
  // A script runs its interpreter: a script for a denied one is denied.
  xcore_test::write_file(tmp / "wipe.sh", "#!/usr/bin/rm\n");
  fs::permissions(tmp / "wipe.sh", fs::perms::owner_all);
  CHECK(verdict({(tmp / "wipe.sh").string()}) == V::deny);

  auto d = nodes::decide(*policy, {"rm", "x"}, tmp.path());
  CHECK(d->executable == "/usr/bin/rm");
  CHECK(d->reason.find("deny '/usr/bin/rm'") != std::string::npos);
  auto none = nodes::decide(nodes::CommandPolicy{}, {"echo"}, tmp.path());
  CHECK(none->verdict == V::deny);  // no rule: denied
  CHECK(none->reason.find("no rule allows") != std::string::npos);
  CHECK(nodes::decide(*policy, {"no-such-program-here"}, tmp.path()).error().code == ErrorCode::not_found);

  auto bad = nodes::CommandPolicy::from_json(J(R"({"rules": [{"allow": "git"}]})"));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("rules[0].allow") != std::string::npos);
  CHECK(nodes::CommandPolicy::from_json(J(R"({"rules": [{"allow": "/a", "deny": "/b"}]})")).error().message.find("exactly one") != std::string::npos);
  CHECK(nodes::CommandPolicy::from_json(J(R"({"rulez": []})")).error().message.find("rulez") != std::string::npos);
}
