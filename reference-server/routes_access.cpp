// Routes: login and tokens, users, tenants, API tokens, secrets, the audit log.
#include "server_impl.hpp"

namespace xcore::server {

void Server::Impl::add_access_routes() {
  const std::string id = kIdPattern;
  const std::string name = kNamePattern;

  // ---- auth
  route("POST", "/api/v1/auth/login", Role::anonymous, "exchange user name and password for tokens", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto username, field(c.body, "username"));
    XCORE_ASSIGN_OR_RETURN(auto password, field(c.body, "password"));
    const auto key = username + "|" + c.req.remote_addr;
    if (int wait = limiter.retry_after(key)) {
      Error e{ErrorCode::resource_exhausted, fmt::format("too many failed logins; retry in {} s", wait)};
      e.details = json::serialize(json::object{{"retry_after", wait}});
      return e;
    }
    auto user = db->find_user(username);
    // The same work whether or not the user exists: no timing oracle for user names.
    static const std::string decoy = hash_password(random_token(16));
    bool good = verify_password(password, user ? user->password_hash : decoy) && user;
    if (!good) {
      limiter.failed(key);
      return Error{ErrorCode::unauthenticated, "wrong user name or password"};
    }
    limiter.succeeded(key);
    db->audit(AuditRow{0, 0, user->tenant, username, "login", username, "", c.request_id});
    return Reply{200, issue_tokens(user->username, user->tenant, user->role)};
  });
  route("POST", "/api/v1/auth/refresh", Role::anonymous, "a new access token for a refresh token", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto token, field(c.body, "refresh_token"));
    XCORE_ASSIGN_OR_RETURN(auto claims, verify_jwt(token, jwt_key, unix_now()));
    if (claims.typ != "refresh") return Error{ErrorCode::unauthenticated, "not a refresh token"};
    auto user = db->find_user(claims.sub);  // the user's current role and tenant, not the old token's
    if (!user) return Error{ErrorCode::unauthenticated, "the user no longer exists"};
    return Reply{200, issue_tokens(user->username, user->tenant, user->role)};
  });
  route("GET", "/api/v1/auth/me", Role::viewer, "who the token belongs to", [](Call& c) -> Result<Reply> {
    return Reply{200, json::object{{"user", c.who.user}, {"tenant", c.who.tenant}, {"role", role_name(c.who.role)}}};
  });

  // ---- secrets: values go in, never out
  route("GET", "/api/v1/secrets", Role::admin, "secret names", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& n : db->secret_names(c.who.tenant)) out.emplace_back(n);
    return Reply{200, json::object{{"secrets", std::move(out)}}};
  });
  route("PUT", "/api/v1/secrets/" + name, Role::admin, "set a secret ({\"value\": ...})", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto value, field(c.body, "value"));
    XCORE_TRY(db->put_secret(c.who.tenant, c.arg(1), secrets->seal(c.who.tenant + "/" + c.arg(1), value)));
    return Reply{200, json::object{{"name", c.arg(1)}}};
  });
  route("DELETE", "/api/v1/secrets/" + name, Role::admin, "delete a secret", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->delete_secret(c.who.tenant, c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  });

  // ---- users, tenants, API tokens, audit
  route("GET", "/api/v1/users", Role::admin, "this tenant's users", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& u : db->users(c.who.tenant)) out.push_back(json::object{{"username", u.username}, {"role", u.role}, {"created_at", u.created_at}});
    return Reply{200, json::object{{"users", std::move(out)}}};
  });
  route("POST", "/api/v1/users", Role::admin, "create a user ({username, password, role}; tenant: default tenant's admins only)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto username, field(c.body, "username"));
    XCORE_ASSIGN_OR_RETURN(auto password, field(c.body, "password"));
    XCORE_ASSIGN_OR_RETURN(auto role, field(c.body, "role"));
    if (!parse_role(role)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", role)};
    if (password.size() < 8) return Error{ErrorCode::invalid_argument, "the password must have at least 8 characters"};
    std::string tenant = c.who.tenant;
    if (auto t = field(c.body, "tenant")) {
      if (*t != c.who.tenant && c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins create users in other tenants"};
      tenant = *t;
    }
    if (!db->tenant_exists(tenant)) return Error{ErrorCode::not_found, fmt::format("no tenant '{}'", tenant)};
    XCORE_TRY(db->create_user(UserRow{tenant, username, hash_password(password), role, 0}));
    return Reply{201, json::object{{"username", username}, {"tenant", tenant}, {"role", role}}};
  });
  route("PATCH", "/api/v1/users/" + name, Role::admin, "change a user's role or password ({role?, password?})", [this](Call& c) -> Result<Reply> {
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected {role?, password?}"};
    std::optional<std::string> role, hash;
    if (c.body.get_object().contains("role")) {
      XCORE_ASSIGN_OR_RETURN(auto r, field(c.body, "role"));
      if (!parse_role(r)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", r)};
      if (c.arg(1) == c.who.user) return Error{ErrorCode::conflict, "you cannot change your own role"};
      role = r;
    }
    if (c.body.get_object().contains("password")) {
      XCORE_ASSIGN_OR_RETURN(auto p, field(c.body, "password"));
      if (p.size() < 8) return Error{ErrorCode::invalid_argument, "the password must have at least 8 characters"};
      hash = hash_password(p);
    }
    if (!role && !hash) return Error{ErrorCode::invalid_argument, "nothing to change: give role and/or password"};
    XCORE_TRY(db->update_user(c.who.tenant, c.arg(1), hash, role));
    json::array changed;
    if (role) changed.emplace_back("role");
    if (hash) changed.emplace_back("password");
    return Reply{200, json::object{{"username", c.arg(1)}, {"changed", std::move(changed)}}};
  });
  route("DELETE", "/api/v1/users/" + name, Role::admin, "delete a user of this tenant", [this](Call& c) -> Result<Reply> {
    if (c.arg(1) == c.who.user) return Error{ErrorCode::conflict, "you cannot delete yourself"};
    XCORE_TRY(db->delete_user(c.who.tenant, c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  });
  route("GET", "/api/v1/tenants", Role::admin, "tenants (the default tenant's admins)", [this](Call& c) -> Result<Reply> {
    if (c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins manage tenants"};
    json::array out;
    for (const auto& [tid, tname] : db->tenants()) out.push_back(json::object{{"id", tid}, {"name", tname}});
    return Reply{200, json::object{{"tenants", std::move(out)}}};
  });
  route("POST", "/api/v1/tenants", Role::admin, "create a tenant ({id, name})", [this, id](Call& c) -> Result<Reply> {
    if (c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins manage tenants"};
    XCORE_ASSIGN_OR_RETURN(auto tid, field(c.body, "id"));
    if (!std::regex_match(tid, std::regex(id))) return Error{ErrorCode::invalid_argument, "a tenant id is [a-z0-9][a-z0-9_.-]{0,63}"};
    auto tname = field(c.body, "name").value_or(tid);
    XCORE_TRY(db->create_tenant(tid, tname));
    XCORE_TRY(start_tenant(tid, false));
    return Reply{201, json::object{{"id", tid}, {"name", tname}}};
  });
  route("GET", "/api/v1/tokens", Role::admin, "this tenant's API tokens (never their values)", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& t : db->tokens(c.who.tenant))
      out.push_back(json::object{{"id", t.id}, {"name", t.name}, {"role", t.role}, {"created_by", t.created_by}, {"created_at", t.created_at},
                                 {"expires_at", t.expires_at}, {"revoked", t.revoked}});
    return Reply{200, json::object{{"tokens", std::move(out)}}};
  });
  route("POST", "/api/v1/tokens", Role::admin, "create an API token ({name, role, expires_in?}); the value is shown once", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto tname, field(c.body, "name"));
    XCORE_ASSIGN_OR_RETURN(auto role, field(c.body, "role"));
    if (!parse_role(role)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", role)};
    TokenRow t{0, c.who.tenant, tname, role, c.who.user, 0, 0, false};
    if (auto it = c.body.get_object().find("expires_in"); it != c.body.get_object().end() && it->value().is_int64() && it->value().get_int64() > 0)
      t.expires_at = unix_now() + it->value().get_int64();
    auto value = "xct_" + random_token(32);
    XCORE_ASSIGN_OR_RETURN(auto tid, db->create_token(t, sha256_hex(value)));
    return Reply{201, json::object{{"id", tid}, {"name", tname}, {"role", role}, {"token", value}, {"expires_at", t.expires_at}}};
  });
  route("DELETE", "/api/v1/tokens/([0-9]{1,18})", Role::admin, "revoke an API token", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->revoke_token(c.who.tenant, std::stoll(c.arg(1))));
    return Reply{200, json::object{{"revoked", std::stoll(c.arg(1))}}};
  });
  route("GET", "/api/v1/audit", Role::admin, "this tenant's audit log, newest first (?limit=)", [this](Call& c) -> Result<Reply> {
    int limit = 100;
    if (auto l = c.query("limit"); !l.empty()) limit = std::clamp(std::atoi(l.c_str()), 1, 1000);
    json::array out;
    for (const auto& a : db->audit_log(c.who.tenant, limit))
      out.push_back(json::object{{"id", a.id}, {"at", a.at}, {"actor", a.actor}, {"action", a.action}, {"target", a.target}, {"result", a.detail},
                                 {"request_id", a.request_id}});
    return Reply{200, json::object{{"entries", std::move(out)}}};
  });
}

}  // namespace xcore::server
