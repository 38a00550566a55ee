#include "audit_log.hpp"

#include <fmt/format.h>
#include <pthread.h>

#include <chrono>
#include <vector>

namespace xcore::server {

AuditLog::AuditLog(Database& db, Retention retention) : db_(db), retention_(retention) {
  prune();
  writer_ = std::thread([this] { run(); });
  ::pthread_setname_np(writer_.native_handle(), "xcore-audit");  // what top -H shows
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

void AuditLog::count_call(const std::string& tenant, const std::string& actor, const std::string& action, int status, const std::string& request_id) {
  std::lock_guard lock(mutex_);
  auto& c = window_[std::tuple{tenant, actor, action, status}];
  if (c.calls++ == 0) c.first_at = unix_now();
  c.last_request_id = request_id;
  if (window_.size() >= kWindowKeys) {
    close_window();
    wake_.notify_one();
  }
}

void AuditLog::close_window() {
  for (auto& [key, c] : window_) {
    const auto& [tenant, actor, action, status] = key;
    if (queue_.size() >= kQueueLimit) {
      dropped_ += 1;
      continue;
    }
    queue_.push_back(AuditRow{0, c.first_at, tenant, actor, action, action.substr(action.find(' ') + 1),
                              fmt::format("{} request{}, status {}", c.calls, c.calls == 1 ? "" : "s", status), c.last_request_id});
    ++recorded_;
  }
  window_.clear();
}

void AuditLog::flush() {
  std::unique_lock lock(mutex_);
  close_window();
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
  auto window_opened = last_prune;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || !queue_.empty(); });
    if (stopping_ || std::chrono::steady_clock::now() - window_opened >= kWindow) {
      close_window();
      window_opened = std::chrono::steady_clock::now();
    }
    if (queue_.empty() && stopping_) break;
    if (queue_.empty()) continue;
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
