// Third-party MCP servers from the npm registry, loaded as sandboxed plugins: their tools join the
// registry and answer through the sandbox. tests/peers/install.sh installs them (pinned) first.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cstdio>
#include <signal.h>
#include <unistd.h>

using namespace xcore;
using namespace xcore_test;

namespace {

fs::path server(const std::string& name) { return peer_script(name); }

struct PeerHost {
  TempDir tmp;
  fs::path plugins = tmp / "plugins";
  fs::path files = tmp / "files";
  CapturedLog log;
  std::unique_ptr<Manager> manager;

  PeerHost() {
    fs::create_directories(files);
    write_file(files / "note.txt", "written before the server started");
    // The servers run as the sandbox's user, which must be able to write here; Landlock is what keeps
    // them to the folders their manifests grant.
    fs::permissions(files, fs::perms::all);
    fs::permissions(files / "note.txt", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    const std::string grant = "permissions: [\"fs.read:" + peers_dir().string() + "\"";
    write_file(plugins / "everything" / "plugin.yaml", "id: everything\nversion: 2026.8.31\nmode: sandboxed\n" + grant +
                                                           "]\ncommand: [node, " + server("server-everything").string() + ", stdio]\n");
    write_file(plugins / "filesystem" / "plugin.yaml", "id: filesystem\nversion: 2026.8.31\nmode: sandboxed\n" + grant + ", \"fs.write:" +
                                                           files.string() + "\"]\ncommand: [node, " + server("server-filesystem").string() +
                                                           ", " + files.string() + "]\n");
    ManagerOptions o = test_options(tmp, plugins, log);
    o.restart_backoff = std::chrono::milliseconds(1);
    manager = std::make_unique<Manager>(std::move(o));
    auto report = manager->discover();
    for (const auto& p : report.problems) MESSAGE(p.message);
  }
};

std::string text_of(const ToolResult& r) {
  std::string out;
  for (const auto& c : r.content)
    if (c.is_object() && c.as_object().contains("text")) out += std::string(c.at("text").as_string());
  return out;
}

}  // namespace

TEST_CASE("server-everything: handshake, tools in the registry, echo, restart after it is killed") {
  REQUIRE_MESSAGE(fs::exists(server("server-everything")), "run tests/peers/install.sh first");
  PeerHost h;
  auto r = h.manager->enable("everything");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  auto info = h.manager->info("everything");
  CHECK(info->runner.at("kind") == "mcp_server");
  auto tool = h.manager->tools().find("echo");
  REQUIRE(tool);
  CHECK(tool->spec.plugin == "everything");
  auto echo = h.manager->call_tool("echo", J(R"({"message":"hello through the sandbox"})"), xcore::CallContext::host());
  REQUIRE_MESSAGE(echo.ok(), echo.error().message);
  CHECK(text_of(*echo).find("hello through the sandbox") != std::string::npos);
  CHECK(h.manager->health("everything")->at("status") == "ok");

  // Its arguments are validated against the server's own inputSchema before it sees them.
  auto bad = h.manager->call_tool("echo", J(R"({"message":42})"), xcore::CallContext::host());
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == ErrorCode::invalid_argument);

  auto pid = static_cast<pid_t>(info->runner.at("pid").to_number<int>());
  ::kill(-pid, SIGKILL);
  auto after = h.manager->call_tool("echo", J(R"({"message":"again"})"), xcore::CallContext::host());
  if (!after.ok()) {  // the call that meets the dead process fails; the next one starts a new one
    CHECK(after.error().code == ErrorCode::plugin_crashed);
    after = h.manager->call_tool("echo", J(R"({"message":"again"})"), xcore::CallContext::host());
  }
  REQUIRE_MESSAGE(after.ok(), after.error().message);
  CHECK(text_of(*after).find("again") != std::string::npos);
  REQUIRE(h.manager->unload("everything").ok());
}

TEST_CASE("server-filesystem: 14 tools with output schemas; structured results are validated") {
  REQUIRE_MESSAGE(fs::exists(server("server-filesystem")), "run tests/peers/install.sh first");
  PeerHost h;
  auto r = h.manager->enable("filesystem");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  ToolFilter mine;
  mine.plugin = "filesystem";
  auto tools = h.manager->tools().list(mine);
  CHECK(tools.size() >= 10);
  int with_output_schema = 0;
  for (const auto& t : tools) with_output_schema += t.spec.output_schema ? 1 : 0;
  CHECK(with_output_schema > 0);

  auto written = h.manager->call_tool("write_file", json::object{{"path", (h.files / "new.txt").string()}, {"content", "from xcore"}}, xcore::CallContext::host());
  REQUIRE_MESSAGE(written.ok(), written.error().message);
  CHECK(!written->is_error);
  auto read = h.manager->call_tool("read_text_file", json::object{{"path", (h.files / "new.txt").string()}}, xcore::CallContext::host());
  REQUIRE_MESSAGE(read.ok(), read.error().message);
  CHECK_MESSAGE(!read->is_error, text_of(*read));
  CHECK(text_of(*read).find("from xcore") != std::string::npos);
  // Outside its allowed folder the server itself refuses: an isError result, not a protocol error.
  auto outside = h.manager->call_tool("read_text_file", json::object{{"path", "/etc/hostname"}}, xcore::CallContext::host());
  REQUIRE(outside.ok());
  CHECK(outside->is_error);
}


TEST_CASE("every sandboxed xcore plugin is an MCP server: the official inspector CLI lists and calls its tools") {
  auto cli = peers_dir() / "node_modules" / ".bin" / "mcp-inspector-cli";
  REQUIRE_MESSAGE(fs::exists(cli), "run tests/peers/install.sh first");
  // The CLI looks for its package.json relative to the working folder's parent: run it from a folder of the cache.
  auto cwd = peers_dir() / "run";
  fs::create_directories(cwd);
  std::string host = XCORE_PLUGIN_HOST_PATH;
  auto core = example_plugins() / "core";
  std::string base = "cd " + cwd.string() + " && timeout 60 " + cli.string() + " --cli " + host + " --manifest " +
                     (core / "plugin.yaml").string() + " --binary " + (core / "libcore.so").string();
  auto listed = run_command(base + " --method tools/list");
  CHECK_MESSAGE(listed.find("\"calculate\"") != std::string::npos, listed);
  CHECK(listed.find("\"system_stats\"") != std::string::npos);
  auto called = run_command(base + " --method tools/call --tool-name calculate --tool-arg 'expression=6*7'");
  CHECK_MESSAGE(called.find("\"result\": 42") != std::string::npos, called);
  // A tool that fails (the files plugin throws sdk::Error: with no config, it has no folder to serve) answers an
  // isError result to a plain MCP client; only a tool that does not exist is a protocol error.
  auto files = example_plugins() / "files";
  std::string files_base = "cd " + cwd.string() + " && timeout 60 " + cli.string() + " --cli " + host + " --manifest " +
                           (files / "plugin.yaml").string() + " --binary " + (files / "libfiles.so").string();
  auto refused = run_command(files_base + " --method tools/call --tool-name read_file --tool-arg path=/etc/passwd");
  CHECK_MESSAGE(refused.find("\"isError\": true") != std::string::npos, refused);
  CHECK_MESSAGE(refused.find("failed_precondition: file access is not configured") != std::string::npos, refused);
  auto unknown = run_command(files_base + " --method tools/call --tool-name no_such_tool");
  CHECK_MESSAGE(unknown.find("unknown tool 'no_such_tool'") != std::string::npos, unknown);
  CHECK(unknown.find("\"isError\": true") == std::string::npos);
}

#ifdef XCORE_CLI_PATH
TEST_CASE("xcore mcp serves a plugins folder to the official inspector CLI") {
  auto cli = peers_dir() / "node_modules" / ".bin" / "mcp-inspector-cli";
  REQUIRE_MESSAGE(fs::exists(cli), "run tests/peers/install.sh first");
  auto cwd = peers_dir() / "run";
  fs::create_directories(cwd);
  std::string base = "cd " + cwd.string() + " && timeout 60 " + cli.string() + " --cli " + std::string(XCORE_CLI_PATH) + " mcp " +
                     example_plugins().string();
  auto listed = run_command(base + " --method tools/list");
  CHECK_MESSAGE(listed.find("\"calculate\"") != std::string::npos, listed);
  CHECK(listed.find("\"recent_calls\"") != std::string::npos);  // audit's, beside core's
  auto called = run_command(base + " --method tools/call --tool-name core.calculate --tool-arg 'expression=6*7'");
  CHECK_MESSAGE(called.find("\"result\": 42") != std::string::npos, called);
  auto failed = run_command(base + " --method tools/call --tool-name core.calculate --tool-arg 'expression=1/0'");
  CHECK_MESSAGE(failed.find("\"isError\": true") != std::string::npos, failed);
}
#endif

TEST_CASE("at unload an external server's input is closed first, and it exits by itself (MCP's stdio shutdown)") {
  REQUIRE_MESSAGE(fs::exists(server("server-everything")), "run tests/peers/install.sh first");
  PeerHost h;
  REQUIRE(h.manager->enable("everything").ok());
  REQUIRE(h.manager->unload("everything").ok());
  // It saw end-of-file on stdin and left: no SIGTERM was needed.
  CHECK(h.log.contains("everything: stopped: exited with status 0"));
  CHECK_FALSE(h.log.contains("stopped: killed by SIGTERM"));
}
