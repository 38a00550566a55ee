// Where tests/peers/install.sh put the third-party MCP servers, in the same order: XCORE_PEERS_DIR,
// /var/cache as root (readable by the sandbox's user), XDG_CACHE_HOME, HOME, then a folder in /tmp.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace xcore_test {

inline std::filesystem::path peers_dir() {
  namespace fs = std::filesystem;
  if (const char* d = std::getenv("XCORE_PEERS_DIR"); d && *d) return d;
  if (::geteuid() == 0) return "/var/cache/xcore/mcp-peers";
  if (const char* c = std::getenv("XDG_CACHE_HOME"); c && *c) return fs::path(c) / "xcore" / "mcp-peers";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "xcore" / "mcp-peers";
  return fs::path("/tmp") / ("xcore-" + std::to_string(::getuid())) / ".cache" / "xcore" / "mcp-peers";
}

// A peer's entry script, e.g. peer_script("server-everything").
inline std::filesystem::path peer_script(const std::string& package) {
  return peers_dir() / "node_modules" / "@modelcontextprotocol" / package / "dist" / "index.js";
}

}  // namespace xcore_test
