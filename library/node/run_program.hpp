// A program run to its end by the node: argv without a shell, its own process group (killed whole on the
// deadline or cancellation), nothing of the node's inherited, and its output kept up to a cap. Serves
// exec_command and the install of an MCP preset's package.
#pragma once

#include <chrono>
#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include <xcore/error.hpp>

namespace xcore::node {

struct ProgramSpec {
  std::filesystem::path executable;  // resolved: run as is, never looked up again
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"; nothing else is passed
  std::filesystem::path cwd;
  std::chrono::steady_clock::time_point deadline;
  std::stop_token cancel;
  std::size_t output_cap = 1u << 20;  // bytes kept of stdout and of stderr each
};

struct ProgramRun {
  std::string out, err;
  bool truncated = false, timed_out = false, cancelled = false;
  int status = 0;  // as waitpid gives it
  bool succeeded() const;
};

Result<ProgramRun> run_program(const ProgramSpec& spec);

}  // namespace xcore::node
