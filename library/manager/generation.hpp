// One loaded instance of a plugin. Reload creates a new generation beside the old one and swaps.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <xcore/hooks.hpp>
#include <xcore/manifest.hpp>

#include "runners/runner.hpp"

namespace xcore::inline v1 {

struct ManagerCore;  // what GenerationServices needs of the Manager
struct Generation;

// Host services for one generation: enforces the manifest's permissions and owns what the plugin
// subscribed or registered, so tearing the generation down removes all of it.
class GenerationServices final : public PluginServices {
 public:
  GenerationServices(ManagerCore& core, const PluginManifest& manifest, std::weak_ptr<Generation> gen)
      : core_(core), manifest_(manifest), gen_(std::move(gen)) {}

  void log(LogLevel level, std::string_view message) override;
  Result<std::uint64_t> subscribe_hook(std::string_view hook, HookBand band, int priority, HookHandler handler) override;
  bool unsubscribe_hook(std::uint64_t id) override;
  // The services by name (host_services.cpp), over the typed ones below.
  Result<json::value> call(std::string_view service, const json::object& request, const CallContext& ctx) override;

  Result<HookOutcome> emit_hook(std::string_view hook, const json::value& payload, std::string_view tenant);
  Result<ToolResult> call_tool(std::string_view name, const json::value& args, const CallContext& ctx);
  Result<json::value> call_action(std::string_view plugin, std::string_view action, const json::value& params, const CallContext& ctx);
  json::object config();
  Result<void> register_tool(ToolSpec spec);
  Result<void> unregister_tool(std::string_view name);
  Result<std::string> secret(std::string_view name);
  Result<void> may_ask_client(std::string_view method) const;
  Result<void> schedule_job(const json::value& job);
  Result<void> unschedule_job(std::string_view name);
  Result<void> register_route(const json::value& route);
  Result<void> declare_competency(Competency competency);
  std::vector<Competency> runtime_competencies() const;
  std::vector<PluginRoute> routes() const;  // registered at run time

  void reset_plugin_state() override;
  void runner_failed(const Error& why) override;
  void refresh_tools() override;

  void drop_subscriptions();
  std::vector<ToolSpec> runtime_tools() const;

 private:
  bool allowed(std::string_view permission) const;
  // The context of a call this plugin makes: the plugin is the principal, on behalf of the caller.
  CallContext as_plugin(const CallContext& ctx) const;

  ManagerCore& core_;
  const PluginManifest manifest_;  // a copy: the slot's manifest may be replaced by a reload
  std::weak_ptr<Generation> gen_;
  mutable std::mutex mutex_;
  std::vector<Subscription> subscriptions_;
  std::vector<ToolSpec> runtime_tools_;
  std::vector<PluginRoute> runtime_routes_;
  std::vector<Competency> runtime_competencies_;
};

struct Generation {
  std::uint64_t number = 0;
  PluginManifest manifest;
  json::object config;  // effective: defaults applied
  std::filesystem::path shadow;
  std::shared_ptr<std::atomic<bool>> hooks_active = std::make_shared<std::atomic<bool>>(false);
  // Declared before runner_: members are destroyed in reverse, so the code is unmapped first.
  std::unique_ptr<GenerationServices> services;
  std::unique_ptr<Runner> runner;
  std::mutex tools_mutex;
  std::vector<ToolSpec> tools;  // as the plugin listed them (guarded by tools_mutex)

  // In-flight gate: every call into the plugin enters and leaves; close() makes enter() fail and waits.
  bool enter() {
    std::lock_guard lock(gate_mutex_);
    if (closed_) return false;
    ++in_flight_;
    return true;
  }
  void leave() {
    std::lock_guard lock(gate_mutex_);
    if (--in_flight_ == 0 && closed_) gate_cv_.notify_all();
  }
  // True when drained in time.
  bool close_and_drain(std::chrono::milliseconds timeout) {
    std::unique_lock lock(gate_mutex_);
    closed_ = true;
    return gate_cv_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
  }
  std::uint64_t in_flight() const {
    std::lock_guard lock(gate_mutex_);
    return in_flight_;
  }

  ~Generation();

 private:
  mutable std::mutex gate_mutex_;
  std::condition_variable gate_cv_;
  std::uint64_t in_flight_ = 0;
  bool closed_ = false;
};

// Holds a generation entered for the length of one call.
class GenerationLease {
 public:
  GenerationLease() = default;
  explicit GenerationLease(std::shared_ptr<Generation> g) : gen_(std::move(g)) {}
  GenerationLease(GenerationLease&& o) noexcept = default;
  GenerationLease& operator=(GenerationLease&&) = delete;
  ~GenerationLease() {
    if (gen_) gen_->leave();
  }
  Generation* operator->() const { return gen_.get(); }
  Generation& operator*() const { return *gen_; }
  explicit operator bool() const { return gen_ != nullptr; }

 private:
  std::shared_ptr<Generation> gen_;
};

}  // namespace xcore::inline v1
