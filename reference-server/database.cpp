#include "database.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <fmt/format.h>
#include <boost/json.hpp>

#include <chrono>

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
};

Error db_error(const std::exception& e) { return Error{ErrorCode::internal, fmt::format("database: {}", e.what())}; }

bool is_constraint(const SQLite::Exception& e) { return (e.getErrorCode() & 0xff) == SQLITE_CONSTRAINT; }

}  // namespace

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Database::Impl {
  explicit Impl(const std::filesystem::path& f)
      : db(f.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX) {}
  std::mutex mutex;
  SQLite::Database db;
  int version = 0;
};

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;
int Database::schema_version() const { return impl_->version; }

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& file) {
  try {
    auto impl = std::make_unique<Impl>(file);
    auto& db = impl->db;
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=NORMAL");  // with WAL: durable at checkpoints, never corrupt
    db.exec("PRAGMA foreign_keys=ON");
    db.setBusyTimeout(5000);
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
    impl->version = latest;
    return std::unique_ptr<Database>(new Database(std::move(impl)));
  } catch (const std::exception& e) {
    return Error{ErrorCode::unavailable, fmt::format("cannot open database {}: {}", file.string(), e.what())};
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

Result<void> Database::create_tenant(const std::string& id, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, "INSERT INTO tenants(id, name, created_at) VALUES (?, ?, ?)");
    s.bind(1, id);
    s.bind(2, name);
    s.bind(3, unix_now());
    s.exec();
    return ok();
  })
}

void Database::remove_tenant(const std::string& id) {
  std::lock_guard lock(impl_->mutex);
  try {
    SQLite::Statement s(impl_->db, "DELETE FROM tenants WHERE id = ?");
    s.bind(1, id);
    s.exec();
  } catch (const std::exception&) {
    // Left behind, it is started at the next start (and fails the same way, loudly).
  }
}

Result<std::vector<std::pair<std::string, std::string>>> Database::tenants() {
  XCORE_DB({
    std::vector<std::pair<std::string, std::string>> out;
    SQLite::Statement s(db, "SELECT id, name FROM tenants ORDER BY id");
    while (s.executeStep()) out.emplace_back(s.getColumn(0).getString(), s.getColumn(1).getString());
    return out;
  })
}

Result<bool> Database::tenant_exists(const std::string& id) {
  XCORE_DB({
    SQLite::Statement s(db, "SELECT 1 FROM tenants WHERE id = ?");
    s.bind(1, id);
    return s.executeStep();
  })
}

namespace {
UserRow user_from(SQLite::Statement& s) {
  return UserRow{s.getColumn(0).getString(), s.getColumn(1).getString(), s.getColumn(2).getString(), s.getColumn(3).getString(),
                 s.getColumn(4).getInt64(), s.getColumn(5).getInt64(), s.getColumn(6).getInt64()};
}
TokenRow token_from(SQLite::Statement& s) {
  TokenRow t;
  t.id = s.getColumn(0).getInt64();
  t.tenant = s.getColumn(1).getString();
  t.name = s.getColumn(2).getString();
  t.role = s.getColumn(3).getString();
  t.created_by = s.getColumn(4).getString();
  t.created_at = s.getColumn(5).getInt64();
  t.expires_at = s.getColumn(6).getInt64();
  t.revoked = s.getColumn(7).getInt() != 0;
  t.user_id = s.getColumn(8).getInt64();
  t.user_generation = s.getColumn(9).getInt64();
  boost::system::error_code ec;
  auto scopes = boost::json::parse(s.getColumn(10).getString(), ec);
  if (!ec && scopes.is_array()) {
    t.scoped = true;
    for (const auto& v : scopes.get_array())
      if (v.is_string()) t.scopes.emplace_back(v.get_string());
  }
  return t;
}
RegistrationRow registration_from(SQLite::Statement& s) {
  RegistrationRow r;
  r.tenant = s.getColumn(0).getString();
  r.plugin = s.getColumn(1).getString();
  r.version = s.getColumn(2).getString();
  r.enabled = s.getColumn(3).getInt() != 0;
  r.config = s.getColumn(4).getString();
  r.installed_at = s.getColumn(5).getInt64();
  r.updated_at = s.getColumn(6).getInt64();
  return r;
}
constexpr const char* kUserColumns = "SELECT tenant, username, password_hash, role, created_at, id, generation FROM users";
constexpr const char* kTokenColumns =
    "SELECT id, tenant, name, role, created_by, created_at, expires_at, revoked, user_id, user_generation, scopes FROM api_tokens";
constexpr const char* kRegistrationColumns =
    "SELECT tenant, plugin, version, enabled, config, installed_at, updated_at FROM plugin_registrations";

// The id of a tenant's user, or 0. Caller holds the lock.
std::int64_t user_id_of(SQLite::Database& db, const std::string& tenant, const std::string& username) {
  SQLite::Statement q(db, "SELECT id FROM users WHERE tenant = ? AND username = ?");
  q.bind(1, tenant);
  q.bind(2, username);
  return q.executeStep() ? q.getColumn(0).getInt64() : 0;
}

// Ends every session of a user: refresh tokens go, API tokens they made are revoked. Caller holds the lock.
void end_sessions(SQLite::Database& db, std::int64_t user_id) {
  SQLite::Statement r(db, "DELETE FROM refresh_tokens WHERE user_id = ?");
  r.bind(1, user_id);
  r.exec();
  SQLite::Statement t(db, "UPDATE api_tokens SET revoked = 1 WHERE user_id = ?");
  t.bind(1, user_id);
  t.exec();
}
}  // namespace

Result<std::int64_t> Database::create_user(const UserRow& u) {
  XCORE_DB({
    SQLite::Statement s(db, "INSERT INTO users(tenant, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, u.tenant);
    s.bind(2, u.username);
    s.bind(3, u.password_hash);
    s.bind(4, u.role);
    s.bind(5, unix_now());
    s.exec();
    return db.getLastInsertRowid();
  })
}

Result<std::optional<UserRow>> Database::find_user(const std::string& tenant, const std::string& username) {
  XCORE_DB({
    SQLite::Statement s(db, std::string(kUserColumns) + " WHERE tenant = ? AND username = ?");
    s.bind(1, tenant);
    s.bind(2, username);
    if (!s.executeStep()) return std::optional<UserRow>();
    return std::optional<UserRow>(user_from(s));
  })
}

Result<std::optional<UserRow>> Database::user_by_id(std::int64_t id) {
  XCORE_DB({
    SQLite::Statement s(db, std::string(kUserColumns) + " WHERE id = ?");
    s.bind(1, id);
    if (!s.executeStep()) return std::optional<UserRow>();
    return std::optional<UserRow>(user_from(s));
  })
}

Result<std::vector<UserRow>> Database::users(const std::string& tenant) {
  XCORE_DB({
    std::vector<UserRow> out;
    SQLite::Statement s(db, std::string(kUserColumns) + " WHERE tenant = ? ORDER BY username");
    s.bind(1, tenant);
    while (s.executeStep()) out.push_back(user_from(s));
    return out;
  })
}

Result<std::int64_t> Database::delete_user(const std::string& tenant, const std::string& username) {
  XCORE_DB({
    SQLite::Transaction tx(db);
    const auto id = user_id_of(db, tenant, username);
    if (!id) return Error{ErrorCode::not_found, fmt::format("no user '{}'", username)};
    SQLite::Statement s(db, "DELETE FROM users WHERE id = ?");
    s.bind(1, id);
    s.exec();
    end_sessions(db, id);
    tx.commit();
    return id;
  })
}

Result<std::int64_t> Database::update_user(const std::string& tenant, const std::string& username, const std::optional<std::string>& password_hash,
                                           const std::optional<std::string>& role) {
  XCORE_DB({
    SQLite::Transaction tx(db);
    const auto id = user_id_of(db, tenant, username);
    if (!id) return Error{ErrorCode::not_found, fmt::format("no user '{}'", username)};
    // A new generation: every token issued before this change is refused from now on.
    SQLite::Statement s(db, "UPDATE users SET password_hash = COALESCE(?, password_hash), role = COALESCE(?, role), generation = generation + 1 WHERE id = ?");
    if (password_hash) s.bind(1, *password_hash);
    else s.bind(1);
    if (role) s.bind(2, *role);
    else s.bind(2);
    s.bind(3, id);
    s.exec();
    end_sessions(db, id);
    tx.commit();
    return id;
  })
}

Result<std::int64_t> Database::user_count() {
  XCORE_DB({ return db.execAndGet("SELECT COUNT(*) FROM users").getInt64(); })
}

Result<void> Database::add_refresh(const RefreshRow& r) {
  XCORE_DB({
    SQLite::Statement prune(db, "DELETE FROM refresh_tokens WHERE expires_at < ?");
    prune.bind(1, unix_now());
    prune.exec();
    SQLite::Statement s(db, "INSERT INTO refresh_tokens(jti, family, tenant, user_id, expires_at) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, r.jti);
    s.bind(2, r.family);
    s.bind(3, r.tenant);
    s.bind(4, r.user_id);
    s.bind(5, r.expires_at);
    s.exec();
    return ok();
  })
}

Result<RefreshUse> Database::use_refresh(const std::string& jti, std::int64_t user_id) {
  XCORE_DB({
    SQLite::Transaction tx(db);
    SQLite::Statement q(db, "SELECT family, used FROM refresh_tokens WHERE jti = ? AND user_id = ?");
    q.bind(1, jti);
    q.bind(2, user_id);
    if (!q.executeStep()) return RefreshUse::unknown;
    const auto family = q.getColumn(0).getString();
    const bool used = q.getColumn(1).getInt() != 0;
    q.reset();
    if (used) {
      // A spent token shown again: someone holds a copy. The whole family ends (OAuth 2.1, 4.3.1).
      SQLite::Statement d(db, "DELETE FROM refresh_tokens WHERE family = ?");
      d.bind(1, family);
      d.exec();
      tx.commit();
      return RefreshUse::reused;
    }
    SQLite::Statement u(db, "UPDATE refresh_tokens SET used = 1 WHERE jti = ?");
    u.bind(1, jti);
    u.exec();
    tx.commit();
    return RefreshUse::fresh;
  })
}

Result<std::int64_t> Database::create_token(const TokenRow& t, const std::string& token_hash) {
  XCORE_DB({
    SQLite::Statement s(db, "INSERT INTO api_tokens(tenant, name, token_hash, role, created_by, created_at, expires_at, user_id, user_generation, scopes) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, t.tenant);
    s.bind(2, t.name);
    s.bind(3, token_hash);
    s.bind(4, t.role);
    s.bind(5, t.created_by);
    s.bind(6, unix_now());
    s.bind(7, t.expires_at);
    s.bind(8, t.user_id);
    s.bind(9, t.user_generation);
    boost::json::array scopes;
    for (const auto& sc : t.scopes) scopes.emplace_back(sc);
    s.bind(10, t.scoped ? boost::json::serialize(scopes) : std::string());
    s.exec();
    return db.getLastInsertRowid();
  })
}

Result<std::optional<TokenRow>> Database::find_token(const std::string& token_hash) {
  XCORE_DB({
    SQLite::Statement s(db, std::string(kTokenColumns) + " WHERE token_hash = ?");
    s.bind(1, token_hash);
    if (!s.executeStep()) return std::optional<TokenRow>();
    return std::optional<TokenRow>(token_from(s));
  })
}

Result<std::vector<TokenRow>> Database::tokens(const std::string& tenant) {
  XCORE_DB({
    std::vector<TokenRow> out;
    SQLite::Statement s(db, std::string(kTokenColumns) + " WHERE tenant = ? ORDER BY id");
    s.bind(1, tenant);
    while (s.executeStep()) out.push_back(token_from(s));
    return out;
  })
}

Result<void> Database::revoke_token(const std::string& tenant, std::int64_t id) {
  XCORE_DB({
    SQLite::Statement s(db, "UPDATE api_tokens SET revoked = 1 WHERE tenant = ? AND id = ?");
    s.bind(1, tenant);
    s.bind(2, id);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no API token {}", id)};
    return ok();
  })
}

Result<void> Database::put_registration(const RegistrationRow& r) {
  XCORE_DB({
    SQLite::Statement s(db,
                        "INSERT INTO plugin_registrations(tenant, plugin, version, enabled, config, installed_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tenant, plugin) DO UPDATE SET "
                        "version = excluded.version, enabled = excluded.enabled, config = excluded.config, updated_at = excluded.updated_at");
    auto now = unix_now();
    s.bind(1, r.tenant);
    s.bind(2, r.plugin);
    s.bind(3, r.version);
    s.bind(4, r.enabled ? 1 : 0);
    s.bind(5, r.config);
    s.bind(6, now);
    s.bind(7, now);
    s.exec();
    return ok();
  })
}

Result<std::optional<RegistrationRow>> Database::registration(const std::string& tenant, const std::string& plugin) {
  XCORE_DB({
    SQLite::Statement s(db, std::string(kRegistrationColumns) + " WHERE tenant = ? AND plugin = ?");
    s.bind(1, tenant);
    s.bind(2, plugin);
    if (!s.executeStep()) return std::optional<RegistrationRow>();
    return std::optional(registration_from(s));
  })
}

Result<std::vector<RegistrationRow>> Database::registrations(const std::string& tenant) {
  XCORE_DB({
    std::vector<RegistrationRow> out;
    SQLite::Statement s(db, std::string(kRegistrationColumns) + (tenant.empty() ? " ORDER BY tenant, plugin" : " WHERE tenant = ? ORDER BY plugin"));
    if (!tenant.empty()) s.bind(1, tenant);
    while (s.executeStep()) out.push_back(registration_from(s));
    return out;
  })
}

namespace {

// One tenant's registrations as the Manager keeps them; the config travels as JSON text in the row.
class TenantRegistrations final : public RegistrationStore {
 public:
  TenantRegistrations(Database& db, std::string tenant) : db_(db), tenant_(std::move(tenant)) {}

  Result<std::vector<Registration>> list() override {
    XCORE_ASSIGN_OR_RETURN(auto rows, db_.registrations(tenant_));
    std::vector<Registration> out;
    for (const auto& row : rows) {
      XCORE_ASSIGN_OR_RETURN(auto r, from_row(row));
      out.push_back(std::move(r));
    }
    return out;
  }
  Result<std::optional<Registration>> find(std::string_view plugin) override {
    XCORE_ASSIGN_OR_RETURN(auto row, db_.registration(tenant_, std::string(plugin)));
    if (!row) return std::optional<Registration>();
    XCORE_ASSIGN_OR_RETURN(auto r, from_row(*row));
    return std::optional(std::move(r));
  }
  Result<void> put(const Registration& r) override {
    return db_.put_registration(RegistrationRow{tenant_, r.plugin, r.version, r.enabled, json::serialize(r.config), 0, 0});
  }

 private:
  Result<Registration> from_row(const RegistrationRow& row) const {
    boost::system::error_code ec;
    auto config = json::parse(row.config, ec);
    if (ec || !config.is_object())
      return Error{ErrorCode::internal, fmt::format("tenant '{}': the stored config of plugin '{}' is not a JSON object", tenant_, row.plugin)};
    return Registration{row.plugin, row.enabled, std::move(config.get_object()), row.version};
  }
  Database& db_;
  std::string tenant_;
};

}  // namespace

std::shared_ptr<RegistrationStore> Database::registration_store(const std::string& tenant) {
  return std::make_shared<TenantRegistrations>(*this, tenant);
}

Result<void> Database::put_secret(const std::string& tenant, const std::string& name, const std::string& sealed) {
  XCORE_DB({
    SQLite::Statement s(db,
                        "INSERT INTO secrets(tenant, name, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT(tenant, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at");
    auto now = unix_now();
    s.bind(1, tenant);
    s.bind(2, name);
    s.bind(3, sealed.data(), static_cast<int>(sealed.size()));
    s.bind(4, now);
    s.bind(5, now);
    s.exec();
    return ok();
  })
}

Result<std::optional<std::string>> Database::secret(const std::string& tenant, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, "SELECT sealed FROM secrets WHERE tenant = ? AND name = ?");
    s.bind(1, tenant);
    s.bind(2, name);
    if (!s.executeStep()) return std::optional<std::string>();
    auto col = s.getColumn(0);
    return std::optional(std::string(static_cast<const char*>(col.getBlob()), static_cast<std::size_t>(col.getBytes())));
  })
}

Result<std::vector<std::string>> Database::secret_names(const std::string& tenant) {
  XCORE_DB({
    std::vector<std::string> out;
    SQLite::Statement s(db, "SELECT name FROM secrets WHERE tenant = ? ORDER BY name");
    s.bind(1, tenant);
    while (s.executeStep()) out.push_back(s.getColumn(0).getString());
    return out;
  })
}

Result<void> Database::delete_secret(const std::string& tenant, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, "DELETE FROM secrets WHERE tenant = ? AND name = ?");
    s.bind(1, tenant);
    s.bind(2, name);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no secret '{}'", name)};
    return ok();
  })
}

Result<std::uint32_t> Database::sandbox_uid(const std::string& tenant, std::uint32_t first, std::uint32_t last) {
  XCORE_DB({
    SQLite::Transaction tx(db);
    SQLite::Statement get(db, "SELECT sandbox_uid FROM tenants WHERE id = ?");
    get.bind(1, tenant);
    if (!get.executeStep()) return Error{ErrorCode::not_found, fmt::format("no tenant '{}'", tenant)};
    if (!get.getColumn(0).isNull()) {
      const auto uid = get.getColumn(0).getInt64();
      if (uid >= first && uid <= last) return static_cast<std::uint32_t>(uid);
      // Outside a range that has changed since: allocated anew below.
    }
    SQLite::Statement top(db, "SELECT MAX(sandbox_uid) FROM tenants WHERE sandbox_uid BETWEEN ? AND ?");
    top.bind(1, static_cast<std::int64_t>(first));
    top.bind(2, static_cast<std::int64_t>(last));
    top.executeStep();
    const std::int64_t next = top.getColumn(0).isNull() ? first : top.getColumn(0).getInt64() + 1;
    if (next > last)
      return Error{ErrorCode::resource_exhausted, fmt::format("the sandbox uid range {}-{} is used up: widen sandbox_uids in the settings", first, last)};
    SQLite::Statement set(db, "UPDATE tenants SET sandbox_uid = ? WHERE id = ?");
    set.bind(1, next);
    set.bind(2, tenant);
    set.exec();
    tx.commit();
    return static_cast<std::uint32_t>(next);
  })
}

void Database::audit_batch(const std::vector<AuditRow>& rows) {
  if (rows.empty()) return;
  std::lock_guard lock(impl_->mutex);
  try {
    SQLite::Transaction tx(impl_->db);
    SQLite::Statement s(impl_->db, "INSERT INTO audit_log(at, tenant, actor, action, target, detail, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)");
    const auto now = unix_now();
    for (const auto& r : rows) {
      s.bind(1, r.at ? r.at : now);
      s.bind(2, r.tenant);
      s.bind(3, r.actor);
      s.bind(4, r.action);
      s.bind(5, r.target);
      s.bind(6, r.detail);
      s.bind(7, r.request_id);
      s.exec();
      s.reset();
    }
    tx.commit();
  } catch (const std::exception&) {
    // An audit row that cannot be written must not fail the request that already happened.
  }
}

void Database::prune_audit(std::int64_t before, std::int64_t keep) {
  std::lock_guard lock(impl_->mutex);
  try {
    SQLite::Statement old(impl_->db, "DELETE FROM audit_log WHERE at < ?");
    old.bind(1, before);
    old.exec();
    // Per tenant: everything below its keep-th newest id (the (tenant, id) index answers both).
    SQLite::Statement tenants(impl_->db, "SELECT tenant FROM audit_log GROUP BY tenant HAVING COUNT(*) > ?");
    tenants.bind(1, keep);
    std::vector<std::string> over;
    while (tenants.executeStep()) over.push_back(tenants.getColumn(0).getString());
    for (const auto& t : over) {
      SQLite::Statement cut(impl_->db,
                            "DELETE FROM audit_log WHERE tenant = ?1 AND id <= (SELECT id FROM audit_log WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
      cut.bind(1, t);
      cut.bind(2, keep);
      cut.exec();
    }
  } catch (const std::exception&) {
    // Retention is retried at the next pass.
  }
}

Result<std::vector<AuditRow>> Database::audit_log(const std::string& tenant, int limit) {
  XCORE_DB({
    std::vector<AuditRow> out;
    SQLite::Statement s(db, "SELECT id, at, tenant, actor, action, target, detail, request_id FROM audit_log WHERE tenant = ? ORDER BY id DESC LIMIT ?");
    s.bind(1, tenant);
    s.bind(2, limit);
    while (s.executeStep())
      out.push_back(AuditRow{s.getColumn(0).getInt64(), s.getColumn(1).getInt64(), s.getColumn(2).getString(), s.getColumn(3).getString(),
                             s.getColumn(4).getString(), s.getColumn(5).getString(), s.getColumn(6).getString(), s.getColumn(7).getString()});
    return out;
  })
}

// ---- the scheduler's store ---------------------------------------------------------------------------------

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
      s.bind(3, boost::json::serialize(job.spec.to_json()));
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
      else s.bind(3, boost::json::serialize(run.result));
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
    std::lock_guard lock(db_.mutex);
    try {
      f();
      return ok();
    } catch (const std::exception& e) {
      return Error{ErrorCode::unavailable, fmt::format("database: {}", e.what())};
    }
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
    else s.bind(8, boost::json::serialize(run.result));
    s.bind(9, run.error);
    s.bind(10, tenant_);
    s.exec();
  }

  Database::Impl& db_;
  const std::string tenant_;
};

std::shared_ptr<JobStore> Database::job_store(const std::string& tenant) { return std::make_shared<SqliteJobStore>(*impl_, tenant); }

Result<bool> Database::first_delivery(const std::string& signature, std::int64_t now, std::int64_t window_seconds) {
  XCORE_DB({
    SQLite::Statement prune(db, "DELETE FROM webhook_deliveries WHERE seen_at < ?");
    prune.bind(1, now - 2 * window_seconds);
    prune.exec();
    SQLite::Statement s(db, "INSERT OR IGNORE INTO webhook_deliveries(signature, seen_at) VALUES (?, ?)");
    s.bind(1, signature);
    s.bind(2, now);
    return s.exec() == 1;  // 0: seen before
  })
}

}  // namespace xcore::server
