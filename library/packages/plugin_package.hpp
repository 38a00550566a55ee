// Plugin packages: a plugin folder as one versioned archive (<id>-<version>.xpkg, a gzip'd tar) that lists
// every file with its SHA-256 (xcore-package.json) and may carry an Ed25519 signature over that list
// (xcore-package.sig). The signature thus covers the manifest and the binary. The same two files, unpacked
// into a plugin folder, let a host check the folder before it loads the plugin (verify_folder).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <xcore/error.hpp>

namespace xcore::packages {

inline constexpr const char* kListFile = "xcore-package.json";
inline constexpr const char* kSignatureFile = "xcore-package.sig";
inline constexpr const char* kExtension = ".xpkg";

// An Ed25519 public key, read from PEM (SubjectPublicKeyInfo) or from the raw 32 bytes in base64.
class VerifyingKey {
 public:
  static Result<VerifyingKey> parse(std::string_view text, std::string source);
  static Result<VerifyingKey> load(const std::filesystem::path& file);
  const std::string& id() const noexcept { return id_; }          // 16 hex digits of SHA-256(raw key)
  const std::string& source() const noexcept { return source_; }  // where it came from, for messages
  const std::string& raw() const noexcept { return raw_; }        // the 32 bytes
  bool verify(std::string_view message, std::string_view signature) const;

 private:
  std::string raw_, id_, source_;
};

// An Ed25519 private key, read from PEM (PKCS#8, unencrypted) or from the raw 32-byte seed in base64.
class SigningKey {
 public:
  static Result<SigningKey> parse(std::string_view text, std::string source);
  static Result<SigningKey> load(const std::filesystem::path& file);
  const VerifyingKey& public_key() const noexcept { return public_; }
  std::string sign(std::string_view message) const;  // 64 bytes

 private:
  std::string seed_;
  VerifyingKey public_;
};

struct KeyPair {
  std::string private_pem, public_pem, key_id;
};
KeyPair generate_key_pair();

// A package's files by their path inside it ('/'-separated, relative).
struct PackageFile {
  std::string bytes;
  bool executable = false;
};
using PackageFiles = std::map<std::string, PackageFile>;

// What a package or a signed folder holds, once checked.
struct PackageCheck {
  std::string plugin, version;
  std::vector<std::string> files;             // listed and matching their digests
  std::optional<std::string> signed_by;       // key id, when a signature is present and valid
  std::string signer_key;                     // that key's raw 32 bytes
  std::string signed_by_source;               // the trusted key's source, when checked against a list
};

// Reads a plugin folder (its manifest and every regular file under it; a symbolic link or any other kind of
// file is refused by name), lists it and, with a key, signs the list.
Result<PackageFiles> read_folder(const std::filesystem::path& dir);
Result<void> seal(PackageFiles& files, const SigningKey* key);

// Archive I/O. write_package names the file <id>-<version>.xpkg in out_dir unless out_file is given.
Result<std::filesystem::path> write_package(const PackageFiles& files, const std::filesystem::path& out);
// Reads an archive, refusing absolute or '..' paths, links, duplicates and more than max_bytes unpacked.
Result<PackageFiles> read_package(const std::filesystem::path& file, std::size_t max_bytes = std::size_t{1} << 30);
Result<void> unpack(const PackageFiles& files, const std::filesystem::path& into);

// Checks the list against the files (every file listed, every digest matching, nothing unlisted) and the
// signature, which carries its public key and is always verified by it. With `trusted` non-empty the
// signing key must be one of them: the error names the signing key, or says the signature is missing.
// With `trusted` empty a valid signature is reported by key id.
Result<PackageCheck> check(const PackageFiles& files, const std::vector<VerifyingKey>& trusted);
Result<PackageCheck> verify_folder(const std::filesystem::path& dir, const std::vector<VerifyingKey>& trusted);
// Whether `check` was signed by one of `keys` (the same key, not only the same id).
bool signed_by_one_of(const PackageCheck& check, const std::vector<VerifyingKey>& keys);

}  // namespace xcore::packages
