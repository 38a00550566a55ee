// Definitions (model providers, agents) and the agent runtime's store over SQLite. Every statement names the
// tenant.
#include "database_impl.hpp"
#include <xcore/json_text.hpp>

#include <boost/json.hpp>

namespace xcore::server {

namespace {

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Result<json::object> parse_object(const std::string& text, std::string_view what) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return Error{ErrorCode::internal, fmt::format("database: an unreadable {}", what)};
  return std::move(v.as_object());
}

}  // namespace

Result<void> Database::put_definition(const std::string& tenant, std::string_view kind, const std::string& name, const json::object& spec, bool create) {
  XCORE_DB({
    const auto now = unix_now();
    if (create) {
      SQLite::Statement s(db, "INSERT INTO definitions(tenant, kind, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)");
      s.bind(1, tenant);
      s.bind(2, std::string(kind));
      s.bind(3, name);
      s.bind(4, xcore::json_text::serialize(spec));
      s.bind(5, now);
      s.bind(6, now);
      try {
        s.exec();
      } catch (const SQLite::Exception& e) {
        if (is_constraint(e)) return Error{ErrorCode::already_exists, fmt::format("a {} named '{}' exists already", kind, name)};
        throw;
      }
      return ok();
    }
    SQLite::Statement s(db, "UPDATE definitions SET spec = ?, updated_at = ? WHERE tenant = ? AND kind = ? AND name = ?");
    s.bind(1, xcore::json_text::serialize(spec));
    s.bind(2, now);
    s.bind(3, tenant);
    s.bind(4, std::string(kind));
    s.bind(5, name);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no {} '{}'", kind, name)};
    return ok();
  })
}

Result<std::optional<json::object>> Database::definition(const std::string& tenant, std::string_view kind, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, "SELECT spec FROM definitions WHERE tenant = ? AND kind = ? AND name = ?");
    s.bind(1, tenant);
    s.bind(2, std::string(kind));
    s.bind(3, name);
    if (!s.executeStep()) return std::optional<json::object>();
    XCORE_ASSIGN_OR_RETURN(auto o, parse_object(s.getColumn(0).getString(), kind));
    return std::optional<json::object>(std::move(o));
  })
}

Result<std::vector<json::object>> Database::definitions(const std::string& tenant, std::string_view kind) {
  XCORE_DB({
    std::vector<json::object> out;
    SQLite::Statement s(db, "SELECT spec FROM definitions WHERE tenant = ? AND kind = ? ORDER BY name");
    s.bind(1, tenant);
    s.bind(2, std::string(kind));
    while (s.executeStep()) {
      XCORE_ASSIGN_OR_RETURN(auto o, parse_object(s.getColumn(0).getString(), kind));
      out.push_back(std::move(o));
    }
    return out;
  })
}

Result<void> Database::delete_definition(const std::string& tenant, std::string_view kind, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, "DELETE FROM definitions WHERE tenant = ? AND kind = ? AND name = ?");
    s.bind(1, tenant);
    s.bind(2, std::string(kind));
    s.bind(3, name);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no {} '{}'", kind, name)};
    return ok();
  })
}

class SqliteAgentRunStore final : public AgentRunStore {
 public:
  explicit SqliteAgentRunStore(Database::Impl& db) : db_(db) {}

  Result<void> put_run(const AgentRun& run) override {
    return guarded([&] {
      SQLite::Statement s(db_.db, "INSERT INTO agent_runs(tenant, id, agent, status, started_ms, record) VALUES (?, ?, ?, ?, ?, ?) "
                                   "ON CONFLICT(tenant, id) DO UPDATE SET status = excluded.status, record = excluded.record");
      s.bind(1, run.tenant);
      s.bind(2, run.id);
      s.bind(3, run.agent);
      s.bind(4, std::string(to_string(run.status)));
      s.bind(5, to_ms(run.started));
      s.bind(6, xcore::json_text::serialize(run.to_json(/*with_messages=*/true)));
      s.exec();
    });
  }
  Result<std::optional<AgentRun>> run(std::string_view tenant, std::string_view id) override {
    std::vector<AgentRun> found;
    XCORE_TRY(select("SELECT tenant, record FROM agent_runs WHERE tenant = ? AND id = ?", {std::string(tenant), std::string(id)}, 1, found));
    if (found.empty()) return std::optional<AgentRun>();
    return std::optional<AgentRun>(std::move(found.front()));
  }
  Result<std::vector<AgentRun>> runs(std::string_view tenant, std::string_view agent, std::size_t limit) override {
    std::vector<AgentRun> found;
    if (agent.empty())
      XCORE_TRY(select("SELECT tenant, record FROM agent_runs WHERE tenant = ? ORDER BY started_ms DESC LIMIT ?", {std::string(tenant)}, limit, found));
    else
      XCORE_TRY(select("SELECT tenant, record FROM agent_runs WHERE tenant = ? AND agent = ? ORDER BY started_ms DESC LIMIT ?",
                       {std::string(tenant), std::string(agent)}, limit, found));
    return found;
  }
  Result<void> append_event(std::string_view tenant, std::string_view run_id, const AgentEvent& event) override {
    return guarded([&] {
      SQLite::Statement s(db_.db, "INSERT OR REPLACE INTO agent_events(tenant, run_id, seq, record) VALUES (?, ?, ?, ?)");
      s.bind(1, std::string(tenant));
      s.bind(2, std::string(run_id));
      s.bind(3, static_cast<std::int64_t>(event.seq));
      s.bind(4, xcore::json_text::serialize(event.to_json()));
      s.exec();
    });
  }
  Result<std::vector<AgentEvent>> events(std::string_view tenant, std::string_view run_id, std::uint64_t after_seq) override {
    std::vector<AgentEvent> out;
    XCORE_TRY(guarded([&] {
      SQLite::Statement s(db_.db, "SELECT record FROM agent_events WHERE tenant = ? AND run_id = ? AND seq > ? ORDER BY seq");
      s.bind(1, std::string(tenant));
      s.bind(2, std::string(run_id));
      s.bind(3, static_cast<std::int64_t>(after_seq));
      while (s.executeStep()) {
        auto o = parse_object(s.getColumn(0).getString(), "agent event");
        if (!o) continue;
        AgentEvent e;
        const auto& r = *o;
        e.seq = r.contains("seq") ? r.at("seq").to_number<std::uint64_t>() : 0;
        e.type = r.contains("type") && r.at("type").is_string() ? std::string(r.at("type").as_string()) : std::string();
        e.step = r.contains("step") ? r.at("step").to_number<unsigned>() : 0;
        if (r.contains("data") && r.at("data").is_object()) e.data = r.at("data").as_object();
        if (r.contains("at_ms")) e.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(r.at("at_ms").to_number<std::int64_t>()));
        out.push_back(std::move(e));
      }
    }));
    return out;
  }
  Result<std::vector<AgentRun>> waiting(std::string_view tenant) override {
    std::vector<AgentRun> found;
    XCORE_TRY(select("SELECT tenant, record FROM agent_runs WHERE tenant = ? AND status = 'awaiting_approval' ORDER BY started_ms LIMIT ?",
                     {std::string(tenant)}, 100000, found));
    return found;
  }
  Result<std::vector<AgentRun>> unfinished() override {
    std::vector<AgentRun> found;
    XCORE_TRY(select("SELECT tenant, record FROM agent_runs WHERE status IN ('running', 'awaiting_approval') ORDER BY started_ms", {}, 100000, found));
    return found;
  }

 private:
  Result<void> select(const char* sql, std::vector<std::string> binds, std::size_t limit, std::vector<AgentRun>& out) {
    return guarded([&] {
      SQLite::Statement s(db_.db, sql);
      int i = 1;
      for (const auto& b : binds) s.bind(i++, b);
      if (std::string_view(sql).ends_with("LIMIT ?")) s.bind(i, static_cast<std::int64_t>(std::min<std::size_t>(limit, 100000)));
      while (s.executeStep()) {
        boost::system::error_code ec;
        auto v = boost::json::parse(s.getColumn(1).getString(), ec);
        if (ec) continue;
        auto run = AgentRun::from_json(v);
        if (!run) continue;
        run->tenant = s.getColumn(0).getString();
        for (auto& p : run->pending) p.tenant = run->tenant;
        out.push_back(std::move(*run));
      }
    });
  }
  template <class F>
  Result<void> guarded(F&& f) {
    return run_locked(db_, std::forward<F>(f));
  }
  Database::Impl& db_;
};

std::shared_ptr<AgentRunStore> Database::agent_run_store() { return std::make_shared<SqliteAgentRunStore>(*impl_); }

Result<void> Database::prune_agent_runs(const std::string& tenant, const std::string& agent, std::int64_t keep) {
  XCORE_DB({
    SQLite::Transaction tx(db);
    const char* finished = "tenant = ? AND agent = ? AND status NOT IN ('running', 'awaiting_approval')";
    const auto old = fmt::format("SELECT id FROM agent_runs WHERE {} ORDER BY started_ms DESC LIMIT -1 OFFSET ?", finished);
    for (const auto& sql : {fmt::format("DELETE FROM agent_events WHERE tenant = ? AND run_id IN ({})", old),
                            fmt::format("DELETE FROM agent_runs WHERE tenant = ? AND id IN ({})", old)}) {
      SQLite::Statement s(db, sql);
      s.bind(1, tenant);
      s.bind(2, tenant);
      s.bind(3, agent);
      s.bind(4, keep);
      s.exec();
    }
    tx.commit();
    return ok();
  })
}

}  // namespace xcore::server
