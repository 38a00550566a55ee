// The audit log's writer. Requests hand their rows over and go on; one thread writes them in batches (one
// transaction each) and applies retention, so auditing every tool call costs a request a queue push, not
// a database write.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "database.hpp"

namespace xcore::server {

class AuditLog {
 public:
  struct Retention {
    int days = 90;              // rows older than this go
    std::int64_t rows = 100000; // each tenant keeps its newest rows
  };
  AuditLog(Database& db, Retention retention);
  ~AuditLog();  // writes what is queued
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues a row. When the queue is full (the database is far behind) the row is counted as dropped
  // instead of holding the request.
  void record(AuditRow row);
  // Returns when every row recorded before the call is written, and retention applied: readers of the
  // log see their own requests.
  void flush();
  std::uint64_t dropped() const;

 private:
  void run();
  void prune();

  static constexpr std::size_t kQueueLimit = 10000;
  Database& db_;
  Retention retention_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, written_cv_;
  std::deque<AuditRow> queue_;
  std::uint64_t recorded_ = 0, written_ = 0, dropped_ = 0, since_prune_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace xcore::server
