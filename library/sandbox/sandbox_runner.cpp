#include "sandbox/sandbox_runner.hpp"
#include <xcore/json_text.hpp>

#include <boost/json/serialize.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <grp.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <sstream>
#include <set>
#include <map>
#include <mutex>
#include <thread>

#include "core/thread_name.hpp"
#include "jsonrpc/rpc_peer.hpp"
#include "core/random_token.hpp"
#include "sandbox/cgroup.hpp"
#include "sandbox/child_process.hpp"
#include "sandbox/identity.hpp"
#include "sandbox/isolation.hpp"
#include "sandbox/observed_isolation.hpp"
#include "sandbox/wire.hpp"

extern char** environ;

namespace xcore::inline v1::sandbox {

namespace {

using Clock = std::chrono::steady_clock;
using jsonrpc::RpcPeer;

bool strict_sandbox() {
  const char* s = std::getenv("XCORE_SANDBOX_STRICT");
  return s && std::string_view(s) == "1";
}


class SandboxRunner final : public Runner {
 public:
  SandboxRunner(const PluginManifest& m, std::filesystem::path binary, PluginServices& services, SandboxOptions options)
      : manifest_(m), binary_(std::move(binary)), services_(services), options_(std::move(options)),
        policy_(IsolationPolicy::from_manifest(m)), external_(m.external()) {
    if (m.limits.timeout) options_.call_timeout = *m.limits.timeout;
  }

  ~SandboxRunner() override {
    std::shared_ptr<Child> c;
    {
      std::lock_guard lock(mutex_);
      destroying_ = true;
      c = std::move(child_);
      if (starting_) starting_->peer->close(Error{ErrorCode::unavailable, "stopped"});
    }
    cv_.notify_all();
    if (restarter_.joinable()) restarter_.join();  // a restart in its backoff ends at once; a spawn finishes first
    stop(c);
    {
      std::lock_guard lock(refresh_mutex_);
      refresh_stop_ = true;
    }
    refresh_cv_.notify_all();
    if (refresher_.joinable()) refresher_.join();
  }

  Result<void> start_first() {
    XCORE_TRY(prepare());
    auto c = spawn();
    std::lock_guard lock(mutex_);
    starting_.reset();
    if (!c) return std::move(c).error();
    child_ = std::move(*c);
    state_ = State::running;
    return ok();
  }

  // Settles who the plugin runs as and gives it its data folder (owned by that user, private).
  Result<void> prepare() {
    if (::geteuid() == 0) {
      XCORE_ASSIGN_OR_RETURN(auto who, sandbox_identity(options_.user, options_.uid, services_));
      policy_.uid = who.uid;
      policy_.gid = who.gid;
    }
    if (!options_.data_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(options_.data_dir / "tmp", ec);
      if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot create the data folder {}: {}", options_.data_dir.string(), ec.message())};
      for (const auto& dir : {options_.data_dir, options_.data_dir / "tmp"}) {
        if (policy_.uid && ::chown(dir.c_str(), *policy_.uid, *policy_.gid) != 0)
          return Error{ErrorCode::unavailable, fmt::format("cannot hand {} to uid {}: {}", dir.string(), *policy_.uid, std::strerror(errno))};
        ::chmod(dir.c_str(), 0700);
      }
      policy_.data_dir = options_.data_dir.string();
    }
    environment_ = sandbox_environment(options_.data_dir);
    // A cgroup holds every process of the plugin: memory, process count and CPU for all of them together.
    if (!policy_.processes) policy_.processes = options_.default_processes;
    if (!policy_.open_files) policy_.open_files = options_.default_open_files;
    CgroupLimits limits;
    limits.memory_bytes = policy_.memory_bytes.value_or(options_.default_memory_bytes);
    if (!policy_.memory_bytes) policy_.data_bytes = options_.default_memory_bytes;
    limits.pids = *policy_.processes;
    limits.cpu_percent = manifest_.limits.cpu_percent;
    if (auto cg = Cgroup::create(manifest_.id, limits)) {
      cgroup_ = std::move(*cg);
      policy_.cgroups = cgroup_->dirs();
      // The cgroup counts this plugin's processes alone; RLIMIT_NPROC would count every process of the
      // sandbox's user, other plugins' too.
      if (cgroup_->has("pids")) policy_.processes.reset();
      if (cgroup_->has("memory")) policy_.data_bytes.reset();  // the cgroup counts it, for all the plugin's processes
    } else if (::geteuid() == 0 && strict_sandbox()) {
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}': {} (XCORE_SANDBOX_STRICT=1)", manifest_.id, cg.error().message)};
    } else {
      services_.log(LogLevel::debug, cg.error().message);
    }
    return ok();
  }

  // An external MCP server has no xcore lifecycle: those steps are the host's bookkeeping only.
  Result<void> on_load(const json::object& config) override {
    if (!external_) XCORE_TRY(call("xcore/load", json::object{{"config", config}}, options_.start_timeout));
    std::lock_guard lock(mutex_);
    config_ = config;
    loaded_ = true;
    return ok();
  }
  Result<void> on_enable() override {
    if (!external_) XCORE_TRY(call("xcore/enable", json::object{}, options_.start_timeout));
    std::lock_guard lock(mutex_);
    enabled_ = true;
    return ok();
  }
  Result<void> on_disable() override {
    {
      std::lock_guard lock(mutex_);
      enabled_ = false;
    }
    if (!external_) XCORE_TRY(call("xcore/disable", json::object{}, options_.start_timeout));
    return ok();
  }
  Result<void> on_unload() override {
    Result<json::value> r = json::value();
    if (!external_) r = call("xcore/unload", json::object{}, options_.start_timeout, /*restart=*/false);
    std::shared_ptr<Child> c;
    {
      std::lock_guard lock(mutex_);
      loaded_ = false;
      c = std::move(child_);
    }
    stop(c);
    return r ? ok() : Result<void>(std::move(r).error());
  }
  Result<void> on_config(const json::object& config) override {
    if (!external_) XCORE_TRY(call("xcore/configure", json::object{{"config", config}}, options_.start_timeout));
    std::lock_guard lock(mutex_);
    config_ = config;
    return ok();
  }
  Result<json::value> health() override {
    // A plugin that does not answer a health check within 3 s is unresponsive.
    auto r = call(external_ ? "ping" : "xcore/health", json::object{}, std::chrono::milliseconds(3000), /*restart=*/false);
    if (!r && r.error().code == ErrorCode::timeout)
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is unresponsive: no health answer within 3 s", manifest_.id)};
    if (r && external_) return json::value(json::object{{"status", "ok"}});
    return r;
  }
  Result<std::vector<ToolSpec>> list_tools() override {
    return wire::list_tool_pages(manifest_.id, [&](const json::object& params) { return call("tools/list", params, options_.start_timeout); });
  }
  Result<ToolResult> call_tool(std::string_view name, const json::value& args, const CallContext& ctx) override {
    Serving serving(*this, ctx);
    XCORE_ASSIGN_OR_RETURN(auto r, call("tools/call", json::object{{"name", name}, {"arguments", args}, {"_meta", wire::meta_with_context(ctx, serving.token)}},
                                        budget(ctx)));
    return ToolResult::from_mcp(std::move(r));
  }
  Result<json::value> handle(std::string_view action, const json::value& params, const CallContext& ctx) override {
    if (external_) return Error{ErrorCode::not_found, fmt::format("plugin '{}' is an external MCP server: it has tools, no actions", manifest_.id)};
    Serving serving(*this, ctx);
    return call("xcore/action", json::object{{"action", action}, {"params", params}, {"context", wire::context_to_json(ctx, serving.token)}}, budget(ctx));
  }

  Result<json::value> serve_mcp(std::string_view method, const json::value& params, const CallContext& ctx) override {
    Serving serving(*this, ctx);
    json::object p = params.is_object() ? params.get_object() : json::object();
    p["_meta"] = wire::meta_with_context(ctx, serving.token);
    // An MCP server answers what it has no capability for with -32601, which reads as not_found: none here.
    return call(std::string(method), std::move(p), budget(ctx));
  }

  // The calls the process serves now, by an unguessable token sent with each. Its host calls name the
  // token of the call they serve, and get that call's context (tenant, principal, deadline, trace) from
  // here: what the process itself says about who is calling is never read. A host call naming no token
  // (or one that ended) acts for nobody: the plugin's own grants, on behalf of an anonymous caller.
  struct Serving {
    SandboxRunner& runner;
    const std::string token;
    Serving(SandboxRunner& r, const CallContext& ctx) : runner(r), token(random_token()) {
      std::lock_guard lock(runner.serving_mutex_);
      runner.serving_.emplace(token, ctx);
    }
    ~Serving() {
      std::lock_guard lock(runner.serving_mutex_);
      runner.serving_.erase(token);
    }
  };
  CallContext served_context(const json::object& request) const {
    auto it = request.find("serving");
    if (it == request.end() || !it->value().is_string()) return CallContext{};
    std::lock_guard lock(serving_mutex_);
    auto found = serving_.find(std::string(it->value().get_string()));
    return found == serving_.end() ? CallContext{} : found->second;
  }
  // A snapshot: the lock is only ever held for bookkeeping, never across a spawn, a handshake or a wait.
  json::object describe() const override {
    std::shared_ptr<Child> c;
    json::object o;
    {
      std::lock_guard lock(mutex_);
      o = {{"kind", external_ ? "mcp_server" : "sandbox"}, {"state", state_name(state_)}, {"restarts", restarts_}, {"crashes", total_crashes_},
           {"last_exit", last_exit_}};
      if (failed_) o["failed"] = failed_->message;
      c = child_;
    }
    if (c && !c->reaped) {
      o["pid"] = c->pid;
      o["isolation"] = c->isolation;
      add_process_figures(c->pid, o);
    }
    if (cgroup_) cgroup_->add_stats(o);
    return o;
  }

 private:
  std::chrono::milliseconds budget(const CallContext& ctx) const {
    if (!ctx.deadline) return options_.call_timeout;
    // Rounded up: a 5000 ms deadline set a few microseconds ago is still reported as 5000 ms.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*ctx.deadline - std::chrono::system_clock::now());
    return std::max(left, std::chrono::milliseconds(1));
  }

  // One request to the plugin's process, waiting (within the call's own deadline) for a restart first
  // where the process is gone.
  Result<json::value> call(std::string_view method, const json::value& params, std::chrono::milliseconds timeout, bool restart = true) {
    const auto deadline = Clock::now() + timeout;
    XCORE_ASSIGN_OR_RETURN(auto c, running_child(restart, deadline, method, timeout));
    auto r = c->peer->call(method, params, deadline);
    if (r) return r;
    if (r.error().code == ErrorCode::timeout) {
      // A plugin that misses a deadline may be stuck for good: end it; the next call starts a fresh one.
      const auto reason = fmt::format("killed after missing the {} ms deadline of '{}'", timeout.count(), method);
      c->peer->close(Error{ErrorCode::plugin_crashed, reason});
      c->end_for(reason);
      note_crash(*c);
      return Error{ErrorCode::timeout, fmt::format("plugin '{}' did not answer '{}' within {} ms; it was stopped and will be restarted",
                                                   manifest_.id, method, timeout.count())};
    }
    if (r.error().code == ErrorCode::plugin_crashed) {
      // A protocol error is the host's reason to end it: say so, rather than how the kill looked.
      if (r.error().message.starts_with("protocol error")) c->end_for(fmt::format("killed by the host after a {}", r.error().message));
      else c->reap(std::chrono::milliseconds(500));
      note_crash(*c);
      return Error{ErrorCode::plugin_crashed,
                   fmt::format("plugin '{}' crashed during '{}': {} ({})", manifest_.id, method, c->ended(), r.error().message)};
    }
    return r;
  }

  // The supervisor: `running` with a live process answers at once. A process that is gone starts a
  // restart on the supervisor's thread (backoff, spawn, handshake, load and enable there, never under the
  // lock); callers wait on the condition with their own deadline, and see the start's error if it failed.
  Result<std::shared_ptr<Child>> running_child(bool restart, Clock::time_point deadline, std::string_view method, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    std::uint64_t attempts_seen = attempts_done_;
    for (;;) {
      if (destroying_) return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is being unloaded", manifest_.id)};
      if (failed_) return *failed_;
      if (state_ == State::running) {
        if (child_ && !child_->peer->closed()) return child_;
        if (attempts_done_ != attempts_seen && start_error_) return *start_error_;  // the restart we waited for did not come up
        if (!restart) return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is not running", manifest_.id)};
        begin_restart();
        attempts_seen = attempts_done_;
      }
      if (!restart) return Error{ErrorCode::unavailable, fmt::format("plugin '{}' is restarting", manifest_.id)};
      if (!cv_.wait_until(lock, deadline, [&] { return destroying_ || state_ == State::running || state_ == State::failed; }))
        return Error{ErrorCode::timeout, fmt::format("plugin '{}' is restarting and was not back within the {} ms deadline of '{}'{}", manifest_.id,
                                                     timeout.count(), method, last_exit_.empty() ? "" : fmt::format(" (after: {})", last_exit_))};
    }
  }

  // Caller holds mutex_, state running. The old process (if any) goes to the supervisor's thread.
  void begin_restart() {
    state_ = State::backoff;
    if (restarter_.joinable()) restarter_.join();  // done: it left `starting` before we could get here
    restarter_ = std::thread([this, old = std::move(child_)]() mutable { restart(std::move(old)); });
    name_thread(restarter_, "xcore-restart-" + manifest_.id);
  }

  void restart(std::shared_ptr<Child> old) {
    if (old) {
      old->reap(std::chrono::milliseconds(500));
      note_crash(*old);
      old.reset();
    }
    json::object config;
    bool loaded = false, enabled = false;
    {
      std::unique_lock lock(mutex_);
      if (auto failure = over_budget()) return publish_failure(lock, *failure);
      const auto delay = crashes_.empty() ? std::chrono::milliseconds(0)
                                          : std::min(options_.backoff_max, options_.backoff_base * (1 << std::min<std::size_t>(crashes_.size() - 1, 16)));
      if (cv_.wait_for(lock, delay, [&] { return destroying_; })) return end_attempt(lock, std::nullopt);
      state_ = State::starting;
      config = config_;
      loaded = loaded_;
      enabled = enabled_;
    }
    services_.reset_plugin_state();
    auto started = spawn();
    Result<void> brought = ok();
    if (started) {
      // Bring the new process to where the old one was.
      auto until = Clock::now() + options_.start_timeout;
      if (loaded && !external_) brought = unwrap((*started)->peer->call("xcore/load", json::object{{"config", config}}, until));
      if (brought && enabled && !external_) brought = unwrap((*started)->peer->call("xcore/enable", json::object{}, until));
      if (!brought) {
        stop(*started);
        started = std::move(brought).error();
      }
    }
    std::unique_lock lock(mutex_);
    starting_.reset();
    if (!started && destroying_) return end_attempt(lock, std::nullopt);
    if (!started) {
      // A process that could not be started after a crash is one more crash: a plugin that never comes
      // back ends `failed` within its budget instead of being retried for ever.
      count_crash_locked(started.error().message);
      if (auto failure = over_budget()) return publish_failure(lock, *failure);
      return end_attempt(lock, started.error());
    }
    if (destroying_) {
      lock.unlock();
      stop(*started);
      lock.lock();
      return end_attempt(lock, std::nullopt);
    }
    child_ = std::move(*started);
    ++restarts_;
    services_.log(LogLevel::warn, fmt::format("restarted (restart {}, after: {})", restarts_, last_exit_));
    end_attempt(lock, std::nullopt);
  }

  static Result<void> unwrap(Result<json::value> r) { return r ? ok() : Result<void>(std::move(r).error()); }

  // Caller holds mutex_. The crash budget: this many crashes within the window, and the plugin is failed.
  std::optional<Error> over_budget() {
    const auto now = Clock::now();
    while (!crashes_.empty() && now - crashes_.front() > options_.crash_window) crashes_.pop_front();
    if (crashes_.size() < options_.crash_budget) return std::nullopt;
    return Error{ErrorCode::unavailable, fmt::format("plugin '{}' failed: {} crashes within {} s (last: {})", manifest_.id, crashes_.size(),
                                                     options_.crash_window.count(), last_exit_)};
  }

  void end_attempt(std::unique_lock<std::mutex>& lock, std::optional<Error> error) {
    start_error_ = std::move(error);
    ++attempts_done_;
    state_ = State::running;
    lock.unlock();
    cv_.notify_all();
  }

  // The host hears of it once, from here, before the callers waiting for the restart are woken (so they
  // find the plugin failed), and without the lock: it reacts, and may ask this runner things.
  void publish_failure(std::unique_lock<std::mutex>& lock, Error failure) {
    failed_ = failure;
    const bool tell = !destroying_;
    lock.unlock();
    if (tell) services_.runner_failed(failure);
    lock.lock();
    state_ = State::failed;
    ++attempts_done_;
    lock.unlock();
    cv_.notify_all();
  }

  // Records a crash once per process.
  void note_crash(Child& c) {
    std::lock_guard lock(mutex_);
    if (counted_.contains(c.pid)) return;
    counted_.insert(c.pid);
    count_crash_locked(c.ended());
    services_.log(LogLevel::error, fmt::format("process {} {}", c.pid, last_exit_));
  }

  // Caller holds mutex_. One more crash against the budget (a process that died, or one that never started).
  void count_crash_locked(std::string reason) {
    ++total_crashes_;
    crashes_.push_back(Clock::now());
    last_exit_ = std::move(reason);
  }

  // Starts a process and completes the handshake. Called by one thread at a time (the first start, then
  // the supervisor's thread), without the lock: it reads only what prepare() settled.
  Result<std::shared_ptr<Child>> spawn() {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
      return Error{ErrorCode::unavailable, fmt::format("pipe failed: {}", std::strerror(errno))};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);  // the child inherits no other fd of the host
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    const std::string host = options_.plugin_host.string();
    const std::string manifest = manifest_.file.string();
    const std::string binary = binary_.string();
    const std::string parent = std::to_string(::getpid());
    const std::string policy = xcore::json_text::serialize(policy_.to_json());
    std::vector<char*> argv{const_cast<char*>(host.c_str()), const_cast<char*>("--manifest"), const_cast<char*>(manifest.c_str()),
                            const_cast<char*>(external_ ? "--exec" : "--binary"), const_cast<char*>(external_ ? "1" : binary.c_str()),
                            const_cast<char*>("--parent"), const_cast<char*>(parent.c_str()), const_cast<char*>("--policy"),
                            const_cast<char*>(policy.c_str()), nullptr};
    std::vector<char*> envp;
    for (auto& e : environment_) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::uint64_t oom_before = cgroup_ ? cgroup_->oom_kills() : 0;
    pid_t pid = -1;
    int rc = spawn_on_lasting_thread([&] { return ::posix_spawn(&pid, host.c_str(), &fa, &attr, argv.data(), envp.data()); });
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      ::close(in[1]);
      ::close(out[0]);
      ::close(err[0]);
      return Error{ErrorCode::unavailable, fmt::format("cannot start {}: {}", host, std::strerror(rc))};
    }
    auto c = std::make_shared<Child>();
    c->pid = pid;
    c->cgroup = cgroup_;
    c->oom_kills_at_start = oom_before;
    jsonrpc::RpcPeer::Options po;
    po.max_line = options_.max_message;
    po.thread_name = "xcore-rpc-" + manifest_.id;
    c->peer = std::make_unique<RpcPeer>(out[0], in[1], po);
    // stderr always drains, so a chatty plugin never blocks on a full pipe, and reaches the host's log at
    // a bounded rate (a token bucket of bytes): what is over it is counted and reported once a second.
    c->stderr_reader = std::thread([fd = err[0], this, rate = options_.stderr_bytes_per_second, burst = options_.stderr_burst_bytes] {
      std::string buf;
      char chunk[4096];
      double tokens = static_cast<double>(burst);
      auto last = Clock::now(), reported = last;
      std::uint64_t dropped_lines = 0, dropped_bytes = 0;
      auto report = [&] {
        if (dropped_lines == 0) return;
        services_.log(LogLevel::warn, fmt::format("stderr: {} lines ({} bytes) dropped: over the limit of {} bytes/s", dropped_lines, dropped_bytes, rate));
        dropped_lines = dropped_bytes = 0;
      };
      for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof(chunk));
        if (n <= 0) break;
        buf.append(chunk, static_cast<std::size_t>(n));
        const auto now = Clock::now();
        tokens = std::min(static_cast<double>(burst), tokens + std::chrono::duration<double>(now - last).count() * static_cast<double>(rate));
        last = now;
        for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
          const auto line = std::string_view(buf).substr(0, std::min<std::size_t>(nl, 4096));
          if (!line.empty()) {
            if (tokens >= static_cast<double>(line.size())) {
              tokens -= static_cast<double>(line.size());
              services_.log(LogLevel::warn, fmt::format("stderr: {}", line));
            } else {
              ++dropped_lines;
              dropped_bytes += line.size();
            }
          }
          buf.erase(0, nl + 1);
        }
        if (buf.size() > 65536) buf.clear();
        if (now - reported >= std::chrono::seconds(1)) {
          report();
          reported = now;
        }
      }
      report();
      ::close(fd);
    });
    name_thread(c->stderr_reader, "xcore-err-" + manifest_.id);
    std::weak_ptr<Child> weak = c;
    c->peer->start([this, weak](const std::string& method, const json::value& params) { return serve_host(weak, method, params); },
                   [this](const std::string& method, const json::value& params) { on_notification(method, params); }, nullptr);
    {
      std::lock_guard lock(mutex_);
      starting_ = c;  // the destructor ends a handshake in progress rather than wait it out
      if (destroying_) c->peer->close(Error{ErrorCode::unavailable, "stopped"});
    }
    auto init = c->peer->call("initialize", wire::initialize_params("xcore", "0.1.0"), Clock::now() + options_.start_timeout);
    if (!init) {
      c->reap(std::chrono::milliseconds(200));
      return Error{ErrorCode::plugin_crashed,
                   fmt::format("plugin '{}' did not start: {} ({})", manifest_.id, init.error().message, c->ended())};
    }
    // MCP version negotiation: the server answers the version it will speak; it must be one of ours.
    std::string_view version;
    if (init->is_object())
      if (auto v = init->get_object().find("protocolVersion"); v != init->get_object().end() && v->value().is_string())
        version = v->value().get_string();
    if (!wire::supported_protocol(version)) {
      c->kill_group();
      c->reap(std::chrono::milliseconds(200));
      return Error{ErrorCode::incompatible, fmt::format("plugin '{}' answered MCP protocol version '{}'; supported: {} to {}", manifest_.id,
                                                        version, wire::kProtocolVersions[0], std::end(wire::kProtocolVersions)[-1])};
    }
    // The report is what the host sees from outside. Our plugin host's own list adds what cannot be seen
    // (Landlock, rlimits, the private /proc) but only where the outside does not contradict it; an
    // external server's claims are ignored.
    json::array claimed;
    if (!external_ && init->is_object())
      if (auto it = init->get_object().find("_meta"); it != init->get_object().end() && it->value().is_object())
        if (auto iso = it->value().get_object().find("isolation"); iso != it->value().get_object().end() && iso->value().is_array())
          claimed = iso->value().get_array();
    c->isolation = observed_isolation(pid);
    for (const auto& m : claimed)
      if (m.is_string() && !observable(m.get_string()) && std::find(c->isolation.begin(), c->isolation.end(), m) == c->isolation.end())
        c->isolation.push_back(m);
    if (cgroup_)
      for (const auto& m : cgroup_->mechanisms()) c->isolation.emplace_back(m);
    (void)c->peer->notify("notifications/initialized", json::object{});
    return c;
  }

  // On the reader thread: anything that talks to the plugin is handed to the refresher thread.
  void on_notification(const std::string& method, const json::value& params) {
    if (method == "notifications/tools/list_changed") {
      std::lock_guard lock(refresh_mutex_);
      refresh_pending_ = true;
      if (!refresher_.joinable())
        refresher_ = std::thread([this] {
          std::unique_lock lk(refresh_mutex_);
          for (;;) {
            refresh_cv_.wait(lk, [&] { return refresh_stop_ || refresh_pending_; });
            if (refresh_stop_) return;
            refresh_pending_ = false;
            lk.unlock();
            services_.refresh_tools();
            lk.lock();
          }
        });
        name_thread(refresher_, "xcore-tools-" + manifest_.id);
      refresh_cv_.notify_all();
      return;
    }
    if (method == wire::host_method(host_service::log) && params.is_object()) {
      const auto& p = params.get_object();
      LogLevel level = LogLevel::info;
      if (auto it = p.find("level"); it != p.end() && it->value().is_string()) {
        auto l = it->value().get_string();
        level = l == "trace" ? LogLevel::trace : l == "debug" ? LogLevel::debug : l == "warn" ? LogLevel::warn : l == "error" ? LogLevel::error : LogLevel::info;
      }
      if (auto it = p.find("message"); it != p.end() && it->value().is_string()) services_.log(level, it->value().get_string());
    }
  }

  // Requests from the plugin's process to host services.
  Result<json::value> serve_host(const std::weak_ptr<Child>& weak, const std::string& method, const json::value& params) {
    if (!params.is_object()) return Error{ErrorCode::invalid_argument, "params must be an object"};
    const auto& p = params.get_object();
    auto str = [&](const char* k) -> std::string {
      auto it = p.find(k);
      return it != p.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string();
    };
    auto ctx = [&] { return served_context(p); };
    auto arg = [&](const char* k) { return p.contains(k) ? p.at(k) : json::value(); };
    if (method == wire::host_method(host_service::subscribe_hook)) {
      auto child_id = arg("subscription").to_number<std::uint64_t>();
      auto band_n = arg("band").is_int64() ? arg("band").get_int64() : 1;
      auto band = band_n <= 0 ? HookBand::first : band_n >= 2 ? HookBand::last : HookBand::normal;
      int priority = arg("priority").is_int64() ? static_cast<int>(arg("priority").get_int64()) : 0;
      HookHandler h = [this, weak, child_id](const HookEvent& ev) -> HookReply {
        auto c = weak.lock();
        if (!c || c->peer->closed()) return HookReply::none();
        auto r = c->peer->call("xcore/hook", json::object{{"subscription", child_id}, {"hook", ev.name}, {"payload", ev.payload}, {"tenant", ev.tenant}},
                               Clock::now() + options_.hook_timeout);
        if (!r) return HookReply::fail(r.error());
        return wire::reply_from_json(*r);
      };
      XCORE_ASSIGN_OR_RETURN(auto host_id, services_.subscribe_hook(str("hook"), band, priority, std::move(h)));
      if (auto c = weak.lock()) {
        std::lock_guard lock(c->subscriptions_mutex);
        c->subscriptions[child_id] = host_id;
      }
      return json::object{};
    }
    if (method == wire::host_method(host_service::unsubscribe_hook)) {
      auto c = weak.lock();
      if (!c) return json::object{};
      std::uint64_t host_id = 0;
      {
        std::lock_guard lock(c->subscriptions_mutex);
        auto it = c->subscriptions.find(arg("subscription").to_number<std::uint64_t>());
        if (it == c->subscriptions.end()) return Error{ErrorCode::not_found, "no such subscription"};
        host_id = it->second;
        c->subscriptions.erase(it);
      }
      services_.unsubscribe_hook(host_id);
      return json::object{};
    }
    // Every other service by name, with the context of the call it serves.
    if (auto service = wire::host_service_of(method); service && host_service::by_name(*service)) return services_.call(*service, p, ctx());
    return Error{ErrorCode::not_found, fmt::format("unknown host method '{}'", method)};
  }

  // Asks the process to leave (for an MCP server, as MCP's stdio shutdown says: its input closed; for
  // ours, a shutdown notice), waits a grace period, then SIGTERM, then SIGKILL.
  void stop(const std::shared_ptr<Child>& c) {
    if (!c) return;
    if (!c->peer->closed()) {
      if (external_) c->peer->close_output();
      else (void)c->peer->notify("xcore/shutdown", json::object{});
    }
    c->reap(std::chrono::milliseconds(1000), std::chrono::milliseconds(1000));
    c->peer->close(Error{ErrorCode::unavailable, "stopped"});
    services_.log(LogLevel::debug, fmt::format("stopped: {}", c->ended()));
  }

  const PluginManifest manifest_;
  const std::filesystem::path binary_;
  PluginServices& services_;
  SandboxOptions options_;
  IsolationPolicy policy_;
  std::vector<std::string> environment_;
  std::shared_ptr<const Cgroup> cgroup_;

  enum class State { starting, running, backoff, failed };
  static const char* state_name(State s) {
    switch (s) {
      case State::starting: return "starting";
      case State::running: return "running";
      case State::backoff: return "backoff";
      case State::failed: return "failed";
    }
    return "?";
  }

  mutable std::mutex mutex_;
  mutable std::mutex serving_mutex_;
  std::map<std::string, CallContext> serving_;  // Serving
  std::condition_variable cv_;  // state_ changed
  State state_ = State::starting;
  std::thread restarter_;
  std::uint64_t attempts_done_ = 0;
  std::optional<Error> start_error_;  // of the last restart that did not come up
  std::shared_ptr<Child> starting_;   // the process a restart is shaking hands with
  std::shared_ptr<Child> child_;
  json::object config_;
  bool loaded_ = false, enabled_ = false;
  std::deque<Clock::time_point> crashes_;
  std::set<pid_t> counted_;
  std::uint64_t restarts_ = 0, total_crashes_ = 0;
  std::string last_exit_;
  std::optional<Error> failed_;
  bool destroying_ = false;
  const bool external_;

  std::mutex refresh_mutex_;
  std::condition_variable refresh_cv_;
  bool refresh_pending_ = false, refresh_stop_ = false;
  std::thread refresher_;
};

}  // namespace

Result<std::unique_ptr<Runner>> open_sandboxed(const PluginManifest& manifest, const std::filesystem::path& binary,
                                               PluginServices& services, const SandboxOptions& options) {
  auto r = std::make_unique<SandboxRunner>(manifest, binary, services, options);
  XCORE_TRY(r->start_first());
  return std::unique_ptr<Runner>(std::move(r));
}

}  // namespace xcore::inline v1::sandbox
