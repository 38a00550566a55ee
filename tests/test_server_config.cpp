// xcore-server's settings: defaults, then the YAML file, then XCORE_* variables (a .env file fills in
// unset ones), then flags.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include "config.hpp"

#include <xcore/plugin.h>
#include <xcore/version.hpp>

using namespace xcore_test;
using xcore::server::load_config;

namespace {

xcore::Result<xcore::server::ServerConfig> load(std::vector<std::string> args) {
  args.insert(args.begin(), "xcore-server");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return load_config(static_cast<int>(argv.size()), argv.data());
}

// Sets variables for one test and removes them after.
struct Env {
  std::vector<std::string> names;
  void set(const char* k, const char* v) {
    ::setenv(k, v, 1);
    names.emplace_back(k);
  }
  ~Env() {
    for (const auto& n : names) ::unsetenv(n.c_str());
  }
};

}  // namespace

TEST_CASE("settings: file, then environment (and .env), then flags") {
  TempDir tmp;
  write_file(tmp / "xcore.yaml", "listen: 127.0.0.1:7001\ndata_dir: /srv/xcore\nthreads: 4\nheader_timeout_ms: 2500\nmax_connections_per_address: 16\nplugins: [/a, /b]\n");
  write_file(tmp / ".env", "# comment\nexport XCORE_THREADS=6\nXCORE_DATA_DIR=\"/from/dotenv\"\nXCORE_ADMIN_PASSWORD='from-dotenv'\n");
  Env env;
  env.set("XCORE_DATA_DIR", "/from/env");  // the real environment wins over .env
  auto env_file = (tmp / ".env").string();

  auto c = load({"--config", (tmp / "xcore.yaml").string(), "--env-file", env_file});
  REQUIRE_MESSAGE(c.ok(), c.error().message);
  CHECK(c->host == "127.0.0.1");
  CHECK(c->port == 7001);
  CHECK(c->data_dir == "/from/env");
  CHECK(c->http.threads == 6);
  CHECK(c->http.header_timeout == std::chrono::milliseconds(2500));
  CHECK(c->http.max_connections_per_address == 16);
  CHECK(c->http.idle_timeout == std::chrono::milliseconds(5000));  // the default
  CHECK(c->admin_password == "from-dotenv");
  CHECK(c->plugin_dirs == std::vector<fs::path>{"/a", "/b"});
  env.names.push_back("XCORE_THREADS");
  env.names.push_back("XCORE_ADMIN_PASSWORD");

  auto f = load({"--config", (tmp / "xcore.yaml").string(), "--env-file", env_file, "--listen", "0.0.0.0:0", "--threads", "2", "--plugins", "/c"});
  REQUIRE(f.ok());
  CHECK(f->host == "0.0.0.0");
  CHECK(f->port == 0);
  CHECK(f->http.threads == 2);
  CHECK(f->plugin_dirs == std::vector<fs::path>{"/c"});
}

TEST_CASE("settings: every bad value is named") {
  TempDir tmp;
  auto refused = [&](std::vector<std::string> args, std::string_view needle) {
    args.push_back("--env-file");
    args.push_back("/nonexistent");
    auto c = load(args);
    REQUIRE(!c.ok());
    CHECK_MESSAGE(c.error().message.find(needle) != std::string::npos, c.error().message);
  };
  refused({"--listen", "localhost"}, "HOST:PORT");
  refused({"--listen", "127.0.0.1:99999"}, "no valid port");
  refused({"--listen", ":80"}, "no host");
  refused({"--threads", "0"}, "threads: 0 is out of range");
  refused({"--threads", "64", "--max-threads", "32"}, "threads: 64 is out of range (1-32");
  write_file(tmp / "deadline.yaml", "header_timeout_ms: 0\n");
  refused({"--config", (tmp / "deadline.yaml").string()}, "header_timeout_ms: 0 is out of range");
  write_file(tmp / "bad.yaml", "listen: 127.0.0.1:1\nlisten_port: 5\n");
  refused({"--config", (tmp / "bad.yaml").string()}, "unknown setting 'listen_port'");
  write_file(tmp / "broken.yaml", "listen: [unclosed\n");
  refused({"--config", (tmp / "broken.yaml").string()}, "broken.yaml");
  refused({"--no-such-flag"}, "no-such-flag");
  Env env;
  env.set("XCORE_THREADS", "many");
  refused({}, "XCORE_THREADS");
}

TEST_CASE("--version prints the project's and the plugin ABI's versions and ends the program successfully") {
  const char* args[] = {"xcore-server", "--version"};
  auto c = xcore::server::load_config(2, const_cast<char**>(args));
  REQUIRE_FALSE(c);
  CHECK(c.error().message.empty());  // main() returns 0 for --help and --version
  const std::string line = xcore::version_line();
  CHECK(line.find(XCORE_VERSION_STRING) != std::string::npos);
  CHECK(line.find("plugin ABI " + std::to_string(XCORE_ABI_MAJOR) + "." + std::to_string(XCORE_ABI_MINOR)) != std::string::npos);
}
