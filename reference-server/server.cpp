#include "server.hpp"

#include <httplib.h>

#include <boost/json.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xcore/xcore.hpp>

#include <atomic>
#include <cmath>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <shared_mutex>

#include "crypto.hpp"
#include "database.hpp"
#include "jwt.hpp"

namespace xcore::server {

namespace {

constexpr const char* kDefaultTenant = "default";

// ---- roles -----------------------------------------------------------------------------------------------

enum class Role : int { anonymous = -1, viewer = 0, operator_ = 1, admin = 2 };

std::optional<Role> parse_role(std::string_view s) {
  if (s == "viewer") return Role::viewer;
  if (s == "operator") return Role::operator_;
  if (s == "admin") return Role::admin;
  return std::nullopt;
}
const char* role_name(Role r) { return r == Role::admin ? "admin" : r == Role::operator_ ? "operator" : r == Role::viewer ? "viewer" : "anonymous"; }

struct Principal {
  std::string user, tenant;
  Role role = Role::anonymous;
};

// ---- small helpers ---------------------------------------------------------------------------------------

json::value error_body(const Error& e, const std::string& request_id) {
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

Result<std::string> decode_key(const std::string& text) {
  if (text.size() == 64 && text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos) {
    std::string raw;
    for (std::size_t i = 0; i < 64; i += 2) raw.push_back(static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16)));
    return raw;
  }
  auto raw = base64url_decode(text);
  if (raw && raw->size() == 32) return raw;
  return Error{ErrorCode::invalid_argument, "the master key must be 32 bytes, as 64 hex digits or base64url"};
}

// Failed logins per (user name, address) in the last minute.
class LoginLimiter {
 public:
  explicit LoginLimiter(int per_minute) : limit_(per_minute) {}
  // Seconds to wait, or 0 when another attempt may be made now.
  int retry_after(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto& q = failures_[key];
    prune(q);
    if (static_cast<int>(q.size()) < limit_) return 0;
    return static_cast<int>(std::max<std::int64_t>(1, q.front() + 60 - unix_now()));
  }
  void failed(const std::string& key) {
    std::lock_guard lock(mutex_);
    failures_[key].push_back(unix_now());
  }
  void succeeded(const std::string& key) {
    std::lock_guard lock(mutex_);
    failures_.erase(key);
  }

 private:
  static void prune(std::deque<std::int64_t>& q) {
    while (!q.empty() && q.front() + 60 <= unix_now()) q.pop_front();
  }
  int limit_;
  std::mutex mutex_;
  std::map<std::string, std::deque<std::int64_t>> failures_;
};

std::string process_metrics() {
  std::string out;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  out += fmt::format("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n", cpu);
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  out += fmt::format("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n", resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
  std::size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++fds;
  out += fmt::format("# TYPE process_open_fds gauge\nprocess_open_fds {}\n", fds);
  return out;
}

std::string label(std::string_view v) {
  std::string s;
  for (char c : v) {
    if (c == '\\' || c == '"') s.push_back('\\');
    if (c == '\n') {
      s += "\\n";
      continue;
    }
    s.push_back(c);
  }
  return s;
}

}  // namespace

// ---- the server ------------------------------------------------------------------------------------------

struct Server::Impl {
  ServerConfig config;
  std::unique_ptr<Database> db;
  std::unique_ptr<SecretBox> secrets;
  std::string jwt_key;
  LoginLimiter limiter{5};
  httplib::Server http;
  int bound_port = 0;

  // One Manager per tenant: a tenant's plugins, configs and tools live in its own catalogue.
  std::shared_mutex tenants_mutex;
  std::map<std::string, std::unique_ptr<Manager>> tenants;
  std::map<std::string, std::unique_ptr<Scheduler>> schedulers;  // one per tenant, over its Manager

  std::atomic<std::uint64_t> requests{0};
  std::mutex status_mutex;
  std::map<int, std::uint64_t> by_status;
  std::atomic<bool> ready{false};

  struct Route {
    std::string method, pattern, summary;
    Role min_role;
  };
  std::vector<Route> routes;

  explicit Impl(ServerConfig c) : config(std::move(c)), limiter(config.login_attempts_per_minute) {}

  ~Impl() {
    http.stop();
    std::unique_lock lock(tenants_mutex);
    schedulers.clear();  // first: their runs call into the Managers (running ones finish)
    tenants.clear();     // each Manager unloads its plugins, dependents first
  }

  void log(LogLevel level, std::string_view source, std::string_view message) {
    if (level < LogLevel::info && !config.verbose) return;
    std::fprintf(stderr, "%s %.*s: %.*s\n", std::string(to_string(level)).c_str(), static_cast<int>(source.size()), source.data(),
                 static_cast<int>(message.size()), message.data());
  }

  // ---- start-up ----------------------------------------------------------------------------------------

  Result<void> open_store() {
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot create data folder {}: {}", config.data_dir.string(), ec.message())};
    // Searchable, not listable: sandboxed plugins (another user when we are root) reach their folders
    // below it; the database and the key are private files.
    ::chmod(config.data_dir.c_str(), 0711);
    const auto db_file = config.data_dir / "xcore.db";
    if (int fd = ::open(db_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600); fd >= 0) ::close(fd);
    for (const char* suffix : {"", "-wal", "-shm"}) ::chmod((db_file.string() + suffix).c_str(), 0600);  // SQLite copies them
    XCORE_ASSIGN_OR_RETURN(db, Database::open(db_file));
    XCORE_ASSIGN_OR_RETURN(auto key, master_key());
    secrets = std::make_unique<SecretBox>(key);
    jwt_key = hmac_sha256(key, "xcore jwt signing key v1");  // one master key; a separate key per use
    return ok();
  }

  Result<std::string> master_key() {
    if (!config.master_key.empty()) return decode_key(config.master_key);
    auto file = config.data_dir / "master.key";
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string text = random_token(32) + "\n";
      bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::fsync(fd);
      ::close(fd);
      if (!written) return Error{ErrorCode::unavailable, fmt::format("cannot write {}", file.string())};
      log(LogLevel::info, "server", fmt::format("created master key {} (mode 0600): back it up, secrets cannot be read without it", file.string()));
    }
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077))
      log(LogLevel::warn, "server", fmt::format("{} is readable by others (mode {:o}): make it 0600", file.string(), st.st_mode & 0777));
    std::ifstream in(file);
    std::string text;
    std::getline(in, text);
    auto key = decode_key(text);
    if (!key) return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", file.string(), key.error().message)};
    return key;
  }

  Result<void> first_start() {
    if (!db->tenant_exists(kDefaultTenant)) XCORE_TRY(db->create_tenant(kDefaultTenant, "Default"));
    if (db->user_count() > 0) return ok();
    std::string password = config.admin_password;
    const bool generated = password.empty();
    if (generated) password = random_token(18);
    XCORE_TRY(db->create_user(UserRow{kDefaultTenant, "admin", hash_password(password), "admin", 0}));
    if (generated) std::printf("xcore-server: created user 'admin' with password %s (shown this once)\n", password.c_str());
    else std::printf("xcore-server: created user 'admin' with the password from XCORE_ADMIN_PASSWORD\n");
    std::fflush(stdout);
    return ok();
  }

  Result<Manager*> start_tenant(const std::string& tenant, bool register_all) {
    ManagerOptions o;
    o.plugin_dirs = config.plugin_dirs;
    o.data_dir = config.data_dir / "plugins" / tenant;
    for (const auto& dir : {config.data_dir / "plugins", o.data_dir, config.data_dir / "dynamic", dynamic_dir(tenant)}) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      ::chmod(dir.c_str(), 0711);
    }
    // Plugins read the tenant's sealed secrets that their manifests grant (the Manager checks the grant).
    o.secrets = [this, tenant](std::string_view, std::string_view name) -> Result<std::string> {
      auto sealed = db->secret(tenant, std::string(name));
      if (!sealed) return Error{ErrorCode::not_found, fmt::format("no secret '{}'", name)};
      return secrets->open(tenant + "/" + std::string(name), *sealed);
    };
    o.log = [this, tenant](LogLevel level, std::string_view source, std::string_view message) {
      log(level, fmt::format("{}/{}", tenant, source), message);
    };
    auto m = std::make_unique<Manager>(std::move(o));
    auto report = m->discover();
    for (const auto& p : report.problems) log(LogLevel::warn, tenant, p.message);
    // Plugins registered at run time (POST /api/v1/plugins/dynamic); one saved into a plugin folder since
    // then is found there, and its dynamic copy goes.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dynamic_dir(tenant), ec)) {
      if (!entry.is_directory(ec)) continue;
      if (m->info(entry.path().filename().string())) {
        std::filesystem::remove_all(entry.path(), ec);
        continue;
      }
      if (auto added = m->add(entry.path()); !added) log(LogLevel::warn, tenant, added.error().message);
    }
    if (register_all)
      for (const auto& info : m->list())
        XCORE_TRY(db->put_registration(RegistrationRow{tenant, info.manifest.id, info.manifest.version.to_string(), true, "{}", 0, 0}));
    // Registrations drive what runs: configs first, then enable in dependency order (enable() loads
    // dependencies itself).
    auto regs = db->registrations(tenant);
    for (const auto& r : regs) {
      if (!m->info(r.plugin)) {
        log(LogLevel::warn, tenant, fmt::format("registered plugin '{}' is not in the plugin folders", r.plugin));
        continue;
      }
      boost::system::error_code ec;
      auto cfg = json::parse(r.config, ec);
      if (!ec && cfg.is_object() && !cfg.get_object().empty())
        if (auto s = m->set_config(r.plugin, cfg.get_object()); !s) log(LogLevel::warn, tenant, s.error().message);
    }
    for (const auto& r : regs)
      if (r.enabled && m->info(r.plugin))
        if (auto e = m->enable(r.plugin); !e) log(LogLevel::error, tenant, fmt::format("cannot enable '{}': {}", r.plugin, e.error().message));
    SchedulerOptions so;
    so.store = db->job_store(tenant);
    so.manager = m.get();
    so.history_per_job = config.task_history;
    so.log = [this, tenant](std::string_view message) { log(LogLevel::info, fmt::format("{}/scheduler", tenant), message); };
    auto scheduler = std::make_unique<Scheduler>(std::move(so));
    if (auto r = scheduler->restore(); !r) return Error{ErrorCode::unavailable, fmt::format("tenant '{}': cannot restore its tasks: {}", tenant, r.error().message)};
    auto* raw = m.get();
    std::unique_lock lock(tenants_mutex);
    tenants[tenant] = std::move(m);
    schedulers[tenant] = std::move(scheduler);
    return raw;
  }

  Result<void> start_tenants() {
    const bool fresh = db->registrations("").empty();
    for (const auto& [id, name] : db->tenants()) XCORE_TRY(start_tenant(id, fresh && id == kDefaultTenant));
    return ok();
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
    if (j.spec.trigger.kind == Trigger::Kind::webhook) o["webhook_url"] = fmt::format("/api/v1/webhooks/{}", j.spec.trigger.webhook);
    return o;
  }

  // Webhook names are global (the URL carries no tenant): one task per name across tenants.
  Result<void> webhook_free(const JobSpec& spec, const std::string& except_id) {
    if (spec.trigger.kind != Trigger::Kind::webhook) return ok();
    std::shared_lock lock(tenants_mutex);
    for (const auto& [t, s] : schedulers)
      if (auto j = s->find_webhook(spec.trigger.webhook); j && j->spec.id != except_id)
        return Error{ErrorCode::already_exists, fmt::format("webhook '{}' is taken", spec.trigger.webhook)};
    return ok();
  }

  Manager* manager_of(const std::string& tenant) {
    std::shared_lock lock(tenants_mutex);
    auto it = tenants.find(tenant);
    return it == tenants.end() ? nullptr : it->second.get();
  }

  // ---- authentication ----------------------------------------------------------------------------------

  Result<Principal> authenticate(const httplib::Request& req) {
    auto header = req.get_header_value("Authorization");
    if (header.empty()) return Principal{};
    if (header.size() < 8 || strncasecmp(header.c_str(), "Bearer ", 7) != 0)
      return Error{ErrorCode::unauthenticated, "Authorization must be 'Bearer <token>'"};
    std::string token = header.substr(7);
    if (std::count(token.begin(), token.end(), '.') == 2) {
      XCORE_ASSIGN_OR_RETURN(auto claims, verify_jwt(token, jwt_key, unix_now()));
      if (claims.typ != "access") return Error{ErrorCode::unauthenticated, "a refresh token cannot authorize requests"};
      auto role = parse_role(claims.role);
      if (!role) return Error{ErrorCode::unauthenticated, "invalid token: unknown role"};
      return Principal{claims.sub, claims.tenant, *role};
    }
    auto row = db->find_token(sha256_hex(token));
    if (!row || row->revoked || (row->expires_at && row->expires_at <= unix_now()))
      return Error{ErrorCode::unauthenticated, "unknown, revoked or expired API token"};
    auto role = parse_role(row->role);
    if (!role) return Error{ErrorCode::unauthenticated, "API token with an unknown role"};
    return Principal{fmt::format("token:{}", row->name), row->tenant, *role};
  }

  json::object issue_tokens(const std::string& user, const std::string& tenant, const std::string& role) {
    auto now = unix_now();
    Claims access{user, tenant, role, "access", now, now + config.access_token_ttl};
    Claims refresh{user, tenant, role, "refresh", now, now + config.refresh_token_ttl};
    return json::object{{"access_token", sign_jwt(access, jwt_key)},
                        {"token_type", "bearer"},
                        {"expires_in", config.access_token_ttl},
                        {"refresh_token", sign_jwt(refresh, jwt_key)}};
  }

  // ---- routing -----------------------------------------------------------------------------------------

  struct Call {
    const httplib::Request& req;
    Principal who;
    json::value body;
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
    std::string text, content_type;  // non-JSON answers (metrics, docs)
  };
  using Handler = std::function<Result<Reply>(Call&)>;

  static std::string request_id_of(const httplib::Request& req) {
    auto given = req.get_header_value("X-Request-Id");
    if (!given.empty() && given.size() <= 64 && std::all_of(given.begin(), given.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }))
      return given;
    return random_token(12);
  }

  void answer(httplib::Response& res, int status, const json::value& body, const std::string& request_id) {
    res.status = status;
    res.set_header("X-Request-Id", request_id);
    res.set_content(json::serialize(body), "application/json");
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

  void route(const char* method, const std::string& pattern, Role min_role, std::string summary, Handler handler) {
    routes.push_back({method, pattern, std::move(summary), min_role});
    auto wrapped = [this, min_role, handler = std::move(handler), method = std::string(method)](const httplib::Request& req, httplib::Response& res) {
      ++requests;
      const auto request_id = request_id_of(req);
      auto who = authenticate(req);
      if (!who) return fail(res, who.error(), request_id);
      if (who->role < min_role) {
        if (who->role == Role::anonymous) return fail(res, Error{ErrorCode::unauthenticated, "log in first: this route needs a bearer token"}, request_id);
        return fail(res, Error{ErrorCode::permission_denied, fmt::format("this route needs the {} role; you have {}", role_name(min_role), role_name(who->role))},
                    request_id);
      }
      json::value body;
      if (!req.body.empty()) {
        boost::system::error_code ec;
        body = json::parse(req.body, ec);
        if (ec) return fail(res, Error{ErrorCode::invalid_argument, fmt::format("the body is not valid JSON: {}", ec.message())}, request_id);
      }
      Manager* m = who->role == Role::anonymous ? manager_of(kDefaultTenant) : manager_of(who->tenant);
      if (!m) return fail(res, Error{ErrorCode::not_found, fmt::format("tenant '{}' does not exist", who->tenant)}, request_id);
      Call call{req, *who, std::move(body), request_id, *m};
      Result<Reply> r = Error{ErrorCode::internal, "no answer"};
      try {
        r = handler(call);
      } catch (const std::exception& e) {
        r = Error{ErrorCode::internal, e.what()};
      }
      if (!r) return fail(res, r.error(), request_id);
      if (!r->content_type.empty()) {
        res.status = r->status;
        res.set_header("X-Request-Id", request_id);
        res.set_content(r->text, r->content_type.c_str());
        return;
      }
      answer(res, r->status, r->body, request_id);
      // The audit log records administration, not traffic: tool calls, actions and plugin routes are
      // counted in the metrics instead.
      if (method != "GET" && who->role != Role::anonymous && req.path.starts_with("/api/") && !req.path.ends_with("/invoke"))
        db->audit(AuditRow{0, 0, who->tenant, who->user, fmt::format("{} {}", method, req.path), req.path, fmt::format("{}", res.status), request_id});
    };
    if (std::string_view(method) == "GET") http.Get(pattern, wrapped);
    else if (std::string_view(method) == "POST") http.Post(pattern, wrapped);
    else if (std::string_view(method) == "PUT") http.Put(pattern, wrapped);
    else if (std::string_view(method) == "DELETE") http.Delete(pattern, wrapped);
    else if (std::string_view(method) == "PATCH") http.Patch(pattern, wrapped);
  }

  static Result<std::string> field(const json::value& body, const char* name) {
    if (!body.is_object()) return Error{ErrorCode::invalid_argument, fmt::format("expected a JSON object with '{}'", name)};
    auto it = body.get_object().find(name);
    if (it == body.get_object().end() || !it->value().is_string() || it->value().get_string().empty())
      return Error{ErrorCode::invalid_argument, fmt::format("'{}' must be a non-empty string", name)};
    return std::string(it->value().get_string());
  }

  static CallContext context_of(const Call& c) {
    CallContext ctx;
    ctx.tenant = c.who.tenant;
    ctx.user = c.who.user;
    ctx.trace_id = c.request_id;
    return ctx;
  }

  // A plugin as the API shows it: the Manager's view plus this tenant's registration.
  json::object plugin_json(const PluginInfo& info, const std::string& tenant) {
    json::object o{{"id", info.manifest.id},
                   {"name", info.manifest.name},
                   {"version", info.manifest.version.to_string()},
                   {"description", info.manifest.description},
                   {"mode", to_string(info.manifest.mode)},
                   {"state", to_string(info.state)}};
    if (info.last_error) o["last_error"] = info.last_error->message;
    auto reg = db->registration(tenant, info.manifest.id);
    o["registered"] = reg.has_value();
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

  Result<void> remember(const std::string& tenant, Manager& m, const std::string& id, std::optional<bool> enabled, std::optional<json::object> config) {
    auto info = m.info(id);
    auto reg = db->registration(tenant, id).value_or(RegistrationRow{tenant, id, "", false, "{}", 0, 0});
    if (info) reg.version = info->manifest.version.to_string();
    if (enabled) reg.enabled = *enabled;
    if (config) reg.config = json::serialize(*config);
    return db->put_registration(reg);
  }

  void add_routes();
  std::string metrics();
};

void Server::Impl::add_routes() {
  const std::string id = "([a-z0-9][a-z0-9_.-]{0,63})";
  const std::string name = "([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})";

  route("GET", "/healthz", Role::anonymous, "liveness", [](Call&) -> Result<Reply> { return Reply{200, json::object{{"status", "ok"}}}; });
  route("GET", "/readyz", Role::anonymous, "readiness: plugins started", [this](Call&) -> Result<Reply> {
    if (!ready) return Error{ErrorCode::unavailable, "starting"};
    return Reply{200, json::object{{"status", "ready"}}};
  });
  route("GET", "/metrics", Role::anonymous, "Prometheus metrics", [this](Call&) -> Result<Reply> {
    return Reply{200, nullptr, metrics(), "text/plain; version=0.0.4"};
  });

  // ---- auth
  route("POST", "/api/v1/auth/login", Role::anonymous, "exchange user name and password for tokens", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto username, field(c.body, "username"));
    XCORE_ASSIGN_OR_RETURN(auto password, field(c.body, "password"));
    const auto key = username + "|" + c.req.remote_addr;
    if (int wait = limiter.retry_after(key)) {
      Error e{ErrorCode::resource_exhausted, fmt::format("too many failed logins; retry in {} s", wait)};
      e.details = json::serialize(json::object{{"retry_after", wait}});
      return e;
    }
    auto user = db->find_user(username);
    // The same work whether or not the user exists: no timing oracle for user names.
    static const std::string decoy = hash_password(random_token(16));
    bool good = verify_password(password, user ? user->password_hash : decoy) && user;
    if (!good) {
      limiter.failed(key);
      return Error{ErrorCode::unauthenticated, "wrong user name or password"};
    }
    limiter.succeeded(key);
    db->audit(AuditRow{0, 0, user->tenant, username, "login", username, "", c.request_id});
    return Reply{200, issue_tokens(user->username, user->tenant, user->role)};
  });
  route("POST", "/api/v1/auth/refresh", Role::anonymous, "a new access token for a refresh token", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto token, field(c.body, "refresh_token"));
    XCORE_ASSIGN_OR_RETURN(auto claims, verify_jwt(token, jwt_key, unix_now()));
    if (claims.typ != "refresh") return Error{ErrorCode::unauthenticated, "not a refresh token"};
    auto user = db->find_user(claims.sub);  // the user's current role and tenant, not the old token's
    if (!user) return Error{ErrorCode::unauthenticated, "the user no longer exists"};
    return Reply{200, issue_tokens(user->username, user->tenant, user->role)};
  });
  route("GET", "/api/v1/auth/me", Role::viewer, "who the token belongs to", [](Call& c) -> Result<Reply> {
    return Reply{200, json::object{{"user", c.who.user}, {"tenant", c.who.tenant}, {"role", role_name(c.who.role)}}};
  });

  // ---- plugins
  route("GET", "/api/v1/plugins", Role::viewer, "this tenant's registered plugins (?state=)", [this](Call& c) -> Result<Reply> {
    json::array out;
    auto state = c.query("state");
    for (const auto& info : c.manager.list()) {
      if (!db->registration(c.who.tenant, info.manifest.id)) continue;
      if (!state.empty() && to_string(info.state) != state) continue;
      out.push_back(plugin_json(info, c.who.tenant));
    }
    return Reply{200, json::object{{"plugins", std::move(out)}}};
  });
  route("GET", "/api/v1/plugins/available", Role::viewer, "plugins in the plugin folders not registered for this tenant", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& info : c.manager.list())
      if (!db->registration(c.who.tenant, info.manifest.id)) out.push_back(plugin_json(info, c.who.tenant));
    return Reply{200, json::object{{"plugins", std::move(out)}}};
  });
  route("GET", "/api/v1/plugins/stats", Role::viewer, "call statistics per plugin", [this](Call& c) -> Result<Reply> {
    json::object out;
    for (const auto& info : c.manager.list())
      if (db->registration(c.who.tenant, info.manifest.id)) out[info.manifest.id] = plugin_json(info, c.who.tenant).at("stats");
    return Reply{200, json::object{{"stats", std::move(out)}}};
  });
  route("GET", "/api/v1/plugins/health", Role::viewer, "health of every enabled plugin", [this](Call& c) -> Result<Reply> {
    json::object out;
    for (const auto& info : c.manager.list()) {
      if (!db->registration(c.who.tenant, info.manifest.id) || info.state != PluginState::enabled) continue;
      auto h = c.manager.health(info.manifest.id);
      out[info.manifest.id] = h ? *h : error_body(h.error(), c.request_id).at("error");
    }
    return Reply{200, json::object{{"health", std::move(out)}}};
  });
  route("POST", "/api/v1/plugins/discover", Role::admin, "read the configured plugin folders again", [](Call& c) -> Result<Reply> {
    auto report = c.manager.discover();
    json::array found, problems;
    for (const auto& f : report.found) found.emplace_back(f);
    for (const auto& p : report.problems) problems.push_back(json::object{{"code", to_string(p.code)}, {"message", p.message}});
    return Reply{200, json::object{{"found", std::move(found)}, {"problems", std::move(problems)}}};
  });
  route("POST", "/api/v1/plugins/dynamic", Role::admin, "register an external MCP server command as a sandboxed plugin", [this](Call& c) -> Result<Reply> {
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected a manifest object: {id, version, command, ...}"};
    // Data only: an external command, always sandboxed; never a binary for this process to load.
    json::object manifest;
    for (const auto& [k, v] : c.body.get_object()) {
      if (k == "enable") continue;
      if (k == "entry" || k == "mode" || k == "cwd")
        return Error{ErrorCode::invalid_argument, fmt::format("'{}' cannot be set: a dynamic plugin is a command run in the sandbox, from its own folder", std::string_view(k))};
      manifest[k] = v;
    }
    manifest["mode"] = "sandboxed";
    if (!manifest.contains("command")) return Error{ErrorCode::invalid_argument, "'command' is required: the argv of an MCP stdio server"};
    XCORE_ASSIGN_OR_RETURN(auto parsed, parse_manifest(json::serialize(manifest), "dynamic plugin"));
    const auto pid = parsed.manifest.id;
    if (c.manager.info(pid)) return Error{ErrorCode::already_exists, fmt::format("plugin '{}' already exists", pid)};
    auto folder = dynamic_dir(c.who.tenant) / pid;
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot create {}: {}", folder.string(), ec.message())};
    {
      std::ofstream out(folder / "plugin.json");
      out << json::serialize(manifest);
      if (!out) return Error{ErrorCode::unavailable, fmt::format("cannot write {}", (folder / "plugin.json").string())};
    }
    ::chmod(folder.c_str(), 0755);  // the sandbox's user starts the command from here
    ::chmod((folder / "plugin.json").c_str(), 0644);
    auto added = c.manager.add(folder);
    if (!added) {
      std::filesystem::remove_all(folder, ec);
      return std::move(added).error();
    }
    const bool enable = !c.body.get_object().contains("enable") || c.body.at("enable") == true;
    if (enable) {
      if (auto r = c.manager.enable(pid); !r) {
        XCORE_TRY(remember(c.who.tenant, c.manager, pid, false, std::nullopt));
        return std::move(r).error();
      }
    }
    XCORE_TRY(remember(c.who.tenant, c.manager, pid, enable, std::nullopt));
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, pid));
    return Reply{201, plugin_json(info, c.who.tenant)};
  });
  route("POST", "/api/v1/plugins/" + id + "/save", Role::admin, "persist a dynamic plugin's manifest in the plugin folder", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    const auto source = info.manifest.file;
    if (source.parent_path().parent_path() != dynamic_dir(c.who.tenant))
      return Error{ErrorCode::failed_precondition, fmt::format("plugin '{}' is not a dynamic plugin: it is in {}", c.arg(1), source.parent_path().string())};
    if (config.plugin_dirs.empty()) return Error{ErrorCode::failed_precondition, "no plugin folder is configured"};
    auto target = config.plugin_dirs.front() / c.arg(1);
    std::error_code ec;
    if (std::filesystem::exists(target, ec)) return Error{ErrorCode::already_exists, fmt::format("{} exists", target.string())};
    std::filesystem::create_directories(target, ec);
    if (ec || !std::filesystem::copy_file(source, target / "plugin.json", ec))
      return Error{ErrorCode::unavailable, fmt::format("cannot save to {}: {}", target.string(), ec.message())};
    return Reply{200, json::object{{"saved", (target / "plugin.json").string()}}};
  });
  route("GET", "/api/v1/plugins/" + id, Role::viewer, "one plugin", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    return Reply{200, plugin_json(info, c.who.tenant)};
  });
  route("GET", "/api/v1/plugins/" + id + "/health", Role::viewer, "one plugin's health", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    XCORE_ASSIGN_OR_RETURN(auto h, c.manager.health(info.manifest.id));
    return Reply{200, h};
  });
  route("GET", "/api/v1/plugins/" + id + "/tools", Role::viewer, "one plugin's tools (MCP shape)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    ToolFilter f;
    f.plugin = info.manifest.id;
    return Reply{200, json::object{{"tools", c.manager.tools().export_mcp(f)}}};
  });
  // Lifecycle: enable and disable register the plugin for the tenant; load, unload and reload are admin's.
  for (const char* verb : {"enable", "disable", "load", "unload", "reload"}) {
    const std::string v = verb;
    const Role min = (v == "enable" || v == "disable" || v == "reload") ? Role::operator_ : Role::admin;
    route("POST", "/api/v1/plugins/" + id + "/" + v, min, v + " a plugin", [this, v](Call& c) -> Result<Reply> {
      const auto pid = c.arg(1);
      XCORE_TRY(known(c.manager, pid));
      // Dependencies and cascades change other plugins too: what changed is recorded for each.
      std::map<std::string, bool> was_enabled;
      for (const auto& info : c.manager.list()) was_enabled[info.manifest.id] = info.state == PluginState::enabled;
      Result<void> r = ok();
      if (v == "enable") r = c.manager.enable(pid);
      else if (v == "disable") r = c.manager.disable(pid, UnloadOptions{c.query("cascade") == "true"});
      else if (v == "load") r = c.manager.load(pid);
      else if (v == "unload") r = c.manager.unload(pid, UnloadOptions{c.query("cascade") == "true"});
      else r = c.manager.reload(pid);
      XCORE_TRY(r);
      for (const auto& info : c.manager.list()) {
        const bool now_enabled = info.state == PluginState::enabled;
        if (info.manifest.id != pid && was_enabled[info.manifest.id] != now_enabled)
          XCORE_TRY(remember(c.who.tenant, c.manager, info.manifest.id, now_enabled, std::nullopt));
      }
      if (v == "enable" || v == "load") XCORE_TRY(remember(c.who.tenant, c.manager, pid, v == "enable" ? std::optional(true) : std::nullopt, std::nullopt));
      if (v == "disable" || v == "unload") XCORE_TRY(remember(c.who.tenant, c.manager, pid, false, std::nullopt));
      XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, pid));
      return Reply{200, plugin_json(info, c.who.tenant)};
    });
  }
  route("GET", "/api/v1/plugins/" + id + "/config", Role::viewer, "a plugin's config", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto info, known(c.manager, c.arg(1)));
    json::object out{{"config", info.config}};
    if (info.manifest.config_schema) out["schema"] = *info.manifest.config_schema;
    return Reply{200, out};
  });
  route("PUT", "/api/v1/plugins/" + id + "/config", Role::operator_, "replace a plugin's config (validated by its config_schema)", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(known(c.manager, c.arg(1)));
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "the config must be a JSON object"};
    XCORE_TRY(c.manager.set_config(c.arg(1), c.body.get_object()));
    XCORE_TRY(remember(c.who.tenant, c.manager, c.arg(1), std::nullopt, c.body.get_object()));
    return Reply{200, json::object{{"config", c.body}}};
  });

  // ---- tools and actions
  route("GET", "/api/v1/tools", Role::viewer, "tools (?category=, ?plugin=, ?format=mcp|openai)", [](Call& c) -> Result<Reply> {
    ToolFilter f;
    f.category = c.query("category");
    f.plugin = c.query("plugin");
    f.tenant = c.who.tenant;
    auto format = c.query("format");
    if (format == "openai") return Reply{200, json::object{{"tools", c.manager.tools().export_openai(f)}}};
    if (!format.empty() && format != "mcp") return Error{ErrorCode::invalid_argument, fmt::format("format '{}': expected mcp or openai", format)};
    return Reply{200, json::object{{"tools", c.manager.tools().export_mcp(f)}}};
  });
  route("POST", "/api/v1/tools/" + name + "/invoke", Role::operator_, "call a tool; the body is its arguments", [](Call& c) -> Result<Reply> {
    json::value args = c.body.is_null() ? json::value(json::object{}) : c.body;
    XCORE_ASSIGN_OR_RETURN(auto r, c.manager.call_tool(c.arg(1), args, context_of(c)));
    return Reply{200, r.to_mcp()};
  });
  route("POST", "/app/" + id + "/" + name, Role::operator_, "a plugin action; the body is its parameters", [](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto r, c.manager.call_action(c.arg(1), c.arg(2), c.body, context_of(c)));
    return Reply{200, r};
  });
  // Routes plugins declare in their manifests, under /plugins/<id>/...: looked up on each request in the
  // tenant's current catalogue, so they come and go with the plugin (and change with a reload).
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    route(method, "/plugins/" + id + "(/[^?#]*)?", Role::anonymous, "a route a plugin declares in its manifest", [this, method = std::string(method)](Call& c) -> Result<Reply> {
      if (c.who.role == Role::anonymous) return Error{ErrorCode::unauthenticated, "log in first: plugin routes need a bearer token"};
      const auto plugin = c.arg(1);
      auto info = c.manager.info(plugin);
      if (!info || info->state != PluginState::enabled) return Error{ErrorCode::not_found, fmt::format("no enabled plugin '{}'", plugin)};
      std::vector<std::string> segments;
      std::string path = c.arg(2).empty() ? "/" : c.arg(2);
      for (std::size_t start = 1; start <= path.size();) {
        auto end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        if (end > start) segments.push_back(path.substr(start, end - start));
        start = end + 1;
      }
      for (const auto& r : info->routes) {
        if (r.method != method) continue;
        std::vector<std::string> pattern;
        for (std::size_t start = 1; start <= r.path.size();) {
          auto end = r.path.find('/', start);
          if (end == std::string::npos) end = r.path.size();
          if (end > start) pattern.push_back(r.path.substr(start, end - start));
          start = end + 1;
        }
        if (pattern.size() != segments.size()) continue;
        json::object params;
        bool match = true;
        for (std::size_t i = 0; match && i < pattern.size(); ++i) {
          if (pattern[i].front() == '{') params[pattern[i].substr(1, pattern[i].size() - 2)] = segments[i];
          else match = pattern[i] == segments[i];
        }
        if (!match) continue;
        if (c.who.role < *parse_role(r.role))
          return Error{ErrorCode::permission_denied, fmt::format("this route needs the {} role; you have {}", r.role, role_name(c.who.role))};
        json::object query;
        for (const auto& [k, v] : c.req.params) query[k] = v;
        json::object request{{"method", method}, {"path", path}, {"params", std::move(params)}, {"query", std::move(query)}, {"body", c.body}};
        XCORE_ASSIGN_OR_RETURN(auto out, c.manager.call_action(plugin, r.action, request, context_of(c)));
        return Reply{200, out};
      }
      return Error{ErrorCode::not_found, fmt::format("plugin '{}' has no route {} {}", plugin, method, path)};
    });
  }
  route("GET", "/api/v1/hooks", Role::viewer, "hooks and their subscribers", [](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& h : c.manager.hooks().list())
      out.push_back(json::object{{"name", h.spec.name}, {"description", h.spec.description}, {"historic", h.spec.historic}, {"handlers", h.handlers},
                                 {"wrappers", h.wrappers}, {"calls", h.calls}, {"failures", h.failures}});
    return Reply{200, json::object{{"hooks", std::move(out)}}};
  });

  // ---- scheduled tasks
  const std::string task = "([A-Za-z0-9._:-]{1,128})";
  route("GET", "/api/v1/tasks", Role::viewer, "this tenant's scheduled tasks", [this](Call& c) -> Result<Reply> {
    json::array out;
    if (auto* s = scheduler_of(c.who.tenant))
      for (const auto& j : s->list()) out.push_back(task_json(j));
    return Reply{200, json::object{{"tasks", std::move(out)}}};
  });
  route("POST", "/api/v1/tasks", Role::operator_, "schedule a task ({name, trigger, target, ...})", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto spec, JobSpec::from_json(c.body));
    spec.tenant = c.who.tenant;  // never from the body
    spec.owner.clear();
    XCORE_TRY(webhook_free(spec, ""));
    auto* s = scheduler_of(c.who.tenant);
    XCORE_ASSIGN_OR_RETURN(auto id, s->add(std::move(spec)));
    return Reply{201, task_json(*s->get(id))};
  });
  route("GET", "/api/v1/tasks/" + task, Role::viewer, "one task, with its next fire times", [this](Call& c) -> Result<Reply> {
    auto* s = scheduler_of(c.who.tenant);
    auto j = s->get(c.arg(1));
    if (!j) return Error{ErrorCode::not_found, fmt::format("no task '{}'", c.arg(1))};
    auto o = task_json(*j);
    json::array next;
    for (auto t : s->preview(c.arg(1), 5)) next.emplace_back(format_iso8601(t));
    o["next_runs"] = std::move(next);
    return Reply{200, o};
  });
  route("PATCH", "/api/v1/tasks/" + task, Role::operator_, "change a task (the fields given replace the task's)", [this](Call& c) -> Result<Reply> {
    auto* s = scheduler_of(c.who.tenant);
    auto j = s->get(c.arg(1));
    if (!j) return Error{ErrorCode::not_found, fmt::format("no task '{}'", c.arg(1))};
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected a JSON object with the fields to change"};
    auto merged = j->spec.to_json();
    for (const auto& [k, v] : c.body.get_object()) merged[k] = v;
    XCORE_ASSIGN_OR_RETURN(auto spec, JobSpec::from_json(merged));
    spec.tenant = c.who.tenant;
    XCORE_TRY(webhook_free(spec, c.arg(1)));
    XCORE_TRY(s->update(c.arg(1), std::move(spec)));
    return Reply{200, task_json(*s->get(c.arg(1)))};
  });
  route("DELETE", "/api/v1/tasks/" + task, Role::operator_, "delete a task and its history", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(scheduler_of(c.who.tenant)->remove(c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  });
  route("POST", "/api/v1/tasks/" + task + "/run", Role::operator_, "run a task now", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto run, scheduler_of(c.who.tenant)->run_now(c.arg(1), nullptr, "manual"));
    return Reply{202, json::object{{"run_id", run}, {"task_id", c.arg(1)}}};
  });
  for (const char* verb : {"pause", "resume"}) {
    route("POST", "/api/v1/tasks/" + task + "/" + verb, Role::operator_, std::string(verb) + " a task", [this, v = std::string(verb)](Call& c) -> Result<Reply> {
      auto* s = scheduler_of(c.who.tenant);
      XCORE_TRY(v == "pause" ? s->pause(c.arg(1)) : s->resume(c.arg(1)));
      return Reply{200, task_json(*s->get(c.arg(1)))};
    });
  }
  route("GET", "/api/v1/tasks/" + task + "/runs", Role::viewer, "a task's runs, newest first (?limit=)", [this](Call& c) -> Result<Reply> {
    auto* s = scheduler_of(c.who.tenant);
    if (!s->get(c.arg(1))) return Error{ErrorCode::not_found, fmt::format("no task '{}'", c.arg(1))};
    std::size_t limit = 100;
    if (auto l = c.query("limit"); !l.empty()) limit = static_cast<std::size_t>(std::clamp(std::atoi(l.c_str()), 1, 1000));
    json::array out;
    for (const auto& r : s->runs(c.arg(1), limit)) out.push_back(r.to_json());
    return Reply{200, out};
  });
  // Signed webhooks: HMAC-SHA256 over "<timestamp>.<body>" with the task's secret, a timestamp window, and
  // each signature accepted once.
  route("POST", "/api/v1/webhooks/" + name, Role::anonymous, "trigger a webhook task (X-Xcore-Timestamp, X-Xcore-Signature: sha256=<hex>)", [this](Call& c) -> Result<Reply> {
    const auto stamp = c.req.get_header_value("X-Xcore-Timestamp");
    auto signature = c.req.get_header_value("X-Xcore-Signature");
    if (stamp.empty() || signature.empty())
      return Error{ErrorCode::unauthenticated, "a webhook needs X-Xcore-Timestamp and X-Xcore-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + \".\" + body)>"};
    std::optional<JobState> job;
    std::string tenant;
    {
      std::shared_lock lock(tenants_mutex);
      for (const auto& [t, s] : schedulers)
        if (auto j = s->find_webhook(c.arg(1))) {
          job = std::move(j);
          tenant = t;
          break;
        }
    }
    if (!job) return Error{ErrorCode::not_found, fmt::format("no webhook '{}'", c.arg(1))};
    std::int64_t ts = 0;
    try {
      std::size_t used = 0;
      ts = std::stoll(stamp, &used);
      if (used != stamp.size()) throw std::invalid_argument("stamp");
    } catch (const std::exception&) {
      return Error{ErrorCode::unauthenticated, "X-Xcore-Timestamp must be seconds since the epoch"};
    }
    if (std::llabs(unix_now() - ts) > config.webhook_window)
      return Error{ErrorCode::unauthenticated, fmt::format("the timestamp is outside the {} s window", config.webhook_window)};
    auto sealed = db->secret(tenant, job->spec.trigger.webhook_secret);
    if (!sealed) return Error{ErrorCode::failed_precondition, fmt::format("the webhook's secret '{}' is not set", job->spec.trigger.webhook_secret)};
    XCORE_ASSIGN_OR_RETURN(auto key, secrets->open(tenant + "/" + job->spec.trigger.webhook_secret, *sealed));
    if (signature.starts_with("sha256=")) signature = signature.substr(7);
    if (!constant_time_equal(signature, hex_encode(hmac_sha256(key, stamp + "." + c.req.body))))
      return Error{ErrorCode::unauthenticated, "the signature does not match"};
    if (!db->first_delivery(signature, unix_now(), config.webhook_window))
      return Error{ErrorCode::conflict, "this delivery was received before (replay)"};
    XCORE_ASSIGN_OR_RETURN(auto run, scheduler_of(tenant)->run_now(job->spec.id, c.body, "webhook"));
    return Reply{202, json::object{{"run_id", run}, {"task_id", job->spec.id}}};
  });

  // ---- secrets: values go in, never out
  route("GET", "/api/v1/secrets", Role::admin, "secret names", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& n : db->secret_names(c.who.tenant)) out.emplace_back(n);
    return Reply{200, json::object{{"secrets", std::move(out)}}};
  });
  route("PUT", "/api/v1/secrets/" + name, Role::admin, "set a secret ({\"value\": ...})", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto value, field(c.body, "value"));
    XCORE_TRY(db->put_secret(c.who.tenant, c.arg(1), secrets->seal(c.who.tenant + "/" + c.arg(1), value)));
    return Reply{200, json::object{{"name", c.arg(1)}}};
  });
  route("DELETE", "/api/v1/secrets/" + name, Role::admin, "delete a secret", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->delete_secret(c.who.tenant, c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  });

  // ---- users, tenants, API tokens, audit
  route("GET", "/api/v1/users", Role::admin, "this tenant's users", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& u : db->users(c.who.tenant)) out.push_back(json::object{{"username", u.username}, {"role", u.role}, {"created_at", u.created_at}});
    return Reply{200, json::object{{"users", std::move(out)}}};
  });
  route("POST", "/api/v1/users", Role::admin, "create a user ({username, password, role}; tenant: default tenant's admins only)", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto username, field(c.body, "username"));
    XCORE_ASSIGN_OR_RETURN(auto password, field(c.body, "password"));
    XCORE_ASSIGN_OR_RETURN(auto role, field(c.body, "role"));
    if (!parse_role(role)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", role)};
    if (password.size() < 8) return Error{ErrorCode::invalid_argument, "the password must have at least 8 characters"};
    std::string tenant = c.who.tenant;
    if (auto t = field(c.body, "tenant")) {
      if (*t != c.who.tenant && c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins create users in other tenants"};
      tenant = *t;
    }
    if (!db->tenant_exists(tenant)) return Error{ErrorCode::not_found, fmt::format("no tenant '{}'", tenant)};
    XCORE_TRY(db->create_user(UserRow{tenant, username, hash_password(password), role, 0}));
    return Reply{201, json::object{{"username", username}, {"tenant", tenant}, {"role", role}}};
  });
  route("PATCH", "/api/v1/users/" + name, Role::admin, "change a user's role or password ({role?, password?})", [this](Call& c) -> Result<Reply> {
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected {role?, password?}"};
    std::optional<std::string> role, hash;
    if (c.body.get_object().contains("role")) {
      XCORE_ASSIGN_OR_RETURN(auto r, field(c.body, "role"));
      if (!parse_role(r)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", r)};
      if (c.arg(1) == c.who.user) return Error{ErrorCode::conflict, "you cannot change your own role"};
      role = r;
    }
    if (c.body.get_object().contains("password")) {
      XCORE_ASSIGN_OR_RETURN(auto p, field(c.body, "password"));
      if (p.size() < 8) return Error{ErrorCode::invalid_argument, "the password must have at least 8 characters"};
      hash = hash_password(p);
    }
    if (!role && !hash) return Error{ErrorCode::invalid_argument, "nothing to change: give role and/or password"};
    XCORE_TRY(db->update_user(c.who.tenant, c.arg(1), hash, role));
    json::array changed;
    if (role) changed.emplace_back("role");
    if (hash) changed.emplace_back("password");
    return Reply{200, json::object{{"username", c.arg(1)}, {"changed", std::move(changed)}}};
  });
  route("DELETE", "/api/v1/users/" + name, Role::admin, "delete a user of this tenant", [this](Call& c) -> Result<Reply> {
    if (c.arg(1) == c.who.user) return Error{ErrorCode::conflict, "you cannot delete yourself"};
    XCORE_TRY(db->delete_user(c.who.tenant, c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  });
  route("GET", "/api/v1/tenants", Role::admin, "tenants (the default tenant's admins)", [this](Call& c) -> Result<Reply> {
    if (c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins manage tenants"};
    json::array out;
    for (const auto& [tid, tname] : db->tenants()) out.push_back(json::object{{"id", tid}, {"name", tname}});
    return Reply{200, json::object{{"tenants", std::move(out)}}};
  });
  route("POST", "/api/v1/tenants", Role::admin, "create a tenant ({id, name})", [this, id](Call& c) -> Result<Reply> {
    if (c.who.tenant != kDefaultTenant) return Error{ErrorCode::permission_denied, "only the default tenant's admins manage tenants"};
    XCORE_ASSIGN_OR_RETURN(auto tid, field(c.body, "id"));
    if (!std::regex_match(tid, std::regex(id))) return Error{ErrorCode::invalid_argument, "a tenant id is [a-z0-9][a-z0-9_.-]{0,63}"};
    auto tname = field(c.body, "name").value_or(tid);
    XCORE_TRY(db->create_tenant(tid, tname));
    XCORE_TRY(start_tenant(tid, false));
    return Reply{201, json::object{{"id", tid}, {"name", tname}}};
  });
  route("GET", "/api/v1/tokens", Role::admin, "this tenant's API tokens (never their values)", [this](Call& c) -> Result<Reply> {
    json::array out;
    for (const auto& t : db->tokens(c.who.tenant))
      out.push_back(json::object{{"id", t.id}, {"name", t.name}, {"role", t.role}, {"created_by", t.created_by}, {"created_at", t.created_at},
                                 {"expires_at", t.expires_at}, {"revoked", t.revoked}});
    return Reply{200, json::object{{"tokens", std::move(out)}}};
  });
  route("POST", "/api/v1/tokens", Role::admin, "create an API token ({name, role, expires_in?}); the value is shown once", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto tname, field(c.body, "name"));
    XCORE_ASSIGN_OR_RETURN(auto role, field(c.body, "role"));
    if (!parse_role(role)) return Error{ErrorCode::invalid_argument, fmt::format("role '{}': expected admin, operator or viewer", role)};
    TokenRow t{0, c.who.tenant, tname, role, c.who.user, 0, 0, false};
    if (auto it = c.body.get_object().find("expires_in"); it != c.body.get_object().end() && it->value().is_int64() && it->value().get_int64() > 0)
      t.expires_at = unix_now() + it->value().get_int64();
    auto value = "xct_" + random_token(32);
    XCORE_ASSIGN_OR_RETURN(auto tid, db->create_token(t, sha256_hex(value)));
    return Reply{201, json::object{{"id", tid}, {"name", tname}, {"role", role}, {"token", value}, {"expires_at", t.expires_at}}};
  });
  route("DELETE", "/api/v1/tokens/([0-9]{1,18})", Role::admin, "revoke an API token", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(db->revoke_token(c.who.tenant, std::stoll(c.arg(1))));
    return Reply{200, json::object{{"revoked", std::stoll(c.arg(1))}}};
  });
  route("GET", "/api/v1/audit", Role::admin, "this tenant's audit log, newest first (?limit=)", [this](Call& c) -> Result<Reply> {
    int limit = 100;
    if (auto l = c.query("limit"); !l.empty()) limit = std::clamp(std::atoi(l.c_str()), 1, 1000);
    json::array out;
    for (const auto& a : db->audit_log(c.who.tenant, limit))
      out.push_back(json::object{{"id", a.id}, {"at", a.at}, {"actor", a.actor}, {"action", a.action}, {"target", a.target}, {"result", a.detail},
                                 {"request_id", a.request_id}});
    return Reply{200, json::object{{"entries", std::move(out)}}};
  });
  route("GET", "/docs", Role::anonymous, "the API, rendered from /openapi.json", [](Call&) -> Result<Reply> {
    // Self-contained: no script or style from elsewhere (the server may have no way out).
    static const std::string page = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xcore-server API</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
code{font:13px ui-monospace,monospace}.m{font-weight:bold}</style></head>
<body><h1>xcore-server API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Errors are
<code>{"error":{"code","message","details"}}</code>; send <code>Authorization: Bearer &lt;token&gt;</code> from
<code>POST /api/v1/auth/login</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>least role</th><th>what</th></tr></thead><tbody id="routes"></tbody></table>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const body = document.getElementById('routes');
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops)) {
      const tr = document.createElement('tr');
      for (const [text, cls] of [[method.toUpperCase(), 'm'], [path, ''], [op['x-xcore-role'] || 'anyone', ''], [op.summary, '']]) {
        const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td);
      }
      body.appendChild(tr);
    }
});
</script></body></html>
)html";
    return Reply{200, nullptr, page, "text/html; charset=utf-8"};
  });
  route("GET", "/openapi.json", Role::anonymous, "this document", [this](Call&) -> Result<Reply> {
    json::object paths;
    for (const auto& r : routes) {
      // "/api/v1/plugins/([a-z0-9]...)/tools" -> "/api/v1/plugins/{p1}/tools"
      std::string path;
      int n = 0;
      for (std::size_t i = 0; i < r.pattern.size(); ++i) {
        if (r.pattern[i] != '(') {
          path.push_back(r.pattern[i]);
          continue;
        }
        int depth = 0;
        for (; i < r.pattern.size(); ++i) {
          if (r.pattern[i] == '(') ++depth;
          if (r.pattern[i] == ')' && --depth == 0) break;
        }
        path += fmt::format("{{p{}}}", ++n);
      }
      std::string m = r.method;
      std::transform(m.begin(), m.end(), m.begin(), ::tolower);
      json::object op{{"summary", r.summary}, {"responses", json::object{{"200", json::object{{"description", "JSON"}}}}}};
      if (r.min_role != Role::anonymous) {
        op["security"] = json::array{json::object{{"bearer", json::array{}}}};
        op["x-xcore-role"] = role_name(r.min_role);
      }
      json::array params;
      for (int i = 1; i <= n; ++i) params.push_back(json::object{{"name", fmt::format("p{}", i)}, {"in", "path"}, {"required", true}, {"schema", json::object{{"type", "string"}}}});
      if (n) op["parameters"] = std::move(params);
      paths[path].emplace_object()[m] = std::move(op);
    }
    json::object doc{{"openapi", "3.1.0"},
                     {"info", json::object{{"title", "xcore-server"}, {"version", "0.1.0"}}},
                     {"paths", std::move(paths)},
                     {"components", json::object{{"securitySchemes", json::object{{"bearer", json::object{{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}}}}}}}};
    return Reply{200, doc};
  });
}

std::string Server::Impl::metrics() {
  std::string out;
  out += fmt::format("# TYPE xcore_http_requests_total counter\nxcore_http_requests_total {}\n", requests.load());
  out += "# TYPE xcore_plugin_calls_total counter\n# TYPE xcore_plugin_errors_total counter\n# TYPE xcore_plugin_in_flight gauge\n"
         "# TYPE xcore_sandbox_restarts_total counter\n";
  std::shared_lock lock(tenants_mutex);
  for (const auto& [tenant, m] : tenants)
    for (const auto& info : m->list()) {
      auto labels = fmt::format("tenant=\"{}\",plugin=\"{}\"", label(tenant), label(info.manifest.id));
      out += fmt::format("xcore_plugin_calls_total{{{}}} {}\n", labels, info.stats.calls);
      out += fmt::format("xcore_plugin_errors_total{{{}}} {}\n", labels, info.stats.errors);
      out += fmt::format("xcore_plugin_in_flight{{{}}} {}\n", labels, info.stats.in_flight);
      if (auto it = info.runner.find("restarts"); it != info.runner.end())
        out += fmt::format("xcore_sandbox_restarts_total{{{}}} {}\n", labels, it->value().to_number<std::uint64_t>());
    }
  out += "# TYPE xcore_tool_calls_total counter\n# TYPE xcore_tool_errors_total counter\n# TYPE xcore_tool_rejected_total counter\n"
         "# TYPE xcore_tool_duration_seconds histogram\n";
  for (const auto& [tenant, m] : tenants) {
    ToolFilter all;
    all.include_disabled = true;
    for (const auto& t : m->tools().list(all)) {
      auto labels = fmt::format("tenant=\"{}\",tool=\"{}\"", label(tenant), label(t.qualified_name));
      const auto& tm = t.metrics;
      out += fmt::format("xcore_tool_calls_total{{{}}} {}\n", labels, tm.calls);
      out += fmt::format("xcore_tool_errors_total{{{}}} {}\n", labels, tm.errors);
      out += fmt::format("xcore_tool_rejected_total{{{}}} {}\n", labels, tm.rejected);
      for (const auto& b : tm.buckets)
        if (std::isfinite(b.le_seconds)) out += fmt::format("xcore_tool_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, b.le_seconds, b.count);
      out += fmt::format("xcore_tool_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, tm.calls);
      out += fmt::format("xcore_tool_duration_seconds_sum{{{}}} {}\n", labels, tm.total_seconds);
      out += fmt::format("xcore_tool_duration_seconds_count{{{}}} {}\n", labels, tm.calls);
    }
  }
  out += process_metrics();
  return out;
}

// ---- Server ----------------------------------------------------------------------------------------------

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
int Server::port() const { return impl_->bound_port; }
void Server::stop() { impl_->http.stop(); }

Result<std::unique_ptr<Server>> Server::create(ServerConfig config) {
  auto impl = std::make_unique<Impl>(std::move(config));
  auto& s = *impl;
  XCORE_TRY(s.open_store());
  XCORE_TRY(s.first_start());
  s.http.set_tcp_nodelay(true);  // keep-alive answers would otherwise wait on Nagle and delayed ACKs
  s.http.set_payload_max_length(s.config.max_body_bytes);
  // httplib serves a connection on one worker until it closes: keep-alive must not end after 5 requests
  // (its default), or clients pay a reconnect every few calls.
  s.http.set_keep_alive_max_count(100000);
  s.http.set_keep_alive_timeout(5);
  const int threads = s.config.threads;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  // httplib's own refusals (no route, body too large, malformed request) in the API's error shape, with
  // httplib's status kept.
  s.http.set_error_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const int status = res.status;
    const auto rid = Impl::request_id_of(req);
    if (status == 413) s.fail(res, Error{ErrorCode::invalid_argument, fmt::format("the body exceeds {} bytes", s.config.max_body_bytes)}, rid);
    else if (status == 404) s.fail(res, Error{ErrorCode::not_found, fmt::format("no route {} {}", req.method, req.path)}, rid);
    else s.fail(res, Error{ErrorCode::invalid_argument, fmt::format("the request was refused (HTTP {})", status)}, rid);
    res.status = status;
  });
  s.add_routes();
  if (s.config.port == 0) {
    s.bound_port = s.http.bind_to_any_port(s.config.host);
  } else {
    s.bound_port = s.http.bind_to_port(s.config.host, s.config.port) ? s.config.port : -1;
  }
  if (s.bound_port <= 0) return Error{ErrorCode::unavailable, fmt::format("cannot listen on {}:{}", s.config.host, s.config.port)};
  // Plugins start after the port is bound (readyz says when), before requests are served.
  XCORE_TRY(s.start_tenants());
  s.ready = true;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<void> Server::run() {
  std::printf("xcore-server: listening on http://%s:%d\n", impl_->config.host.c_str(), impl_->bound_port);
  std::fflush(stdout);
  if (!impl_->http.listen_after_bind()) return Error{ErrorCode::unavailable, "the listener failed"};
  return ok();
}

}  // namespace xcore::server
