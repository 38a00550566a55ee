// JSON Web Tokens, HS256 only: the algorithm is pinned, never read from the token, and signatures are
// compared in constant time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <xcore/error.hpp>

namespace xcore::server {

struct Claims {
  std::string sub;     // user name
  std::string tenant;
  std::string role;    // admin | operator | viewer
  std::string typ = "access";  // access | refresh
  std::int64_t iat = 0, exp = 0;  // seconds since the epoch
};

std::string sign_jwt(const Claims& claims, std::string_view key);
// Errors are `unauthenticated`, and say what was wrong (malformed, algorithm, signature, expired).
Result<Claims> verify_jwt(std::string_view token, std::string_view key, std::int64_t now);

}  // namespace xcore::server
