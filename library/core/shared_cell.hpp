// A shared_ptr that threads read and replace. Used instead of std::atomic<std::shared_ptr>: libstdc++ 12's
// version releases its internal lock with relaxed ordering after a load, which leaves the pointer read
// unordered against a later store (a data race by the memory model, and ThreadSanitizer reports it).
#pragma once

#include <memory>
#include <mutex>
#include <utility>

namespace xcore::inline v1 {

template <class T>
class SharedCell {
 public:
  SharedCell() = default;
  explicit SharedCell(std::shared_ptr<T> p) : ptr_(std::move(p)) {}
  SharedCell(const SharedCell&) = delete;
  SharedCell& operator=(const SharedCell&) = delete;

  std::shared_ptr<T> load() const {
    std::lock_guard lock(mutex_);
    return ptr_;
  }
  // The previous value is released outside the lock (its destructor may do real work).
  void store(std::shared_ptr<T> p) { (void)exchange(std::move(p)); }
  std::shared_ptr<T> exchange(std::shared_ptr<T> p) {
    std::lock_guard lock(mutex_);
    return std::exchange(ptr_, std::move(p));
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<T> ptr_;
};

}  // namespace xcore::inline v1
