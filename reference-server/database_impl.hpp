// What database.cpp and the SQLite stores share: the connection and the way every statement runs. Only
// the server's database files include it (SQLiteCpp's headers stay out of the rest).
#pragma once

#include "database.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <mutex>

namespace xcore::server {

struct Database::Impl {
  explicit Impl(const std::filesystem::path& f)
      : db(f.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX) {}
  std::mutex mutex;
  SQLite::Database db;
  int version = 0;
};

inline Error db_error(const std::exception& e) { return Error{ErrorCode::internal, fmt::format("database: {}", e.what())}; }

inline bool is_constraint(const SQLite::Exception& e) { return (e.getErrorCode() & 0xff) == SQLITE_CONSTRAINT; }

// The schema, one migration per version (database_migrations.cpp).
Result<int> migrate(SQLite::Database& db, const std::filesystem::path& file);

// For the stores (jobs, agent runs): runs `f` under the connection's lock; a failure is `unavailable`, which
// their callers (a scheduler, an agent run) report and go on from.
template <class F>
Result<void> run_locked(Database::Impl& db, F&& f) {
  std::lock_guard lock(db.mutex);
  try {
    f();
    return ok();
  } catch (const std::exception& e) {
    return Error{ErrorCode::unavailable, fmt::format("database: {}", e.what())};
  }
}

// Runs `fn` under the connection's lock, turning SQLite's exceptions into errors.
#define XCORE_DB(...)                                       \
  std::lock_guard lock(impl_->mutex);                        \
  auto& db = impl_->db;                                      \
  (void)db;                                                  \
  try {                                                      \
    __VA_ARGS__                                              \
  } catch (const SQLite::Exception& e) {                     \
    if (is_constraint(e))                                    \
      return Error{ErrorCode::already_exists, e.what()};     \
    return db_error(e);                                      \
  } catch (const std::exception& e) {                        \
    return db_error(e);                                      \
  }

}  // namespace xcore::server
