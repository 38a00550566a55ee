// Token buckets by key (a tenant, say): `rate` calls per `period`, bursts up to `rate`. The clock is the
// caller's, so tests drive time instead of sleeping.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xcore::inline v1 {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  RateLimiter(std::uint64_t rate, std::chrono::seconds period) : rate_(rate), period_(period) {}
  std::uint64_t rate() const noexcept { return rate_; }
  std::chrono::seconds period() const noexcept { return period_; }

  // Takes one token for `key`. Returns zero when granted, else how long until one will be there.
  Clock::duration take(std::string_view key, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto [it, fresh] = buckets_.try_emplace(std::string(key), Bucket{static_cast<double>(rate_), now});
    auto& b = it->second;
    const double per_second = static_cast<double>(rate_) / static_cast<double>(period_.count());
    b.tokens = std::min(static_cast<double>(rate_), b.tokens + std::chrono::duration<double>(now - b.last).count() * per_second);
    b.last = now;
    if (b.tokens >= 1.0) {
      b.tokens -= 1.0;
      if (buckets_.size() > kMaxKeys) forget_full(now, per_second);
      return Clock::duration::zero();
    }
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>((1.0 - b.tokens) / per_second));
  }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  static constexpr std::size_t kMaxKeys = 10000;

  // Keys whose bucket has refilled hold no information: drop them to bound memory.
  void forget_full(Clock::time_point now, double per_second) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      double t = it->second.tokens + std::chrono::duration<double>(now - it->second.last).count() * per_second;
      it = t >= static_cast<double>(rate_) ? buckets_.erase(it) : std::next(it);
    }
  }

  const std::uint64_t rate_;
  const std::chrono::seconds period_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace xcore::inline v1
