// The database's schema: migrations applied in order at open, each in its own transaction. A database
// newer than this server is refused rather than guessed at.
#include "database_impl.hpp"

namespace xcore::server {

namespace {

// Each entry is one version; applied in order, once, in a transaction with its version row.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE tenants(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  username TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  created_at INTEGER NOT NULL);
CREATE TABLE api_tokens(
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL DEFAULT 0,
  revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE plugin_registrations(
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  plugin TEXT NOT NULL,
  version TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  config TEXT NOT NULL DEFAULT '{}',
  installed_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, plugin));
CREATE TABLE secrets(
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  sealed BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, name));
CREATE TABLE audit_log(
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  tenant TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  request_id TEXT NOT NULL);
CREATE INDEX audit_log_by_tenant ON audit_log(tenant, id);
)sql",
    R"sql(
CREATE TABLE scheduled_jobs(
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  spec TEXT NOT NULL,
  next_run INTEGER);
CREATE INDEX scheduled_jobs_by_tenant ON scheduled_jobs(tenant);
CREATE TABLE job_runs(
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
  reason TEXT NOT NULL,
  scheduled_for INTEGER,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  result TEXT,
  error TEXT NOT NULL DEFAULT '');
CREATE INDEX job_runs_by_job ON job_runs(job_id, started_ms);
CREATE TABLE webhook_deliveries(
  signature TEXT PRIMARY KEY,
  seen_at INTEGER NOT NULL);
)sql",
    R"sql(
CREATE TABLE users_v3(
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  username TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  generation INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  UNIQUE (tenant, username));
INSERT INTO users_v3(id, tenant, username, password_hash, role, created_at)
  SELECT id, tenant, username, password_hash, role, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_v3 RENAME TO users;
ALTER TABLE api_tokens ADD COLUMN user_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN user_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
UPDATE api_tokens SET user_generation = 1,
  user_id = COALESCE((SELECT u.id FROM users u WHERE u.tenant = api_tokens.tenant AND u.username = api_tokens.created_by), 0);
CREATE TABLE refresh_tokens(
  jti TEXT PRIMARY KEY,
  family TEXT NOT NULL,
  tenant TEXT NOT NULL,
  user_id INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens(user_id);
CREATE TABLE scheduled_jobs_v3(
  id TEXT NOT NULL,
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  spec TEXT NOT NULL,
  next_run INTEGER,
  PRIMARY KEY (tenant, id));
INSERT INTO scheduled_jobs_v3(id, tenant, spec, next_run) SELECT id, tenant, spec, next_run FROM scheduled_jobs;
DROP TABLE scheduled_jobs;
ALTER TABLE scheduled_jobs_v3 RENAME TO scheduled_jobs;
ALTER TABLE job_runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE job_runs SET tenant = COALESCE((SELECT j.tenant FROM scheduled_jobs j WHERE j.id = job_runs.job_id), '');
CREATE INDEX job_runs_by_tenant_job ON job_runs(tenant, job_id, started_ms);
)sql",
    R"sql(
CREATE INDEX audit_log_by_time ON audit_log(at);
ALTER TABLE tenants ADD COLUMN sandbox_uid INTEGER;
CREATE UNIQUE INDEX tenants_by_sandbox_uid ON tenants(sandbox_uid);
)sql",
    R"sql(
CREATE TABLE definitions(
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, kind, name));
CREATE TABLE agent_runs(
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  agent TEXT NOT NULL,
  status TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (tenant, id));
CREATE INDEX agent_runs_by_agent ON agent_runs(tenant, agent, started_ms);
CREATE INDEX agent_runs_by_status ON agent_runs(status);
CREATE TABLE agent_events(
  tenant TEXT NOT NULL,
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (tenant, run_id, seq));
)sql",
    R"sql(
CREATE TABLE nodes(
  tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL DEFAULT 0,
  version TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant, name));
)sql",
};

}  // namespace

Result<int> migrate(SQLite::Database& db, const std::filesystem::path& file) {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  int current = db.execAndGet("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").getInt();
  const int latest = static_cast<int>(std::size(kMigrations));
  if (current > latest)
    return Error{ErrorCode::incompatible, fmt::format("database {} has schema version {}, newer than this server's {}", file.string(), current, latest)};
  for (int v = current + 1; v <= latest; ++v) {
    SQLite::Transaction tx(db);
    db.exec(kMigrations[v - 1]);
    SQLite::Statement s(db, "INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)");
    s.bind(1, v);
    s.bind(2, unix_now());
    s.exec();
    tx.commit();
  }
  return latest;
}

}  // namespace xcore::server
