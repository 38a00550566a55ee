// The example plugins, loaded for real: the calculator (core, trusted), the file tools (files, sandboxed:
// confined by their own code and by the sandbox, which reaches only the root they are given), audit hooks.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <fstream>
#include <unistd.h>

using namespace xcore;
using namespace xcore_test;

namespace {

struct CoreHost {
  TempDir tmp;
  fs::path files = tmp / "files";
  std::unique_ptr<Manager> manager;

  explicit CoreHost(json::object audit_config = {}) {
    fs::create_directories(files / "sub");
    write_file(files / "hello.txt", "hello world");
    write_file(tmp / "secret.txt", "outside the root");
    // A root host runs the sandboxed file tools as another user: the folder they are given is theirs to
    // write, as an operator would arrange it.
    for (const auto& dir : {files, files / "sub"}) fs::permissions(dir, fs::perms::all);
    ManagerOptions o;
    o.plugin_dirs = {example_plugins()};
    o.shadow_dir = tmp / "shadow";
    o.configs["files"] = json::object{{"root", files.string()}};
    o.configs["audit"] = std::move(audit_config);
    manager = std::make_unique<Manager>(std::move(o));
    manager->discover();
    auto r = manager->load_all();
    REQUIRE_MESSAGE(r.ok(), r.error().message);
  }
  Result<ToolResult> call(std::string_view tool, std::string_view args) { return manager->call_tool(tool, J(args), xcore::CallContext::host()); }
  ErrorCode fails(std::string_view tool, std::string_view args) {
    auto r = call(tool, args);
    REQUIRE_MESSAGE(!r.ok(), tool << " " << args << " succeeded");
    return r.error().code;
  }
};

double calc(CoreHost& h, const std::string& expr) {
  json::object args{{"expression", expr}};
  auto r = h.manager->call_tool("calculate", args, xcore::CallContext::host());
  REQUIRE_MESSAGE(r.ok(), expr);
  REQUIRE_MESSAGE(!r->is_error, expr << ": " << r->content.at(0).at("text").as_string());
  return r->structured.at("result").to_number<double>();
}

std::string calc_error(CoreHost& h, const std::string& expr) {
  json::object args{{"expression", expr}};
  auto r = h.manager->call_tool("calculate", args, xcore::CallContext::host());
  REQUIRE(r.ok());
  REQUIRE_MESSAGE(r->is_error, expr << " evaluated although it is invalid");
  return std::string(r->content.at(0).at("text").as_string());
}

}  // namespace

TEST_CASE("calculate: precedence, associativity, functions and constants") {
  CoreHost h;
  CHECK(calc(h, "1 + 2 * 3") == 7);
  CHECK(calc(h, "(1 + 2) * 3") == 9);
  CHECK(calc(h, "2 ^ 3 ^ 2") == 512);
  CHECK(calc(h, "-2 ^ 2") == -4);
  CHECK(calc(h, "2 * -3") == -6);
  CHECK(calc(h, "7 % 4") == 3);
  CHECK(calc(h, "10 / 4") == doctest::Approx(2.5));
  CHECK(calc(h, "1.5e3 + .5") == doctest::Approx(1500.5));
  CHECK(calc(h, "sqrt(16) + abs(-2)") == 6);
  CHECK(calc(h, "max(1, 7, 3) - min(4, 2)") == 5);
  CHECK(calc(h, "2 * e") == doctest::Approx(2 * M_E));
  CHECK(calc(h, "sin(pi / 2)") == doctest::Approx(1));
  CHECK(calc(h, "log10(1000) + ln(e) + log2(8)") == doctest::Approx(7));
  CHECK(calc(h, "round(2.5) + floor(-1.5) + ceil(1.2)") == doctest::Approx(3 - 2 + 2));
  CHECK(calc(h, "hypot(3, 4) * pow(2, 3)") == 40);
}

TEST_CASE("calculate: bad expressions are tool errors that say where and why") {
  CoreHost h;
  CHECK(calc_error(h, "1 / 0").find("division by zero") != std::string::npos);
  CHECK(calc_error(h, "2 +").find("unexpected end") != std::string::npos);
  CHECK(calc_error(h, "(1 + 2").find("expected ')'") != std::string::npos);
  CHECK(calc_error(h, "system(1)").find("unknown function 'system'") != std::string::npos);
  CHECK(calc_error(h, "x + 1").find("position 1: unknown name 'x'") != std::string::npos);
  CHECK(calc_error(h, "sqrt(-1)").find("domain") != std::string::npos);
  CHECK(calc_error(h, "sqrt(1, 2)").find("takes 1 argument") != std::string::npos);
  CHECK(calc_error(h, "1 $ 2").find("unexpected '$'") != std::string::npos);
  CHECK(calc_error(h, "10 ^ 400").find("not a finite number") != std::string::npos);
  CHECK(calc_error(h, std::string(200, '(') + "1" + std::string(200, ')')).find("nested too deeply") != std::string::npos);
  CHECK(h.fails("calculate", R"({"expression":42})") == ErrorCode::invalid_argument);
}

TEST_CASE("file tools read, write and list inside the root") {
  CoreHost h;
  auto read = h.call("read_file", R"({"path":"hello.txt"})");
  REQUIRE(read.ok());
  CHECK(read->structured.at("content") == "hello world");
  REQUIRE(h.call("write_file", R"({"path":"sub/new.txt","content":"abc"})").ok());
  REQUIRE(h.call("write_file", R"({"path":"sub/new.txt","content":"def","append":true})").ok());
  CHECK(h.call("read_file", R"({"path":"sub/new.txt"})")->structured.at("content") == "abcdef");
  auto list = h.call("list_directory", R"({})");
  REQUIRE(list.ok());
  const auto& entries = list->structured.at("entries").as_array();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].at("name") == "hello.txt");
  CHECK(entries[1].at("type") == "directory");
  CHECK(h.fails("read_file", R"({"path":"missing.txt"})") == ErrorCode::not_found);
}

TEST_CASE("file tools refuse absolute paths, '..' and symlink escapes") {
  CoreHost h;
  auto secret = (h.tmp / "secret.txt").string();
  CHECK(h.fails("read_file", json::serialize(json::object{{"path", secret}})) == ErrorCode::permission_denied);
  CHECK(h.fails("read_file", R"({"path":"../secret.txt"})") == ErrorCode::permission_denied);
  CHECK(h.fails("read_file", R"({"path":"sub/../../secret.txt"})") == ErrorCode::permission_denied);
  CHECK(h.fails("write_file", R"({"path":"../escape.txt","content":"x"})") == ErrorCode::permission_denied);
  CHECK(h.fails("list_directory", R"({"path":"/etc"})") == ErrorCode::permission_denied);
  CHECK(!fs::exists(h.tmp / "escape.txt"));

  // Symlinks that lead outside are refused by the kernel, wherever they sit in the path.
  fs::create_symlink(h.tmp.path(), h.files / "up");
  fs::create_symlink(h.tmp / "secret.txt", h.files / "secret-link");
  fs::create_symlink("/etc", h.files / "etc");
  CHECK(h.fails("read_file", R"({"path":"up/secret.txt"})") == ErrorCode::permission_denied);
  CHECK(h.fails("read_file", R"({"path":"secret-link"})") == ErrorCode::permission_denied);
  CHECK(h.fails("read_file", R"({"path":"etc/hostname"})") == ErrorCode::permission_denied);
  CHECK(h.fails("write_file", R"({"path":"secret-link","content":"overwritten"})") == ErrorCode::permission_denied);
  CHECK(h.fails("list_directory", R"({"path":"up"})") == ErrorCode::permission_denied);
  // A symlink that stays inside is fine.
  fs::create_symlink("hello.txt", h.files / "inner-link");
  CHECK(h.call("read_file", R"({"path":"inner-link"})")->structured.at("content") == "hello world");
  std::string secret_text;
  {
    std::ifstream in(h.tmp / "secret.txt");
    std::getline(in, secret_text);
  }
  CHECK(secret_text == "outside the root");
}

TEST_CASE("without a configured root the file tools use the plugin's own data folder, and reach nothing else") {
  TempDir tmp;
  ManagerOptions o;
  o.plugin_dirs = {example_plugins()};
  o.shadow_dir = tmp / "shadow";
  o.data_dir = tmp / "data";
  Manager m(o);
  m.discover();
  REQUIRE(m.enable("files").ok());
  auto w = m.call_tool("write_file", J(R"({"path":"note.txt","content":"kept"})"), xcore::CallContext::host());
  REQUIRE_MESSAGE(w.ok(), w.error().message);
  CHECK(!w->is_error);
  std::ifstream in(tmp / "data" / "files" / "files" / "note.txt");
  std::string text;
  std::getline(in, text);
  CHECK(text == "kept");
  CHECK(m.call_tool("read_file", J(R"({"path":"../../shadow"})"), xcore::CallContext::host()).error().code == ErrorCode::permission_denied);
}

TEST_CASE("a root the config names is granted to the sandbox, and a new root starts a new generation with its grant") {
  TempDir tmp;
  auto first = tmp / "first", second = tmp / "second";
  for (const auto& d : {first, second}) {
    fs::create_directories(d);
    fs::permissions(d, fs::perms::all);
  }
  write_file(first / "a.txt", "in the first");
  write_file(second / "b.txt", "in the second");
  ManagerOptions o;
  o.plugin_dirs = {example_plugins()};
  o.shadow_dir = tmp / "shadow";
  o.data_dir = tmp / "data";
  std::vector<std::string> admitted;
  o.admit = [&](PluginManifest& m) -> Result<void> {
    for (const auto& p : m.permissions)
      if (p.starts_with("fs.")) admitted.push_back(p);
    return ok();
  };
  o.configs["files"] = json::object{{"root", first.string()}};
  Manager m(o);
  m.discover();
  REQUIRE(m.enable("files").ok());
  CHECK(std::find(admitted.begin(), admitted.end(), "fs.write:" + first.string()) != admitted.end());
  CHECK(m.call_tool("read_file", J(R"({"path":"a.txt"})"), xcore::CallContext::host())->structured.at("content") == "in the first");
  const auto generation = m.info("files")->stats.generation;
  REQUIRE(m.set_config("files", json::object{{"root", second.string()}}).ok());
  CHECK(m.info("files")->stats.generation == generation + 1);
  CHECK(m.call_tool("read_file", J(R"({"path":"b.txt"})"), xcore::CallContext::host())->structured.at("content") == "in the second");
  // A relative root is refused by name, and the running generation keeps serving.
  auto relative = m.set_config("files", json::object{{"root", "relative/folder"}});
  REQUIRE(!relative.ok());
  CHECK(relative.error().message.find("must be an absolute path") != std::string::npos);
  CHECK(m.call_tool("read_file", J(R"({"path":"b.txt"})"), xcore::CallContext::host()).ok());
}

TEST_CASE("system_stats and echo") {
  CoreHost h;
  auto s = h.call("system_stats", "{}");
  REQUIRE(s.ok());
  CHECK(s->structured.at("cpus").to_number<int>() >= 1);
  CHECK(s->structured.at("memory").at("total_kb").to_number<double>() > 0);
  CHECK(h.call("echo", R"({"a":[1,2]})")->structured == J(R"({"a":[1,2]})"));
}

TEST_CASE("audit: counts calls through hooks, vetoes denied tools, calls core through host services") {
  CoreHost h(json::object{{"deny", json::array{"files.write_*"}}});
  REQUIRE(h.call("calculate", R"({"expression":"1"})").ok());
  REQUIRE(h.call("calculate", R"({"expression":"1/0"})").ok());  // a tool error, counted as a failure
  auto vetoed = h.call("write_file", R"({"path":"x.txt","content":"x"})");
  REQUIRE(!vetoed.ok());
  CHECK(vetoed.error().code == ErrorCode::permission_denied);
  CHECK(vetoed.error().message.find("denied by the audit policy") != std::string::npos);
  CHECK(!fs::exists(h.files / "x.txt"));

  auto usage = h.call("tool_usage", "{}");
  REQUIRE(usage.ok());
  CHECK(usage->structured.at("usage").at("core.calculate").at("calls") == 2);
  CHECK(usage->structured.at("usage").at("core.calculate").at("failures") == 1);
  CHECK(usage->structured.at("vetoed") == 1);

  auto summary = h.manager->call_action("audit", "summary", J("{}"), xcore::CallContext::host());
  REQUIRE_MESSAGE(summary.ok(), summary.error().message);
  CHECK(summary->at("system").at("cpus").to_number<int>() >= 1);

  // Disabling audit stops its hooks at once: no veto any more.
  REQUIRE(h.manager->disable("audit").ok());
  CHECK(h.call("write_file", R"({"path":"x.txt","content":"x"})").ok());
}
