// The `xcore` command line, run as the real binary: keys, packages, signatures, validation, calls, MCP over
// stdio, and the reference server's signature policy over packages it installed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "packages/plugin_package.hpp"
#include "support/server_harness.hpp"

using namespace xcore_test;

namespace {

struct Ran {
  int exit = -1;
  std::string out, err;
  json::value json() const {
    boost::system::error_code ec;
    auto v = boost::json::parse(out, ec);
    REQUIRE_MESSAGE(!ec, "not JSON: " << out << err);
    return v;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `xcore args...` with `input` on its stdin; its output goes through files, so nothing can block.
Ran run_xcore(const TempDir& tmp, std::vector<std::string> args, const std::string& input = {}) {
  static int n = 0;
  const auto base = tmp.path() / ("run" + std::to_string(++n));
  write_file(fs::path(base.string() + ".in"), input);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, (base.string() + ".in").c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, (base.string() + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (base.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  args.insert(args.begin(), XCORE_CLI_PATH);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  ::waitpid(pid, &status, 0);
  Ran r;
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(base.string() + ".out");
  r.err = slurp(base.string() + ".err");
  return r;
}

std::string base64(std::string_view bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t n = static_cast<std::uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<std::uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<std::uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

std::string str(const json::value& v, std::string_view key) { return std::string(v.at(key).as_string()); }

// A package's files changed by `edit`, written back.
void tamper(const fs::path& package, const std::function<void(xcore::packages::PackageFiles&)>& edit) {
  auto files = xcore::packages::read_package(package);
  REQUIRE(files);
  edit(*files);
  REQUIRE(xcore::packages::write_package(*files, package));
}

}  // namespace

TEST_CASE("keygen, pack, sign and verify: a package verifies by its signer's key and is refused by any other") {
  TempDir tmp;
  auto a = run_xcore(tmp, {"keygen", (tmp / "alice").string(), "--json"});
  REQUIRE_MESSAGE(a.exit == 0, a.err);
  CHECK(fs::status(tmp / "alice.key").permissions() == (fs::perms::owner_read | fs::perms::owner_write));
  REQUIRE(run_xcore(tmp, {"keygen", (tmp / "bob").string()}).exit == 0);
  auto again = run_xcore(tmp, {"keygen", (tmp / "bob").string()});
  CHECK(again.exit == 1);
  CHECK(again.err.find("bob.key exists") != std::string::npos);

  auto packed = run_xcore(tmp, {"pack", (example_plugins() / "core").string(), "-o", tmp.path().string(), "--json"});
  REQUIRE_MESSAGE(packed.exit == 0, packed.err);
  const auto package = str(packed.json(), "package");
  CHECK(fs::path(package).filename() == "core-1.0.0.xpkg");
  CHECK(packed.json().at("signed_by").is_null());

  auto unsigned_ok = run_xcore(tmp, {"verify", package});
  CHECK(unsigned_ok.exit == 0);
  CHECK(unsigned_ok.out.find("unsigned") != std::string::npos);
  auto needs_signature = run_xcore(tmp, {"verify", package, "--key", (tmp / "alice.pub").string()});
  CHECK(needs_signature.exit == 1);
  CHECK(needs_signature.err.find("plugin 'core' is not signed") != std::string::npos);

  auto sign = run_xcore(tmp, {"sign", package, "--key", (tmp / "alice.key").string(), "--json"});
  REQUIRE_MESSAGE(sign.exit == 0, sign.err);
  CHECK(str(sign.json(), "signed_by") == str(a.json(), "key_id"));
  auto by_alice = run_xcore(tmp, {"verify", package, "--key", (tmp / "alice.pub").string(), "--json"});
  CHECK(by_alice.exit == 0);
  CHECK(str(by_alice.json(), "signed_by") == str(a.json(), "key_id"));
  auto by_bob = run_xcore(tmp, {"verify", package, "--key", (tmp / "bob.pub").string()});
  CHECK(by_bob.exit == 1);
  CHECK(by_bob.err.find("signed by key " + str(a.json(), "key_id") + ", which is not among the trusted keys") != std::string::npos);
  // A folder of keys holding alice's is enough.
  fs::create_directories(tmp / "keys");
  fs::copy_file(tmp / "alice.pub", tmp / "keys" / "alice.pub");
  CHECK(run_xcore(tmp, {"verify", package, "--key", (tmp / "keys").string()}).exit == 0);
  // The raw 32 bytes in base64 work as well as PEM.
  auto key = xcore::packages::VerifyingKey::load(tmp / "alice.pub");
  REQUIRE(key);
  write_file(tmp / "alice.b64", base64(key->raw()) + "\n");
  CHECK(run_xcore(tmp, {"verify", package, "--key", (tmp / "alice.b64").string()}).exit == 0);
}

TEST_CASE("a tampered package is refused naming what changed; unsafe archives are refused before unpacking") {
  TempDir tmp;
  REQUIRE(run_xcore(tmp, {"keygen", (tmp / "k").string()}).exit == 0);
  auto packed = run_xcore(tmp, {"pack", (example_plugins() / "core").string(), "-o", tmp.path().string(), "--key", (tmp / "k.key").string(), "--json"});
  REQUIRE_MESSAGE(packed.exit == 0, packed.err);
  const fs::path package = str(packed.json(), "package");

  SUBCASE("a byte of the binary changed") {
    tamper(package, [](auto& files) { files.at("libcore.so").bytes[100] ^= 1; });
    auto r = run_xcore(tmp, {"verify", package.string(), "--key", (tmp / "k.pub").string()});
    CHECK(r.exit == 1);
    CHECK(r.err.find("file 'libcore.so' does not match its digest") != std::string::npos);
    // Signing it anew would bless the change: refused too.
    auto resign = run_xcore(tmp, {"sign", package.string(), "--key", (tmp / "k.key").string()});
    CHECK(resign.exit == 1);
  }
  SUBCASE("the list edited to match a changed manifest: the signature no longer matches") {
    tamper(package, [](auto& files) {
      auto& list = files.at(xcore::packages::kListFile).bytes;
      list.replace(list.find("sha256:") + 7, 4, "0000");
    });
    auto r = run_xcore(tmp, {"verify", package.string(), "--key", (tmp / "k.pub").string()});
    CHECK(r.exit == 1);
    CHECK(r.err.find("does not match xcore-package.json") != std::string::npos);
  }
  SUBCASE("a file added that the list does not name") {
    tamper(package, [](auto& files) { files["extra.so"] = {"\x7f" "ELF", true}; });
    auto r = run_xcore(tmp, {"verify", package.string()});
    CHECK(r.exit == 1);
    CHECK(r.err.find("file 'extra.so' is not in xcore-package.json") != std::string::npos);
  }
  SUBCASE("a member that would land outside the folder") {
    tamper(package, [](auto& files) { files["../escape"] = {"x", false}; });
    auto r = run_xcore(tmp, {"install", package.string(), "--into", (tmp / "plugins").string()});
    CHECK(r.exit == 1);
    CHECK(r.err.find("member '../escape' has an unsafe path") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp / "escape"));
  }
  SUBCASE("not an archive at all") {
    write_file(package, "not a package");
    auto r = run_xcore(tmp, {"verify", package.string()});
    CHECK(r.exit == 1);
    CHECK(r.err.find(package.string()) != std::string::npos);
  }
}

TEST_CASE("validate: a valid plugin, and every problem of a broken one named by file and field") {
  TempDir tmp;
  auto good = run_xcore(tmp, {"validate", (example_plugins() / "core").string(), "--json"});
  REQUIRE_MESSAGE(good.exit == 0, good.out << good.err);
  CHECK(good.json().at("valid") == true);
  // Its tools as the binary provides them, read by loading it in a throw-away sandboxed host.
  CHECK(good.json().at("tools").as_array().size() >= 3);

  const auto broken = tmp / "broken";
  write_file(broken / "plugin.yaml", "id: Not An Id\nversion: one\nentry: libnothing.so\npermissions: [\"fs.read:\"]\n");
  auto bad = run_xcore(tmp, {"validate", broken.string(), "--json"});
  CHECK(bad.exit == 1);
  const auto report = bad.json();
  CHECK(report.at("valid") == false);
  std::string wheres;
  for (const auto& p : report.at("problems").as_array()) wheres += str(p, "where") + "\n";
  CHECK(wheres.find("plugin.yaml: id") != std::string::npos);
  CHECK(wheres.find("plugin.yaml: version") != std::string::npos);

  const auto json_syntax = tmp / "json-syntax";
  write_file(json_syntax / "plugin.json", "{\n  \"id\": \"x\",\n  \"version\": \"1.0.0\"\n  \"entry\": \"libx.so\"\n}\n");
  auto syntax = run_xcore(tmp, {"validate", json_syntax.string()});
  CHECK(syntax.exit == 1);
  CHECK(syntax.out.find("not valid JSON at line 4, column 3") != std::string::npos);

  // A binary built for a plugin ABI this host does not speak: named with its file, no code run.
  auto abi = run_xcore(tmp, {"validate", (test_plugins() / "abi_future").string()});
  CHECK(abi.exit == 1);
  CHECK(abi.out.find("built for plugin ABI") != std::string::npos);

  // A package is validated by what it holds.
  auto packed = run_xcore(tmp, {"pack", (example_plugins() / "core").string(), "-o", tmp.path().string(), "--json"});
  REQUIRE(packed.exit == 0);
  CHECK(run_xcore(tmp, {"validate", str(packed.json(), "package"), "--no-load"}).exit == 0);
}

TEST_CASE("call: a tool of local plugins with NAME=VALUE arguments; a tool's failure exits 1 with its message") {
  TempDir tmp;
  auto r = run_xcore(tmp, {"call", "core.calculate", "expression=6*7", "--plugins", example_plugins().string(), "--json"});
  REQUIRE_MESSAGE(r.exit == 0, r.err);
  CHECK(r.json().at("structuredContent").at("result") == 42);
  auto failed = run_xcore(tmp, {"call", "core.calculate", "expression=1/0", "--plugins", example_plugins().string()});
  CHECK(failed.exit == 1);
  CHECK(failed.err.find("division by zero") != std::string::npos);
  auto unknown = run_xcore(tmp, {"call", "nope.nothing", "--plugins", example_plugins().string()});
  CHECK(unknown.exit == 1);
  CHECK(unknown.err.find("no tool named 'nope.nothing'") != std::string::npos);
  auto usage = run_xcore(tmp, {"call"});
  CHECK(usage.exit == 2);
}

TEST_CASE("mcp: the plugins' tools over stdio; a tool's failure is an isError result, an unknown tool a protocol error") {
  TempDir tmp;
  const std::string input =
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})"
      "\n"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})"
      "\n"
      R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})"
      "\n"
      R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"core.calculate","arguments":{"expression":"1/0"}}})"
      "\n"
      R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"core.calculate","arguments":{"expression":7}}})"
      "\n"
      R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope","arguments":{}}})"
      "\n";
  auto r = run_xcore(tmp, {"mcp", (example_plugins() / "core").string()}, input);
  REQUIRE_MESSAGE(r.exit == 0, r.err);
  std::map<std::int64_t, json::value> answers;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    auto v = boost::json::parse(line);
    if (v.as_object().contains("id")) answers[v.at("id").to_number<std::int64_t>()] = v;
  }
  REQUIRE(answers.size() == 5);
  CHECK(answers[1].at("result").at("protocolVersion") == "2025-06-18");
  CHECK(answers[2].at("result").at("tools").as_array().size() >= 3);
  CHECK(answers[3].at("result").at("isError") == true);
  CHECK(boost::json::serialize(answers[3]).find("division by zero") != std::string::npos);
  // Arguments that fail the input schema: also the tool's answer (MCP 2025-11-25), naming expected and given.
  CHECK(answers[4].at("result").at("isError") == true);
  CHECK(answers[5].at("error").at("code") == -32602);
}

TEST_CASE("the server's signature policy: signed plugins run trusted, unsigned ones sandboxed or refused, tampered ones refused") {
  TempDir tmp;
  REQUIRE(run_xcore(tmp, {"keygen", (tmp / "trusted").string()}).exit == 0);
  REQUIRE(run_xcore(tmp, {"keygen", (tmp / "stranger").string()}).exit == 0);
  const auto plugins = tmp / "plugins";
  fs::create_directories(plugins);
  // core: signed by the trusted key, installed from its package.
  auto core = run_xcore(tmp, {"pack", (example_plugins() / "core").string(), "-o", tmp.path().string(), "--key", (tmp / "trusted.key").string(), "--json"});
  REQUIRE(core.exit == 0);
  auto installed = run_xcore(tmp, {"install", str(core.json(), "package"), "--into", plugins.string(), "--key", (tmp / "trusted.pub").string()});
  REQUIRE_MESSAGE(installed.exit == 0, installed.err);
  // files: signed by a key the server does not trust.
  auto files = run_xcore(tmp, {"pack", (example_plugins() / "files").string(), "-o", tmp.path().string(), "--key", (tmp / "stranger.key").string(), "--json"});
  REQUIRE(files.exit == 0);
  REQUIRE(run_xcore(tmp, {"install", str(files.json(), "package"), "--into", plugins.string()}).exit == 0);
  // audit: not signed at all, copied as built.
  stage(example_plugins() / "audit", plugins);

  auto plugin_of = [](Api& api, const std::string& token, const std::string& id) {
    auto a = api.send("GET", "/api/v1/plugins/" + id, {}, token);
    REQUIRE_MESSAGE(a.status == 200, boost::json::serialize(a.body));
    return a.body;
  };
  const auto key_env = "XCORE_TRUSTED_KEYS=" + (tmp / "trusted.pub").string();

  SUBCASE("unsigned: sandbox (the default)") {
    ServerProcess server(tmp / "data", {key_env}, plugins);
    Api api(server.port());
    auto token = api.login("admin", kAdminPassword);
    auto c = plugin_of(api, token, "core");
    CHECK(c.at("state") == "enabled");
    CHECK(c.at("runner").at("kind") == "in_process");
    auto a = plugin_of(api, token, "audit");
    CHECK(a.at("state") == "enabled");
    CHECK(a.at("runner").at("kind") == "sandbox");
    CHECK(a.at("mode") == "sandboxed");  // how it runs, though its manifest says trusted
    auto f = plugin_of(api, token, "files");
    CHECK(f.at("runner").at("kind") == "sandbox");
  }
  SUBCASE("unsigned: refuse") {
    ServerProcess server(tmp / "data", {key_env, "XCORE_UNSIGNED_PLUGINS=refuse"}, plugins);
    Api api(server.port());
    auto token = api.login("admin", kAdminPassword);
    CHECK(plugin_of(api, token, "core").at("state") == "enabled");
    auto a = plugin_of(api, token, "audit");
    CHECK(a.at("state") == "failed");
    CHECK(str(a, "last_error").find("plugin 'audit' is not signed") != std::string::npos);
    auto f = plugin_of(api, token, "files");
    CHECK(f.at("state") == "failed");
    CHECK(str(f, "last_error").find("which is not among the trusted keys") != std::string::npos);
  }
  SUBCASE("a signed plugin whose binary changed after installing") {
    {
      std::fstream bin(plugins / "core" / "libcore.so", std::ios::in | std::ios::out | std::ios::binary);
      bin.seekp(200);
      bin.put('\x42');
    }
    ServerProcess server(tmp / "data", {key_env}, plugins);
    Api api(server.port());
    auto token = api.login("admin", kAdminPassword);
    auto c = plugin_of(api, token, "core");
    CHECK(c.at("state") == "failed");
    CHECK(str(c, "last_error").find("file 'libcore.so' does not match its digest") != std::string::npos);
  }
}
