#include "database.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <fmt/format.h>

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

#define XCORE_DB_QUERY(fallback, ...) \
  std::lock_guard lock(impl_->mutex);    \
  auto& db = impl_->db;                  \
  try {                                  \
    __VA_ARGS__                          \
  } catch (const std::exception&) {      \
    return fallback;                     \
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

std::vector<std::pair<std::string, std::string>> Database::tenants() {
  XCORE_DB_QUERY({}, {
    std::vector<std::pair<std::string, std::string>> out;
    SQLite::Statement s(db, "SELECT id, name FROM tenants ORDER BY id");
    while (s.executeStep()) out.emplace_back(s.getColumn(0).getString(), s.getColumn(1).getString());
    return out;
  })
}

bool Database::tenant_exists(const std::string& id) {
  XCORE_DB_QUERY(false, {
    SQLite::Statement s(db, "SELECT 1 FROM tenants WHERE id = ?");
    s.bind(1, id);
    return s.executeStep();
  })
}

namespace {
UserRow user_from(SQLite::Statement& s) {
  return UserRow{s.getColumn(0).getString(), s.getColumn(1).getString(), s.getColumn(2).getString(), s.getColumn(3).getString(),
                 s.getColumn(4).getInt64()};
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
constexpr const char* kUserColumns = "SELECT tenant, username, password_hash, role, created_at FROM users";
constexpr const char* kTokenColumns = "SELECT id, tenant, name, role, created_by, created_at, expires_at, revoked FROM api_tokens";
constexpr const char* kRegistrationColumns =
    "SELECT tenant, plugin, version, enabled, config, installed_at, updated_at FROM plugin_registrations";
}  // namespace

Result<void> Database::create_user(const UserRow& u) {
  XCORE_DB({
    SQLite::Statement s(db, "INSERT INTO users(tenant, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, u.tenant);
    s.bind(2, u.username);
    s.bind(3, u.password_hash);
    s.bind(4, u.role);
    s.bind(5, unix_now());
    s.exec();
    return ok();
  })
}

std::optional<UserRow> Database::find_user(const std::string& username) {
  XCORE_DB_QUERY(std::nullopt, {
    SQLite::Statement s(db, std::string(kUserColumns) + " WHERE username = ?");
    s.bind(1, username);
    if (!s.executeStep()) return std::nullopt;
    return user_from(s);
  })
}

std::vector<UserRow> Database::users(const std::string& tenant) {
  XCORE_DB_QUERY({}, {
    std::vector<UserRow> out;
    SQLite::Statement s(db, std::string(kUserColumns) + " WHERE tenant = ? ORDER BY username");
    s.bind(1, tenant);
    while (s.executeStep()) out.push_back(user_from(s));
    return out;
  })
}

Result<void> Database::delete_user(const std::string& tenant, const std::string& username) {
  XCORE_DB({
    SQLite::Statement s(db, "DELETE FROM users WHERE tenant = ? AND username = ?");
    s.bind(1, tenant);
    s.bind(2, username);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no user '{}'", username)};
    return ok();
  })
}

std::int64_t Database::user_count() {
  XCORE_DB_QUERY(0, { return db.execAndGet("SELECT COUNT(*) FROM users").getInt64(); })
}

Result<std::int64_t> Database::create_token(const TokenRow& t, const std::string& token_hash) {
  XCORE_DB({
    SQLite::Statement s(db, "INSERT INTO api_tokens(tenant, name, token_hash, role, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, t.tenant);
    s.bind(2, t.name);
    s.bind(3, token_hash);
    s.bind(4, t.role);
    s.bind(5, t.created_by);
    s.bind(6, unix_now());
    s.bind(7, t.expires_at);
    s.exec();
    return db.getLastInsertRowid();
  })
}

std::optional<TokenRow> Database::find_token(const std::string& token_hash) {
  XCORE_DB_QUERY(std::nullopt, {
    SQLite::Statement s(db, std::string(kTokenColumns) + " WHERE token_hash = ?");
    s.bind(1, token_hash);
    if (!s.executeStep()) return std::nullopt;
    return token_from(s);
  })
}

std::vector<TokenRow> Database::tokens(const std::string& tenant) {
  XCORE_DB_QUERY({}, {
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

std::optional<RegistrationRow> Database::registration(const std::string& tenant, const std::string& plugin) {
  XCORE_DB_QUERY(std::nullopt, {
    SQLite::Statement s(db, std::string(kRegistrationColumns) + " WHERE tenant = ? AND plugin = ?");
    s.bind(1, tenant);
    s.bind(2, plugin);
    if (!s.executeStep()) return std::nullopt;
    return registration_from(s);
  })
}

std::vector<RegistrationRow> Database::registrations(const std::string& tenant) {
  XCORE_DB_QUERY({}, {
    std::vector<RegistrationRow> out;
    SQLite::Statement s(db, std::string(kRegistrationColumns) + (tenant.empty() ? " ORDER BY tenant, plugin" : " WHERE tenant = ? ORDER BY plugin"));
    if (!tenant.empty()) s.bind(1, tenant);
    while (s.executeStep()) out.push_back(registration_from(s));
    return out;
  })
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

std::optional<std::string> Database::secret(const std::string& tenant, const std::string& name) {
  XCORE_DB_QUERY(std::nullopt, {
    SQLite::Statement s(db, "SELECT sealed FROM secrets WHERE tenant = ? AND name = ?");
    s.bind(1, tenant);
    s.bind(2, name);
    if (!s.executeStep()) return std::nullopt;
    auto col = s.getColumn(0);
    return std::string(static_cast<const char*>(col.getBlob()), static_cast<std::size_t>(col.getBytes()));
  })
}

std::vector<std::string> Database::secret_names(const std::string& tenant) {
  XCORE_DB_QUERY({}, {
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

void Database::audit(const AuditRow& r) {
  std::lock_guard lock(impl_->mutex);
  try {
    SQLite::Statement s(impl_->db, "INSERT INTO audit_log(at, tenant, actor, action, target, detail, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, unix_now());
    s.bind(2, r.tenant);
    s.bind(3, r.actor);
    s.bind(4, r.action);
    s.bind(5, r.target);
    s.bind(6, r.detail);
    s.bind(7, r.request_id);
    s.exec();
  } catch (const std::exception&) {
    // An audit row that cannot be written must not fail the request that already happened.
  }
}

std::vector<AuditRow> Database::audit_log(const std::string& tenant, int limit) {
  XCORE_DB_QUERY({}, {
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

}  // namespace xcore::server
