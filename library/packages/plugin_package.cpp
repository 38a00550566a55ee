#include "packages/plugin_package.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <botan/base64.h>
#include <botan/data_src.h>
#include <botan/ed25519.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <botan/pk_keys.h>
#include <botan/pkcs8.h>
#include <botan/pubkey.h>
#include <botan/system_rng.h>
#include <botan/x509_key.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <xcore/json.hpp>
#include <xcore/manifest.hpp>

namespace xcore::packages {
namespace fs = std::filesystem;

namespace {

std::string sha256_hex(std::string_view data) {
  auto h = Botan::HashFunction::create_or_throw("SHA-256");
  h->update(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  return Botan::hex_encode(h->final(), false);
}

std::optional<json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

std::string key_id_of(std::string_view raw) { return sha256_hex(raw).substr(0, 16); }

std::string base64(std::string_view bytes) {
  return Botan::base64_encode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

std::optional<std::string> unbase64(std::string_view text) {
  try {
    auto v = Botan::base64_decode(std::string(text));
    return std::string(v.begin(), v.end());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

Result<std::string> read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{ErrorCode::not_found, fmt::format("cannot read {}", file.string())};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A path inside a package: relative, '/'-separated, no empty, '.' or '..' component.
bool safe_member(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.size() > 4096) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    auto end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    auto part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

const char* manifest_name(const PackageFiles& files) {
  for (const char* n : {"plugin.yaml", "plugin.yml", "plugin.json"})
    if (files.contains(n)) return n;
  return nullptr;
}

Result<ManifestLoad> manifest_of(const PackageFiles& files, std::string_view where) {
  const char* name = manifest_name(files);
  if (!name) return Error{ErrorCode::invalid_argument, fmt::format("{}: no plugin.yaml or plugin.json at its top", where)};
  return parse_manifest(files.at(name).bytes, fs::path(std::string(where)) / name);
}

}  // namespace

Result<VerifyingKey> VerifyingKey::parse(std::string_view text, std::string source) {
  VerifyingKey k;
  k.source_ = std::move(source);
  const auto t = trim(text);
  if (t.starts_with("-----BEGIN")) {
    try {
      Botan::DataSource_Memory in(t);
      std::unique_ptr<Botan::Public_Key> key(Botan::X509::load_key(in));
      auto* ed = dynamic_cast<Botan::Ed25519_PublicKey*>(key.get());
      if (!ed) return Error{ErrorCode::invalid_argument, fmt::format("{}: a {} key, not Ed25519", k.source_, key->algo_name())};
      auto raw = ed->get_public_key();
      k.raw_.assign(raw.begin(), raw.end());
    } catch (const std::exception& e) {
      return Error{ErrorCode::invalid_argument, fmt::format("{}: not a PEM public key: {}", k.source_, e.what())};
    }
  } else {
    auto raw = unbase64(t);
    if (!raw || raw->size() != 32)
      return Error{ErrorCode::invalid_argument,
                   fmt::format("{}: not an Ed25519 public key (PEM, or the 32 raw bytes in base64)", k.source_)};
    k.raw_ = std::move(*raw);
  }
  k.id_ = key_id_of(k.raw_);
  return k;
}

Result<VerifyingKey> VerifyingKey::load(const fs::path& file) {
  XCORE_ASSIGN_OR_RETURN(auto text, read_file(file));
  return parse(text, file.string());
}

bool VerifyingKey::verify(std::string_view message, std::string_view signature) const {
  try {
    Botan::Ed25519_PublicKey key(std::vector<std::uint8_t>(raw_.begin(), raw_.end()));
    Botan::PK_Verifier v(key, "Pure");
    return v.verify_message(reinterpret_cast<const std::uint8_t*>(message.data()), message.size(),
                            reinterpret_cast<const std::uint8_t*>(signature.data()), signature.size());
  } catch (const std::exception&) {
    return false;
  }
}

Result<SigningKey> SigningKey::parse(std::string_view text, std::string source) {
  SigningKey k;
  const auto t = trim(text);
  try {
    if (t.starts_with("-----BEGIN")) {
      Botan::DataSource_Memory in(t);
      auto key = Botan::PKCS8::load_key(in);
      auto* ed = dynamic_cast<Botan::Ed25519_PrivateKey*>(key.get());
      if (!ed) return Error{ErrorCode::invalid_argument, fmt::format("{}: a {} key, not Ed25519", source, key->algo_name())};
      auto secret = ed->get_private_key();  // seed || public key
      k.seed_.assign(secret.begin(), secret.begin() + 32);
    } else {
      auto raw = unbase64(t);
      if (!raw || (raw->size() != 32 && raw->size() != 64))
        return Error{ErrorCode::invalid_argument,
                     fmt::format("{}: not an Ed25519 private key (PEM, or the 32-byte seed in base64)", source)};
      k.seed_ = raw->substr(0, 32);
    }
    Botan::Ed25519_PrivateKey key(Botan::secure_vector<std::uint8_t>(k.seed_.begin(), k.seed_.end()));
    auto pub = key.get_public_key();
    XCORE_ASSIGN_OR_RETURN(k.public_, VerifyingKey::parse(base64(std::string(pub.begin(), pub.end())), source));
  } catch (const std::exception& e) {
    return Error{ErrorCode::invalid_argument, fmt::format("{}: not a PEM private key: {}", source, e.what())};
  }
  return k;
}

Result<SigningKey> SigningKey::load(const fs::path& file) {
  XCORE_ASSIGN_OR_RETURN(auto text, read_file(file));
  return parse(text, file.string());
}

std::string SigningKey::sign(std::string_view message) const {
  Botan::Ed25519_PrivateKey key(Botan::secure_vector<std::uint8_t>(seed_.begin(), seed_.end()));
  Botan::PK_Signer signer(key, Botan::system_rng(), "Pure");
  auto sig = signer.sign_message(reinterpret_cast<const std::uint8_t*>(message.data()), message.size(), Botan::system_rng());
  return std::string(sig.begin(), sig.end());
}

KeyPair generate_key_pair() {
  Botan::Ed25519_PrivateKey key(Botan::system_rng());
  auto pub = key.get_public_key();
  return KeyPair{Botan::PKCS8::PEM_encode(key), Botan::X509::PEM_encode(key),
                 key_id_of(std::string_view(reinterpret_cast<const char*>(pub.data()), pub.size()))};
}

Result<PackageFiles> read_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Error{ErrorCode::not_found, fmt::format("{} is not a folder", dir.string())};
  PackageFiles files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto rel = it->path().lexically_relative(dir).generic_string();
    const auto status = it->symlink_status(ec);
    if (fs::is_directory(status)) continue;
    if (!fs::is_regular_file(status))
      return Error{ErrorCode::invalid_argument,
                   fmt::format("{}: '{}' is a symbolic link or special file; a package holds regular files only", dir.string(), rel)};
    if (rel == kListFile || rel == kSignatureFile) continue;
    XCORE_ASSIGN_OR_RETURN(auto bytes, read_file(it->path()));
    files[rel] = PackageFile{std::move(bytes), (status.permissions() & fs::perms::owner_exec) != fs::perms::none};
  }
  if (ec) return Error{ErrorCode::invalid_argument, fmt::format("cannot list {}: {}", dir.string(), ec.message())};
  return files;
}

Result<void> seal(PackageFiles& files, const SigningKey* key) {
  files.erase(kListFile);
  files.erase(kSignatureFile);
  XCORE_ASSIGN_OR_RETURN(auto loaded, manifest_of(files, "the plugin folder"));
  const auto& m = loaded.manifest;
  if (!m.external() && !files.contains(m.entry))
    return Error{ErrorCode::invalid_argument, fmt::format("the manifest's entry '{}' is not in the plugin folder (build it first?)", m.entry)};
  json::object digests;  // std::map order: the list's text is the same for the same files
  for (const auto& [name, f] : files) digests[name] = "sha256:" + sha256_hex(f.bytes);
  json::object list{{"format", "xcore-package/1"},
                    {"plugin", m.id},
                    {"version", m.version.to_string()},
                    {"manifest", manifest_name(files)},
                    {"files", std::move(digests)}};
  if (!m.external()) list["binary"] = m.entry;
  auto text = json::serialize(list) + "\n";
  if (key) {
    json::object sig{{"algorithm", "ed25519"},
                     {"key_id", key->public_key().id()},
                     {"public_key", base64(key->public_key().raw())},
                     {"signature", base64(key->sign(text))}};
    files[kSignatureFile] = PackageFile{json::serialize(sig) + "\n", false};
  }
  files[kListFile] = PackageFile{std::move(text), false};
  return ok();
}

Result<PackageCheck> check(const PackageFiles& files, const std::vector<VerifyingKey>& trusted) {
  auto list_it = files.find(kListFile);
  if (list_it == files.end())
    return Error{ErrorCode::permission_denied, fmt::format("no {}: not a package, or a folder never packed", kListFile)};
  const std::string& text = list_it->second.bytes;
  auto parsed = parse_json(text);
  if (!parsed || !parsed->is_object() || !parsed->get_object().contains("files") || !parsed->at("files").is_object())
    return Error{ErrorCode::invalid_argument, fmt::format("{} is not a package list (JSON object with 'files')", kListFile)};
  const auto& list = parsed->get_object();
  PackageCheck out;
  auto str = [&](const char* k) { return list.contains(k) && list.at(k).is_string() ? std::string(list.at(k).get_string()) : std::string(); };
  out.plugin = str("plugin");
  out.version = str("version");

  // The signature first: what follows trusts the list only once it is known who wrote it.
  if (auto s = files.find(kSignatureFile); s != files.end()) {
    auto sig = parse_json(s->second.bytes);
    if (!sig || !sig->is_object()) return Error{ErrorCode::invalid_argument, fmt::format("{} is not JSON", kSignatureFile)};
    const auto& o = sig->get_object();
    auto field = [&](const char* k) { return o.contains(k) && o.at(k).is_string() ? std::string(o.at(k).get_string()) : std::string(); };
    if (field("algorithm") != "ed25519")
      return Error{ErrorCode::invalid_argument, fmt::format("{}: algorithm '{}' (only ed25519 is known)", kSignatureFile, field("algorithm"))};
    auto signature = unbase64(field("signature"));
    XCORE_ASSIGN_OR_RETURN(auto embedded, VerifyingKey::parse(field("public_key"), kSignatureFile));
    const VerifyingKey* by = &embedded;
    if (!trusted.empty()) {
      by = nullptr;
      for (const auto& k : trusted)
        if (k.id() == embedded.id()) by = &k;
      if (!by)
        return Error{ErrorCode::permission_denied,
                     fmt::format("plugin '{}' is signed by key {}, which is not among the trusted keys", out.plugin, embedded.id())};
      out.signed_by_source = by->source();
    }
    if (!signature || !by->verify(text, *signature))
      return Error{ErrorCode::permission_denied,
                   fmt::format("plugin '{}': the signature by key {} does not match {} (tampered with, or signed with another key)",
                               out.plugin, by->id(), kListFile)};
    out.signed_by = by->id();
    out.signer_key = by->raw();
  } else if (!trusted.empty()) {
    return Error{ErrorCode::permission_denied, fmt::format("plugin '{}' is not signed (no {})", out.plugin, kSignatureFile)};
  }

  const auto& digests = list.at("files").get_object();
  for (const auto& [name, f] : files) {
    if (name == kListFile || name == kSignatureFile) continue;
    auto d = digests.find(name);
    if (d == digests.end())
      return Error{ErrorCode::permission_denied, fmt::format("plugin '{}': file '{}' is not in {}", out.plugin, name, kListFile)};
    if (!d->value().is_string() || d->value().get_string() != "sha256:" + sha256_hex(f.bytes))
      return Error{ErrorCode::permission_denied,
                   fmt::format("plugin '{}': file '{}' does not match its digest in {}", out.plugin, name, kListFile)};
    out.files.push_back(name);
  }
  for (const auto& d : digests)
    if (!files.contains(d.key()))
      return Error{ErrorCode::permission_denied, fmt::format("plugin '{}': file '{}' is listed but missing", out.plugin, std::string(d.key()))};
  // The list names the plugin; the manifest it covers must agree.
  XCORE_ASSIGN_OR_RETURN(auto loaded, manifest_of(files, "the package"));
  if (loaded.manifest.id != out.plugin || loaded.manifest.version.to_string() != out.version)
    return Error{ErrorCode::permission_denied, fmt::format("{} names {} {}, its manifest {} {}", kListFile, out.plugin, out.version,
                                                           loaded.manifest.id, loaded.manifest.version.to_string())};
  return out;
}

Result<PackageCheck> verify_folder(const fs::path& dir, const std::vector<VerifyingKey>& trusted) {
  XCORE_ASSIGN_OR_RETURN(auto files, read_folder(dir));
  for (const char* extra : {kListFile, kSignatureFile}) {
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(dir / extra, ec))) continue;
    XCORE_ASSIGN_OR_RETURN(auto bytes, read_file(dir / extra));
    files[extra] = PackageFile{std::move(bytes), false};
  }
  return check(files, trusted);
}

bool signed_by_one_of(const PackageCheck& check, const std::vector<VerifyingKey>& keys) {
  return check.signed_by && std::any_of(keys.begin(), keys.end(), [&](const VerifyingKey& k) { return k.raw() == check.signer_key; });
}

namespace {

struct ArchiveWriter {
  archive* a = archive_write_new();
  ~ArchiveWriter() { archive_write_free(a); }
};
struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};

}  // namespace

Result<fs::path> write_package(const PackageFiles& files, const fs::path& out) {
  fs::path target = out;
  std::error_code ec;
  if (fs::is_directory(out, ec)) {
    XCORE_ASSIGN_OR_RETURN(auto loaded, manifest_of(files, "the package"));
    target = out / (loaded.manifest.id + "-" + loaded.manifest.version.to_string() + kExtension);
  }
  const auto tmp = fs::path(target.string() + ".part");
  {
    ArchiveWriter w;
    archive_write_add_filter_gzip(w.a);
    archive_write_set_options(w.a, "gzip:!timestamp");  // the same files make the same bytes
    archive_write_set_format_pax_restricted(w.a);
    if (archive_write_open_filename(w.a, tmp.c_str()) != ARCHIVE_OK)
      return Error{ErrorCode::invalid_argument, fmt::format("cannot write {}: {}", tmp.string(), archive_error_string(w.a))};
    // The list and the signature first, so a reader meets them before what they cover.
    std::vector<const PackageFiles::value_type*> order;
    for (const char* first : {kListFile, kSignatureFile})
      if (auto it = files.find(first); it != files.end()) order.push_back(&*it);
    for (const auto& f : files)
      if (f.first != kListFile && f.first != kSignatureFile) order.push_back(&f);
    for (const auto* f : order) {
      archive_entry* e = archive_entry_new();
      archive_entry_set_pathname(e, f->first.c_str());
      archive_entry_set_size(e, static_cast<la_int64_t>(f->second.bytes.size()));
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, f->second.executable ? 0755 : 0644);
      archive_entry_set_mtime(e, 0, 0);
      bool okay = archive_write_header(w.a, e) == ARCHIVE_OK &&
                  archive_write_data(w.a, f->second.bytes.data(), f->second.bytes.size()) == static_cast<la_ssize_t>(f->second.bytes.size());
      archive_entry_free(e);
      if (!okay) return Error{ErrorCode::internal, fmt::format("cannot write {}: {}", tmp.string(), archive_error_string(w.a))};
    }
    if (archive_write_close(w.a) != ARCHIVE_OK)
      return Error{ErrorCode::internal, fmt::format("cannot write {}: {}", tmp.string(), archive_error_string(w.a))};
  }
  fs::rename(tmp, target, ec);
  if (ec) return Error{ErrorCode::internal, fmt::format("cannot write {}: {}", target.string(), ec.message())};
  return target;
}

Result<PackageFiles> read_package(const fs::path& file, std::size_t max_bytes) {
  ArchiveReader r;
  archive_read_support_filter_gzip(r.a);
  archive_read_support_format_tar(r.a);
  if (archive_read_open_filename(r.a, file.c_str(), 1 << 16) != ARCHIVE_OK)
    return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", file.string(), archive_error_string(r.a))};
  PackageFiles files;
  std::size_t total = 0;
  archive_entry* e = nullptr;
  int rc;
  while ((rc = archive_read_next_header(r.a, &e)) == ARCHIVE_OK) {
    const char* p = archive_entry_pathname(e);
    std::string name = p ? p : "";
    if (!safe_member(name))
      return Error{ErrorCode::invalid_argument, fmt::format("{}: member '{}' has an unsafe path (absolute, empty or with '..')", file.string(), name)};
    if (archive_entry_filetype(e) == AE_IFDIR) continue;
    if (archive_entry_filetype(e) != AE_IFREG)
      return Error{ErrorCode::invalid_argument, fmt::format("{}: member '{}' is not a regular file (links are refused)", file.string(), name)};
    if (files.contains(name)) return Error{ErrorCode::invalid_argument, fmt::format("{}: member '{}' appears twice", file.string(), name)};
    PackageFile f;
    f.executable = (archive_entry_perm(e) & 0100) != 0;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(r.a, buf, sizeof buf)) > 0) {
      total += static_cast<std::size_t>(n);
      if (total > max_bytes)
        return Error{ErrorCode::invalid_argument, fmt::format("{}: unpacks to more than {} bytes", file.string(), max_bytes)};
      f.bytes.append(buf, static_cast<std::size_t>(n));
    }
    if (n < 0) return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", file.string(), archive_error_string(r.a))};
    files.emplace(std::move(name), std::move(f));
  }
  if (rc != ARCHIVE_EOF) return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", file.string(), archive_error_string(r.a))};
  return files;
}

Result<void> unpack(const PackageFiles& files, const fs::path& into) {
  std::error_code ec;
  fs::create_directories(into, ec);
  for (const auto& [name, f] : files) {
    if (!safe_member(name)) return Error{ErrorCode::invalid_argument, fmt::format("unsafe member path '{}'", name)};
    const auto path = into / name;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(f.bytes.data(), static_cast<std::streamsize>(f.bytes.size()));
    if (!out) return Error{ErrorCode::internal, fmt::format("cannot write {}", path.string())};
    out.close();
    ::chmod(path.c_str(), f.executable ? 0755 : 0644);
  }
  return ok();
}

}  // namespace xcore::packages
