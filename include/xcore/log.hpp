// Logging goes through a sink the host sets; libxcore never writes to stdout.
#pragma once

#include <functional>
#include <string_view>

namespace xcore::inline v1 {

enum class LogLevel { trace, debug, info, warn, error };

std::string_view to_string(LogLevel level) noexcept;

// Called from any thread; must not throw (a throwing sink is caught and ignored).
// `source` is "xcore" or the id of the plugin that logged.
using LogSink = std::function<void(LogLevel level, std::string_view source, std::string_view message)>;

// A sink that writes "[level] source: message" lines to stderr, for small hosts and examples.
LogSink stderr_log_sink(LogLevel min_level = LogLevel::info);

}  // namespace xcore::inline v1
