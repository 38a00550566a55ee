// JSON Web Tokens, HS256 only: the algorithm is pinned, never read from the token, and signatures are
// compared in constant time.
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <xcore/error.hpp>

namespace xcore::server {

struct Claims {
  std::string sub;     // the user's id (a number, as text): names survive neither deletion nor other tenants
  std::string tenant;
  std::string role;    // admin | operator | viewer, when issued; the user's current role decides
  std::string typ = "access";  // access | refresh
  std::int64_t iat = 0, exp = 0;  // seconds since the epoch
  std::int64_t gen = 0;           // the user's token generation: a role or password change or a deletion ends older tokens
  std::int64_t nbf = 0;           // not valid before (0: absent)
  std::string jti, fam;           // refresh tokens: their id and their rotation family
};

std::string sign_jwt(const Claims& claims, std::string_view key);
// Errors are `unauthenticated`, and say what was wrong (malformed, algorithm, signature, expired).
Result<Claims> verify_jwt(std::string_view token, std::string_view key, std::int64_t now);

// Tokens verified before, by their exact text: under the server's one key the same bytes verify the same
// way, so a token seen again skips the decoding, the HMAC and the JSON; its times are checked on every use.
// Bounded: when full, expired entries go, then all. Only what verify_jwt accepted is kept.
class VerifiedTokens {
 public:
  explicit VerifiedTokens(std::size_t capacity = 8192);
  Result<Claims> verify(const std::string& token, std::string_view key, std::int64_t now);

 private:
  std::shared_mutex mutex_;
  std::unordered_map<std::string, Claims> seen_;
  std::size_t capacity_;
};

}  // namespace xcore::server
