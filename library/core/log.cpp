#include <xcore/log.hpp>

#include <cstdio>
#include <fmt/format.h>
#include <mutex>

namespace xcore::inline v1 {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}

LogSink stderr_log_sink(LogLevel min_level) {
  return [min_level](LogLevel level, std::string_view source, std::string_view message) {
    if (level < min_level) return;
    static std::mutex m;  // keep lines whole when several threads log
    std::lock_guard lock(m);
    fmt::print(stderr, "[{}] {}: {}\n", to_string(level), source, message);
  };
}

}  // namespace xcore::inline v1
