#include "audit_log.hpp"

#include <chrono>
#include <vector>

namespace xcore::server {

AuditLog::AuditLog(Database& db, Retention retention) : db_(db), retention_(retention) {
  prune();
  writer_ = std::thread([this] { run(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void AuditLog::record(AuditRow row) {
  if (row.at == 0) row.at = unix_now();
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= kQueueLimit) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(row));
    ++recorded_;
  }
  wake_.notify_one();
}

void AuditLog::flush() {
  std::unique_lock lock(mutex_);
  const auto target = recorded_;
  wake_.notify_one();
  written_cv_.wait(lock, [&] { return written_ >= target || stopping_; });
  lock.unlock();
  prune();
}

std::uint64_t AuditLog::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void AuditLog::prune() {
  db_.prune_audit(unix_now() - static_cast<std::int64_t>(retention_.days) * 86400, retention_.rows);
}

void AuditLog::run() {
  auto last_prune = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) break;
    std::vector<AuditRow> batch(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    lock.unlock();
    db_.audit_batch(batch);
    // Retention every minute, or sooner when many rows came in.
    const bool due = since_prune_ + batch.size() >= 1000 || std::chrono::steady_clock::now() - last_prune >= std::chrono::minutes(1);
    if (due) {
      prune();
      last_prune = std::chrono::steady_clock::now();
    }
    lock.lock();
    since_prune_ = due ? 0 : since_prune_ + batch.size();
    written_ += batch.size();
    written_cv_.notify_all();
  }
  written_cv_.notify_all();
}

}  // namespace xcore::server
