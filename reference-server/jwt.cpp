#include "jwt.hpp"
#include <xcore/json_text.hpp>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "crypto.hpp"

namespace xcore::server {

namespace json = boost::json;

namespace {
constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";
constexpr std::int64_t kClockSkew = 60;

Error bad(std::string_view why) { return Error{ErrorCode::unauthenticated, fmt::format("invalid token: {}", why)}; }

// What a token's times allow now: checked on every use, also of a token verified before.
Result<void> check_times(const Claims& c, std::int64_t now) {
  if (c.nbf && c.nbf > now + kClockSkew) return Error{ErrorCode::unauthenticated, "token not valid yet (nbf)"};
  if (c.exp <= now) return Error{ErrorCode::unauthenticated, "token expired"};
  if (c.iat > now + kClockSkew) return bad("issued in the future");
  return ok();
}
}  // namespace

std::string sign_jwt(const Claims& c, std::string_view key) {
  json::object payload{{"sub", c.sub}, {"tenant", c.tenant}, {"role", c.role}, {"typ", c.typ}, {"iat", c.iat}, {"exp", c.exp}, {"gen", c.gen}};
  if (c.nbf) payload["nbf"] = c.nbf;
  if (!c.jti.empty()) payload["jti"] = c.jti;
  if (!c.fam.empty()) payload["fam"] = c.fam;
  std::string signing_input = base64url_encode(kHeader) + "." + base64url_encode(xcore::json_text::serialize(payload));
  return signing_input + "." + base64url_encode(hmac_sha256(key, signing_input));
}

Result<Claims> verify_jwt(std::string_view token, std::string_view key, std::int64_t now) {
  auto d1 = token.find('.');
  auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) return bad("not three dot-separated parts");
  auto header_text = base64url_decode(token.substr(0, d1));
  auto payload_text = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto signature = base64url_decode(token.substr(d2 + 1));
  if (!header_text || !payload_text || !signature) return bad("a part is not base64url");
  boost::system::error_code ec;
  auto header = json::parse(*header_text, ec);
  if (ec || !header.is_object()) return bad("the header is not a JSON object");
  auto alg = header.get_object().find("alg");
  if (alg == header.get_object().end() || !alg->value().is_string()) return bad("no algorithm");
  if (alg->value().get_string() != "HS256")
    return bad(fmt::format("algorithm '{}' is not accepted (HS256 only)", std::string_view(alg->value().get_string())));
  if (!constant_time_equal(*signature, hmac_sha256(key, token.substr(0, d2)))) return bad("signature mismatch");
  auto payload = json::parse(*payload_text, ec);
  if (ec || !payload.is_object()) return bad("the payload is not a JSON object");
  const auto& p = payload.get_object();
  Claims c;
  auto str = [&](const char* k, std::string& out) {
    auto it = p.find(k);
    if (it == p.end() || !it->value().is_string()) return false;
    out = it->value().get_string();
    return true;
  };
  auto num = [&](const char* k, std::int64_t& out) {
    auto it = p.find(k);
    if (it == p.end() || !it->value().is_int64()) return false;
    out = it->value().get_int64();
    return true;
  };
  if (!str("sub", c.sub) || !str("tenant", c.tenant) || !str("role", c.role) || !str("typ", c.typ) || !num("iat", c.iat) ||
      !num("exp", c.exp))
    return bad("missing claims (sub, tenant, role, typ, iat, exp)");
  if (!num("gen", c.gen)) return bad("missing claim 'gen'");
  if (p.contains("nbf") && !num("nbf", c.nbf)) return bad("'nbf' must be a whole number of seconds");
  if (p.contains("jti") && !str("jti", c.jti)) return bad("'jti' must be a string");
  if (p.contains("fam") && !str("fam", c.fam)) return bad("'fam' must be a string");
  XCORE_TRY(check_times(c, now));
  return c;
}

VerifiedTokens::VerifiedTokens(std::size_t capacity) : capacity_(capacity) {}

Result<Claims> VerifiedTokens::verify(const std::string& token, std::string_view key, std::int64_t now) {
  {
    std::shared_lock lock(mutex_);
    if (auto it = seen_.find(token); it != seen_.end()) {
      XCORE_TRY(check_times(it->second, now));
      return it->second;
    }
  }
  XCORE_ASSIGN_OR_RETURN(auto claims, verify_jwt(token, key, now));
  std::unique_lock lock(mutex_);
  if (seen_.size() >= capacity_) {
    // Full: the expired go first; if that frees nothing, everything (the next uses verify again).
    std::erase_if(seen_, [&](const auto& e) { return e.second.exp <= now; });
    if (seen_.size() >= capacity_) seen_.clear();
  }
  seen_.emplace(token, claims);
  return claims;
}

}  // namespace xcore::server
