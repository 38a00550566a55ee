// Routes: login and tokens, users, tenants, API tokens, secrets, the audit log.
#include "server_impl.hpp"

namespace xcore::server {

void Server::Impl::add_access_routes() {

  // ---- auth
  route("POST", "/api/v1/auth/login", Role::anonymous, "exchange user name and password for tokens ({username, password, tenant?})", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto username, field(c.body, "username"));
    XCORE_ASSIGN_OR_RETURN(auto password, field(c.body, "password"));
    std::string tenant = kDefaultTenant;
    if (c.body.get_object().contains("tenant")) {
      XCORE_ASSIGN_OR_RETURN(tenant, field(c.body, "tenant"));
    }
    if (!valid_username(username) || tenant.size() > 64) return Error{ErrorCode::unauthenticated, "wrong user name or password"};
    const auto key = tenant + "|" + username + "|" + c.req.remote_addr;
    if (int wait = limiter.retry_after(key)) {
      Error e{ErrorCode::resource_exhausted, fmt::format("too many failed logins; retry in {} s", wait)};
      e.details = xcore::json_text::serialize(json::object{{"retry_after", wait}});
      return e;
    }
    XCORE_ASSIGN_OR_RETURN(auto permit, passwords.enter());
    XCORE_ASSIGN_OR_RETURN(auto user, db->find_user(tenant, username));
    // The same work whether or not the user exists: no timing oracle for user names.
    static const std::string decoy = hash_password(random_token(16));
    bool good = verify_password(password, user ? user->password_hash : decoy) && user;
    if (!good) {
      limiter.failed(key);
      return Error{ErrorCode::unauthenticated, "wrong user name or password"};
    }
    limiter.succeeded(key);
    audit->record(AuditRow{0, 0, user->tenant, username, "login", username, "", c.request_id});
    XCORE_ASSIGN_OR_RETURN(auto tokens, issue_tokens(*user));
    return Reply{200, std::move(tokens)};
  }).body(R"json({"type":"object","properties":{"username":{"type":"string","minLength":1},"password":{"type":"string","minLength":1},"tenant":{"type":"string","minLength":1}},"required":["username","password"]})json").returns(200, R"json({"$ref":"#/components/schemas/Tokens"})json");
  // Refresh tokens rotate: each is good once; one shown a second time ends its whole family.
  route("POST", "/api/v1/auth/refresh", Role::anonymous, "a new access and refresh token for a refresh token (single use)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto token, field(c.body, "refresh_token"));
    XCORE_ASSIGN_OR_RETURN(auto claims, verify_jwt(token, jwt_key, unix_now()));
    if (claims.typ != "refresh" || claims.jti.empty() || claims.fam.empty()) return Error{ErrorCode::unauthenticated, "not a refresh token"};
    XCORE_ASSIGN_OR_RETURN(auto uid, user_id_of(claims));
    XCORE_ASSIGN_OR_RETURN(auto use, db->use_refresh(claims.jti, uid));
    if (use == RefreshUse::reused) {
      audit->record(AuditRow{0, 0, claims.tenant, claims.sub, "refresh token reused: its family is revoked", claims.fam, "", c.request_id});
      return Error{ErrorCode::unauthenticated, "this refresh token was used before: every token of its login is revoked, log in again"};
    }
    if (use == RefreshUse::unknown) return Error{ErrorCode::unauthenticated, "the refresh token is revoked or unknown: log in again"};
    XCORE_ASSIGN_OR_RETURN(auto user, db->user_by_id(uid));  // the user's current role and tenant, not the old token's
    if (!user || user->tenant != claims.tenant || user->generation != claims.gen)
      return Error{ErrorCode::unauthenticated, "the refresh token was ended by a change to its user: log in again"};
    XCORE_ASSIGN_OR_RETURN(auto tokens, issue_tokens(*user, claims.fam));
    return Reply{200, std::move(tokens)};
  }).body(R"json({"type":"object","properties":{"refresh_token":{"type":"string","minLength":1}},"required":["refresh_token"]})json").returns(200, R"json({"$ref":"#/components/schemas/Tokens"})json");
  route("GET", "/api/v1/auth/me", Role::viewer, "who the token belongs to, and what it may do", [](Call& c) -> Result<Reply> {
    json::array perms;
    for (const auto& p : c.who.principal.permissions) perms.emplace_back(p);
    return Reply{200, json::object{{"user", c.who.user}, {"tenant", c.who.tenant}, {"role", role_name(c.who.role)},
                                   {"principal", json::object{{"kind", to_string(c.who.principal.kind)}, {"id", c.who.principal.id}}},
                                   {"permissions", std::move(perms)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Me"})json");

  // ---- secrets: values go in, never out
  route("GET", "/api/v1/secrets", Role::admin, "secret names", [this](Call& c) -> Result<Reply> {
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto names, db->secret_names(c.who.tenant));
    for (const auto& n : names) out.emplace_back(n);
    return Reply{200, json::object{{"secrets", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["secrets"],"properties":{"secrets":{"type":"array","items":{"type":"string"},"description":"names only: values never leave the server"}}})json");
  route("PUT", "/api/v1/secrets/{secret}", Role::admin, "set a secret ({\"value\": ...})", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto value, field(c.body, "value"));
    XCORE_TRY(db->put_secret(c.who.tenant, c.arg(1), secrets->seal(c.who.tenant + "/" + c.arg(1), value)));
    return Reply{200, json::object{{"name", c.arg(1)}}};
  }).body(R"json({"type":"object","properties":{"value":{"type":"string","minLength":1}},"required":["value"]})json").returns(200, R"json({"type":"object","required":["name"],"properties":{"name":{"type":"string"}}})json");
  route("DELETE", "/api/v1/secrets/{secret}", Role::admin, "delete a secret", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->delete_secret(c.who.tenant, c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404});

  // ---- users, tenants, API tokens, audit
  route("GET", "/api/v1/users", Role::admin, "this tenant's users", [this](Call& c) -> Result<Reply> {
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto users, db->users(c.who.tenant));
    for (const auto& u : users) out.push_back(json::object{{"username", u.username}, {"role", u.role}, {"created_at", u.created_at}});
    return Reply{200, json::object{{"users", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["users"],"properties":{"users":{"type":"array","items":{"$ref":"#/components/schemas/User"}}}})json");
  route("POST", "/api/v1/users", Role::admin, "create a user ({username, password, role}; tenant: default tenant's admins only)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto username, field(c.body, "username"));
    if (!valid_username(username)) return Error{ErrorCode::invalid_argument, "a user name is 1-64 of [A-Za-z0-9._@-]"};
    XCORE_ASSIGN_OR_RETURN(auto password, field(c.body, "password"));
    XCORE_ASSIGN_OR_RETURN(auto role, field(c.body, "role"));
    if (!parse_role(role)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", role)};
    if (password.size() < 8) return Error{ErrorCode::invalid_argument, "the password must have at least 8 characters"};
    std::string tenant = c.who.tenant;
    if (auto t = field(c.body, "tenant")) {
      if (*t != c.who.tenant && c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins create users in other tenants"};
      tenant = *t;
    }
    XCORE_ASSIGN_OR_RETURN(const bool exists, db->tenant_exists(tenant));
    if (!exists) return Error{ErrorCode::not_found, fmt::format("no tenant '{}'", tenant)};
    XCORE_ASSIGN_OR_RETURN(auto permit, passwords.enter());
    auto created = db->create_user(UserRow{tenant, username, hash_password(password), role, 0});
    if (!created && created.error().code == ErrorCode::already_exists)
      return Error{ErrorCode::already_exists, fmt::format("tenant '{}' has a user '{}' already", tenant, username)};
    XCORE_TRY(created);
    return Reply{201, json::object{{"id", *created}, {"username", username}, {"tenant", tenant}, {"role", role}}};
  }).body(R"json({"type":"object","properties":{"username":{"type":"string","minLength":1},"password":{"type":"string","minLength":1},"role":{"enum":["viewer","operator","admin"]},"tenant":{"type":"string","minLength":1}},"required":["username","password","role"]})json").returns(201, R"json({"allOf":[{"$ref":"#/components/schemas/User"}],"required":["id","tenant"]})json").errors({404, 409});
  route("PATCH", "/api/v1/users/{user}", Role::admin, "change a user's role or password ({role?, password?})", [this](Call& c) -> Result<Reply> {
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
      XCORE_ASSIGN_OR_RETURN(auto permit, passwords.enter());
      hash = hash_password(p);
    }
    if (!role && !hash) return Error{ErrorCode::invalid_argument, "nothing to change: give role and/or password"};
    XCORE_ASSIGN_OR_RETURN(auto uid, db->update_user(c.who.tenant, c.arg(1), hash, role));
    users.forget(uid);
    json::array changed;
    if (role) changed.emplace_back("role");
    if (hash) changed.emplace_back("password");
    return Reply{200, json::object{{"username", c.arg(1)}, {"changed", std::move(changed)}}};
  }).body(R"json({"type":"object","properties":{"role":{"enum":["viewer","operator","admin"]},"password":{"type":"string","minLength":1}}})json").returns(200, R"json({"type":"object","required":["username","changed"],"properties":{"username":{"type":"string"},"changed":{"type":"array","items":{"enum":["role","password"]}}}})json").errors({404, 409});
  route("DELETE", "/api/v1/users/{user}", Role::admin, "delete a user of this tenant", [this](Call& c) -> Result<Reply> {
    if (c.arg(1) == c.who.user) return Error{ErrorCode::conflict, "you cannot delete yourself"};
    XCORE_ASSIGN_OR_RETURN(auto uid, db->delete_user(c.who.tenant, c.arg(1)));
    users.forget(uid);
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404, 409});
  route("GET", "/api/v1/tenants", Role::admin, "tenants (the default tenant's admins)", [this](Call& c) -> Result<Reply> {
    if (c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins manage tenants"};
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto tenants, db->tenants());
    for (const auto& [tid, tname] : tenants) out.push_back(json::object{{"id", tid}, {"name", tname}, {"state", running(tid) ? "running" : "parked"}});
    return Reply{200, json::object{{"tenants", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["tenants"],"properties":{"tenants":{"type":"array","items":{"$ref":"#/components/schemas/Tenant"}}}})json");
  // Compiled here, on the thread that builds the routes: compiling a std::regex on a request thread races
  // with other threads on libstdc++'s shared ctype cache.
  auto tenant_id = std::make_shared<const std::regex>(std::string(path_parameter("tenant")->pattern));
  route("POST", "/api/v1/tenants", Role::admin, "create a tenant ({id, name})", [this, tenant_id](Call& c) -> Result<Reply> {
    if (c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins manage tenants"};
    XCORE_ASSIGN_OR_RETURN(auto tid, field(c.body, "id"));
    if (!std::regex_match(tid, *tenant_id)) return Error{ErrorCode::invalid_argument, "a tenant id is [a-z0-9][a-z0-9_.-]{0,63}"};
    auto tname = field(c.body, "name").value_or(tid);
    XCORE_TRY(db->create_tenant(tid, tname));
    if (auto started = open_tenant(tid, false); !started) {
      db->remove_tenant(tid);  // all or nothing: no tenant that exists but never runs
      return std::move(started).error();
    }
    return Reply{201, json::object{{"id", tid}, {"name", tname}}};
  }).body(R"json({"type":"object","properties":{"id":{"type":"string","minLength":1},"name":{"type":"string","minLength":1}},"required":["id"]})json").returns(201, R"json({"$ref":"#/components/schemas/Tenant"})json").errors({409, 503});
  route("GET", "/api/v1/tokens", Role::admin, "this tenant's API tokens (never their values)", [this](Call& c) -> Result<Reply> {
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto tokens, db->tokens(c.who.tenant));
    for (const auto& t : tokens)
      out.push_back(json::object{{"id", t.id}, {"name", t.name}, {"role", t.role}, {"created_by", t.created_by}, {"created_at", t.created_at},
                                 {"expires_at", t.expires_at}, {"revoked", t.revoked}});
    return Reply{200, json::object{{"tokens", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["tokens"],"properties":{"tokens":{"type":"array","items":{"allOf":[{"$ref":"#/components/schemas/ApiToken"}],"required":["created_by","created_at","revoked"],"properties":{"token":{"not":{},"description":"never listed: a token's value is shown once, when it is made"}}}}}})json");
  route("POST", "/api/v1/tokens", Role::admin,
        "create an API token ({name, role, expires_in | never: true, scopes?}); the value is shown once", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto tname, field(c.body, "name"));
    XCORE_ASSIGN_OR_RETURN(auto role, field(c.body, "role"));
    auto parsed = parse_role(role);
    if (!parsed) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", role)};
    const auto& o = c.body.get_object();
    TokenRow t{0, c.who.tenant, tname, role, c.who.user, 0, 0, false, c.who.user_id, 0, false, {}};
    XCORE_ASSIGN_OR_RETURN(auto owner, user_entry(c.who.user_id));
    if (!owner) return Error{ErrorCode::unauthenticated, "the token's user no longer exists"};
    t.user_generation = owner->generation;
    // A lifetime is required: seconds, or an explicit never.
    const auto* life = o.if_contains("expires_in");
    const bool never = o.contains("never") && o.at("never") == true;
    if (life && never) return Error{ErrorCode::invalid_argument, "give either 'expires_in' or 'never': true, not both"};
    if (never) {
      // nothing: expires_at stays 0
    } else if (life && life->is_int64() && life->get_int64() > 0 && life->get_int64() <= 10LL * 366 * 86400) {
      t.expires_at = unix_now() + life->get_int64();
    } else {
      return Error{ErrorCode::invalid_argument, "'expires_in' must be a whole number of seconds from 1 to 10 years; for a token that never expires say \"never\": true"};
    }
    // Narrowing: each scope must be within the token's role and within what its maker holds.
    if (const auto* sc = o.if_contains("scopes")) {
      if (!sc->is_array() || sc->get_array().empty()) return Error{ErrorCode::invalid_argument, "'scopes' must be a non-empty list of permissions"};
      Principal of_role;
      of_role.kind = Principal::Kind::api_token;
      of_role.permissions = role_permissions(*parsed);
      for (std::size_t i = 0; i < sc->get_array().size(); ++i) {
        const auto& v = sc->get_array()[i];
        if (!v.is_string() || v.get_string().empty() || v.get_string().size() > 200)
          return Error{ErrorCode::invalid_argument, fmt::format("scopes[{}]: expected a permission such as 'tools.call:core.echo' or 'tasks.read'", i)};
        std::string scope(v.get_string());
        if (!of_role.covers(scope)) return Error{ErrorCode::invalid_argument, fmt::format("scopes[{}]: '{}' is more than the {} role holds", i, scope, role)};
        if (!c.who.principal.covers(scope)) return Error{ErrorCode::permission_denied, fmt::format("scopes[{}]: '{}' is more than you hold", i, scope)};
        t.scopes.push_back(std::move(scope));
      }
      t.scoped = true;
    } else {
      for (const auto& p : role_permissions(*parsed))
        if (!c.who.principal.covers(p))
          return Error{ErrorCode::permission_denied, fmt::format("a {} token holds '{}', which you do not: give 'scopes' within what you hold", role, p)};
    }
    auto value = "xct_" + random_token(32);
    XCORE_ASSIGN_OR_RETURN(auto tid, db->create_token(t, sha256_hex(value)));
    json::array scopes;
    for (const auto& s : t.scopes) scopes.emplace_back(s);
    return Reply{201, json::object{{"id", tid}, {"name", tname}, {"role", role}, {"token", value}, {"expires_at", t.expires_at},
                                   {"scopes", t.scoped ? json::value(std::move(scopes)) : json::value(nullptr)}}};
  }).body(R"json({"type":"object","properties":{"name":{"type":"string","minLength":1},"role":{"enum":["viewer","operator","admin"]},"expires_in":{"type":"integer","description":"seconds, at least 1; or never: true"},"never":{"type":"boolean"},"scopes":{"type":"array","items":{"type":"string","minLength":1}}},"required":["name","role"]})json").returns(201, R"json({"allOf":[{"$ref":"#/components/schemas/ApiToken"}],"required":["token","scopes"]})json");
  route("DELETE", "/api/v1/tokens/{token}", Role::admin, "revoke an API token", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->revoke_token(c.who.tenant, std::stoll(c.arg(1))));
    return Reply{200, json::object{{"revoked", std::stoll(c.arg(1))}}};
  }).returns(200, R"json({"type":"object","required":["revoked"],"properties":{"revoked":{"type":"integer","description":"the token's id"}}})json").errors({404});
  route("GET", "/api/v1/audit", Role::admin, "this tenant's audit log, newest first (?limit=)", [this](Call& c) -> Result<Reply> {
    int limit = 100;
    if (auto l = c.query("limit"); !l.empty()) limit = std::clamp(std::atoi(l.c_str()), 1, 1000);
    json::array out;
    audit->flush();  // the log includes what was done up to this request
    XCORE_ASSIGN_OR_RETURN(auto entries, db->audit_log(c.who.tenant, limit));
    for (const auto& a : entries)
      out.push_back(json::object{{"id", a.id}, {"at", a.at}, {"actor", a.actor}, {"action", a.action}, {"target", a.target}, {"result", a.detail},
                                 {"request_id", a.request_id}});
    return Reply{200, json::object{{"entries", std::move(out)}}};
  }).returns(200, R"json({"type":"object","required":["entries"],"properties":{"entries":{"type":"array","items":{"$ref":"#/components/schemas/AuditEntry"}}}})json");
}

}  // namespace xcore::server
