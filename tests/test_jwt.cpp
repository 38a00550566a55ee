// Bearer JWTs: HS256 pinned, forged and altered tokens refused, and the verified-token cache never turns a
// refusal into an acceptance (expiry is checked on every use, other bytes are verified afresh).
#include <doctest/doctest.h>

#include "crypto.hpp"
#include "jwt.hpp"

using namespace xcore::server;

namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";

Claims access_claims(std::int64_t now, std::int64_t ttl) { return Claims{"7", "acme", "operator", "access", now, now + ttl, 1, 0, {}, {}}; }

std::string flip_last(std::string token) {
  token.back() = token.back() == 'A' ? 'B' : 'A';
  return token;
}

}  // namespace

TEST_CASE("a JWT verifies under its key only, with HS256 only") {
  const std::int64_t now = 1'800'000'000;
  const auto token = sign_jwt(access_claims(now, 900), kKey);
  auto ok = verify_jwt(token, kKey, now);
  REQUIRE(ok);
  CHECK(ok->tenant == "acme");
  CHECK_FALSE(verify_jwt(token, "another key, same length.........", now));
  CHECK_FALSE(verify_jwt(flip_last(token), kKey, now));
  // alg "none" with the same payload and no signature.
  const auto payload = token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1);
  auto none = verify_jwt(base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + payload + ".", kKey, now);
  REQUIRE_FALSE(none);
  CHECK_MESSAGE(none.error().message.find("HS256") != std::string::npos, none.error().message);
  auto late = verify_jwt(token, kKey, now + 900);
  REQUIRE_FALSE(late);
  CHECK(late.error().message == "token expired");
}

TEST_CASE("the verified-token cache: a token seen before is refused once expired; altered bytes are verified afresh") {
  const std::int64_t now = 1'800'000'000;
  VerifiedTokens cache(2);
  const auto token = sign_jwt(access_claims(now, 60), kKey);
  REQUIRE(cache.verify(token, kKey, now));
  REQUIRE(cache.verify(token, kKey, now + 59));  // from the cache
  auto expired = cache.verify(token, kKey, now + 60);
  REQUIRE_FALSE(expired);
  CHECK(expired.error().message == "token expired");
  // The real token is cached; one byte changed is not it.
  CHECK_FALSE(cache.verify(flip_last(token), kKey, now));
  CHECK_FALSE(cache.verify(flip_last(token), kKey, now));
  // Full (capacity 2): older entries make way, every token still verifies.
  for (int i = 0; i < 5; ++i) {
    auto c = access_claims(now + i, 600);
    c.sub = std::to_string(100 + i);
    const auto t = sign_jwt(c, kKey);
    auto v = cache.verify(t, kKey, now + i);
    REQUIRE(v);
    CHECK(v->sub == c.sub);
  }
}
