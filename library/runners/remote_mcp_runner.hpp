// A plugin that is an MCP server somewhere else, reached over Streamable HTTP (a manifest's `url:`): its
// tools, resources and prompts join the registry like any plugin's; no code of it runs here.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <xcore/manifest.hpp>

#include "runners/runner.hpp"

namespace xcore::inline v1 {

struct RemoteMcpOptions {
  // After the server could not be reached, calls fail at once for this long, doubled per failure up to
  // backoff_max; the first call after it tries the server again.
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_max{30000};
  std::string pinned_address;  // connect here for the URL's host (see mcp::HttpClientOptions)
  std::function<std::chrono::steady_clock::time_point()> clock;  // for tests; steady_clock by default
};

// Connects at on_load; fails then with `unavailable` when the server cannot be reached.
Result<std::unique_ptr<Runner>> open_remote_mcp(const PluginManifest& manifest, PluginServices& services, RemoteMcpOptions options = {});

}  // namespace xcore::inline v1
