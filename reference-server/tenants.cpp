// Start-up and tenants: the store and its master key, the first admin, each tenant's Manager and Scheduler,
// and the policy over what a tenant's plugins may be given (grants, privileged config keys).
#include "server_impl.hpp"

#include "jsonrpc/jsonrpc.hpp"

namespace xcore::server {

Result<void> Server::Impl::open_store() {
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
  audit = std::make_unique<AuditLog>(*db, AuditLog::Retention{config.audit_retention_days, config.audit_max_rows});
  XCORE_ASSIGN_OR_RETURN(auto key, master_key());
  secrets = std::make_unique<SecretBox>(key);
  jwt_key = hmac_sha256(key, "xcore jwt signing key v1");  // one master key; a separate key per use
  return ok();
}

Result<std::string> Server::Impl::master_key() {
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

Result<void> Server::Impl::first_start() {
  XCORE_ASSIGN_OR_RETURN(const bool has_default, db->tenant_exists(kDefaultTenant));
  if (!has_default) XCORE_TRY(db->create_tenant(kDefaultTenant, "Default"));
  XCORE_ASSIGN_OR_RETURN(const auto users, db->user_count());
  if (users > 0) return ok();
  std::string password = config.admin_password;
  const bool generated = password.empty();
  if (generated) password = random_token(18);
  XCORE_TRY(db->create_user(UserRow{kDefaultTenant, "admin", hash_password(password), "admin", 0}));
  if (generated) std::printf("xcore-server: created user 'admin' with password %s (shown this once)\n", password.c_str());
  else std::printf("xcore-server: created user 'admin' with the password from XCORE_ADMIN_PASSWORD\n");
  std::fflush(stdout);
  return ok();
}

Result<std::shared_ptr<Manager>> Server::Impl::start_manager(const std::string& tenant, bool register_all) {
  ManagerOptions o;
  o.plugin_dirs = config.plugin_dirs;
  o.plugin_dirs.push_back(saved_dir(tenant));  // dynamic plugins this tenant saved
  o.data_dir = config.data_dir / "plugins" / tenant;
  for (const auto& dir : {config.data_dir / "plugins", o.data_dir, config.data_dir / "dynamic", dynamic_dir(tenant), config.data_dir / "saved", saved_dir(tenant)}) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0711);
  }
  // Plugins read the tenant's sealed secrets that their manifests grant (the Manager checks the grant).
  o.secrets = [this, tenant](std::string_view, std::string_view name) -> Result<std::string> {
    XCORE_ASSIGN_OR_RETURN(auto sealed, db->secret(tenant, std::string(name)));
    if (!sealed) return Error{ErrorCode::not_found, fmt::format("no secret '{}'", name)};
    return secrets->open(tenant + "/" + std::string(name), *sealed);
  };
  o.admit = [this, tenant](PluginManifest& m) -> Result<void> {
    XCORE_TRY(signature_policy(tenant, m));
    return grant_policy(tenant, m);
  };
  o.remote_address = [this, tenant](const PluginManifest& m, std::string_view host) { return remote_address(tenant, m, host); };
  o.route_roles = {"viewer", "operator", "admin"};  // what a plugin's route may require
  o.registrations = db->registration_store(tenant);
  // On a root host, each tenant's sandboxed plugins run as a uid of their own: their data folders
  // (0700, owned by it) are closed to every other tenant's plugins.
  if (::geteuid() == 0 && config.sandbox_uid_first != 0) {
    XCORE_ASSIGN_OR_RETURN(auto uid, db->sandbox_uid(tenant, config.sandbox_uid_first, config.sandbox_uid_last));
    o.sandbox_uid = uid;
  }
  o.log = [this, tenant](LogLevel level, std::string_view source, std::string_view message) {
    log(level, fmt::format("{}/{}", tenant, source), message);
  };
  auto m = std::make_shared<Manager>(std::move(o));
  // Tools, resources and prompts come and go with plugins: the tenant's MCP sessions are told on their streams.
  for (const char* event : {"plugin.enabled", "plugin.disabled", "plugin.reloaded", "plugin.unloaded"})
    if (auto s = m->hooks().subscribe(event, [this, tenant](const HookEvent&) {
          for (const char* method : {"notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed"})
            mcp_sessions.broadcast(tenant, jsonrpc::notification(method, json::object{}));
          return HookReply::none();
        }))
      s->release();  // for the Manager's lifetime
  auto report = m->discover();
  for (const auto& p : report.problems) log(LogLevel::warn, tenant, p.message);
  if (tenant == kDefaultTenant && report.found.empty()) {
    std::string dirs;
    for (const auto& d : config.plugin_dirs) dirs += (dirs.empty() ? "" : ", ") + d.string();
    log(LogLevel::warn, tenant,
        fmt::format("no plugins found (plugin folders: {}); give --plugins DIR or `plugins:` in the settings", dirs.empty() ? "none" : dirs));
  }
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
  // Registrations drive what runs; the Manager keeps them up to date from here on.
  if (register_all)
    for (const auto& info : m->list())
      XCORE_TRY(db->put_registration(RegistrationRow{tenant, info.manifest.id, info.manifest.version.to_string(), true, "{}", 0, 0}));
  XCORE_ASSIGN_OR_RETURN(auto problems, m->restore());
  for (const auto& p : problems) log(p.code == ErrorCode::not_found ? LogLevel::warn : LogLevel::error, tenant, p.message);
  return m;
}

Result<void> Server::Impl::open_tenant(const std::string& tenant, bool register_all) {
  // Its sandbox uid is taken when the tenant is made, not when it first runs: a range used up refuses
  // the new tenant, never an existing one's first request.
  if (::geteuid() == 0 && config.sandbox_uid_first != 0) XCORE_TRY(db->sandbox_uid(tenant, config.sandbox_uid_first, config.sandbox_uid_last));
  // The Scheduler from the start: a tenant's tasks fire whether its Manager runs or not; a run that needs
  // the Manager starts it (manager_lease).
  SchedulerOptions so;
  so.store = db->job_store(tenant);
  so.manager_lease = [this, tenant] { return wake_tenant(tenant); };
  so.history_per_job = config.task_history;
  so.threads = scheduler_threads;  // every tenant's tasks on the same timer and pool
  so.agents = [this](const JobSpec& job, std::string task, std::string_view reason) { return run_agent_task(job, std::move(task), reason); };
  so.log = [this, tenant](LogLevel level, std::string_view source, std::string_view message) { log(level, fmt::format("{}/{}", tenant, source), message); };
  auto scheduler = std::make_unique<Scheduler>(std::move(so));
  if (auto r = scheduler->restore(); !r) return Error{ErrorCode::unavailable, fmt::format("tenant '{}': cannot restore its tasks: {}", tenant, r.error().message)};
  {
    std::unique_lock lock(tenants_mutex);
    schedulers[tenant] = std::move(scheduler);
  }
  if (eager(tenant)) XCORE_TRY(wake_tenant(tenant, register_all));
  return ok();
}

bool Server::Impl::eager(const std::string& tenant) const {
  return tenant == kDefaultTenant || std::find(config.eager_tenants.begin(), config.eager_tenants.end(), tenant) != config.eager_tenants.end();
}

Result<std::shared_ptr<Manager>> Server::Impl::wake_tenant(const std::string& tenant, bool register_all) {
  auto running = [&]() -> std::shared_ptr<Manager> {
    std::shared_lock lock(tenants_mutex);
    auto it = tenants.find(tenant);
    if (it == tenants.end()) return nullptr;
    it->second->last_used = steady_ms();
    return it->second->manager;
  };
  if (auto m = running()) return m;
  std::lock_guard one_start(starting_mutex);
  if (auto m = running()) return m;  // started by another caller meanwhile
  Scheduler* scheduler = scheduler_of(tenant);
  if (!scheduler) return Error{ErrorCode::not_found, fmt::format("tenant '{}' does not exist", tenant)};
  XCORE_ASSIGN_OR_RETURN(auto m, start_manager(tenant, register_all));
  scheduler->attach_plugins(*m);  // its plugins' own schedules join again
  auto entry = std::make_unique<RunningTenant>();
  entry->manager = m;
  entry->last_used = steady_ms();
  {
    std::unique_lock lock(tenants_mutex);
    tenants[tenant] = std::move(entry);
  }
  log(LogLevel::info, tenant, "started");
  return m;
}

void Server::Impl::park_idle_tenants() {
  if (config.tenant_idle_seconds <= 0) return;
  const auto now = steady_ms();
  std::vector<std::shared_ptr<Manager>> parked;  // let go of outside the lock: their plugins unload
  {
    std::unique_lock lock(tenants_mutex);
    for (auto it = tenants.begin(); it != tenants.end();) {
      const auto& [tenant, t] = *it;
      auto s = schedulers.find(tenant);
      // Kept: eager tenants, those used lately, those a request or a run holds now, and those whose
      // plugins scheduled jobs of their own (those jobs live in the Manager's plugins).
      const bool keep = eager(tenant) || now - t->last_used.load() < config.tenant_idle_seconds * 1000 || t->manager.use_count() > 1 ||
                        (s != schedulers.end() && s->second->plugin_jobs() > 0);
      if (keep) {
        ++it;
        continue;
      }
      if (s != schedulers.end()) s->second->detach_plugins();
      log(LogLevel::info, tenant, fmt::format("parked after {} s idle: its plugins are unloaded until the next request or due task", (now - t->last_used.load()) / 1000));
      parked.push_back(std::move(t->manager));
      it = tenants.erase(it);
    }
  }
}

void Server::Impl::park_loop() {
  const auto every = std::chrono::milliseconds(std::clamp<std::int64_t>(config.tenant_idle_seconds * 250, 250, 30'000));
  std::unique_lock lock(park_mutex);
  while (!park_stop) {
    park_wake.wait_for(lock, every);
    if (park_stop) break;
    lock.unlock();
    park_idle_tenants();
    lock.lock();
  }
}

Result<void> Server::Impl::start_tenants() {
  XCORE_ASSIGN_OR_RETURN(auto all, db->registrations(""));
  const bool fresh = all.empty();
  XCORE_ASSIGN_OR_RETURN(auto tenants, db->tenants());
  for (const auto& [id, name] : tenants) XCORE_TRY(open_tenant(id, fresh && id == kDefaultTenant));
  if (config.tenant_idle_seconds > 0) {
    parker = std::thread([this] { park_loop(); });
    ::pthread_setname_np(parker.native_handle(), "xcore-park");
  }
  return ok();
}

Result<void> Server::Impl::config_allowed(const Caller& who, const PluginInfo& info, const json::object& next) {
  const bool operator_of_server = operates_server(who);
  for (const auto& key : info.manifest.privileged_config_keys()) {
    const auto* before = info.config.if_contains(key);
    const auto* after = next.if_contains(key);
    const bool changed = (before == nullptr) != (after == nullptr) || (before && after && *before != *after);
    if (changed && !operator_of_server)
      return Error{ErrorCode::permission_denied,
                   fmt::format("config key '{}' of plugin '{}' is privileged: only an admin of the default tenant changes it", key, info.manifest.id)};
  }
  for (const auto& [k, v] : next)
    if (v.is_string())
      if (auto r = path_allowed(std::string(v.get_string()), fmt::format("config key '{}'", std::string_view(k))); !r) return r;
  return ok();
}

Result<void> Server::Impl::grant_policy(const std::string& tenant, const PluginManifest& m) const {
  const bool servers_own = tenant == kDefaultTenant;
  const auto own = config.data_dir / "plugins" / tenant / m.id;
  std::error_code ec;
  for (std::size_t i = 0; i < m.permissions.size(); ++i) {
    const std::string& g = m.permissions[i];
    const auto what = fmt::format("permissions[{}] '{}'", i, g);
    if (g == "network" && !servers_own && std::find(config.grant_network.begin(), config.grant_network.end(), tenant) == config.grant_network.end())
      return Error{ErrorCode::permission_denied,
                   fmt::format("{}: tenant '{}' is not in the settings' grants.network, so its plugins get no network", what, tenant)};
    for (std::string_view prefix : {"fs.read:", "fs.write:"}) {
      if (!std::string_view(g).starts_with(prefix)) continue;
      const auto text = g.substr(prefix.size());
      XCORE_TRY(path_allowed(text, what, own));
      if (servers_own) continue;
      const auto path = std::filesystem::weakly_canonical(std::filesystem::absolute(text, ec), ec).lexically_normal();
      if (path_within(path, std::filesystem::weakly_canonical(own, ec))) continue;
      const bool listed = std::any_of(config.grant_fs.begin(), config.grant_fs.end(),
                                      [&](const auto& allowed) { return path_within(path, std::filesystem::weakly_canonical(allowed, ec)); });
      if (!listed)
        return Error{ErrorCode::permission_denied,
                     fmt::format("{}: a tenant's plugin reaches only its own folder {} and the settings' grants.fs folders", what, own.string())};
    }
  }
  return ok();
}

Result<void> Server::Impl::load_trusted_keys() {
  for (const auto& entry : config.trusted_keys) {
    std::error_code ec;
    const std::filesystem::path path = entry;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(path, ec))
        if (e.path().extension() == ".pub") files.push_back(e.path());
      if (files.empty()) return Error{ErrorCode::invalid_argument, fmt::format("signatures.trusted_keys: no *.pub file in {}", entry)};
      for (const auto& f : files) {
        XCORE_ASSIGN_OR_RETURN(auto key, packages::VerifyingKey::load(f));
        trusted_keys.push_back(std::move(key));
      }
    } else if (std::filesystem::exists(path, ec)) {
      XCORE_ASSIGN_OR_RETURN(auto key, packages::VerifyingKey::load(path));
      trusted_keys.push_back(std::move(key));
    } else {
      // Not a file: the key itself, in base64.
      auto key = packages::VerifyingKey::parse(entry, "signatures.trusted_keys");
      if (!key) return Error{ErrorCode::invalid_argument, fmt::format("signatures.trusted_keys: '{}' is neither a key file, a folder of *.pub files, nor a base64 key", entry)};
      trusted_keys.push_back(std::move(*key));
    }
  }
  if (trusted_keys.empty())
    log(LogLevel::warn, "xcore-server", "no trusted plugin keys (signatures.trusted_keys): plugins' signatures are not checked");
  else
    for (const auto& k : trusted_keys) log(LogLevel::info, "xcore-server", fmt::format("trusting plugins signed by key {} ({})", k.id(), k.source()));
  return ok();
}

Result<void> Server::Impl::signature_policy(const std::string& tenant, PluginManifest& m) const {
  if (trusted_keys.empty()) return ok();
  std::error_code ec;
  std::string unsigned_why;
  if (!std::filesystem::exists(m.dir() / packages::kListFile, ec)) {
    unsigned_why = fmt::format("is not signed (no {}: install it from a signed package)", packages::kListFile);
  } else {
    // Whoever signed it, its files must still be the ones listed: anything else is tampering. The folder is
    // read and hashed once; who signed it is then a comparison of keys.
    auto intact = packages::verify_folder(m.dir(), {});
    if (!intact) return Error{ErrorCode::permission_denied, fmt::format("refused: {}", intact.error().message)};
    if (!intact->signed_by) unsigned_why = fmt::format("is not signed (no {})", packages::kSignatureFile);
    else if (!packages::signed_by_one_of(*intact, trusted_keys))
      unsigned_why = fmt::format("is signed by key {}, which is not among the trusted keys", *intact->signed_by);
  }
  if (unsigned_why.empty()) return ok();
  if (config.unsigned_plugins == "refuse")
    return Error{ErrorCode::permission_denied,
                 fmt::format("plugin '{}' {}; the signature policy (signatures.unsigned: refuse) runs only plugins signed by a trusted key", m.id, unsigned_why)};
  if (m.mode == PluginMode::trusted) {
    m.mode = PluginMode::sandboxed;
    log(LogLevel::warn, tenant, fmt::format("plugin '{}' {}: it runs sandboxed (signatures.unsigned: sandbox)", m.id, unsigned_why));
  }
  return ok();
}

Result<void> Server::Impl::path_allowed(const std::string& text, const std::string& what, const std::filesystem::path& own) const {
  if (text.empty() || (text.front() != '/' && text.find("..") == std::string::npos)) return ok();
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(text, ec), ec).lexically_normal();
  auto data = std::filesystem::weakly_canonical(config.data_dir, ec).lexically_normal();
  if (!own.empty() && path_within(p, std::filesystem::weakly_canonical(own, ec))) return ok();
  if (path_within(p, data) || path_within(data, p))
    return Error{ErrorCode::permission_denied, fmt::format("{}: '{}' overlaps the server's data folder {}; no plugin may reach it", what, text, data.string())};
  return ok();
}

}  // namespace xcore::server
