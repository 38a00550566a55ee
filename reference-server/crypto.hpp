// The server's cryptography, over Botan 2: random tokens, hashes, password hashing, JWT signatures and
// secret sealing. Botan's headers stay in crypto.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>

namespace xcore::server {

std::string random_token(std::size_t bytes = 32);  // base64url, no padding
// Unguessable ids that are not keys (request ids): the system generator's bytes, drawn 4 KiB at a time per
// thread, so the hot path makes no system call. Keys, tokens and ids of stored things use random_token.
std::string request_token(std::size_t bytes);
std::string base64url_encode(std::string_view data);
Result<std::string> base64url_decode(std::string_view text);
std::string sha256_hex(std::string_view data);
std::string hex_encode(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
bool constant_time_equal(std::string_view a, std::string_view b);

// Argon2id in the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
std::string hash_password(std::string_view password);
bool verify_password(std::string_view password, const std::string& phc);

// AES-256-GCM with a fresh 96-bit nonce per value; the name is bound as associated data, so a sealed value
// cannot be moved to another name. Sealed form: nonce || ciphertext || tag.
class SecretBox {
 public:
  explicit SecretBox(std::string key);  // 32 bytes
  std::string seal(std::string_view name, std::string_view plaintext) const;
  Result<std::string> open(std::string_view name, std::string_view sealed) const;

 private:
  std::string key_;
};

}  // namespace xcore::server
