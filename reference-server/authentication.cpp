// Authentication: a bearer token (an API token or a JWT) becomes a Caller; logins issue token pairs.
#include "server_impl.hpp"

namespace xcore::server {

Result<std::optional<UserCache::Entry>> Server::Impl::user_entry(std::int64_t id) {
  return users.get(id, [this](std::int64_t uid) -> Result<std::optional<UserCache::Entry>> {
    XCORE_ASSIGN_OR_RETURN(auto row, db->user_by_id(uid));
    if (!row) return std::optional<UserCache::Entry>();
    return std::optional<UserCache::Entry>(UserCache::Entry{row->tenant, row->username, parse_role(row->role).value_or(Role::viewer), row->generation});
  });
}

Result<Caller> Server::Impl::authenticate(const httplib::Request& req) {
  auto header = req.get_header_value("Authorization");
  if (header.empty()) return Caller{};
  if (header.size() < 8 || strncasecmp(header.c_str(), "Bearer ", 7) != 0)
    return Error{ErrorCode::unauthenticated, "Authorization must be 'Bearer <token>'"};
  std::string token = header.substr(7);
  if (std::count(token.begin(), token.end(), '.') == 2) {
    XCORE_ASSIGN_OR_RETURN(auto claims, verified_tokens.verify(token, jwt_key, unix_now()));
    if (claims.typ != "access") return Error{ErrorCode::unauthenticated, "a refresh token cannot authorize requests"};
    XCORE_ASSIGN_OR_RETURN(auto uid, user_id_of(claims));
    XCORE_ASSIGN_OR_RETURN(auto user, user_entry(uid));
    if (!user || user->tenant != claims.tenant) return Error{ErrorCode::unauthenticated, "the token's user no longer exists"};
    if (user->generation != claims.gen)
      return Error{ErrorCode::unauthenticated, "the token was ended by a change to its user (role, password): log in again"};
    Caller c{user->username, user->tenant, user->role, uid, {}};
    c.principal.kind = Principal::Kind::user;
    c.principal.id = claims.sub;
    c.principal.permissions = role_permissions(user->role);
    return c;
  }
  XCORE_ASSIGN_OR_RETURN(auto row, db->find_token(sha256_hex(token)));
  if (!row || row->revoked || (row->expires_at && row->expires_at <= unix_now()))
    return Error{ErrorCode::unauthenticated, "unknown, revoked or expired API token"};
  auto role = parse_role(row->role);
  if (!role) return Error{ErrorCode::unauthenticated, "API token with an unknown role"};
  XCORE_ASSIGN_OR_RETURN(auto owner, user_entry(row->user_id));
  if (!owner || owner->tenant != row->tenant || owner->generation != row->user_generation)
    return Error{ErrorCode::unauthenticated, "the API token was ended with the user who made it (deleted, or role or password changed)"};
  Caller c{fmt::format("token:{}", row->name), row->tenant, std::min(*role, owner->role), row->user_id, {}};
  c.principal.kind = Principal::Kind::api_token;
  c.principal.id = std::to_string(row->id);
  c.principal.permissions = row->scoped ? row->scopes : role_permissions(*role);
  return c;
}

Result<json::object> Server::Impl::issue_tokens(const UserRow& user, std::string family) {
  auto now = unix_now();
  if (family.empty()) family = random_token(16);
  const auto sub = std::to_string(user.id);
  Claims access{sub, user.tenant, user.role, "access", now, now + config.access_token_ttl, user.generation, 0, {}, {}};
  Claims refresh{sub, user.tenant, user.role, "refresh", now, now + config.refresh_token_ttl, user.generation, 0, random_token(16), family};
  XCORE_TRY(db->add_refresh(RefreshRow{refresh.jti, family, user.tenant, user.id, refresh.exp}));
  return json::object{{"access_token", sign_jwt(access, jwt_key)},
                      {"token_type", "bearer"},
                      {"expires_in", config.access_token_ttl},
                      {"refresh_token", sign_jwt(refresh, jwt_key)}};
}

}  // namespace xcore::server
