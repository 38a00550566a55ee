// validate, pack, sign, verify, keygen and install: the commands that check a plugin and make, sign and
// check its package.
#include <CLI/CLI.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fstream>

#include <xcore/manifest.hpp>
#include <xcore/plugin.h>

#include "cli/cli.hpp"
#include "packages/plugin_package.hpp"
#include "runners/abi_tag.hpp"

namespace xcore::cli {
namespace fs = std::filesystem;

namespace {

struct Problem {
  std::string where;  // file, and field or path within it
  std::string message;
};

struct Validation {
  std::string plugin, version;
  std::vector<Problem> problems;
  std::vector<std::string> warnings;
  std::vector<std::string> tools;
};

// The problems a manifest error carries (its details list each field), or the error itself.
void add_manifest_problems(Validation& v, const fs::path& file, const Error& e) {
  boost::system::error_code ec;
  auto details = e.details.empty() ? json::value() : boost::json::parse(e.details, ec);
  if (!ec && details.is_array() && !details.get_array().empty()) {
    for (const auto& p : details.get_array())
      if (p.is_object() && p.get_object().contains("field"))
        v.problems.push_back({fmt::format("{}: {}", file.string(), std::string_view(p.at("field").as_string())),
                              std::string(p.at("message").as_string())});
    return;
  }
  v.problems.push_back({file.string(), e.message});
}

void check_abi_tag(Validation& v, const PluginManifest& m) {
  const auto binary = m.binary();
  auto tag = read_abi_tag(binary);
  if (!tag) {
    v.problems.push_back({binary.string(), tag.error().message});
    return;
  }
  if (tag->abi_major != XCORE_ABI_MAJOR || tag->abi_minor > XCORE_ABI_MINOR)
    v.problems.push_back({binary.string(), fmt::format("built for plugin ABI {}.{}; this xcore hosts {}.0 to {}.{}", tag->abi_major,
                                                       tag->abi_minor, XCORE_ABI_MAJOR, XCORE_ABI_MAJOR, XCORE_ABI_MINOR)});
  if (tag->plugin_id != m.id)
    v.problems.push_back({binary.string(), fmt::format("the binary says it is plugin '{}', the manifest '{}'", tag->plugin_id, m.id)});
  if (tag->plugin_version != m.version.to_string())
    v.problems.push_back({binary.string(), fmt::format("the binary says it is version {}, the manifest {}", tag->plugin_version,
                                                       m.version.to_string())});
}

// Loads the plugin in a sandboxed host of its own, so no plugin code runs in this process: the Manager
// checks the declared tools against the binary's as it loads.
void check_by_loading(Validation& v, const fs::path& dir, const PluginManifest& m) {
  std::vector<Error> problems;
  auto host = open_local_host(LocalHostOptions{{dir}, {}, false, true}, problems);
  for (const auto& p : problems) v.problems.push_back({dir.string(), p.message});
  if (!host) {
    v.problems.push_back({dir.string(), host.error().message});
    return;
  }
  if (auto r = (*host)->load(m.id); !r) {
    v.problems.push_back({dir.string(), fmt::format("loading it in a sandboxed host failed: {}", r.error().message)});
    return;
  }
  ToolFilter f;
  f.plugin = m.id;
  f.include_disabled = true;
  for (const auto& t : (*host)->tools().list(f)) {
    v.tools.push_back(t.spec.name);
    if (!m.tools.empty() && std::none_of(m.tools.begin(), m.tools.end(), [&](const ToolSpec& d) { return d.name == t.spec.name; }))
      v.warnings.push_back(fmt::format("{}: tool '{}' is provided but not declared under tools:", m.file.string(), t.spec.name));
  }
}

Validation validate_folder(const fs::path& dir, bool load) {
  Validation v;
  auto file = find_manifest(dir);
  if (!file) {
    v.problems.push_back({dir.string(), "no plugin.yaml or plugin.json here"});
    return v;
  }
  auto loaded = load_manifest(*file);
  if (!loaded) {
    add_manifest_problems(v, *file, loaded.error());
    return v;
  }
  const auto& m = loaded->manifest;
  v.plugin = m.id;
  v.version = m.version.to_string();
  v.warnings = loaded->warnings;
  std::error_code ec;
  if (!m.external()) {
    if (!fs::is_regular_file(m.binary(), ec)) {
      v.problems.push_back({fmt::format("{}: entry", file->string()), fmt::format("{} does not exist (build it first?)", m.binary().string())});
      return v;
    }
    check_abi_tag(v, m);
  }
  if (v.problems.empty() && load) check_by_loading(v, dir, m);
  return v;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xcore-cli-XXXXXX").string();
    if (::mkdtemp(t.data())) path = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

bool is_package(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

Result<std::vector<packages::VerifyingKey>> load_keys(const std::vector<std::string>& files) {
  std::vector<packages::VerifyingKey> keys;
  for (const auto& f : files) {
    // A folder of keys: every *.pub in it.
    std::error_code ec;
    if (fs::is_directory(f, ec)) {
      for (const auto& e : fs::directory_iterator(f, ec))
        if (e.path().extension() == ".pub") {
          XCORE_ASSIGN_OR_RETURN(auto k, packages::VerifyingKey::load(e.path()));
          keys.push_back(std::move(k));
        }
      continue;
    }
    XCORE_ASSIGN_OR_RETURN(auto k, packages::VerifyingKey::load(f));
    keys.push_back(std::move(k));
  }
  return keys;
}

json::object check_to_json(const packages::PackageCheck& c) {
  json::array files;
  for (const auto& f : c.files) files.push_back(json::string(f));
  json::object o{{"plugin", c.plugin}, {"version", c.version}, {"files", std::move(files)}};
  o["signed_by"] = c.signed_by ? json::value(json::string(*c.signed_by)) : json::value(nullptr);
  if (!c.signed_by_source.empty()) o["trusted_key"] = c.signed_by_source;
  return o;
}

struct PackageArgs {
  std::string target;
  std::string key;
  std::vector<std::string> trusted;
  std::string out;
  bool json = false, no_load = false, force = false;
};

void add_validate(CLI::App& app, Run& run) {
  auto a = std::make_shared<PackageArgs>();
  auto* cmd = app.add_subcommand("validate", "Check a plugin folder or package: manifest, ABI tag, declared tools, schemas");
  cmd->add_option("path", a->target, "A plugin folder (with plugin.yaml or plugin.json) or a .xpkg package")->required();
  cmd->add_flag("--no-load", a->no_load, "Do not load the plugin (in a throw-away sandboxed host) to compare its tools");
  cmd->add_flag("--json", a->json, "Print the report as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    TempDir tmp;
    fs::path dir = a->target;
    if (is_package(dir)) {
      auto files = packages::read_package(dir);
      if (!files) {
        run.exit = out.fail("validate", files.error());
        return;
      }
      if (auto c = packages::check(*files, {}); !c) {
        run.exit = out.fail("validate", c.error());
        return;
      }
      dir = tmp.path / "plugin";
      if (auto r = packages::unpack(*files, dir); !r) {
        run.exit = out.fail("validate", r.error());
        return;
      }
    }
    auto v = validate_folder(dir, !a->no_load);
    json::array problems, warnings, tools;
    std::string text;
    for (const auto& p : v.problems) {
      problems.push_back(json::object{{"where", p.where}, {"message", p.message}});
      text += fmt::format("error: {}: {}\n", p.where, p.message);
    }
    for (const auto& w : v.warnings) {
      warnings.push_back(json::string(w));
      text += fmt::format("warning: {}\n", w);
    }
    for (const auto& t : v.tools) tools.push_back(json::string(t));
    if (v.problems.empty())
      text += fmt::format("{} {}: valid{}\n", v.plugin, v.version,
                          v.tools.empty() ? std::string() : fmt::format(" (tools: {})", fmt::join(v.tools, ", ")));
    out.print(json::object{{"plugin", v.plugin}, {"version", v.version}, {"valid", v.problems.empty()},
                           {"problems", problems}, {"warnings", warnings}, {"tools", tools}},
              text);
    run.exit = v.problems.empty() ? kOk : kFailed;
  });
}

void add_pack(CLI::App& app, Run& run) {
  auto a = std::make_shared<PackageArgs>();
  auto* cmd = app.add_subcommand("pack", "Make a versioned package (<id>-<version>.xpkg) of a plugin folder");
  cmd->add_option("dir", a->target, "The plugin folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--out", a->out, "The package file, or a folder to write <id>-<version>.xpkg into (default: .)");
  cmd->add_option("--key", a->key, "Sign it with this Ed25519 private key (PEM, or the raw seed in base64)");
  cmd->add_flag("--json", a->json, "Print what was made as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    auto result = [&]() -> Result<json::object> {
      std::optional<packages::SigningKey> key;
      if (!a->key.empty()) {
        XCORE_ASSIGN_OR_RETURN(key, packages::SigningKey::load(a->key));
      }
      XCORE_ASSIGN_OR_RETURN(auto files, packages::read_folder(a->target));
      XCORE_TRY(packages::seal(files, key ? &*key : nullptr));
      XCORE_ASSIGN_OR_RETURN(auto path, packages::write_package(files, a->out.empty() ? fs::path(".") : fs::path(a->out)));
      XCORE_ASSIGN_OR_RETURN(auto check, packages::check(files, {}));
      auto o = check_to_json(check);
      o["package"] = path.string();
      return o;
    }();
    out.report(run, "pack", result, [](const json::object& o) {
      return fmt::format("{} ({} files{})", std::string_view(o.at("package").as_string()), o.at("files").as_array().size(),
                         o.at("signed_by").is_null() ? ", unsigned" : fmt::format(", signed by key {}", std::string_view(o.at("signed_by").as_string())));
    });
  });
}

void add_sign(CLI::App& app, Run& run) {
  auto a = std::make_shared<PackageArgs>();
  auto* cmd = app.add_subcommand("sign", "Sign a package (its file list, which holds the manifest's and binary's digests)");
  cmd->add_option("package", a->target, "The .xpkg file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--key", a->key, "The Ed25519 private key (PEM, or the raw seed in base64)")->required();
  cmd->add_option("-o,--out", a->out, "Write the signed package here (default: in place)");
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    auto result = [&]() -> Result<json::object> {
      XCORE_ASSIGN_OR_RETURN(auto key, packages::SigningKey::load(a->key));
      XCORE_ASSIGN_OR_RETURN(auto files, packages::read_package(a->target));
      // Never sign what no longer matches its list: that would bless a tampered package.
      XCORE_TRY(packages::check(files, {}));
      XCORE_TRY(packages::seal(files, &key));
      XCORE_ASSIGN_OR_RETURN(auto path, packages::write_package(files, a->out.empty() ? fs::path(a->target) : fs::path(a->out)));
      XCORE_ASSIGN_OR_RETURN(auto check, packages::check(files, {}));
      auto o = check_to_json(check);
      o["package"] = path.string();
      return o;
    }();
    out.report(run, "sign", result, [](const json::object& o) {
      return fmt::format("{}: signed by key {}", std::string_view(o.at("package").as_string()), std::string_view(o.at("signed_by").as_string()));
    });
  });
}

void add_verify(CLI::App& app, Run& run) {
  auto a = std::make_shared<PackageArgs>();
  auto* cmd = app.add_subcommand("verify", "Check a package's or installed plugin folder's digests and signature");
  cmd->add_option("path", a->target, "A .xpkg file or a plugin folder installed from one")->required()->check(CLI::ExistingPath);
  cmd->add_option("--key", a->trusted,
                  "A trusted public key (PEM or raw base64), or a folder of *.pub files; repeatable. With keys, a signature by one "
                  "of them is required");
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    auto result = [&]() -> Result<json::object> {
      XCORE_ASSIGN_OR_RETURN(auto keys, load_keys(a->trusted));
      if (!a->trusted.empty() && keys.empty())
        return Error{ErrorCode::invalid_argument, "no public keys found in the folders given to --key"};
      if (!is_package(a->target)) {
        XCORE_ASSIGN_OR_RETURN(auto check, packages::verify_folder(a->target, keys));
        return check_to_json(check);
      }
      XCORE_ASSIGN_OR_RETURN(auto files, packages::read_package(a->target));
      XCORE_ASSIGN_OR_RETURN(auto check, packages::check(files, keys));
      return check_to_json(check);
    }();
    out.report(run, "verify", result, [](const json::object& o) {
      std::string text = fmt::format("{} {}: {} files match their digests; ", std::string_view(o.at("plugin").as_string()),
                                     std::string_view(o.at("version").as_string()), o.at("files").as_array().size());
      if (o.at("signed_by").is_null()) return text + "unsigned";
      const std::string_view key = o.at("signed_by").as_string();
      if (!o.contains("trusted_key")) return text + fmt::format("signed by key {} (not checked against a trusted key: pass --key)", key);
      return text + fmt::format("signed by trusted key {} ({})", key, std::string_view(o.at("trusted_key").as_string()));
    });
  });
}

Result<void> write_private(const fs::path& file, const std::string& text, bool force) {
  std::error_code ec;
  if (!force && fs::exists(file, ec)) return Error{ErrorCode::already_exists, fmt::format("{} exists (--force replaces it)", file.string())};
  fs::remove(file, ec);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Error{ErrorCode::internal, fmt::format("cannot write {}: {}", file.string(), std::strerror(errno))};
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written) return Error{ErrorCode::internal, fmt::format("cannot write {}", file.string())};
  return ok();
}

void add_keygen(CLI::App& app, Run& run) {
  auto a = std::make_shared<PackageArgs>();
  auto* cmd = app.add_subcommand("keygen", "Make an Ed25519 key pair for signing packages: NAME.key (private, 0600) and NAME.pub");
  cmd->add_option("name", a->target, "Path and base name of the two files")->required();
  cmd->add_flag("--force", a->force, "Replace existing files");
  cmd->add_flag("--json", a->json, "Print the files and key id as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    auto pair = packages::generate_key_pair();
    const fs::path priv = a->target + ".key", pub = a->target + ".pub";
    auto r = write_private(priv, pair.private_pem, a->force);
    if (r) r = write_private(pub, pair.public_pem, a->force);
    if (r) ::chmod(pub.c_str(), 0644);
    if (!r) {
      run.exit = out.fail("keygen", r.error());
      return;
    }
    out.print(json::object{{"private_key", priv.string()}, {"public_key", pub.string()}, {"key_id", pair.key_id}},
              fmt::format("key {}: {} (keep it secret), {} (give it to hosts that trust you)", pair.key_id, priv.string(), pub.string()));
  });
}

void add_install(CLI::App& app, Run& run) {
  auto a = std::make_shared<PackageArgs>();
  auto* cmd = app.add_subcommand("install", "Verify a package and unpack it into a plugins folder as <folder>/<id>/");
  cmd->add_option("package", a->target, "The .xpkg file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--into", a->out, "The plugins folder (a host's plugin_dirs entry)")->required();
  cmd->add_option("--key", a->trusted, "Require a signature by this public key (or any *.pub in this folder); repeatable");
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([a, &run] {
    Output out{a->json};
    auto result = [&]() -> Result<json::object> {
      XCORE_ASSIGN_OR_RETURN(auto keys, load_keys(a->trusted));
      XCORE_ASSIGN_OR_RETURN(auto files, packages::read_package(a->target));
      XCORE_ASSIGN_OR_RETURN(auto check, packages::check(files, keys));
      // Unpacked beside the target, then swapped in: a host watching the folder never sees half a plugin.
      const fs::path target = fs::path(a->out) / check.plugin;
      const fs::path staging = fs::path(a->out) / ("." + check.plugin + ".installing");
      std::error_code ec;
      fs::remove_all(staging, ec);
      XCORE_TRY(packages::unpack(files, staging));
      fs::remove_all(target, ec);
      fs::rename(staging, target, ec);
      if (ec) return Error{ErrorCode::internal, fmt::format("cannot move {} to {}: {}", staging.string(), target.string(), ec.message())};
      auto o = check_to_json(check);
      o["installed"] = target.string();
      return o;
    }();
    out.report(run, "install", result, [](const json::object& o) {
      return fmt::format("installed {} {} into {}", std::string_view(o.at("plugin").as_string()), std::string_view(o.at("version").as_string()),
                         std::string_view(o.at("installed").as_string()));
    });
  });
}

}  // namespace

void add_package_commands(CLI::App& app, Run& run) {
  add_validate(app, run);
  add_pack(app, run);
  add_sign(app, run);
  add_verify(app, run);
  add_keygen(app, run);
  add_install(app, run);
}

}  // namespace xcore::cli
