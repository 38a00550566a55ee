#include "core/trace_id.hpp"

#include <atomic>
#include <fmt/format.h>
#include <random>

namespace xcore::inline v1 {

std::string new_trace_id() {
  static const std::uint64_t process_part = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("{:016x}{:016x}", process_part, counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

}  // namespace xcore::inline v1
