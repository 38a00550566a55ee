// `xcore new plugin NAME`: a plugin project that builds at once against the installed package, with a
// manifest, one tool, a test that loads the built plugin through a Manager and calls the tool, and a README.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <fstream>
#include <regex>

#include <xcore/plugin.h>
#include <xcore/version.hpp>

#include "cli/cli.hpp"

namespace xcore::cli {
namespace fs = std::filesystem;

namespace {

constexpr const char* kCMakeLists = R"(cmake_minimum_required(VERSION 3.25)
project(@NAME@ LANGUAGES @LANGUAGES@)

# The installed xcore package (set CMAKE_PREFIX_PATH to its prefix if it is not in a standard place).
find_package(xcore @VERSION_MAJOR@.@VERSION_MINOR@ REQUIRED)

# Builds lib@NAME@.so and stages it with plugin.yaml as ${CMAKE_BINARY_DIR}/plugins/@NAME@/.
xcore_add_plugin(@NAME@ SOURCES src/@SOURCE@ MANIFEST plugin.yaml)

enable_testing()
add_executable(@NAME@-test tests/test_plugin.cpp)
target_link_libraries(@NAME@-test PRIVATE xcore::xcore)
target_compile_definitions(@NAME@-test PRIVATE PLUGINS_DIR="${CMAKE_BINARY_DIR}/plugins")
add_dependencies(@NAME@-test @NAME@)
add_test(NAME @NAME@ COMMAND @NAME@-test)
)";

constexpr const char* kManifest = R"(# The plugin's manifest: what the host reads before any of the plugin's code runs.
id: @NAME@
name: @TITLE@
version: 0.1.0
description: Greets whoever it is asked to.
mode: @MODE@
entry: lib@NAME@.so
api_version: "^@ABI_MAJOR@.0"
tools:
  - name: greet
    category: examples
config_schema:
  type: object
  properties:
    greeting:
      type: string
      default: Hello
      description: The word the greeting starts with.
  additionalProperties: false
)";

constexpr const char* kCppSource = R"(// The @NAME@ plugin: one tool, "greet", and a config with the greeting to use.
#include <xcore/sdk.hpp>

#include <mutex>
#include <string>

namespace json = boost::json;

class Greeter : public xcore::sdk::Plugin {
 public:
  Greeter() {
    tool("greet")
        .title("Greet")
        .description("Greets someone by name.")
        .input(json::object{{"type", "object"},
                            {"properties", {{"name", {{"type", "string"}, {"minLength", 1}}}}},
                            {"required", {"name"}}})
        .category("examples")
        .read_only()
        .handler([this](const json::object& args, const xcore::sdk::Context&) {
          std::lock_guard lock(mutex_);
          return xcore::sdk::ToolOutput::text(greeting_ + ", " + std::string(args.at("name").as_string()) + "!");
        });
  }

  void on_load(const json::object& config) override { on_config(config); }
  void on_config(const json::object& config) override {
    std::lock_guard lock(mutex_);
    greeting_ = config.contains("greeting") ? std::string(config.at("greeting").as_string()) : "Hello";
  }

 private:
  std::mutex mutex_;
  std::string greeting_ = "Hello";
};

// The id and version must match plugin.yaml: the host checks them before loading.
XCORE_PLUGIN(Greeter, "@NAME@", "0.1.0")
)";

constexpr const char* kCSource = R"(/* The @NAME@ plugin in plain C: one tool, "greet". */
#include <xcore/plugin.h>

#include <stdio.h>
#include <string.h>

static const char kTools[] =
    "[{\"name\":\"greet\",\"description\":\"Greets someone by name.\",\"inputSchema\":{\"type\":\"object\","
    "\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9 ._-]{1,200}$\"}},"
    "\"required\":[\"name\"]}}]";

static void* create(const xcore_host_api* host, xcore_sink* err) {
  (void)err;
  return (void*)host; /* any non-NULL handle will do: this plugin keeps no state */
}
static void destroy(void* self) { (void)self; }
static int32_t list_tools(void* self, xcore_sink* out) {
  (void)self;
  out->append(out->ctx, kTools, sizeof(kTools) - 1);
  return XCORE_OK;
}
/* The host validated the arguments against the schema above: "name" is 1-200 letters, digits, spaces, dots,
   dashes or underscores, so nothing in it needs escaping. A plugin taking free text would parse the JSON
   properly; this one finds the value in the compact text it is given. */
static int32_t call_tool(void* self, xcore_str name, xcore_str args, const xcore_call_context* ctx, xcore_sink* out) {
  (void)self;
  (void)ctx;
  if (name.size != 5 || memcmp(name.data, "greet", 5) != 0) {
    static const char msg[] = "unknown tool";
    out->append(out->ctx, msg, sizeof(msg) - 1);
    return XCORE_E_NOT_FOUND;
  }
  const char* key = "\"name\":\"";
  const char* start = NULL;
  for (size_t i = 0; i + 8 <= args.size; ++i)
    if (memcmp(args.data + i, key, 8) == 0) {
      start = args.data + i + 8;
      break;
    }
  size_t len = 0;
  while (start && start + len < args.data + args.size && start[len] != '"') ++len;
  char text[512];
  int n = snprintf(text, sizeof text, "{\"content\":[{\"type\":\"text\",\"text\":\"Hello, %.*s!\"}],\"isError\":false}",
                   (int)len, start ? start : "");
  out->append(out->ctx, text, (size_t)n);
  return XCORE_OK;
}

static const xcore_plugin_api kApi = {XCORE_ABI_MAJOR, sizeof(xcore_plugin_api), create, destroy, NULL, NULL, NULL, NULL,
                                      NULL, NULL, list_tools, call_tool, NULL};

/* The id and version must match plugin.yaml: the host checks them before loading. */
XCORE_DECLARE_PLUGIN_SYMBOLS("@NAME@", "0.1.0", kApi)
)";

constexpr const char* kTest = R"(// Loads the built plugin through an xcore::Manager, the way a host does, and calls its tool.
#include <xcore/xcore.hpp>

#include <cstdio>
#include <string>

int main() {
  xcore::ManagerOptions options;
  options.plugin_dirs = {PLUGINS_DIR};
  xcore::Manager manager(options);
  for (const auto& problem : manager.discover().problems) std::fprintf(stderr, "%s\n", problem.message.c_str());
  if (auto r = manager.enable("@NAME@"); !r) {
    std::fprintf(stderr, "enable: %s\n", r.error().message.c_str());
    return 1;
  }
  auto result = manager.call_tool("@NAME@.greet", boost::json::object{{"name", "world"}}, xcore::CallContext::host());
  if (!result) {
    std::fprintf(stderr, "greet: %s\n", result.error().message.c_str());
    return 1;
  }
  const auto text = std::string(result->content.at(0).at("text").as_string());
  std::printf("%s\n", text.c_str());
  return text == "Hello, world!" ? 0 : 1;
}
)";

constexpr const char* kReadme = R"(# @TITLE@

An xcore plugin (@LANG_NAME@, @MODE@ mode) with one tool, `greet`.

    cmake -S . -B build -DCMAKE_PREFIX_PATH=<xcore's install prefix>
    cmake --build build && ctest --test-dir build        # builds, then loads the plugin and calls greet
    xcore validate build/plugins/@NAME@                  # manifest, ABI and declared tools
    xcore call @NAME@.greet name=world --plugins build/plugins
    xcore run build/plugins                              # a development host: reloads on every rebuild
    xcore pack build/plugins/@NAME@ --key my.key        # @NAME@-0.1.0.xpkg, signed (keys: xcore keygen)

`plugin.yaml` declares the plugin (id, version, mode, tools, config schema); `src/` holds its code.
)";

std::string fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const auto token = "@" + key + "@";
    for (auto pos = text.find(token); pos != std::string::npos; pos = text.find(token, pos + value.size()))
      text.replace(pos, token.size(), value);
  }
  return text;
}

Result<void> write(const fs::path& file, const std::string& text) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  std::ofstream out(file, std::ios::trunc);
  out << text;
  if (!out) return Error{ErrorCode::internal, fmt::format("cannot write {}", file.string())};
  return ok();
}

struct NewPlugin {
  std::string name;
  std::string lang = "cpp";
  bool sandboxed = false;
  fs::path dir;
  bool json = false;
};

Result<std::vector<std::string>> scaffold(const NewPlugin& o) {
  static const std::regex valid("[a-z][a-z0-9_-]{0,62}");
  if (!std::regex_match(o.name, valid))
    return Error{ErrorCode::invalid_argument,
                 fmt::format("'{}' is not a usable plugin name: 1-63 of [a-z0-9_-], starting with a letter", o.name)};
  const fs::path dir = o.dir.empty() ? fs::path(o.name) : o.dir;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec))
    return Error{ErrorCode::already_exists, fmt::format("{} exists and is not empty; nothing was written", dir.string())};
  std::string title = o.name;
  title[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[0])));
  const bool c = o.lang == "c";
  const std::map<std::string, std::string> values{
      {"NAME", o.name},
      {"TITLE", title},
      {"MODE", o.sandboxed ? "sandboxed" : "trusted"},
      {"LANGUAGES", c ? "C CXX" : "CXX"},
      {"LANG_NAME", c ? "C" : "C++"},
      {"SOURCE", c ? "plugin.c" : "plugin.cpp"},
      {"ABI_MAJOR", std::to_string(XCORE_ABI_MAJOR)},
      {"VERSION_MAJOR", std::to_string(XCORE_VERSION_MAJOR)},
      {"VERSION_MINOR", std::to_string(XCORE_VERSION_MINOR)},
  };
  const std::vector<std::pair<std::string, const char*>> files{
      {"CMakeLists.txt", kCMakeLists},
      {"plugin.yaml", kManifest},
      {c ? "src/plugin.c" : "src/plugin.cpp", c ? kCSource : kCppSource},
      {"tests/test_plugin.cpp", kTest},
      {"README.md", kReadme},
  };
  std::vector<std::string> written;
  for (const auto& [name, text] : files) {
    XCORE_TRY(write(dir / name, fill(text, values)));
    written.push_back((dir / name).string());
  }
  return written;
}

}  // namespace

void add_scaffold_commands(CLI::App& app, Run& run) {
  auto* group = app.add_subcommand("new", "Create a project from a template");
  group->require_subcommand(1);
  auto o = std::make_shared<NewPlugin>();
  auto* plugin = group->add_subcommand("plugin", "A plugin project: manifest, one tool, a test and a README, built with find_package(xcore)");
  plugin->add_option("name", o->name, "The plugin's id, also its folder and CMake target")->required();
  plugin->add_option("--lang", o->lang, "The plugin's language")->check(CLI::IsMember({"cpp", "c"}))->capture_default_str();
  plugin->add_flag("--sandboxed", o->sandboxed, "Run it in its own sandboxed process (mode: sandboxed)");
  plugin->add_option("--dir", o->dir, "Where to create it (default: ./NAME)");
  plugin->add_flag("--json", o->json, "Print what was written as JSON");
  plugin->callback([o, &run] {
    Output out{o->json};
    auto written = scaffold(*o);
    if (!written) {
      run.exit = out.fail("new plugin", written.error());
      return;
    }
    json::array files;
    for (const auto& f : *written) files.push_back(json::string(f));
    out.print(json::object{{"plugin", o->name}, {"files", files}},
              fmt::format("created {} ({}, {}):\n  {}\nbuild it: cmake -S {} -B {}/build && cmake --build {}/build",
                          o->name, o->lang == "c" ? "C" : "C++", o->sandboxed ? "sandboxed" : "trusted",
                          fmt::join(*written, "\n  "), fs::path(written->front()).parent_path().string(),
                          fs::path(written->front()).parent_path().string(), fs::path(written->front()).parent_path().string()));
  });
}

}  // namespace xcore::cli
