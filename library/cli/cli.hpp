// The `xcore` command line: one program for plugin authors and operators. Each subcommand lives in the file
// of its kind (scaffold, packages, hosts) and registers itself on the app; main() only parses and exits.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>
#include <xcore/manager.hpp>

namespace CLI {
class App;
}

namespace xcore::cli {

// Exit codes, the same for every subcommand (and listed by `xcore --help`).
enum Exit : int {
  kOk = 0,
  kFailed = 1,    // what was asked for failed: a validation problem, a refused signature, a tool error
  kUsage = 2,     // the command line itself is wrong
};

// Where a subcommand's outcome goes: `exit` is returned by main().
struct Run {
  int exit = kOk;
};

// Prints a subcommand's data: as one JSON document with --json, else as the text given.
struct Output {
  bool json = false;
  void print(const json::value& data, const std::string& text) const;
  // An error: to stderr as "xcore <command>: message", or as {"error":{...}} on stdout with --json.
  int fail(std::string_view command, const Error& e) const;
  // A command's outcome: its data printed (`text` of it for people), or its error as fail() prints it.
  template <class Text>
  void report(Run& run, std::string_view command, const Result<json::object>& r, Text&& text) const {
    if (!r) run.exit = fail(command, r.error());
    else print(*r, text(*r));
  }
};

void add_scaffold_commands(CLI::App& app, Run& run);
void add_package_commands(CLI::App& app, Run& run);
void add_host_commands(CLI::App& app, Run& run);
// `xcore completion bash`: generated from the app's own definitions.
void add_completion_command(CLI::App& app, Run& run);

// Plugins for the commands that host them (run, call, mcp, validate): each path is a plugin folder (holding
// plugin.yaml or plugin.json) or a folder of plugin folders. `configs` by plugin id.
struct LocalHostOptions {
  std::vector<std::filesystem::path> paths;
  std::map<std::string, json::object> configs;
  bool verbose = false;
  bool force_sandbox = false;  // every plugin sandboxed, whatever its manifest says (validate)
};
Result<std::unique_ptr<Manager>> open_local_host(const LocalHostOptions& options, std::vector<Error>& problems);
// A --config file: YAML or JSON mapping plugin ids to their config objects.
Result<std::map<std::string, json::object>> read_config_file(const std::filesystem::path& file);

}  // namespace xcore::cli
