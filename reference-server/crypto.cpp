#include "crypto.hpp"

#include <botan/aead.h>
#include <botan/argon2.h>
#include <botan/base64.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <botan/mac.h>
#include <botan/mem_ops.h>
#include <botan/system_rng.h>

#include <algorithm>
#include <cstring>

namespace xcore::server {

namespace {
Botan::RandomNumberGenerator& rng() {
  static Botan::System_RNG r;
  return r;
}
// Argon2id cost: 64 MiB, 2 passes, 1 lane (OWASP's second recommended setting is 19 MiB/2; this is stronger
// and still ~60 ms here).
constexpr std::size_t kArgonMemoryKiB = 65536, kArgonPasses = 2, kArgonLanes = 1;
}  // namespace

std::string random_token(std::size_t bytes) {
  std::string raw(bytes, '\0');
  rng().randomize(reinterpret_cast<std::uint8_t*>(raw.data()), raw.size());
  return base64url_encode(raw);
}

std::string request_token(std::size_t bytes) {
  // Taken from a per-thread block of the system generator's bytes, refilled 4 KiB at a time: a request id
  // costs no system call (a generator per thread would still ask getpid() on every call, to notice forks).
  struct Block {
    std::uint8_t bytes[4096];
    std::size_t used = sizeof bytes;
  };
  thread_local Block block;
  std::string raw(bytes, '\0');
  for (std::size_t at = 0; at < bytes;) {
    if (block.used == sizeof block.bytes) {
      rng().randomize(block.bytes, sizeof block.bytes);
      block.used = 0;
    }
    const std::size_t take = std::min(bytes - at, sizeof block.bytes - block.used);
    std::memcpy(raw.data() + at, block.bytes + block.used, take);
    block.used += take;
    at += take;
  }
  return base64url_encode(raw);
}

std::string base64url_encode(std::string_view data) {
  std::string s = Botan::base64_encode(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  std::replace(s.begin(), s.end(), '+', '-');
  std::replace(s.begin(), s.end(), '/', '_');
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

Result<std::string> base64url_decode(std::string_view text) {
  std::string s(text);
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
      return Error{ErrorCode::invalid_argument, "not base64url"};
  std::replace(s.begin(), s.end(), '-', '+');
  std::replace(s.begin(), s.end(), '_', '/');
  if (s.size() % 4 == 1) return Error{ErrorCode::invalid_argument, "not base64url (bad length)"};
  while (s.size() % 4) s.push_back('=');
  try {
    auto v = Botan::base64_decode(s);
    return std::string(v.begin(), v.end());
  } catch (const std::exception&) {
    return Error{ErrorCode::invalid_argument, "not base64url"};
  }
}

std::string sha256_hex(std::string_view data) {
  auto h = Botan::HashFunction::create_or_throw("SHA-256");
  h->update(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  return Botan::hex_encode(h->final(), false);
}

std::string hex_encode(std::string_view data) {
  return Botan::hex_encode(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), false);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  auto mac = Botan::MessageAuthenticationCode::create_or_throw("HMAC(SHA-256)");
  mac->set_key(reinterpret_cast<const std::uint8_t*>(key.data()), key.size());
  mac->update(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  auto out = mac->final();
  return std::string(out.begin(), out.end());
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return Botan::constant_time_compare(reinterpret_cast<const std::uint8_t*>(a.data()), reinterpret_cast<const std::uint8_t*>(b.data()),
                                      a.size());
}

std::string hash_password(std::string_view password) {
  return Botan::argon2_generate_pwhash(password.data(), password.size(), rng(), kArgonLanes, kArgonMemoryKiB, kArgonPasses, /*Argon2id*/ 2);
}

bool verify_password(std::string_view password, const std::string& phc) {
  try {
    return Botan::argon2_check_pwhash(password.data(), password.size(), phc);
  } catch (const std::exception&) {
    return false;
  }
}

SecretBox::SecretBox(std::string key) : key_(std::move(key)) {}

std::string SecretBox::seal(std::string_view name, std::string_view plaintext) const {
  auto enc = Botan::AEAD_Mode::create_or_throw("AES-256/GCM", Botan::ENCRYPTION);
  enc->set_key(reinterpret_cast<const std::uint8_t*>(key_.data()), key_.size());
  enc->set_associated_data(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
  std::string nonce(12, '\0');
  rng().randomize(reinterpret_cast<std::uint8_t*>(nonce.data()), nonce.size());
  enc->start(reinterpret_cast<const std::uint8_t*>(nonce.data()), nonce.size());
  Botan::secure_vector<std::uint8_t> buf(plaintext.begin(), plaintext.end());
  enc->finish(buf);
  return nonce + std::string(buf.begin(), buf.end());
}

Result<std::string> SecretBox::open(std::string_view name, std::string_view sealed) const {
  if (sealed.size() < 12 + 16) return Error{ErrorCode::invalid_argument, "sealed value too short"};
  try {
    auto dec = Botan::AEAD_Mode::create_or_throw("AES-256/GCM", Botan::DECRYPTION);
    dec->set_key(reinterpret_cast<const std::uint8_t*>(key_.data()), key_.size());
    dec->set_associated_data(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
    dec->start(reinterpret_cast<const std::uint8_t*>(sealed.data()), 12);
    Botan::secure_vector<std::uint8_t> buf(sealed.begin() + 12, sealed.end());
    dec->finish(buf);
    return std::string(buf.begin(), buf.end());
  } catch (const std::exception& e) {
    return Error{ErrorCode::permission_denied, "the secret does not open with this master key (tampered, or another key)"};
  }
}

}  // namespace xcore::server
