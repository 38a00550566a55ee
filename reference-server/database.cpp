// The server's repositories over SQLite: tenants, users, tokens, registrations, secrets, the audit log and
// webhook deliveries. The schema is in database_migrations.cpp, the scheduler's store in sqlite_job_store.cpp.
#include "database_impl.hpp"
#include <xcore/json_text.hpp>

#include <boost/json.hpp>

#include <chrono>

namespace xcore::server {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

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
    XCORE_ASSIGN_OR_RETURN(impl->version, migrate(db, file));
    return std::unique_ptr<Database>(new Database(std::move(impl)));
  } catch (const std::exception& e) {
    return Error{ErrorCode::unavailable, fmt::format("cannot open database {}: {}", file.string(), e.what())};
  }
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
    s.bind(10, t.scoped ? xcore::json_text::serialize(scopes) : std::string());
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
