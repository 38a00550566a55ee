// The audit log's writer. Requests hand their rows over and go on; one thread writes them in batches (one
// transaction each) and applies retention. Calls (tools, actions, plugin routes) come at request rates, so
// they are counted instead: one row per caller, call and status per window ("37 requests, status 200"),
// which keeps who called what and how it went at a cost a request does not notice.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

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
  // Counts one call into the current window's row for (tenant, actor, action, status).
  void count_call(const std::string& tenant, const std::string& actor, const std::string& action, int status, const std::string& request_id);
  // Returns when every row recorded before the call is written, and retention applied: readers of the
  // log see their own requests.
  void flush();
  std::uint64_t dropped() const;

 private:
  void run();
  void prune();
  void close_window();  // the counted calls become rows in the queue (mutex_ held)

  static constexpr std::size_t kQueueLimit = 10000;
  static constexpr std::size_t kWindowKeys = 10000;          // distinct counted calls before a window closes early
  static constexpr std::chrono::seconds kWindow{10};
  struct Counted {
    std::int64_t first_at = 0;
    std::uint64_t calls = 0;
    std::string last_request_id;
  };
  std::map<std::tuple<std::string, std::string, std::string, int>, Counted> window_;  // tenant, actor, action, status
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
