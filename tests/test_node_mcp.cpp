// MCP servers on remote nodes: presets from the catalogue started on a real xcore-node (packages from the
// peers' cache, run sandboxed with only the chosen mounts), servers already running on the node joined by
// URL, and every field the host sends checked again by the node.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fmt/format.h>

#include <xcore/nodes.hpp>
#include <xcore/tools.hpp>

#include "support/node_host.hpp"
#include "support/node_process.hpp"
#include "support/peers.hpp"
#include "support/process.hpp"
#include "support/test_support.hpp"

using namespace xcore;
using xcore_test::eventually;
using xcore_test::Host;
using xcore_test::J;
using xcore_test::NodeProcess;
using xcore_test::TempDir;
namespace fs = std::filesystem;

namespace {

CallContext caller() {
  CallContext c;
  c.tenant = "acme";
  c.principal.kind = Principal::Kind::user;
  c.principal.id = "7";
  c.principal.permissions = {"tools.call:*"};
  return c;
}

std::string text_of(const ToolResult& r) { return json_text::serialize(r.to_mcp()); }

// Folders a sandboxed server (another user when the tests run as root) may read and write.
void open_to_all(const fs::path& p) { fs::permissions(p, fs::perms::all); }

struct McpNode {
  TempDir tmp;
  Host host;
  std::unique_ptr<NodeProcess> node;
  fs::path root = tmp / "root";

  explicit McpNode(std::vector<std::string> extra = {"--allow-mcp"}, std::vector<std::string> env = {}) {
    REQUIRE_MESSAGE(fs::exists(xcore_test::peer_script("server-filesystem")), "run tests/peers/install.sh first");
    fs::create_directories(root / "shared");
    fs::create_directories(root / "private");
    fs::create_directories(tmp / "outside");
    for (const auto& d : {root, root / "shared", root / "private", tmp / "outside"}) open_to_all(d);
    xcore_test::write_file(root / "shared/in.txt", "inside the mount");
    xcore_test::write_file(root / "private/secret.txt", "not mounted");
    xcore_test::write_file(tmp / "outside/x.txt", "outside every root");
    host.tokens["tok"] = NodeIdentity{"acme", "edge1"};
    host.start(host.options());
    start(std::move(extra), std::move(env));
  }
  void start(std::vector<std::string> extra, std::vector<std::string> env = {}) {
    std::vector<std::string> args{"--root", root.string(), "--mcp-cache", xcore_test::peers_dir().string(), "--state", (tmp / "state").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    node = std::make_unique<NodeProcess>(host.url(), "tok", "edge1", tmp / "node.log", args, env);
    REQUIRE_MESSAGE(eventually([&] { return host.hub->find("acme", "edge1").has_value(); }), node->output());
  }
  // The old node gone from the hub first: until then its tools would answer for the new one.
  void restart(std::vector<std::string> extra, std::vector<std::string> env = {}) {
    node->kill();
    REQUIRE(eventually([&] { return !host.hub->find("acme", "edge1").has_value(); }));
    start(std::move(extra), std::move(env));
  }
  McpPreset preset(std::string_view name) const {
    const auto catalogue = McpCatalogue::builtin();
    const auto* p = catalogue.find(name);
    REQUIRE(p);
    return *p;
  }
  Result<json::object> start_mcp(std::string id, std::optional<McpPreset> preset, std::vector<std::string> mounts = {}, std::string url = {}) {
    return host.hub->start_mcp("acme", "edge1", McpServerRequest{std::move(id), std::move(preset), std::move(mounts), std::move(url)}, std::chrono::seconds(60));
  }
  ToolRegistry& tools() { return host.tools("acme"); }
};

}  // namespace

TEST_CASE("the built-in catalogue reads, and a broken preset is named by its field") {
  auto c = McpCatalogue::builtin();
  REQUIRE(c.find("filesystem"));
  CHECK(c.find("filesystem")->max_mounts == 8);
  CHECK(c.find("memory"));
  CHECK(c.find("everything"));
  auto bad = [](std::string_view yaml) {
    auto c = McpCatalogue::builtin();
    auto r = c.add_text(yaml, "ops.yaml");
    REQUIRE_FALSE(r);
    CHECK(c.find("filesystem"));  // a file that does not read changes nothing
    return r.error().message;
  };
  CHECK(bad("presets: {x: {package: a, version: '^1.0.0', entry: i.js}}").find("preset 'x': version: expected an exact version") != std::string::npos);
  CHECK(bad("presets: {x: {package: 'A B', version: '1.0.0', entry: i.js}}").find("package: 'A B' is not an npm package name") != std::string::npos);
  CHECK(bad("presets: {x: {package: a, version: '1.0.0', entry: ../../bin/sh}}").find("entry: expected a path inside the package") != std::string::npos);
  CHECK(bad("presets: {x: {package: a, version: '1.0.0', entry: i.js, mounts: {max: 2}}}").find("no argument is \"{mounts}\"") != std::string::npos);
  CHECK(bad("presets: {x: {package: a, version: '1.0.0', entry: i.js, network: true}}").find("network: not a preset field") != std::string::npos);
  CHECK(bad("presets: {Bad: {package: a, version: '1.0.0', entry: i.js}}").find("preset 'Bad': name") != std::string::npos);
  CHECK(bad("presets: [").find("ops.yaml") != std::string::npos);
  // An operator's file adds presets and replaces those of the same name.
  auto ops = McpCatalogue::builtin();
  REQUIRE(ops.add_text("presets: {filesystem: {package: '@acme/fs', version: '2.0.0', entry: main.js, args: ['{mounts}'], mounts: {min: 1, max: 1}}, "
                       "mine: {package: mine, version: '0.1.0', entry: index.js}}",
                       "ops.yaml"));
  CHECK(ops.find("filesystem")->package == "@acme/fs");
  CHECK(ops.find("mine"));
  CHECK(ops.find("memory"));
}

TEST_CASE("a preset with one mount reads inside it and is refused outside; it goes when stopped and comes back with its node") {
  McpNode n;
  auto started = n.start_mcp("files", n.preset("filesystem"), {(n.root / "shared").string()});
  REQUIRE_MESSAGE(started, (started ? std::string() : started.error().message), "\n", n.node->output());
  CHECK(started->at("state") == "enabled");
  CHECK(started->at("preset") == "filesystem");
  CHECK(started->at("mounts").as_array().size() == 1);
  REQUIRE_MESSAGE(eventually([&] { return n.tools().find("edge1.read_text_file", "acme").has_value(); }), n.node->output());

  auto inside = n.tools().invoke("edge1.read_text_file", J(fmt::format(R"({{"path":"{}"}})", (n.root / "shared/in.txt").string())), caller());
  REQUIRE(inside);
  CHECK_FALSE(inside->is_error);
  CHECK(text_of(*inside).find("inside the mount") != std::string::npos);
  for (const auto& path : {n.root / "private/secret.txt", n.tmp / "outside/x.txt", fs::path("/etc/hostname")}) {
    auto out = n.tools().invoke("edge1.read_text_file", J(fmt::format(R"({{"path":"{}"}})", path.string())), caller());
    CAPTURE(path);
    CHECK((!out || out->is_error));
    if (out) CHECK(text_of(*out).find("not mounted") == std::string::npos);
  }

  // The sandbox, not the server's good manners: a preset that tells the server it may read an unmounted
  // folder still cannot.
  auto wide = n.preset("filesystem");
  wide.args.push_back((n.root / "private").string());
  auto second = n.start_mcp("wide", wide, {(n.root / "shared").string()});
  REQUIRE_MESSAGE(second, (second ? std::string() : second.error().message));
  REQUIRE_MESSAGE(eventually([&] { return n.tools().find("edge1.wide.read_text_file", "acme").has_value(); }), n.node->output());
  auto secret = n.tools().invoke("edge1.wide.read_text_file", J(fmt::format(R"({{"path":"{}"}})", (n.root / "private/secret.txt").string())), caller());
  CHECK((!secret || secret->is_error));
  if (secret) CHECK_MESSAGE(text_of(*secret).find("not mounted") == std::string::npos, text_of(*secret));
  REQUIRE(n.host.hub->stop_mcp("acme", "edge1", "wide"));

  auto listed = n.host.hub->list_mcp("acme", "edge1");
  REQUIRE(listed);
  REQUIRE(listed->at("servers").as_array().size() == 1);
  CHECK(listed->at("servers").as_array()[0].at("id") == "files");
  CHECK(n.start_mcp("files", n.preset("memory")).error().code == ErrorCode::already_exists);

  // A node that restarts brings its servers back.
  n.restart({"--allow-mcp"});
  REQUIRE_MESSAGE(eventually([&] { return n.tools().find("edge1.read_text_file", "acme").has_value(); }), n.node->output());
  auto again = n.tools().invoke("edge1.read_text_file", J(fmt::format(R"({{"path":"{}"}})", (n.root / "shared/in.txt").string())), caller());
  REQUIRE(again);
  CHECK(text_of(*again).find("inside the mount") != std::string::npos);

  REQUIRE(n.host.hub->stop_mcp("acme", "edge1", "files"));
  CHECK(eventually([&] { return !n.tools().find("edge1.read_text_file", "acme").has_value(); }));
  CHECK(n.host.hub->stop_mcp("acme", "edge1", "files").error().code == ErrorCode::not_found);
  CHECK(n.host.hub->list_mcp("acme", "edge1")->at("servers").as_array().empty());
}

TEST_CASE("the node checks what the host asks: mounts inside its roots, the preset's fields, loopback URLs, and --allow-mcp") {
  McpNode n;
  const auto fs_preset = n.preset("filesystem");
  auto refused = [&](std::string id, std::optional<McpPreset> p, std::vector<std::string> mounts, std::string url = {}) {
    auto r = n.start_mcp(std::move(id), std::move(p), std::move(mounts), std::move(url));
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(refused("a", fs_preset, {(n.tmp / "outside").string()}).find("is outside the folders this node serves") != std::string::npos);
  CHECK(refused("a", fs_preset, {"/"}).find("the root of the file system is never mounted") != std::string::npos);
  fs::create_directory_symlink(n.tmp / "outside", n.root / "shared/link");
  CHECK(refused("a", fs_preset, {(n.root / "shared/link").string()}).find("outside the folders") != std::string::npos);
  CHECK(refused("a", fs_preset, {(n.root / "shared/../../outside").string()}).find("outside the folders") != std::string::npos);
  CHECK(refused("a", fs_preset, {"shared"}).find("not an absolute path") != std::string::npos);
  CHECK(refused("a", fs_preset, {}).find("takes 1 to 8 folders, not 0") != std::string::npos);
  CHECK(refused("a", n.preset("memory"), {(n.root / "shared").string()}).find("takes no folders") != std::string::npos);
  CHECK(refused("Bad!", fs_preset, {(n.root / "shared").string()}).find("id:") != std::string::npos);
  auto tampered = fs_preset;
  tampered.entry = "../../../../bin/sh";
  CHECK(refused("a", tampered, {(n.root / "shared").string()}).find("entry: expected a path inside the package") != std::string::npos);
  tampered = fs_preset;
  tampered.version = "latest";
  CHECK(refused("a", tampered, {(n.root / "shared").string()}).find("version: expected an exact version") != std::string::npos);
  for (const char* url : {"http://10.0.0.1:8080/mcp", "http://127.0.0.1@example.com/mcp", "https://example.com/mcp", "http://127.0.0.10/mcp"})
    CHECK_MESSAGE(refused("a", std::nullopt, {}, url).find("is not an MCP server on this node") != std::string::npos, url);
  CHECK(n.host.hub->list_mcp("acme", "edge1")->at("servers").as_array().empty());  // nothing half-made was left

  // Not in the cache, and npm cannot reach its registry: the error says which package and why.
  auto missing = fs_preset;
  missing.version = "0.0.1";
  n.restart({"--allow-mcp"}, {"npm_config_registry=http://127.0.0.1:9/", "npm_config_fetch_retries=0", "npm_config_offline=true"});
  auto npm = refused("a", missing, {(n.root / "shared").string()});
  CHECK_MESSAGE(npm.find("installing @modelcontextprotocol/server-filesystem@0.0.1 with npm failed") != std::string::npos, npm);

  n.restart({});
  auto off = n.start_mcp("a", fs_preset, {(n.root / "shared").string()});
  REQUIRE_FALSE(off);
  CHECK(off.error().code == ErrorCode::permission_denied);
  CHECK(off.error().message.find("--allow-mcp") != std::string::npos);
}

TEST_CASE("an MCP server already running on the node joins by its loopback URL") {
  McpNode n;
  const int port = xcore_test::free_port();
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_t everything = xcore_test::spawn_process({"/usr/bin/node", xcore_test::peer_script("server-everything").string(), "streamableHttp"},
                                               {"PATH=/usr/bin:/bin", fmt::format("PORT={}", port)}, devnull, n.tmp / "everything.log");
  ::close(devnull);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{everything};
  const auto url = fmt::format("http://127.0.0.1:{}/mcp", port);
  Result<json::object> joined = Error{ErrorCode::unavailable, "not tried"};
  std::string last_error;
  // It listens a moment after it starts; the node's first try may find nothing there yet.
  REQUIRE_MESSAGE(eventually([&] {
                    joined = n.start_mcp("local", std::nullopt, {}, url);
                    if (!joined) last_error = joined.error().message;
                    return joined.ok();
                  }),
                  last_error, "\n", xcore_test::read_file(n.tmp / "everything.log"));
  CHECK(joined->at("url") == json::value(url));
  REQUIRE_MESSAGE(eventually([&] { return n.tools().find("edge1.echo", "acme").has_value(); }), n.node->output());
  auto echo = n.tools().invoke("edge1.echo", J(R"({"message":"through the node"})"), caller());
  REQUIRE(echo);
  CHECK(text_of(*echo).find("through the node") != std::string::npos);
  REQUIRE(n.host.hub->stop_mcp("acme", "edge1", "local"));
  CHECK(eventually([&] { return !n.tools().find("edge1.echo", "acme").has_value(); }));
}
