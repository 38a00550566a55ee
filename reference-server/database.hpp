// The server's SQLite database (WAL, versioned migrations applied at open) and the rows it keeps. One
// connection behind a mutex: every statement is short, and SQLiteCpp's headers stay in database.cpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <xcore/agents.hpp>
#include <xcore/error.hpp>
#include <xcore/manager.hpp>
#include <xcore/scheduler.hpp>

namespace xcore::server {

struct UserRow {
  std::string tenant, username, password_hash, role;
  std::int64_t created_at = 0;
  std::int64_t id = 0;          // made by the store
  std::int64_t generation = 1;  // bumped by every role or password change: older tokens end
};

struct NodeRow {
  std::string tenant, name;
  json::object spec;  // {labels, policy, created_by}
  std::int64_t created_at = 0, last_seen = 0;
  std::string version;
};

struct TokenRow {
  std::int64_t id = 0;
  std::string tenant, name, role, created_by;
  std::int64_t created_at = 0, expires_at = 0;  // 0: never
  bool revoked = false;
  std::int64_t user_id = 0, user_generation = 0;  // who made it, at which generation: it ends with them
  bool scoped = false;                            // true: the token holds only `scopes`, not its role's set
  std::vector<std::string> scopes;
};

// A refresh token's record: single use, rotated, in a family that ends together when a spent one returns.
struct RefreshRow {
  std::string jti, family, tenant;
  std::int64_t user_id = 0, expires_at = 0;
};
enum class RefreshUse { fresh, reused, unknown };

struct RegistrationRow {
  std::string tenant, plugin, version;
  bool enabled = false;
  std::string config = "{}";  // JSON text
  std::int64_t installed_at = 0, updated_at = 0;
};

struct AuditRow {
  std::int64_t id = 0, at = 0;
  std::string tenant, actor, action, target, detail, request_id;
};

class Database {
 public:
  static Result<std::unique_ptr<Database>> open(const std::filesystem::path& file);
  ~Database();
  int schema_version() const;

  Result<void> create_tenant(const std::string& id, const std::string& name);
  Result<std::vector<std::pair<std::string, std::string>>> tenants();  // id, name
  // The uid the tenant's sandboxed plugins run as on a root host: its own, allocated once from
  // [first, last] and kept.
  Result<std::uint32_t> sandbox_uid(const std::string& tenant, std::uint32_t first, std::uint32_t last);
  Result<bool> tenant_exists(const std::string& id);
  // Undoes create_tenant() for a tenant that could not be started (nothing refers to it yet).
  void remove_tenant(const std::string& id);

  // User names are unique per tenant; the id is the store's.
  Result<std::int64_t> create_user(const UserRow& u);
  // Not found is an empty optional; a database that cannot answer is an `internal` error, never "no such
  // user" (which would turn a broken database into refused logins).
  Result<std::optional<UserRow>> find_user(const std::string& tenant, const std::string& username);
  Result<std::optional<UserRow>> user_by_id(std::int64_t id);
  Result<std::vector<UserRow>> users(const std::string& tenant);
  // Both end the user's sessions (refresh tokens, API tokens) and return the user's id.
  Result<std::int64_t> delete_user(const std::string& tenant, const std::string& username);
  // Changes what is given (a new password hash, a new role) and starts a new token generation.
  Result<std::int64_t> update_user(const std::string& tenant, const std::string& username, const std::optional<std::string>& password_hash,
                                   const std::optional<std::string>& role);

  Result<void> add_refresh(const RefreshRow& r);
  // Spends a refresh token: fresh once, then `reused` (and its whole family is gone).
  Result<RefreshUse> use_refresh(const std::string& jti, std::int64_t user_id);
  Result<std::int64_t> user_count();

  Result<std::int64_t> create_token(const TokenRow& t, const std::string& token_hash);
  Result<std::optional<TokenRow>> find_token(const std::string& token_hash);
  Result<std::vector<TokenRow>> tokens(const std::string& tenant);
  Result<void> revoke_token(const std::string& tenant, std::int64_t id);

  Result<void> put_registration(const RegistrationRow& r);  // insert or update (installed_at kept)
  Result<std::optional<RegistrationRow>> registration(const std::string& tenant, const std::string& plugin);
  Result<std::vector<RegistrationRow>> registrations(const std::string& tenant);  // empty tenant: all
  // One tenant's registrations, for its Manager (ManagerOptions::registrations).
  std::shared_ptr<RegistrationStore> registration_store(const std::string& tenant);

  Result<void> put_secret(const std::string& tenant, const std::string& name, const std::string& sealed);
  Result<std::optional<std::string>> secret(const std::string& tenant, const std::string& name);
  Result<std::vector<std::string>> secret_names(const std::string& tenant);
  Result<void> delete_secret(const std::string& tenant, const std::string& name);

  // Rows written in one transaction (the audit log's writer); `at` 0 means now.
  void audit_batch(const std::vector<AuditRow>& rows);
  // Retention: rows older than `before` (unix seconds) go, and each tenant keeps its newest `keep` rows.
  void prune_audit(std::int64_t before, std::int64_t keep);
  Result<std::vector<AuditRow>> audit_log(const std::string& tenant, int limit);

  // Definitions a tenant keeps as JSON by kind and name (model providers, agents); sqlite_agent_store.cpp.
  // create: already_exists when the name is taken; otherwise the row must exist (not_found).
  // Remote nodes: a row per node of a tenant, found by its token's hash when it dials in.
  Result<void> create_node(const NodeRow& n, const std::string& token_hash);
  Result<std::optional<NodeRow>> node(const std::string& tenant, const std::string& name);
  Result<std::vector<NodeRow>> nodes(const std::string& tenant);
  Result<std::optional<NodeRow>> node_by_token(const std::string& token_hash);
  Result<void> set_node_token(const std::string& tenant, const std::string& name, const std::string& token_hash);
  Result<void> set_node_spec(const std::string& tenant, const std::string& name, const json::object& spec);
  Result<void> node_seen(const std::string& tenant, const std::string& name, std::int64_t at, const std::string& version);
  Result<void> delete_node(const std::string& tenant, const std::string& name);

  Result<void> put_definition(const std::string& tenant, std::string_view kind, const std::string& name, const json::object& spec, bool create);
  Result<std::optional<json::object>> definition(const std::string& tenant, std::string_view kind, const std::string& name);
  Result<std::vector<json::object>> definitions(const std::string& tenant, std::string_view kind);  // by name
  Result<void> delete_definition(const std::string& tenant, std::string_view kind, const std::string& name);
  // The agent runtime's store: runs (with their pending approvals) and transcripts, every statement by tenant.
  std::shared_ptr<AgentRunStore> agent_run_store();
  // Retention: the agent's newest `keep` finished runs stay (with their transcripts); runs under way or
  // awaiting approval always do.
  Result<void> prune_agent_runs(const std::string& tenant, const std::string& agent, std::int64_t keep);

  // The scheduler's store for one tenant's jobs and runs.
  std::shared_ptr<JobStore> job_store(const std::string& tenant);
  // Webhook replay protection: false when this signature was seen before.
  Result<bool> first_delivery(const std::string& signature, std::int64_t now, std::int64_t window_seconds);

  struct Impl;

 private:
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

std::int64_t unix_now();

}  // namespace xcore::server
