#include "config.hpp"

#include "core/split.hpp"

#include <xcore/version.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace xcore::server {

Result<void> parse_listen(const std::string& text, ServerConfig& c) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return Error{ErrorCode::invalid_argument, fmt::format("listen: expected HOST:PORT, got '{}'", text)};
  try {
    std::size_t used = 0;
    int port = std::stoi(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || port < 0 || port > 65535) throw std::out_of_range("port");
    c.host = text.substr(0, colon);
    c.port = port;
  } catch (const std::exception&) {
    return Error{ErrorCode::invalid_argument, fmt::format("listen: '{}' has no valid port (0-65535)", text)};
  }
  if (c.host.empty()) return Error{ErrorCode::invalid_argument, fmt::format("listen: '{}' has no host", text)};
  return ok();
}

namespace {

std::vector<std::filesystem::path> split_paths(const std::string& text) {
  std::vector<std::filesystem::path> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(':', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// "a,b,,c" -> a, b, c: the comma-separated lists of the environment.
std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  for (auto item : split(text, ','))
    if (!item.empty()) out.emplace_back(item);
  return out;
}

// KEY=VALUE lines (with optional quotes and `export `); never overrides the real environment.
void load_dotenv(const std::filesystem::path& file) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    line = line.substr(first);
    if (line.starts_with("export ")) line = line.substr(7);
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto key = line.substr(0, eq);
    auto value = line.substr(eq + 1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    if (!key.empty()) ::setenv(key.c_str(), value.c_str(), /*overwrite=*/0);
  }
}

Result<void> apply_yaml(const std::filesystem::path& file, ServerConfig& c) {
  try {
    YAML::Node root = YAML::LoadFile(file.string());
    if (!root.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: expected a mapping", file.string())};
    for (const auto& kv : root) {
      auto key = kv.first.as<std::string>();
      const auto& v = kv.second;
      if (key == "listen") XCORE_TRY(parse_listen(v.as<std::string>(), c));
      else if (key == "data_dir") c.data_dir = v.as<std::string>();
      else if (key == "plugins") {
        c.plugin_dirs.clear();
        if (v.IsSequence())
          for (const auto& p : v) c.plugin_dirs.emplace_back(p.as<std::string>());
        else
          c.plugin_dirs.emplace_back(v.as<std::string>());
      } else if (key == "threads") c.http.threads = v.as<std::size_t>();
      else if (key == "max_threads") c.http.max_threads = v.as<std::size_t>();
      else if (key == "header_timeout_ms") c.http.header_timeout = std::chrono::milliseconds(v.as<std::int64_t>());
      else if (key == "body_timeout_ms") c.http.body_timeout = std::chrono::milliseconds(v.as<std::int64_t>());
      else if (key == "idle_timeout_ms") c.http.idle_timeout = std::chrono::milliseconds(v.as<std::int64_t>());
      else if (key == "write_timeout_ms") c.http.write_timeout = std::chrono::milliseconds(v.as<std::int64_t>());
      else if (key == "max_connections_per_address") c.http.max_connections_per_address = v.as<std::size_t>();
      else if (key == "listen_backlog") c.http.listen_backlog = v.as<int>();
      else if (key == "max_body_bytes") c.max_body_bytes = v.as<std::size_t>();
      else if (key == "access_token_ttl") c.access_token_ttl = v.as<int>();
      else if (key == "refresh_token_ttl") c.refresh_token_ttl = v.as<int>();
      else if (key == "login_attempts_per_minute") c.login_attempts_per_minute = v.as<int>();
      else if (key == "task_history") c.task_history = v.as<std::size_t>();
      else if (key == "job_workers") c.job_workers = v.as<unsigned>();
      else if (key == "tenant_idle_seconds") c.tenant_idle_seconds = v.as<int>();
      else if (key == "eager_tenants") {
        if (!v.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'eager_tenants' must be a list of tenant ids", file.string())};
        c.eager_tenants.clear();
        for (const auto& t : v) c.eager_tenants.push_back(t.as<std::string>());
      }
      else if (key == "webhook_window") c.webhook_window = v.as<int>();
      else if (key == "check_answers") c.check_answers = v.as<bool>();
      else if (key == "grants") {
        if (!v.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'grants' must be a mapping with 'fs' and/or 'network'", file.string())};
        for (const auto& g : v) {
          const auto which = g.first.as<std::string>();
          if (!g.second.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: grants.{} must be a list", file.string(), which)};
          if (which == "fs") {
            c.grant_fs.clear();
            for (const auto& p : g.second) {
              std::filesystem::path path = p.as<std::string>();
              if (!path.is_absolute()) return Error{ErrorCode::invalid_argument, fmt::format("{}: grants.fs: '{}' must be an absolute path", file.string(), path.string())};
              c.grant_fs.push_back(path.lexically_normal());
            }
          } else if (which == "network") {
            c.grant_network.clear();
            for (const auto& t : g.second) c.grant_network.push_back(t.as<std::string>());
          } else {
            return Error{ErrorCode::invalid_argument, fmt::format("{}: unknown setting 'grants.{}' (expected fs, network)", file.string(), which)};
          }
        }
      }
      else if (key == "signatures") {
        if (!v.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'signatures' must be a mapping with trusted_keys and/or unsigned", file.string())};
        for (const auto& g : v) {
          const auto which = g.first.as<std::string>();
          if (which == "trusted_keys") {
            if (!g.second.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: signatures.trusted_keys must be a list", file.string())};
            c.trusted_keys.clear();
            for (const auto& k : g.second) c.trusted_keys.push_back(k.as<std::string>());
          } else if (which == "unsigned") {
            c.unsigned_plugins = g.second.as<std::string>();
          } else {
            return Error{ErrorCode::invalid_argument, fmt::format("{}: unknown setting 'signatures.{}' (expected trusted_keys, unsigned)", file.string(), which)};
          }
        }
      }
      else if (key == "mcp") {
        if (!v.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'mcp' must be a mapping with allowed_origins and/or session_idle_seconds", file.string())};
        for (const auto& g : v) {
          const auto which = g.first.as<std::string>();
          if (which == "allowed_origins") {
            if (!g.second.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: mcp.allowed_origins must be a list", file.string())};
            c.mcp_allowed_origins.clear();
            for (const auto& o : g.second) c.mcp_allowed_origins.push_back(o.as<std::string>());
          } else if (which == "session_idle_seconds") {
            c.mcp_session_idle_seconds = g.second.as<int>();
          } else if (which == "conformance") {
            c.mcp_conformance = g.second.as<bool>();
          } else if (which == "max_streams") {
            c.mcp_max_streams = g.second.as<int>();
          } else {
            return Error{ErrorCode::invalid_argument,
                         fmt::format("{}: unknown setting 'mcp.{}' (expected allowed_origins, session_idle_seconds, max_streams, conformance)", file.string(), which)};
          }
        }
      }
      else if (key == "remote_plugins") {
        if (!v.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'remote_plugins' must be a mapping with allowed_hosts and/or allow_private", file.string())};
        for (const auto& g : v) {
          const auto which = g.first.as<std::string>();
          if (which == "allowed_hosts") {
            if (!g.second.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: remote_plugins.allowed_hosts must be a list", file.string())};
            c.remote_allowed_hosts.clear();
            for (const auto& h : g.second) c.remote_allowed_hosts.push_back(h.as<std::string>());
          } else if (which == "allow_private") {
            c.remote_allow_private = g.second.as<bool>();
          } else {
            return Error{ErrorCode::invalid_argument, fmt::format("{}: unknown setting 'remote_plugins.{}' (expected allowed_hosts, allow_private)", file.string(), which)};
          }
        }
      }
      else if (key == "providers") {
        if (!v.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'providers' must be a list of {{name, base_url, default_model, ...}}", file.string())};
        c.providers.clear();
        for (const auto& entry : v) {
          if (!entry.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: each of 'providers' must be a mapping", file.string())};
          json::object o;
          std::string key_env, ca_file;
          for (const auto& g : entry) {
            const auto which = g.first.as<std::string>();
            if (which == "api_key_env") key_env = g.second.as<std::string>();
            else if (which == "ca_file") ca_file = g.second.as<std::string>();
            else if (which == "timeout_ms" || which == "max_retries") o[which] = g.second.as<std::int64_t>();
            else o[which] = g.second.as<std::string>();
          }
          auto spec = ProviderSpec::from_json(o);
          if (!spec) return Error{ErrorCode::invalid_argument, fmt::format("{}: providers[{}]: {}", file.string(), c.providers.size(), spec.error().message)};
          if (spec->name.empty()) return Error{ErrorCode::invalid_argument, fmt::format("{}: providers[{}].name: missing", file.string(), c.providers.size())};
          if (!key_env.empty()) {
            const char* key = std::getenv(key_env.c_str());
            if (!key || !*key)
              return Error{ErrorCode::invalid_argument, fmt::format("{}: providers[{}].api_key_env: the environment variable {} is not set", file.string(), c.providers.size(), key_env)};
            spec->api_key = key;
          }
          spec->ca_file = ca_file;
          c.providers.push_back(std::move(*spec));
        }
      }
      else if (key == "nodes") {
        if (!v.IsMap()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'nodes' must be a mapping with listen, tls_cert_file, tls_key_file, mcp_presets", file.string())};
        for (const auto& g : v) {
          const auto which = g.first.as<std::string>();
          if (which == "listen") c.node_listen = g.second.as<std::string>();
          else if (which == "tls_cert_file") c.node_tls_cert_file = g.second.as<std::string>();
          else if (which == "tls_key_file") c.node_tls_key_file = g.second.as<std::string>();
          else if (which == "mcp_presets") {
            if (!g.second.IsSequence()) return Error{ErrorCode::invalid_argument, fmt::format("{}: 'nodes.mcp_presets' must be a list of files", file.string())};
            for (const auto& f : g.second) {
              std::filesystem::path preset_file = f.as<std::string>();
              c.node_mcp_presets.push_back(preset_file.is_absolute() ? preset_file : file.parent_path() / preset_file);
            }
          }
          else return Error{ErrorCode::invalid_argument, fmt::format("{}: unknown setting 'nodes.{}' (expected listen, tls_cert_file, tls_key_file, mcp_presets)", file.string(), which)};
        }
      }
      else if (key == "agent_runs_kept") c.agent_runs_kept = v.as<int>();
      else if (key == "sandbox_uids") c.sandbox_uids = v.as<std::string>();
      else if (key == "max_header_bytes") c.max_header_bytes = v.as<std::size_t>();
      else if (key == "password_hashes") c.password_hashes = v.as<int>();
      else if (key == "audit_retention_days") c.audit_retention_days = v.as<int>();
      else if (key == "audit_max_rows") c.audit_max_rows = v.as<std::int64_t>();
      else return Error{ErrorCode::invalid_argument, fmt::format("{}: unknown setting '{}'", file.string(), key)};
    }
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", file.string(), e.what())};
  }
  return ok();
}

Result<void> apply_env(ServerConfig& c) {
  auto env = [](const char* k) -> const char* {
    const char* v = std::getenv(k);
    return v && *v ? v : nullptr;
  };
  auto number = [&](const char* k, auto& out) -> Result<void> {
    if (const char* v = env(k)) {
      try {
        out = static_cast<std::remove_reference_t<decltype(out)>>(std::stoll(v));
      } catch (const std::exception&) {
        return Error{ErrorCode::invalid_argument, fmt::format("{}: expected a number, got '{}'", k, v)};
      }
    }
    return ok();
  };
  auto milliseconds = [&](const char* k, std::chrono::milliseconds& out) -> Result<void> {
    std::int64_t ms = out.count();
    XCORE_TRY(number(k, ms));
    out = std::chrono::milliseconds(ms);
    return ok();
  };
  if (const char* v = env("XCORE_LISTEN")) XCORE_TRY(parse_listen(v, c));
  if (const char* v = env("XCORE_DATA_DIR")) c.data_dir = v;
  if (const char* v = env("XCORE_NODE_LISTEN")) c.node_listen = v;
  if (const char* v = env("XCORE_PLUGINS")) c.plugin_dirs = split_paths(v);
  if (const char* v = env("XCORE_SANDBOX_UIDS")) c.sandbox_uids = v;
  if (const char* v = env("XCORE_TRUSTED_KEYS")) {
    c.trusted_keys.clear();
    for (const auto& p : split_paths(v)) c.trusted_keys.push_back(p.string());
  }
  if (const char* v = env("XCORE_UNSIGNED_PLUGINS")) c.unsigned_plugins = v;
  if (const char* v = env("XCORE_MCP_ALLOWED_ORIGINS")) c.mcp_allowed_origins = split_list(v);
  XCORE_TRY(number("XCORE_MCP_SESSION_IDLE_SECONDS", c.mcp_session_idle_seconds));
  XCORE_TRY(number("XCORE_MCP_MAX_STREAMS", c.mcp_max_streams));
  if (const char* v = env("XCORE_MCP_CONFORMANCE")) c.mcp_conformance = std::string_view(v) == "1" || std::string_view(v) == "true";
  if (const char* v = env("XCORE_REMOTE_ALLOWED_HOSTS")) c.remote_allowed_hosts = split_list(v);
  if (c.providers.empty()) {
    ProviderSpec lmstudio;
    lmstudio.name = "lmstudio";
    c.providers.push_back(std::move(lmstudio));
  }
  if (const char* v = env("XCORE_PROVIDER_URL")) c.providers.front().base_url = v;
  if (const char* v = env("XCORE_PROVIDER_MODEL")) c.providers.front().default_model = v;
  if (const char* v = env("XCORE_REMOTE_ALLOW_PRIVATE")) c.remote_allow_private = std::string_view(v) == "1" || std::string_view(v) == "true";
  if (const char* v = env("XCORE_GRANT_FS")) {
    c.grant_fs.clear();
    for (const auto& p : split_paths(v)) {
      if (!p.is_absolute()) return Error{ErrorCode::invalid_argument, fmt::format("XCORE_GRANT_FS: '{}' must be an absolute path", p.string())};
      c.grant_fs.push_back(p.lexically_normal());
    }
  }
  if (const char* v = env("XCORE_GRANT_NETWORK")) c.grant_network = split_list(v);
  XCORE_TRY(number("XCORE_THREADS", c.http.threads));
  XCORE_TRY(number("XCORE_MAX_THREADS", c.http.max_threads));
  XCORE_TRY(milliseconds("XCORE_HEADER_TIMEOUT_MS", c.http.header_timeout));
  XCORE_TRY(milliseconds("XCORE_BODY_TIMEOUT_MS", c.http.body_timeout));
  XCORE_TRY(milliseconds("XCORE_IDLE_TIMEOUT_MS", c.http.idle_timeout));
  XCORE_TRY(milliseconds("XCORE_WRITE_TIMEOUT_MS", c.http.write_timeout));
  XCORE_TRY(number("XCORE_MAX_CONNECTIONS_PER_ADDRESS", c.http.max_connections_per_address));
  XCORE_TRY(number("XCORE_LISTEN_BACKLOG", c.http.listen_backlog));
  XCORE_TRY(number("XCORE_MAX_BODY_BYTES", c.max_body_bytes));
  XCORE_TRY(number("XCORE_ACCESS_TOKEN_TTL", c.access_token_ttl));
  XCORE_TRY(number("XCORE_LOGIN_ATTEMPTS_PER_MINUTE", c.login_attempts_per_minute));
  XCORE_TRY(number("XCORE_TASK_HISTORY", c.task_history));
  XCORE_TRY(number("XCORE_JOB_WORKERS", c.job_workers));
  XCORE_TRY(number("XCORE_TENANT_IDLE_SECONDS", c.tenant_idle_seconds));
  if (const char* v = env("XCORE_EAGER_TENANTS")) c.eager_tenants = split_list(v);
  XCORE_TRY(number("XCORE_WEBHOOK_WINDOW", c.webhook_window));
  XCORE_TRY(number("XCORE_MAX_HEADER_BYTES", c.max_header_bytes));
  XCORE_TRY(number("XCORE_PASSWORD_HASHES", c.password_hashes));
  XCORE_TRY(number("XCORE_AUDIT_RETENTION_DAYS", c.audit_retention_days));
  XCORE_TRY(number("XCORE_AUDIT_MAX_ROWS", c.audit_max_rows));
  if (const char* v = env("XCORE_CHECK_ANSWERS")) {
    const std::string_view b = v;
    if (b == "1" || b == "true") c.check_answers = true;
    else if (b == "0" || b == "false") c.check_answers = false;
    else return Error{ErrorCode::invalid_argument, fmt::format("XCORE_CHECK_ANSWERS: '{}' is not 1, true, 0 or false", b)};
  }
  if (const char* v = env("XCORE_ADMIN_PASSWORD")) c.admin_password = v;
  if (const char* v = env("XCORE_MASTER_KEY")) c.master_key = v;
  return ok();
}

}  // namespace

Result<ServerConfig> load_config(int argc, char** argv) {
  ServerConfig c;
  CLI::App app{"xcore-server: the xcore reference server"};
  std::string listen, config_file, data_dir, env_file = ".env";
  std::vector<std::string> plugins;
  std::size_t threads = 0, max_threads = 0;
  app.add_option("--config", config_file, "YAML settings file")->envname("XCORE_CONFIG");
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
  std::string node_listen;
  app.add_option("--node-listen", node_listen, "HOST:PORT where remote nodes dial in (WebSocket; port 0: any free port)");
  app.add_option("--data-dir", data_dir, "folder for the database, keys and plugin data");
  app.add_option("--plugins", plugins, "plugin folder (repeatable)");
  std::vector<std::string> trusted_keys;
  app.add_option("--trusted-key", trusted_keys, "public key whose signed plugins run trusted (file, folder of *.pub; repeatable)");
  auto* threads_flag = app.add_option("--threads", threads, "HTTP workers kept ready");
  auto* max_threads_flag = app.add_option("--max-threads", max_threads, "HTTP workers at most (connections served at once)");
  app.add_option("--env-file", env_file, "dotenv file read into the environment (default .env)");
  app.add_flag("--verbose", c.verbose, "log debug messages");
  app.set_version_flag("--version", std::string(xcore::version_line()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return Error{ErrorCode::cancelled, ""};
  } catch (const CLI::CallForVersion&) {
    std::cout << xcore::version_line() << "\n";
    return Error{ErrorCode::cancelled, ""};
  } catch (const CLI::ParseError& e) {
    return Error{ErrorCode::invalid_argument, e.what()};
  }
  if (!config_file.empty()) XCORE_TRY(apply_yaml(config_file, c));
  load_dotenv(env_file);
  XCORE_TRY(apply_env(c));
  if (!listen.empty()) XCORE_TRY(parse_listen(listen, c));
  if (!data_dir.empty()) c.data_dir = data_dir;
  if (!node_listen.empty()) c.node_listen = node_listen;
  if (!c.node_listen.empty()) {
    ServerConfig probe;  // the same HOST:PORT rules as --listen
    if (auto p = parse_listen(c.node_listen, probe); !p) return Error{ErrorCode::invalid_argument, fmt::format("node listen: {}", p.error().message)};
  }
  if (!plugins.empty()) c.plugin_dirs.assign(plugins.begin(), plugins.end());
  if (!trusted_keys.empty()) c.trusted_keys = trusted_keys;
  if (c.unsigned_plugins != "sandbox" && c.unsigned_plugins != "refuse")
    return Error{ErrorCode::invalid_argument, fmt::format("signatures.unsigned: '{}' is not sandbox or refuse", c.unsigned_plugins)};
  if (threads_flag->count() > 0) c.http.threads = threads;
  if (max_threads_flag->count() > 0) c.http.max_threads = max_threads;
  if (c.http.max_threads < 1 || c.http.max_threads > 16384)
    return Error{ErrorCode::invalid_argument, fmt::format("max_threads: {} is out of range (1-16384)", c.http.max_threads)};
  if (c.http.threads < 1 || c.http.threads > c.http.max_threads)
    return Error{ErrorCode::invalid_argument, fmt::format("threads: {} is out of range (1-{}, the max_threads)", c.http.threads, c.http.max_threads)};
  if (c.http.listen_backlog < 1 || c.http.listen_backlog > 65535)
    return Error{ErrorCode::invalid_argument, fmt::format("listen_backlog: {} is out of range (1-65535)", c.http.listen_backlog)};
  // Relative to where the server was started, once: the sandbox enters plugin folders from elsewhere.
  c.data_dir = std::filesystem::absolute(c.data_dir).lexically_normal();
  for (auto [name, value] : {std::pair{"header_timeout_ms", c.http.header_timeout}, {"body_timeout_ms", c.http.body_timeout},
                             {"idle_timeout_ms", c.http.idle_timeout}, {"write_timeout_ms", c.http.write_timeout}})
    if (value.count() < 1 || value.count() > 3'600'000)
      return Error{ErrorCode::invalid_argument, fmt::format("{}: {} is out of range (1-3600000)", name, value.count())};
  if (c.sandbox_uids != "none") {
    unsigned long long first = 0, last = 0;
    char dash = 0;
    std::istringstream in(c.sandbox_uids);
    if (!(in >> first >> dash >> last) || dash != '-' || !in.eof() || first < 1000 || first > last || last >= 0xffffffffULL)
      return Error{ErrorCode::invalid_argument,
                   fmt::format("sandbox_uids: '{}' must be FIRST-LAST with 1000 <= FIRST <= LAST < 4294967295, or none", c.sandbox_uids)};
    c.sandbox_uid_first = static_cast<std::uint32_t>(first);
    c.sandbox_uid_last = static_cast<std::uint32_t>(last);
  }
  if (c.password_hashes < 0 || c.password_hashes > 256) return Error{ErrorCode::invalid_argument, fmt::format("password_hashes: {} is out of range (0-256)", c.password_hashes)};
  if (c.audit_retention_days < 1) return Error{ErrorCode::invalid_argument, fmt::format("audit_retention_days: {} must be at least 1", c.audit_retention_days)};
  if (c.audit_max_rows < 1) return Error{ErrorCode::invalid_argument, fmt::format("audit_max_rows: {} must be at least 1", c.audit_max_rows)};
  if (c.tenant_idle_seconds < 0) return Error{ErrorCode::invalid_argument, fmt::format("tenant_idle_seconds: {} must be 0 (never park) or more", c.tenant_idle_seconds)};
  if (c.mcp_max_streams < 0) return Error{ErrorCode::invalid_argument, fmt::format("mcp.max_streams: {} must be 0 or more", c.mcp_max_streams)};
  if (c.mcp_session_idle_seconds < 1) return Error{ErrorCode::invalid_argument, fmt::format("mcp.session_idle_seconds: {} must be at least 1", c.mcp_session_idle_seconds)};
  if (c.job_workers < 1 || c.job_workers > 1024) return Error{ErrorCode::invalid_argument, fmt::format("job_workers: {} is out of range (1-1024)", c.job_workers)};
  if (c.max_header_bytes < 1024) return Error{ErrorCode::invalid_argument, fmt::format("max_header_bytes: {} is below 1024", c.max_header_bytes)};
  if (c.plugin_dirs.empty()) {
    // The example plugins: installed beside the server (<prefix>/lib*/xcore/plugins, wherever the prefix
    // was moved), else those built with it.
    std::vector<std::filesystem::path> candidates;
    std::error_code ec;
    if (auto exe = std::filesystem::read_symlink("/proc/self/exe", ec); !ec)
      for (const char* lib : {"lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"})
        candidates.push_back(exe.parent_path().parent_path() / lib / "xcore" / "plugins");
#ifdef XCORE_SERVER_DEFAULT_PLUGINS
    candidates.emplace_back(XCORE_SERVER_DEFAULT_PLUGINS);
#endif
    for (const auto& dir : candidates)
      if (std::filesystem::is_directory(dir, ec)) {
        c.plugin_dirs.push_back(dir);
        break;
      }
  }
  return c;
}

}  // namespace xcore::server
