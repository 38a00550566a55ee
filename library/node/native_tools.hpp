// The tools every node serves of itself: files under its configured roots, the machine's figures, and
// (only when enabled) commands under a command policy. Registered as host tools of the node's Manager.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <xcore/tools.hpp>

#include "nodes/command_policy.hpp"

namespace xcore::node {

// The host's command policy, as it last sent it (xcore/node/policy): a command must pass it too.
struct HostPolicy {
  std::mutex mutex;
  std::optional<nodes::CommandPolicy> policy;
};

struct NativeToolsOptions {
  std::vector<std::filesystem::path> roots;  // read_file, write_file, list_directory stay under these
  bool exec = false;                         // exec_command is served only when set
  nodes::CommandPolicy policy;  // the node's own
  std::shared_ptr<HostPolicy> host_policy = std::make_shared<HostPolicy>();
  std::chrono::milliseconds exec_timeout{30000};  // the longest a command may take (a call may ask less)
  std::size_t output_cap = 1u << 20;              // bytes kept of stdout and of stderr each
  std::size_t max_file = 8u << 20;                // bytes read_file returns at most
};

Result<std::vector<ToolRegistration>> register_native_tools(ToolRegistry& tools, const NativeToolsOptions& options);

}  // namespace xcore::node
