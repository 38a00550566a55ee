// Lock-free counters and a latency histogram for calls (per tool, per plugin).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>

#include <xcore/tools.hpp>

namespace xcore::inline v1 {

class CallMetrics {
 public:
  // Upper bounds of the histogram buckets, in seconds (Prometheus style; +Inf is implied).
  static constexpr std::array<double, 16> kBucketBounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

  void record(std::uint64_t ns, bool error) noexcept {
    calls_.fetch_add(1, std::memory_order_relaxed);
    if (error) errors_.fetch_add(1, std::memory_order_relaxed);
    total_ns_.fetch_add(ns, std::memory_order_relaxed);
    auto prev = max_ns_.load(std::memory_order_relaxed);
    while (ns > prev && !max_ns_.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
    }
    double s = static_cast<double>(ns) * 1e-9;
    std::size_t i = 0;
    while (i < kBucketBounds.size() && s > kBucketBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
  void reject() noexcept { rejected_.fetch_add(1, std::memory_order_relaxed); }

  ToolMetrics snapshot() const {
    ToolMetrics m;
    m.calls = calls_.load();
    m.errors = errors_.load();
    m.rejected = rejected_.load();
    m.total_seconds = static_cast<double>(total_ns_.load()) * 1e-9;
    m.max_seconds = static_cast<double>(max_ns_.load()) * 1e-9;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBucketBounds.size(); ++i) {
      cumulative += buckets_[i].load();
      m.buckets.push_back({kBucketBounds[i], cumulative});
    }
    m.buckets.push_back({std::numeric_limits<double>::infinity(), cumulative + buckets_.back().load()});
    return m;
  }

 private:
  std::atomic<std::uint64_t> calls_{0}, errors_{0}, rejected_{0}, total_ns_{0}, max_ns_{0};
  std::array<std::atomic<std::uint64_t>, kBucketBounds.size() + 1> buckets_{};
};

}  // namespace xcore::inline v1
