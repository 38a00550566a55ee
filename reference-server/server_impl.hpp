// The server's private state and helpers, shared by server.cpp and the routes_*.cpp files. Included by
// .cpp files only: it brings cpp-httplib.
#pragma once


#include <httplib.h>

#include <boost/json.hpp>
#include <fcntl.h>
#include <poll.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xcore/xcore.hpp>

#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <semaphore>
#include <shared_mutex>
#include <thread>

#include "access.hpp"
#include "audit_log.hpp"
#include "crypto.hpp"
#include "database.hpp"
#include "http_server.hpp"
#include "jwt.hpp"
#include "mcp_sessions.hpp"
#include "route_table.hpp"
#include "packages/plugin_package.hpp"

#include "server.hpp"

namespace xcore::server {

// ---- small helpers ---------------------------------------------------------------------------------------

inline json::value error_body(const Error& e, const std::string& request_id) {
  json::object err{{"code", to_string(e.code)}, {"message", e.message}};
  if (!e.details.empty()) {
    boost::system::error_code ec;
    auto d = json::parse(e.details, ec);
    err["details"] = ec ? json::value(e.details) : d;
  } else {
    err["details"] = nullptr;
  }
  return json::object{{"error", std::move(err)}, {"request_id", request_id}};
}

inline Result<std::string> decode_key(const std::string& text) {
  if (text.size() == 64 && text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos) {
    std::string raw;
    for (std::size_t i = 0; i < 64; i += 2) raw.push_back(static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16)));
    return raw;
  }
  auto raw = base64url_decode(text);
  if (raw && raw->size() == 32) return raw;
  return Error{ErrorCode::invalid_argument, "the master key must be 32 bytes, as 64 hex digits or base64url"};
}

// Whether the client takes an SSE answer (it lists text/event-stream in Accept).
inline bool accepts_event_stream(const httplib::Request& req) {
  for (auto [it, end] = req.headers.equal_range("Accept"); it != end; ++it)
    if (it->second.find("text/event-stream") != std::string::npos) return true;
  return false;
}

// Whether the client of a long answer (a stream) has closed its end of `socket`.
inline bool client_hung_up(int socket) {
  pollfd p{socket, POLLRDHUP, 0};
  return socket >= 0 && ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// ---- the server ------------------------------------------------------------------------------------------

struct Server::Impl {
  ServerConfig config;
  std::unique_ptr<Database> db;
  std::unique_ptr<SecretBox> secrets;
  std::string jwt_key;
  std::unique_ptr<AuditLog> audit;  // after db: written out before the database closes
  LoginLimiter limiter{5};
  PasswordGate passwords{1};
  UserCache users;
  VerifiedTokens verified_tokens;  // bearer JWTs seen before (authenticate)
  HttpServer http;
  int bound_port = 0;

  // One Manager per tenant: a tenant's plugins, configs and tools live in its own catalogue. It runs from
  // the tenant's first request or due task (eager tenants: from the start) until it has been idle for
  // tenant_idle_seconds, then it is parked: its Manager (plugins, sandboxed processes) goes, its
  // registrations stay in the store and its Scheduler stays, so its tasks fire (and wake it) on time.
  struct RunningTenant {
    std::shared_ptr<Manager> manager;        // requests and runs hold copies while they last
    std::atomic<std::int64_t> last_used{0};  // steady_ms() of the last request or run
  };
  std::shared_mutex tenants_mutex;
  std::map<std::string, std::unique_ptr<RunningTenant>> tenants;  // running ones
  std::map<std::string, std::unique_ptr<Scheduler>> schedulers;   // every tenant's, running or parked
  std::mutex starting_mutex;  // one start at a time: a tenant is never started twice
  std::thread parker;         // "xcore-park": parks idle tenants (park_loop)
  std::mutex park_mutex;
  std::condition_variable park_wake;
  bool park_stop = false;
  // The timer and job threads all tenants' Schedulers share (each holds it too: it outlives them).
  std::shared_ptr<SchedulerThreads> scheduler_threads = std::make_shared<SchedulerThreads>(config.job_workers);

  std::atomic<bool> ready{false};

  std::deque<RouteSpec> routes;  // the route table (route_table.hpp); a deque: entries never move
  RouteStats unmatched;           // requests no route took (404s, refusals before routing)

  explicit Impl(ServerConfig c)
      : config(std::move(c)),
        limiter(config.login_attempts_per_minute),
        passwords(config.password_hashes > 0 ? config.password_hashes : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 256u))),
        http(config.http, [](const Error& e) { return xcore::json_text::serialize(error_body(e, request_token(12))); }) {}

  ~Impl() {
    mcp_sessions.close_streams();  // their connections would hold the shutdown up
    http.shutdown();
    nodes.reset();  // nodes drop; their tools leave the tenants' registries before the Managers go
    {
      std::lock_guard lock(park_mutex);
      park_stop = true;
    }
    park_wake.notify_all();
    if (parker.joinable()) parker.join();
    if (agents) agents->shutdown();  // runs end (cancelled); those waiting for approval stay in the store
    // The Schedulers first: their runs call into the Managers (running ones finish, and may still lease
    // one, so the lock is not held while they end).
    std::map<std::string, std::unique_ptr<Scheduler>> ending;
    {
      std::unique_lock lock(tenants_mutex);
      ending = std::move(schedulers);
    }
    ending.clear();
    agents.reset();
    std::unique_lock lock(tenants_mutex);
    tenants.clear();  // each Manager unloads its plugins, dependents first
  }

  void log(LogLevel level, std::string_view source, std::string_view message) const {
    if (level < LogLevel::info && !config.verbose) return;
    std::fprintf(stderr, "%s %.*s: %.*s\n", std::string(to_string(level)).c_str(), static_cast<int>(source.size()), source.data(),
                 static_cast<int>(message.size()), message.data());
  }

  // Remote nodes (nodes.cpp): the WebSocket listener they dial, when config.node_listen is set.
  std::unique_ptr<NodeHub> nodes;
  int node_port = 0;
  McpCatalogue mcp_presets = McpCatalogue::builtin();
  Result<void> start_nodes();
  void add_node_mcp_routes();
  void add_node_routes();
  json::object node_json(const NodeRow& row) const;

  // ---- start-up ----------------------------------------------------------------------------------------

  // tenants.cpp
  Result<void> open_store();
  Result<std::string> master_key();
  Result<void> first_start();
  // A tenant's Scheduler (at start, or when the tenant is created); its Manager too if it is eager.
  Result<void> open_tenant(const std::string& tenant, bool register_all);
  Result<void> start_tenants();
  // The tenant's Manager, started if it is parked (or was never started): a request's or a run's, held
  // while it lasts. not_found for a tenant that does not exist.
  Result<std::shared_ptr<Manager>> wake_tenant(const std::string& tenant, bool register_all = false);
  Result<std::shared_ptr<Manager>> start_manager(const std::string& tenant, bool register_all);
  bool eager(const std::string& tenant) const;  // the default tenant and the settings' eager_tenants
  bool running(const std::string& tenant) {
    std::shared_lock lock(tenants_mutex);
    return tenants.contains(tenant);
  }
  // Parks the tenants idle for tenant_idle_seconds (see RunningTenant); park_loop calls it.
  void park_idle_tenants();
  void park_loop();
  static std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  std::filesystem::path dynamic_dir(const std::string& tenant) const { return config.data_dir / "dynamic" / tenant; }

  Scheduler* scheduler_of(const std::string& tenant) {
    std::shared_lock lock(tenants_mutex);
    auto it = schedulers.find(tenant);
    return it == schedulers.end() ? nullptr : it->second.get();
  }

  static json::object task_json(const JobState& j) {
    auto o = j.spec.to_json();
    o["next_run"] = j.next_run ? json::value(format_iso8601(*j.next_run)) : json::value(nullptr);
    o["running"] = j.running;
    if (j.spec.trigger.kind == Trigger::Kind::webhook) o["webhook_url"] = fmt::format("/api/v1/webhooks/{}/{}", j.spec.tenant, j.spec.trigger.webhook);
    return o;
  }

  // A webhook's HMAC key is a secret of its own name space: a task may not point at another secret and
  // use signed posts as a guessing oracle for it.
  static Result<void> webhook_secret_allowed(const JobSpec& spec) {
    if (spec.trigger.kind != Trigger::Kind::webhook) return ok();
    if (!spec.trigger.webhook_secret.starts_with("webhook_"))
      return Error{ErrorCode::invalid_argument,
                   fmt::format("trigger.secret: '{}' must name a secret under 'webhook_' (e.g. 'webhook_{}')", spec.trigger.webhook_secret, spec.trigger.webhook)};
    return ok();
  }

  // A config change is refused when it changes a privileged key (only an admin of the default tenant,
  // the server's operator, may), or when any of its paths reaches into the server's data folder.
  Result<void> config_allowed(const Caller& who, const PluginInfo& info, const json::object& next);

  // The grant policy, for every plugin of a tenant (from the plugin folders or registered at run time),
  // checked when it is registered and again before each load: fs.read / fs.write inside the plugin's own
  // data folder, inside a folder of the settings' allow-list (grants.fs), or, for the default tenant's
  // plugins (the server's own), anywhere outside the data folder; network only for the default tenant
  // and the tenants grants.network names. Nobody's grant reaches into the data folder (its database,
  // master key and the other tenants' folders). Refusals name the grant and the rule.
  Result<void> grant_policy(const std::string& tenant, const PluginManifest& m) const;
  // Where a tenant's `url:` plugin may connect (remote_hosts.cpp): the address to pin, or why not.
  Result<std::string> remote_address(const std::string& tenant, const PluginManifest& m, std::string_view host) const;
  // The policy itself, for anything a tenant names that the server then connects to (`whose` in messages).
  Result<std::string> outbound_address(std::string_view host, std::string_view whose) const;

  // The signature policy (ServerConfig::trusted_keys), checked before each load like the grant policy: a
  // trusted-mode plugin not signed by a trusted key is made sandboxed or refused, and one whose files no
  // longer match its signed list is refused. Refusals name the plugin and the key or the missing signature.
  std::vector<packages::VerifyingKey> trusted_keys;
  Result<void> load_trusted_keys();
  Result<void> signature_policy(const std::string& tenant, PluginManifest& m) const;

  std::filesystem::path saved_dir(const std::string& tenant) const { return config.data_dir / "saved" / tenant; }

  // No path a plugin is given (config or grant) may overlap the server's data folder (its database,
  // master key and every tenant's plugin data), except a folder of the plugin's own below it.
  Result<void> path_allowed(const std::string& text, const std::string& what, const std::filesystem::path& own = {}) const;


  // ---- authentication (authentication.cpp) -----------------------------------------------------------

  Result<std::optional<UserCache::Entry>> user_entry(std::int64_t id);
  // A token is only as good as the user it names, now: deleted users, older generations (a role or
  // password change) and other tenants are refused on the request that follows the change.
  Result<Caller> authenticate(const httplib::Request& req);

  Result<json::object> issue_tokens(const UserRow& user, std::string family = {});

  // ---- routing -----------------------------------------------------------------------------------------

  struct Call {
    const httplib::Request& req;
    Caller who;
    json::value body;
    std::string raw;  // the body as sent (webhook signatures cover these bytes)
    std::string request_id;
    std::string arg(std::size_t i) const { return i < req.matches.size() ? std::string(req.matches[i]) : std::string(); }
    std::string query(const char* k) const { return req.has_param(k) ? req.get_param_value(k) : std::string(); }
    Manager& manager;
  };
  struct Reply {
    Reply(int s, json::value b) : status(s), body(std::move(b)) {}
    Reply(int s, json::value b, std::string t, std::string ct) : status(s), body(std::move(b)), text(std::move(t)), content_type(std::move(ct)) {}
    int status = 200;
    json::value body;
    std::string text, content_type;  // non-JSON answers (metrics, docs), or JSON written as text (MCP)
    std::vector<std::pair<std::string, std::string>> headers;  // besides X-Request-Id
    // An answer written while it is made (MCP's SSE), of content_type: run after the handler returns, with a
    // writer that returns false once the client has gone.
    std::function<void(const std::function<bool(std::string_view)>& write)> stream;
  };
  using Handler = std::function<Result<Reply>(Call&)>;

  static std::string request_id_of(const httplib::Request& req) {
    auto given = req.get_header_value("X-Request-Id");
    if (!given.empty() && given.size() <= 64 && std::all_of(given.begin(), given.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }))
      return given;
    return request_token(12);
  }

  void answer(httplib::Response& res, int status, const json::value& body, const std::string& request_id) {
    res.status = status;
    res.set_header("X-Request-Id", request_id);
    res.set_content(xcore::json_text::serialize(body), "application/json");
  }

  void fail(httplib::Response& res, const Error& e, const std::string& request_id) {
    auto body = error_body(e, request_id);
    answer(res, http_status(e.code), body, request_id);
    if (e.code == ErrorCode::unauthenticated) res.set_header("WWW-Authenticate", "Bearer");
    // A limit that says when to come back: Retry-After, in whole seconds.
    if (e.code == ErrorCode::resource_exhausted)
      if (const auto& d = body.at("error").at("details"); d.is_object() && d.get_object().contains("retry_after"))
        res.set_header("Retry-After", std::to_string(d.at("retry_after").to_number<std::int64_t>()));
  }

  // The permission a route needs besides its least role: "<area>.read" for GET, "<area>.write" otherwise,
  // the area being the path's first segment after /api/v1/. Tool calls and actions are checked by
  // libxcore (tools.call:..., actions.call:...), plugin routes by "routes.call:<plugin>".
  static std::string route_permission(std::string_view method, std::string_view pattern, Role min_role) {
    if (min_role == Role::anonymous) return {};
    constexpr std::string_view api = "/api/v1/";
    if (!pattern.starts_with(api)) return {};
    auto rest = pattern.substr(api.size());
    auto area = rest.substr(0, rest.find_first_of("/{"));
    if (area == "tools" && pattern.ends_with("/invoke")) return {};
    return fmt::format("{}.{}", area, method == "GET" ? "read" : "write");
  }

  // A refused request by someone who showed credentials is audited: who tried what.
  void denied(httplib::Response& res, const Caller& who, const std::string& method, const std::string& path, const Error& e, const std::string& request_id) {
    audit->record(AuditRow{0, 0, who.tenant, who.user, fmt::format("denied {} {}", method, path), path, e.message, request_id});
    fail(res, e, request_id);
  }

  // Registers a route: its path template (named parameters, route_table.cpp), its least role, the
  // permission it needs (by default its area's, see route_permission), and the handler. Bodies are read
  // here, bounded whether sent with Content-Length or chunked, and parsed once. `in_document`: false for
  // a family of routes that /openapi.json lists one by one (plugins' own routes).
  RouteSpec& route(const char* method, std::string path, Role min_role, std::string summary, Handler handler, std::string permission = {},
                   bool in_document = true) {
    auto& spec = routes.emplace_back();
    spec.method = method;
    spec.path = std::move(path);
    spec.summary = std::move(summary);
    spec.min_role = min_role;
    spec.in_document = in_document;
    compile_route(spec);
    spec.permission = permission.empty() ? route_permission(method, spec.path, min_role) : std::move(permission);
    const std::string pattern = spec.regex;
    // The entry (a deque's: it never moves) is what the request is checked against.
    auto serve = [this, spec = &spec, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res, std::string raw) {
      const auto& method = spec->method;
      const auto& permission = spec->permission;
      const auto min_role = spec->min_role;
      auto* connection = HttpServer::current();
      // The request is all here: what the handler takes is the server's time, not the client's.
      if (connection) connection->enter(ConnectionStream::Phase::handler);
      RouteRecord record{spec->stats.get(), connection, res};
      const auto request_id = request_id_of(req);
      AnswerCheck check{config.check_answers ? this : nullptr, *spec, res, request_id};
      auto who = authenticate(req);
      if (!who && who.error().code == ErrorCode::internal) {
        // The credential could not be checked (the database did not answer): the server's fault, a 500
        // with its cause in the log, never a 401 that would send the client to log in again.
        log(LogLevel::error, "auth", fmt::format("request {}: cannot check the credential: {}", request_id, who.error().message));
        return fail(res, Error{ErrorCode::internal, "the credential could not be checked: the server's database did not answer"}, request_id);
      }
      if (!who) {
        // A credential that did not hold (forged, expired, ended): counted in the server's own log per
        // address and reason, so that a flood of them costs a row per window, not one each.
        audit->count_call(kDefaultTenant, "address " + req.remote_addr, "refused credentials: " + who.error().message, 401, request_id);
        return fail(res, who.error(), request_id);
      }
      if (who->role < min_role) {
        if (who->role == Role::anonymous) return fail(res, Error{ErrorCode::unauthenticated, "log in first: this route needs a bearer token"}, request_id);
        return denied(res, *who, method, req.path, Error{ErrorCode::permission_denied, fmt::format("this route needs the {} role; you have {}", role_name(min_role), role_name(who->role))},
                      request_id);
      }
      if (!permission.empty() && !who->principal.holds(permission))
        return denied(res, *who, method, req.path,
                      Error{ErrorCode::permission_denied, fmt::format("this route needs the permission '{}', which this token does not hold", permission)}, request_id);
      // No body where a route takes one reads as an empty object: `curl -X POST .../run` works as sent.
      json::value body = method == "GET" ? json::value() : json::value(json::object());
      if (!raw.empty()) {
        boost::system::error_code ec;
        body = json::parse(raw, ec);
        if (ec) return fail(res, Error{ErrorCode::invalid_argument, fmt::format("the body is not valid JSON: {}", ec.message())}, request_id);
        if (auto at = non_finite_number(body))
          return fail(res, Error{ErrorCode::invalid_argument, fmt::format("the body's number at '{}' is outside the range of a double", *at)}, request_id);
      }
      // The body the route's entry in the table says it takes (set after registration: read here).
      if (spec->body_validator)
        if (auto valid = spec->body_validator->validate(body, "body"); !valid) return fail(res, valid.error(), request_id);
      // The tenant's Manager, woken if it was parked, held until the answer is written.
      auto m = wake_tenant(who->role == Role::anonymous ? std::string(kDefaultTenant) : who->tenant);
      if (!m) return fail(res, m.error(), request_id);
      Call call{req, *who, std::move(body), std::move(raw), request_id, **m};
      Result<Reply> r = Error{ErrorCode::internal, "no answer"};
      try {
        r = handler(call);
      } catch (const std::exception& e) {
        r = Error{ErrorCode::internal, e.what()};
      }
      const bool principal = who->role != Role::anonymous;
      if (!r) {
        if (r.error().code == ErrorCode::permission_denied && principal) return denied(res, *who, method, req.path, r.error(), request_id);
        // The server's own failure (a database that did not answer, a bug): its cause goes to the log.
        if (r.error().code == ErrorCode::internal) log(LogLevel::error, "http", fmt::format("request {}: {} {}: {}", request_id, method, req.path, r.error().message));
        fail(res, r.error(), request_id);
      } else if (r->stream) {
        res.status = r->status;
        res.set_header("X-Request-Id", request_id);
        // The tenant's Manager is held until the stream ends, not only until the handler returns.
        res.set_chunked_content_provider(r->content_type, [stream = std::move(r->stream), hold = *m](std::size_t, httplib::DataSink& sink) {
          stream([&sink](std::string_view text) { return sink.write(text.data(), text.size()); });
          sink.done();
          return true;
        });
      } else if (!r->content_type.empty()) {
        res.status = r->status;
        res.set_header("X-Request-Id", request_id);
        if (!r->text.empty()) res.set_content(r->text, r->content_type.c_str());  // 202 and 204 carry no body
      } else {
        answer(res, r->status, r->body, request_id);
      }
      if (r)
        for (const auto& [name, value] : r->headers) res.set_header(name, value);
      // Audited: what principals change, one row each; the calls they make (tools, actions, plugin routes),
      // counted per window. The writer does both off the request's path.
      if (principal && !req.path.starts_with("/api/v1/auth/")) {
        const bool a_call = req.path.starts_with("/app/") || req.path.starts_with("/plugins/") || req.path.ends_with("/invoke") || req.path == "/mcp";
        if (a_call) audit->count_call(who->tenant, who->user, fmt::format("{} {}", method, req.path), res.status, request_id);
        else if (method != "GET") audit->record(AuditRow{0, 0, who->tenant, who->user, fmt::format("{} {}", method, req.path), req.path, std::to_string(res.status), request_id});
      }
    };
    if (std::string_view(method) == "GET") {
      http.Get(pattern, [serve](const httplib::Request& req, httplib::Response& res) { serve(req, res, req.body); });
      return spec;
    }
    auto read = [this, serve, stats = spec.stats.get()](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      std::string raw;
      bool too_large = std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > config.max_body_bytes;
      const bool read_all = !too_large && reader([&](const char* data, std::size_t n) {
        if (raw.size() + n > config.max_body_bytes) return !(too_large = true);
        raw.append(data, n);
        return true;
      });
      if (!read_all) {
        // What is left of the body is unread: the connection cannot carry another request.
        res.set_header("Connection", "close");
        mark_connection_unusable();
        const auto rid = request_id_of(req);
        auto* connection = HttpServer::current();
        RouteRecord record{stats, connection, res};  // a refused body is this route's answer too
        if (connection && connection->expired()) {
          fail(res, Error{ErrorCode::timeout, fmt::format("the request's body did not arrive within {} ms", config.http.body_timeout.count())}, rid);
          res.status = 408;
        } else if (too_large) {
          fail(res, Error{ErrorCode::invalid_argument, fmt::format("the body exceeds {} bytes", config.max_body_bytes)}, rid);
          res.status = 413;
        } else {
          fail(res, Error{ErrorCode::invalid_argument, "the body could not be read (malformed chunked encoding or a closed connection)"}, rid);
        }
        return;
      }
      serve(req, res, std::move(raw));
    };
    if (std::string_view(method) == "POST") http.Post(pattern, read);
    else if (std::string_view(method) == "PUT") http.Put(pattern, read);
    else if (std::string_view(method) == "DELETE") http.Delete(pattern, read);
    else if (std::string_view(method) == "PATCH") http.Patch(pattern, read);
    return spec;
  }

  // Records a route's answer in its metrics when it goes out of scope, whichever way the handler left.
  struct RouteRecord {
    RouteStats* stats;
    ConnectionStream* connection;
    httplib::Response& res;
    std::chrono::steady_clock::time_point start = connection ? connection->request_start() : std::chrono::steady_clock::now();
    ~RouteRecord() {
      if (connection) connection->routed = true;
      stats->record(res.status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  };

  // With check_answers on, the answer a route wrote is held against its entry when the handler is done
  // (after every early return); one that does not match becomes a 500 naming what differed.
  struct AnswerCheck {
    Impl* server;  // null: not checking
    const RouteSpec& spec;
    httplib::Response& res;
    const std::string& request_id;
    ~AnswerCheck() {
      if (server) server->check_answer(spec, res, request_id);
    }
  };
  void check_answer(const RouteSpec& spec, httplib::Response& res, const std::string& request_id) noexcept;

  static void mark_connection_unusable() {
    if (auto* c = HttpServer::current()) c->unusable = true;
  }

  // Before routing, before any body is read: requests that smuggle (both Transfer-Encoding and
  // Content-Length, or a coding other than chunked), headers over the limit (httplib caps each line at
  // 8 KiB, not their sum), and chunked bodies that no bounded reader would take (a GET's, an unknown
  // path's) are refused, and their connection closed.
  httplib::Server::HandlerResponse screen(const httplib::Request& req, httplib::Response& res) {
    auto refuse = [&](int status, std::string message) {
      fail(res, Error{status == 404 ? ErrorCode::not_found : ErrorCode::invalid_argument, std::move(message)}, request_id_of(req));
      res.status = status;
      res.set_header("Connection", "close");
      mark_connection_unusable();
      return httplib::Server::HandlerResponse::Handled;
    };
    auto* connection = HttpServer::current();
    // The headers are in: the body's deadline starts.
    if (connection) connection->enter(ConnectionStream::Phase::body);
    if (connection && connection->unusable) return refuse(400, "an earlier request on this connection was refused with its body unread: open a new connection");
    std::size_t header_bytes = 0;
    for (const auto& [k, v] : req.headers) header_bytes += k.size() + v.size() + 4;
    if (header_bytes > config.max_header_bytes)
      return refuse(431, fmt::format("the request's headers exceed {} bytes", config.max_header_bytes));
    if (!req.has_header("Transfer-Encoding")) {
      // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112, 6.3); httplib
      // 0.11 would read one until the client closes. Saying so in its headers makes it read none.
      if (!req.has_header("Content-Length")) const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (req.has_header("Content-Length")) return refuse(400, "a request may not carry both Transfer-Encoding and Content-Length");
    if (req.get_header_value_count("Transfer-Encoding") != 1 || strcasecmp(req.get_header_value("Transfer-Encoding").c_str(), "chunked") != 0)
      return refuse(400, "Transfer-Encoding must be 'chunked'");
    if (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") return refuse(400, fmt::format("a {} request has no body", req.method));
    if (!std::any_of(routes.begin(), routes.end(), [&](const RouteSpec& r) { return r.method == req.method && std::regex_match(req.path, r.matcher); }))
      return refuse(404, fmt::format("no route {} {}", req.method, req.path));
    return httplib::Server::HandlerResponse::Unhandled;
  }

  static Result<std::string> field(const json::value& body, const char* name) {
    if (!body.is_object()) return Error{ErrorCode::invalid_argument, fmt::format("expected a JSON object with '{}'", name)};
    auto it = body.get_object().find(name);
    if (it == body.get_object().end() || !it->value().is_string() || it->value().get_string().empty())
      return Error{ErrorCode::invalid_argument, fmt::format("'{}' must be a non-empty string", name)};
    return std::string(it->value().get_string());
  }

  // A call made for a request carries the caller's principal: libxcore checks tools and actions with it.
  static CallContext context_of(const Call& c) {
    CallContext ctx;
    ctx.tenant = c.who.tenant;
    ctx.user = c.who.user;
    ctx.trace_id = c.request_id;
    ctx.principal = c.who.principal;
    return ctx;
  }

  // A plugin as the API shows it: the Manager's view plus this tenant's registration.
  json::object plugin_json(const PluginInfo& info, const RegistrationRow* reg) {
    json::object o{{"id", info.manifest.id},
                   {"name", info.manifest.name},
                   {"version", info.manifest.version.to_string()},
                   {"description", info.manifest.description},
                   {"mode", to_string(info.manifest.mode)},
                   {"state", to_string(info.state)}};
    // How it runs, when the host's policy ran a trusted-mode plugin sandboxed (an unsigned one, say).
    if (const auto* kind = info.runner.if_contains("kind"); kind && *kind == "sandbox") o["mode"] = "sandboxed";
    if (info.last_error) o["last_error"] = info.last_error->message;
    o["registered"] = reg != nullptr;
    o["enabled"] = reg && reg->enabled;
    o["stats"] = json::object{{"calls", info.stats.calls}, {"errors", info.stats.errors}, {"in_flight", info.stats.in_flight},
                              {"generation", info.stats.generation}, {"reloads", info.stats.reloads}};
    if (!info.runner.empty()) o["runner"] = info.runner;
    return o;
  }

  Result<PluginInfo> known(Manager& m, const std::string& id) {
    auto info = m.info(id);
    if (!info) return Error{ErrorCode::not_found, fmt::format("no plugin '{}'", id)};
    return *info;
  }

  Result<json::object> plugin_json(const PluginInfo& info, const std::string& tenant) {
    XCORE_ASSIGN_OR_RETURN(auto reg, db->registration(tenant, info.manifest.id));
    return plugin_json(info, reg ? &*reg : nullptr);
  }

  // This tenant's registrations by plugin (the Manager keeps them; the API reads them to show).
  Result<std::map<std::string, RegistrationRow>> registrations_of(const std::string& tenant) {
    XCORE_ASSIGN_OR_RETURN(auto rows, db->registrations(tenant));
    std::map<std::string, RegistrationRow> out;
    for (auto& r : rows) out.emplace(r.plugin, std::move(r));
    return out;
  }

  // The routes, by area (one file each); add_routes() calls them all.
  void add_routes();
  void add_meta_routes();     // health, metrics, OpenAPI, docs: server.cpp
  void add_access_routes();   // login, tokens, users, tenants, secrets, audit: routes_access.cpp
  void add_plugin_routes();   // plugins, tools, actions, plugin-contributed routes, hooks: routes_plugins.cpp
  void add_task_routes();     // scheduled tasks and webhooks: routes_tasks.cpp
  void add_mcp_routes();      // MCP over Streamable HTTP at /mcp: routes_mcp.cpp
  void add_agent_routes();    // providers, competencies, agents, runs, approvals: routes_agents.cpp

  // ---- agents (agents.cpp) -------------------------------------------------------------------------------
  // One runtime for every tenant: a run leases its tenant's Manager (tools, competencies, hooks) while it
  // lasts; runs, transcripts and pending approvals are in the database.
  std::unique_ptr<AgentRuntime> agents;
  Result<void> start_agents();
  // The tenant's provider by name (its own, then the settings'), the key read from its secret, and the
  // address it may be reached at pinned (tenant providers obey the remote_plugins policy).
  // `own`, when given, says whether it is the tenant's (held to the outbound policy) or the settings'.
  Result<ProviderSpec> provider_named(const std::string& tenant, const std::string& name, bool* own = nullptr);
  Result<std::shared_ptr<ModelClient>> model_for(const AgentSpec& agent);
  Result<Principal> owner_principal(std::string_view tenant, std::string_view owner);
  Result<AgentSpec> agent_named(const std::string& tenant, const std::string& name);
  // The agent as `who` may run it: held to who's permissions too, unless who is its owner acting with a
  // full credential.
  static AgentSpec held_to(AgentSpec agent, const Principal& who);
  // A task's agent target (SchedulerOptions::agents): runs until the end or an approval to wait for.
  Result<json::value> run_agent_task(const JobSpec& job, std::string task, std::string_view reason);
  // Live transcripts: a counter bumped on every event, waited on by the event streams.
  std::mutex agent_events_mutex;
  std::condition_variable agent_events_cv;
  std::uint64_t agent_events_count = 0;
  Result<Reply> mcp_post(Call& c);
  Result<void> mcp_origin_allowed(const httplib::Request& req) const;
  Result<void> mcp_caller_allowed(const Call& c) const;
  McpSessions mcp_sessions{std::chrono::seconds(config.mcp_session_idle_seconds), 32, static_cast<std::size_t>(config.mcp_max_streams)};
  std::string metrics(const std::string& only_tenant);  // empty: every tenant's, and the process's
  json::object openapi_document(const Call& c);           // openapi.cpp: the route table, and c's tenant's plugin routes
};

}  // namespace xcore::server
