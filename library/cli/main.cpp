// xcore: scaffold, validate, pack, sign and verify plugins; run, call and serve them over MCP.
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include <xcore/version.hpp>

#include "cli/cli.hpp"

namespace xcore::cli {

void Output::print(const json::value& data, const std::string& text) const {
  if (json) std::cout << boost::json::serialize(data) << '\n';
  else if (!text.empty()) std::cout << text << (text.ends_with('\n') ? "" : "\n");
  std::cout.flush();
}

int Output::fail(std::string_view command, const Error& e) const {
  if (json)
    std::cout << boost::json::serialize(json::object{{"error", json::object{{"code", to_string(e.code)}, {"message", e.message}}}}) << '\n';
  else
    std::cerr << fmt::format("xcore {}: {}\n", command, e.message);
  return kFailed;
}

}  // namespace xcore::cli

int main(int argc, char** argv) {
  using namespace xcore::cli;
  CLI::App app{"xcore: make, check, package, sign and run xcore plugins", "xcore"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(xcore::version_line()));
  app.footer(
      "Exit codes: 0 done; 1 what was asked failed (a problem found, a signature refused, a tool error);\n"
      "2 the command line is wrong. `xcore COMMAND --help` describes each command.");
  Run run;
  add_scaffold_commands(app, run);
  add_package_commands(app, run);
  add_host_commands(app, run);
  add_completion_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  return run.exit;
}
