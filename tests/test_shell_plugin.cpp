// The "shell" example plugin, sandboxed: commands under the command policy (the engine xcore-node uses),
// git status and diff of a real repository, and Python limited in time and memory.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "support/test_support.hpp"

using namespace xcore;
using namespace xcore_test;

namespace {

struct Shell {
  TempDir tmp;
  fs::path workspace = tmp / "workspace";
  CapturedLog log;
  std::unique_ptr<Manager> manager;

  explicit Shell(json::object config = {}) {
    fs::create_directories(workspace);
    fs::permissions(workspace, fs::perms::all);  // the sandbox's user works here
    write_file(tmp / "secret.txt", "outside the workspace");
    fs::permissions(tmp / "secret.txt", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    config["workspace"] = workspace.string();
    ManagerOptions o = test_options(tmp, XCORE_EXTRA_PLUGIN_DIR, log);
    o.configs["shell"] = config;
    manager = std::make_unique<Manager>(std::move(o));
    (void)manager->discover();
    auto r = manager->enable("shell");
    REQUIRE_MESSAGE(r.ok(), (r ? std::string() : r.error().message));
  }
  Result<ToolResult> call(std::string_view tool, std::string_view args) { return manager->call_tool(tool, J(args), CallContext::host()); }
  json::value ok(std::string_view tool, std::string_view args) {
    auto r = call(tool, args);
    REQUIRE_MESSAGE(r.ok(), (r ? std::string() : r.error().message));
    return r->structured;
  }
  std::string refused(std::string_view tool, std::string_view args) {
    auto r = call(tool, args);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::permission_denied);
    return r.error().message;
  }
};

void git(const fs::path& repo, const std::string& args) {
  auto out = run_command("git -C " + repo.string() + " " + args + " && echo git-ok");
  REQUIRE_MESSAGE(out.find("git-ok") != std::string::npos, args, ": ", out);
}

}  // namespace

TEST_CASE("shell: run_command runs what the policy allows, in the workspace, and refuses the rest before it starts") {
  Shell sh(J(R"({"policy": {"rules": [{"allow": "/usr/bin/*"}, {"deny": "/usr/bin/rm"}]}})").as_object());
  write_file(sh.workspace / "hello.txt", "hi");
  auto ls = sh.ok("run_command", R"({"argv": ["ls"]})");
  CHECK(ls.at("exit_code") == 0);
  CHECK(std::string(ls.at("stdout").as_string()).find("hello.txt") != std::string::npos);

  CHECK(sh.refused("run_command", R"({"argv": ["rm", "hello.txt"]})").find("denied by the rule deny '/usr/bin/rm'") != std::string::npos);
  CHECK(sh.refused("run_command", R"({"argv": ["/bin/rm", "hello.txt"]})").find("denied") != std::string::npos);
  CHECK(sh.refused("run_command", R"({"argv": ["env", "rm", "hello.txt"]})").find("env would start rm") != std::string::npos);
  CHECK(sh.refused("run_command", R"({"argv": ["sh", "-c", "rm hello.txt"]})").find("code given on its command line") != std::string::npos);
  CHECK(sh.refused("run_command", R"({"argv": ["ls", ";", "rm", "hello.txt"]})").find("shell syntax") != std::string::npos);
  CHECK(sh.refused("run_command", R"({"argv": ["ls"], "cwd": ".."})").find("outside the workspace") != std::string::npos);
  CHECK(fs::exists(sh.workspace / "hello.txt"));

  // The sandbox, not only the policy: cat is allowed, the file outside the workspace is not there for it.
  auto cat = sh.call("run_command", fmt::format(R"({{"argv": ["cat", "{}"]}})", (sh.tmp / "secret.txt").string()));
  REQUIRE(cat.ok());
  CHECK(cat->is_error);
  CHECK(std::string(cat->structured.at("stdout").as_string()).empty());

  auto slow = sh.call("run_command", R"({"argv": ["sleep", "30"], "timeout_ms": 200})");
  REQUIRE(slow.ok());
  CHECK(slow->is_error);
  CHECK_MESSAGE(slow->structured.at("timed_out") == true, json_text::serialize(slow->structured));
}

TEST_CASE("shell: git_status parses the porcelain of a real repository; git_diff shows a file's change, staged or not") {
  Shell sh;
  const auto& repo = sh.workspace;
  git(repo, "init -q -b main");
  git(repo, "-c user.name=t -c user.email=t@example.com commit -q --allow-empty -m root");
  write_file(repo / "a.txt", "one\n");
  write_file(repo / "d.txt", "to be moved\n");
  git(repo, "add a.txt d.txt");
  git(repo, "-c user.name=t -c user.email=t@example.com commit -q -m first");
  write_file(repo / "a.txt", "one\nchanged\n");
  write_file(repo / "b.txt", "new and staged\n");
  git(repo, "add b.txt");
  git(repo, "mv d.txt e.txt");
  write_file(repo / "c.txt", "untracked\n");
  run_command("chmod -R a+rX " + repo.string());

  auto st = sh.ok("git_status", "{}");
  CHECK(st.at("branch") == "main");
  CHECK(st.at("clean") == false);
  std::map<std::string, json::object> files;
  for (const auto& f : st.at("files").as_array()) files[std::string(f.at("path").as_string())] = f.as_object();
  REQUIRE_MESSAGE(files.size() == 4, json_text::serialize(st));
  CHECK(files["a.txt"].at("status") == "modified");
  CHECK(files["a.txt"].at("staged") == false);
  CHECK(files["b.txt"].at("status") == "added");
  CHECK(files["b.txt"].at("staged") == true);
  CHECK(files["c.txt"].at("status") == "untracked");
  CHECK(files["e.txt"].at("status") == "renamed");
  CHECK(files["e.txt"].at("from") == "d.txt");

  auto diff = sh.ok("git_diff", R"({"file": "a.txt"})");
  CHECK(std::string(diff.at("diff").as_string()).find("+changed") != std::string::npos);
  CHECK(std::string(diff.at("diff").as_string()).find("b.txt") == std::string::npos);
  auto staged = sh.ok("git_diff", R"({"staged": true})");
  CHECK(std::string(staged.at("diff").as_string()).find("+new and staged") != std::string::npos);
  CHECK(std::string(staged.at("diff").as_string()).find("+changed") == std::string::npos);
  CHECK(sh.refused("git_diff", R"({"file": "../secret.txt"})").find("outside the workspace") != std::string::npos);
}

TEST_CASE("shell: python_eval prints, and is held to its time and memory limits and to the sandbox") {
  Shell sh(J(R"({"python_memory_mb": 128})").as_object());
  auto r = sh.ok("python_eval", R"js({"code": "import sys\nprint(6 * 7)\nprint(sys.flags.isolated)"})js");
  CHECK(r.at("stdout") == "42\n1\n");
  CHECK(r.at("exit_code") == 0);

  auto spin = sh.call("python_eval", R"js({"code": "while True: pass", "timeout_ms": 300})js");
  REQUIRE(spin.ok());
  CHECK(spin->is_error);
  CHECK(spin->structured.at("timed_out") == true);

  auto hog = sh.call("python_eval", R"js({"code": "x = bytearray(1024 * 1024 * 1024)"})js");
  REQUIRE(hog.ok());
  CHECK(hog->is_error);
  CHECK(std::string(hog->structured.at("stderr").as_string()).find("MemoryError") != std::string::npos);

  auto outside = sh.call("python_eval", fmt::format(R"js({{"code": "print(open('{}').read())"}})js", (sh.tmp / "secret.txt").string()));
  REQUIRE(outside.ok());
  CHECK(outside->is_error);
  CHECK(std::string(outside->structured.at("stdout").as_string()).find("outside the workspace") == std::string::npos);

  // The default policy has no rule for it: python_eval is refused as run_command would be.
  Shell strict(J(R"({"policy": {"rules": [{"allow": "/usr/bin/git"}]}})").as_object());
  CHECK(strict.refused("python_eval", R"js({"code": "print(1)"})js").find("no rule allows /usr/bin/python3") != std::string::npos);
}
