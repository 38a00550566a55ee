// The scheduler's store over SQLite: one tenant's jobs and their runs; every statement names the tenant.
#include "database_impl.hpp"
#include <xcore/json_text.hpp>

#include <boost/json.hpp>

#include <chrono>

namespace xcore::server {

namespace {

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
std::chrono::system_clock::time_point from_ms(std::int64_t ms) { return std::chrono::system_clock::time_point{std::chrono::milliseconds(ms)}; }

}  // namespace

class SqliteJobStore final : public JobStore {
 public:
  SqliteJobStore(Database::Impl& db, std::string tenant) : db_(db), tenant_(std::move(tenant)) {}

  Result<void> put_job(const StoredJob& job) override {
    return guarded([&] {
      SQLite::Statement s(db_.db, "INSERT INTO scheduled_jobs(id, tenant, spec, next_run) VALUES (?, ?, ?, ?) "
                                   "ON CONFLICT(tenant, id) DO UPDATE SET spec = excluded.spec, next_run = excluded.next_run");
      s.bind(1, job.spec.id);
      s.bind(2, tenant_);
      s.bind(3, xcore::json_text::serialize(job.spec.to_json()));
      bind_time(s, 4, job.next_run);
      s.exec();
    });
  }
  Result<void> remove_job(std::string_view id) override {
    return guarded([&] {
      SQLite::Transaction tx(db_.db);
      for (const char* sql : {"DELETE FROM scheduled_jobs WHERE id = ? AND tenant = ?", "DELETE FROM job_runs WHERE job_id = ? AND tenant = ?"}) {
        SQLite::Statement s(db_.db, sql);
        s.bind(1, std::string(id));
        s.bind(2, tenant_);
        s.exec();
      }
      tx.commit();
    });
  }
  Result<std::vector<StoredJob>> jobs() override {
    std::vector<StoredJob> out;
    XCORE_TRY(guarded([&] {
      SQLite::Statement s(db_.db, "SELECT spec, next_run FROM scheduled_jobs WHERE tenant = ? ORDER BY id");
      s.bind(1, tenant_);
      while (s.executeStep()) {
        boost::system::error_code ec;
        auto v = boost::json::parse(s.getColumn(0).getString(), ec);
        auto spec = ec ? Result<JobSpec>(Error{ErrorCode::internal, "unreadable job"}) : JobSpec::from_json(v);
        if (!spec) continue;
        StoredJob j{std::move(*spec), std::nullopt};
        if (!s.getColumn(1).isNull()) j.next_run = SysSeconds{std::chrono::seconds(s.getColumn(1).getInt64())};
        out.push_back(std::move(j));
      }
    }));
    return out;
  }
  // The fire and its record in one transaction: a crash leaves both or neither.
  Result<void> start_run(const RunRecord& run, std::optional<SysSeconds> next_run) override {
    return guarded([&] {
      SQLite::Transaction tx(db_.db);
      SQLite::Statement u(db_.db, "UPDATE scheduled_jobs SET next_run = ? WHERE id = ? AND tenant = ?");
      bind_time(u, 1, next_run);
      u.bind(2, run.job_id);
      u.bind(3, tenant_);
      u.exec();
      insert(run);
      tx.commit();
    });
  }
  Result<void> set_next_run(std::string_view id, std::optional<SysSeconds> next_run) override {
    return guarded([&] {
      SQLite::Statement u(db_.db, "UPDATE scheduled_jobs SET next_run = ? WHERE id = ? AND tenant = ?");
      bind_time(u, 1, next_run);
      u.bind(2, std::string(id));
      u.bind(3, tenant_);
      u.exec();
    });
  }
  Result<void> finish_run(const RunRecord& run) override {
    return guarded([&] {
      SQLite::Statement s(db_.db, "UPDATE job_runs SET status = ?, ended_ms = ?, result = ?, error = ? WHERE id = ? AND tenant = ?");
      s.bind(1, std::string(to_string(run.status)));
      s.bind(2, to_ms(run.ended));
      if (run.result.is_null()) s.bind(3);
      else s.bind(3, xcore::json_text::serialize(run.result));
      s.bind(4, run.error);
      s.bind(5, run.id);
      s.bind(6, tenant_);
      s.exec();
    });
  }
  Result<void> add_run(const RunRecord& run) override {
    return guarded([&] { insert(run); });
  }
  Result<std::vector<RunRecord>> runs(std::string_view job_id, std::size_t limit) override {
    std::vector<RunRecord> out;
    XCORE_TRY(guarded([&] {
      SQLite::Statement s(db_.db, "SELECT id, job_id, status, reason, scheduled_for, started_ms, ended_ms, result, error FROM job_runs "
                                   "WHERE tenant = ? AND job_id = ? ORDER BY started_ms DESC, rowid DESC LIMIT ?");
      s.bind(1, tenant_);
      s.bind(2, std::string(job_id));
      s.bind(3, static_cast<std::int64_t>(limit));
      while (s.executeStep()) {
        RunRecord r;
        r.id = s.getColumn(0).getString();
        r.job_id = s.getColumn(1).getString();
        parse_run_status(s.getColumn(2).getString(), r.status);
        r.reason = s.getColumn(3).getString();
        if (!s.getColumn(4).isNull()) r.scheduled_for = SysSeconds{std::chrono::seconds(s.getColumn(4).getInt64())};
        r.started = from_ms(s.getColumn(5).getInt64());
        if (!s.getColumn(6).isNull()) r.ended = from_ms(s.getColumn(6).getInt64());
        if (!s.getColumn(7).isNull()) {
          boost::system::error_code ec;
          r.result = boost::json::parse(s.getColumn(7).getString(), ec);
        }
        r.error = s.getColumn(8).getString();
        out.push_back(std::move(r));
      }
    }));
    return out;
  }
  Result<std::size_t> interrupt_running(std::chrono::system_clock::time_point now) override {
    std::size_t n = 0;
    XCORE_TRY(guarded([&] {
      SQLite::Statement s(db_.db, "UPDATE job_runs SET status = 'interrupted', ended_ms = ?, error = 'the server stopped during the run' "
                                   "WHERE status = 'running' AND tenant = ?");
      s.bind(1, to_ms(now));
      s.bind(2, tenant_);
      n = static_cast<std::size_t>(s.exec());
    }));
    return n;
  }
  Result<void> prune_runs(std::string_view job_id, std::size_t keep) override {
    return guarded([&] {
      SQLite::Statement s(db_.db, "DELETE FROM job_runs WHERE tenant = ? AND job_id = ? AND id NOT IN "
                                   "(SELECT id FROM job_runs WHERE tenant = ? AND job_id = ? ORDER BY started_ms DESC, rowid DESC LIMIT ?)");
      s.bind(1, tenant_);
      s.bind(2, std::string(job_id));
      s.bind(3, tenant_);
      s.bind(4, std::string(job_id));
      s.bind(5, static_cast<std::int64_t>(keep));
      s.exec();
    });
  }

 private:
  template <class F>
  Result<void> guarded(F&& f) {
    return run_locked(db_, std::forward<F>(f));
  }
  static void bind_time(SQLite::Statement& s, int i, std::optional<SysSeconds> t) {
    if (t) s.bind(i, static_cast<std::int64_t>(t->time_since_epoch().count()));
    else s.bind(i);
  }
  // Caller holds the lock.
  void insert(const RunRecord& run) {
    SQLite::Statement s(db_.db, "INSERT INTO job_runs(id, job_id, status, reason, scheduled_for, started_ms, ended_ms, result, error, tenant) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, run.id);
    s.bind(2, run.job_id);
    s.bind(3, std::string(to_string(run.status)));
    s.bind(4, run.reason);
    bind_time(s, 5, run.scheduled_for);
    s.bind(6, to_ms(run.started));
    if (run.status == RunStatus::running) s.bind(7);
    else s.bind(7, to_ms(run.ended));
    if (run.result.is_null()) s.bind(8);
    else s.bind(8, xcore::json_text::serialize(run.result));
    s.bind(9, run.error);
    s.bind(10, tenant_);
    s.exec();
  }

  Database::Impl& db_;
  const std::string tenant_;
};

std::shared_ptr<JobStore> Database::job_store(const std::string& tenant) { return std::make_shared<SqliteJobStore>(*impl_, tenant); }

}  // namespace xcore::server
