// MCP servers the host asks a node to run (xcore/node/mcp/start, stop, list): a preset (an npm package
// run by Node.js) becomes a sandboxed plugin of the node's Manager whose only paths are the package, its
// data folder and the chosen mounts, which must lie inside the node's --root folders; a URL becomes a
// `url:` plugin, loopback only. Each is a folder under <state>/mcp, so the node brings them back when it
// restarts. The node checks every field itself: the host's word is a request, not a grant.
#pragma once

#include <xcore/manager.hpp>
#include <xcore/nodes.hpp>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <stop_token>
#include <vector>

namespace xcore::node {

struct McpServersOptions {
  bool allowed = false;                              // --allow-mcp
  std::vector<std::filesystem::path> roots;          // canonical; mounts stay inside them
  std::vector<std::filesystem::path> caches;         // folders with node_modules/<package> (npm's --prefix)
  std::filesystem::path state;                       // <state>/mcp/<id>, <state>/packages
  std::filesystem::path data_dir;                    // the Manager's: a server's "{data}" is <data_dir>/<id>
  std::chrono::milliseconds install_timeout{300000};
  LogSink log;
};

class McpServers {
 public:
  McpServers(Manager& manager, McpServersOptions options);
  // The folder of plugin folders the node's Manager discovers them in.
  static std::filesystem::path plugins_dir(const std::filesystem::path& state) { return state / "mcp"; }

  Result<json::object> start(const json::value& params, std::chrono::steady_clock::time_point deadline, std::stop_token cancel);
  Result<json::object> stop(const json::value& params);
  json::object list() const;

 private:
  Result<std::filesystem::path> package_dir(const McpPreset& preset, std::chrono::steady_clock::time_point deadline, std::stop_token cancel);
  Result<std::vector<std::string>> check_mounts(const McpPreset& preset, const json::value* mounts) const;
  json::object describe(const std::string& id, const json::object& request) const;

  Manager& manager_;
  McpServersOptions options_;
  std::mutex mutex_;  // one start or stop at a time
};

}  // namespace xcore::node
