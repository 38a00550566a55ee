// How xcore-server is configured: defaults, then a YAML file (--config), then XCORE_* environment variables
// (a .env file in the working folder fills in those not set), then flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/models.hpp>

namespace xcore::server {

// The limits of the HTTP connection layer (http_server.hpp), every one named and settable: a slow or
// idle client costs a deadline, not a worker.
struct HttpLimits {
  std::size_t threads = 32;        // workers kept ready (each serves one connection at a time)
  std::size_t max_threads = 4096;  // workers at most, started when none is free: connections served at once
  std::chrono::milliseconds header_timeout{10'000};  // from a request's first byte to the end of its headers
  std::chrono::milliseconds body_timeout{30'000};    // from the end of the headers to the end of the body
  std::chrono::milliseconds idle_timeout{5'000};     // a keep-alive connection waiting for its next request
  std::chrono::milliseconds write_timeout{10'000};   // a client that takes nothing of an answer this long
  std::size_t max_connections_per_address = 256;     // open at once from one client address; 0: no cap
  int listen_backlog = 1024;  // connections the kernel completes before the server accepts them
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (printed at start)
  std::filesystem::path data_dir = "var";
  std::vector<std::filesystem::path> plugin_dirs;  // default: the example plugins built alongside
  HttpLimits http;
  std::size_t max_body_bytes = 1u << 20;
  int access_token_ttl = 900;        // seconds
  int refresh_token_ttl = 7 * 86400;
  std::string admin_password;        // first start only; generated and printed once when empty
  std::string master_key;            // base64url or hex of 32 bytes; default: <data_dir>/master.key
  int login_attempts_per_minute = 5; // failed logins per user name and address, then 429
  std::size_t task_history = 100;    // runs kept per scheduled task
  unsigned job_workers = 8;          // threads running scheduled tasks, all tenants together
  // A tenant's Manager starts on its first request or due task and is parked after this long idle (0:
  // never); the default tenant and eager_tenants start with the server and are never parked.
  int tenant_idle_seconds = 900;
  std::vector<std::string> eager_tenants;
  int webhook_window = 300;          // seconds a webhook's timestamp may be off
  std::size_t max_header_bytes = 32 * 1024;  // all of a request's header lines together; then 431
  int password_hashes = 0;           // password hashes (64 MiB each) run at once; 0: one per core
  int audit_retention_days = 90;     // audit rows older than this are deleted
  std::int64_t audit_max_rows = 100000;  // audit rows kept per tenant, newest first
  // Grant policy for tenants' plugins beyond their own folder (the default tenant's, the server's own,
  // may be granted any path outside the data folder, and network). YAML: grants: {fs: [...], network: [...]}
  std::vector<std::filesystem::path> grant_fs;  // folders any tenant's plugins may be granted fs.read/fs.write in
  std::vector<std::string> grant_network;       // tenants whose plugins may be granted network
  // On a root host each tenant's sandboxed plugins run as a uid of their own from this range
  // ("FIRST-LAST"); "none": all as the sandbox user (xcore-sandbox).
  std::string sandbox_uids = "2000000-2999999";
  std::uint32_t sandbox_uid_first = 0, sandbox_uid_last = 0;  // sandbox_uids read by load_config; 0: none
  // Plugin signatures (`xcore pack --key`, `xcore sign`). With trusted keys set, a trusted-mode plugin must be
  // signed by one of them; an unsigned one (or one signed by another key) runs sandboxed ("sandbox", the
  // default) or is refused ("refuse"). A plugin whose files no longer match its signed list is always
  // refused. YAML: signatures: {trusted_keys: [...], unsigned: sandbox|refuse}.
  std::vector<std::string> trusted_keys;  // public key files, folders of *.pub, or raw base64 keys
  std::string unsigned_plugins = "sandbox";
  // /mcp: the browser origins allowed to call it (any other Origin header is refused with 403, against DNS
  // rebinding; requests without one, from programs, are not browsers'), and how long a session may idle.
  // YAML: mcp: {allowed_origins: [...], session_idle_seconds: N}.
  std::vector<std::string> mcp_allowed_origins;
  int mcp_session_idle_seconds = 3600;
  // Sessions' own streams (GET /mcp) open at once, server-wide: each holds a worker thread. 0: none (405).
  int mcp_max_streams = 16;
  // For the MCP conformance suite only, which sends no credentials: /mcp then also serves requests without a
  // token, as a principal that may call the `conformance` fixture plugin's tools and nothing else.
  bool mcp_conformance = false;
  // Plugins registered over the API with a `url:` (remote MCP servers) reach only these hosts ('*' matches
  // any run of characters; empty: none), and only public addresses unless allow_private is set.
  // YAML: remote_plugins: {allowed_hosts: [...], allow_private: false}.
  std::vector<std::string> remote_allowed_hosts;
  bool remote_allow_private = false;
  // Model providers every tenant has besides its own (POST /api/v1/providers), by name; an agent naming no
  // provider uses the tenant's "default", else the first of these. A key comes from the environment variable
  // the entry names. YAML: providers: [{name, base_url, default_model, timeout_ms, max_retries, api_key_env}].
  // Without any: "lmstudio" at LM Studio's http://localhost:1234/v1 (XCORE_PROVIDER_URL, XCORE_PROVIDER_MODEL
  // change the first).
  std::vector<ProviderSpec> providers;
  // Remote nodes (xcore-node) dial in here: a listener of its own beside the HTTP API, "HOST:PORT"
  // (port 0: any free port, printed at start); empty: no nodes. With a certificate and key, nodes dial wss://.
  // YAML: nodes: {listen, tls_cert_file, tls_key_file}; --node-listen; XCORE_NODE_LISTEN.
  std::string node_listen;
  std::string node_tls_cert_file, node_tls_key_file;
  // MCP presets an admin may start on a node: the built-in catalogue, then these files (nodes.mcp_presets,
  // relative to the config file), which add presets or replace those of the same name.
  std::vector<std::filesystem::path> node_mcp_presets;
  // Agent runs' transcripts are served to the tenant; runs kept per agent.
  int agent_runs_kept = 200;
  // Every answer is checked against its route's entry (declared status, body schema): a mismatch becomes a
  // 500 naming it. For tests and development: it costs a validation per answer.
  bool check_answers = false;
  bool verbose = false;
};

// "HOST:PORT" into c.host and c.port; errors name what is wrong.
Result<void> parse_listen(const std::string& text, ServerConfig& c);

// Reads the layers above. `--help` prints usage and returns an error with an empty message.
Result<ServerConfig> load_config(int argc, char** argv);

}  // namespace xcore::server
