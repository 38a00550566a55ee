#include "manager/generation.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/glob.hpp"
#include "manager/manager_core.hpp"

namespace xcore::inline v1 {

Generation::~Generation() {
  // Subscriptions first (no handler can be reached), then the plugin instance and its code.
  if (services) services->drop_subscriptions();
  runner.reset();
  services.reset();
  if (!shadow.empty()) {
    std::error_code ec;
    std::filesystem::remove(shadow, ec);
  }
}

bool GenerationServices::allowed(std::string_view permission) const {
  for (const auto& p : manifest_.permissions)
    if (glob_match(p, permission)) return true;
  return false;
}

void GenerationServices::log(LogLevel level, std::string_view message) { core_.log(level, manifest_.id, message); }

namespace {
// A plugin's own hooks live under "<id>." and need no permission.
bool own_hook(std::string_view hook, const std::string& id) {
  return hook.size() > id.size() && hook.starts_with(id) && hook[id.size()] == '.';
}
}  // namespace

Result<void> GenerationServices::register_route(const json::value& route) {
  XCORE_ASSIGN_OR_RETURN(auto r, parse_route(route));
  XCORE_TRY(core_.check_route(manifest_.id, r));
  std::lock_guard lock(mutex_);
  for (const auto& existing : manifest_.routes)
    if (existing.method == r.method && existing.path == r.path)
      return Error{ErrorCode::already_exists, fmt::format("route {} {} is declared in the manifest", r.method, r.path)};
  for (const auto& existing : runtime_routes_)
    if (existing.method == r.method && existing.path == r.path)
      return Error{ErrorCode::already_exists, fmt::format("route {} {} is already registered", r.method, r.path)};
  runtime_routes_.push_back(std::move(r));
  return ok();
}

std::vector<PluginRoute> GenerationServices::routes() const {
  std::lock_guard lock(mutex_);
  return runtime_routes_;
}

Result<void> GenerationServices::schedule_job(const json::value& job) { return core_.schedule_job(manifest_.id, job); }
Result<void> GenerationServices::unschedule_job(std::string_view name) { return core_.unschedule_job(manifest_.id, name); }

Result<std::string> GenerationServices::secret(std::string_view name) {
  if (!allowed(fmt::format("secrets.read:{}", name)))
    return Error{ErrorCode::permission_denied,
                 fmt::format("plugin '{}' may not read secret '{}': its manifest needs the permission 'secrets.read:{}'", manifest_.id, name, name)};
  return core_.secret(manifest_.id, name);
}

// Asking the caller's client costs its user (a model's tokens, a question put to a person): a plugin does so
// only for the methods its manifest names, and only for these.
Result<void> GenerationServices::may_ask_client(std::string_view method) const {
  constexpr std::string_view kAskable[] = {"sampling/createMessage", "elicitation/create", "roots/list"};
  if (std::find(std::begin(kAskable), std::end(kAskable), method) == std::end(kAskable))
    return Error{ErrorCode::invalid_argument,
                 fmt::format("host service 'client_request': '{}' is not a request a plugin may send a client (sampling/createMessage, "
                             "elicitation/create, roots/list)", method)};
  if (!allowed(fmt::format("client.request:{}", method)))
    return Error{ErrorCode::permission_denied,
                 fmt::format("plugin '{}' may not send '{}' to its caller's client: its manifest needs the permission 'client.request:{}'",
                             manifest_.id, method, method)};
  return ok();
}

Result<HookOutcome> GenerationServices::emit_hook(std::string_view hook, const json::value& payload, std::string_view tenant) {
  if (!own_hook(hook, manifest_.id) && !allowed(fmt::format("hooks.emit:{}", hook)))
    return Error{ErrorCode::permission_denied,
                 fmt::format("plugin '{}' may not emit hook '{}': its manifest needs the permission 'hooks.emit:{}'", manifest_.id, hook, hook)};
  return core_.bus().emit(hook, payload, tenant);
}

Result<std::uint64_t> GenerationServices::subscribe_hook(std::string_view hook, HookBand band, int priority, HookHandler handler) {
  if (!own_hook(hook, manifest_.id) && !allowed(fmt::format("hooks.subscribe:{}", hook)))
    return Error{ErrorCode::permission_denied,
                 fmt::format("plugin '{}' may not subscribe to hook '{}': its manifest needs the permission 'hooks.subscribe:{}'",
                             manifest_.id, hook, hook)};
  auto gen = gen_.lock();
  if (!gen) return Error{ErrorCode::unavailable, "the plugin is being unloaded"};
  // Every call into the plugin passes its generation's gate, so unload can wait for it.
  HookHandler gated = [weak = gen_, h = std::move(handler)](const HookEvent& ev) -> HookReply {
    auto g = weak.lock();
    if (!g || !g->enter()) return HookReply::none();
    GenerationLease lease(std::move(g));
    return h(ev);
  };
  SubscribeOptions opt;
  opt.band = band;
  opt.priority = priority;
  opt.owner = manifest_.id;
  opt.active = gen->hooks_active;
  XCORE_ASSIGN_OR_RETURN(auto sub, core_.bus().subscribe(hook, std::move(gated), std::move(opt)));
  auto id = sub.id();
  std::lock_guard lock(mutex_);
  subscriptions_.push_back(std::move(sub));
  return id;
}

bool GenerationServices::unsubscribe_hook(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  for (auto it = subscriptions_.begin(); it != subscriptions_.end(); ++it)
    if (it->id() == id) {
      subscriptions_.erase(it);
      return true;
    }
  return false;
}

void GenerationServices::drop_subscriptions() {
  std::vector<Subscription> subs;
  {
    std::lock_guard lock(mutex_);
    subs.swap(subscriptions_);
  }
  subs.clear();
}

CallContext GenerationServices::as_plugin(const CallContext& ctx) const {
  CallContext c = ctx;
  c.caller_plugin = manifest_.id;
  c.principal = Principal::plugin(manifest_.id, manifest_.permissions);
  c.principal.on_behalf_of = std::make_shared<const Principal>(ctx.principal);
  return c;
}

Result<ToolResult> GenerationServices::call_tool(std::string_view name, const json::value& args, const CallContext& ctx) {
  auto found = core_.registry().find(name, ctx.tenant);
  if (!found) return Error{ErrorCode::not_found, fmt::format("no tool named '{}'", name)};
  // The registry checks the plugin's grants (tools.call, the tool's permissions) and its caller's.
  return core_.registry().invoke(found->qualified_name, args, as_plugin(ctx));
}

Result<json::value> GenerationServices::call_action(std::string_view plugin, std::string_view action, const json::value& params,
                                                    const CallContext& ctx) {
  return core_.call_action(plugin, action, params, as_plugin(ctx));
}

json::object GenerationServices::config() {
  auto g = gen_.lock();
  return g ? g->config : json::object();
}

Result<void> GenerationServices::register_tool(ToolSpec spec) {
  spec.plugin = manifest_.id;
  XCORE_TRY(spec.validate());
  {
    std::lock_guard lock(mutex_);
    for (const auto& t : runtime_tools_)
      if (t.name == spec.name) return Error{ErrorCode::already_exists, fmt::format("tool '{}' is already registered", spec.name)};
    runtime_tools_.push_back(std::move(spec));
  }
  auto g = gen_.lock();
  if (!g) return ok();
  auto r = core_.tools_changed(manifest_.id, *g);
  if (!r) {
    std::lock_guard lock(mutex_);
    runtime_tools_.pop_back();
  }
  return r;
}

Result<void> GenerationServices::unregister_tool(std::string_view name) {
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(runtime_tools_.begin(), runtime_tools_.end(), [&](const auto& t) { return t.name == name; });
    if (it == runtime_tools_.end())
      return Error{ErrorCode::not_found, fmt::format("tool '{}' was not registered at run time", name)};
    runtime_tools_.erase(it);
  }
  auto g = gen_.lock();
  return g ? core_.tools_changed(manifest_.id, *g) : ok();
}

Result<void> GenerationServices::declare_competency(Competency competency) {
  competency.plugin = manifest_.id;
  competency.tenant.clear();
  {
    std::lock_guard lock(mutex_);
    std::erase_if(runtime_competencies_, [&](const Competency& c) { return c.id == competency.id; });
    runtime_competencies_.push_back(std::move(competency));
  }
  if (auto g = gen_.lock()) core_.competencies_changed(manifest_.id, *g);
  return ok();
}

std::vector<Competency> GenerationServices::runtime_competencies() const {
  std::lock_guard lock(mutex_);
  return runtime_competencies_;
}

void GenerationServices::reset_plugin_state() {
  drop_subscriptions();
  bool had_tools, had_competencies;
  {
    std::lock_guard lock(mutex_);
    had_tools = !runtime_tools_.empty();
    runtime_tools_.clear();
    had_competencies = !runtime_competencies_.empty();
    runtime_competencies_.clear();
  }
  if (had_tools)
    if (auto g = gen_.lock()) (void)core_.tools_changed(manifest_.id, *g);
  if (had_competencies)
    if (auto g = gen_.lock()) core_.competencies_changed(manifest_.id, *g);
}

void GenerationServices::runner_failed(const Error& why) {
  if (auto g = gen_.lock()) core_.runner_failed(manifest_.id, *g, why);
}

void GenerationServices::refresh_tools() {
  if (auto g = gen_.lock()) core_.refresh_tools(manifest_.id, *g);
}

std::vector<ToolSpec> GenerationServices::runtime_tools() const {
  std::lock_guard lock(mutex_);
  return runtime_tools_;
}

}  // namespace xcore::inline v1
