#include <xcore/hooks.hpp>
#include <xcore/tools.hpp>

#include "tools/plugin_tools.hpp"

#include <boost/json/value_from.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <fmt/format.h>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include "tools/call_metrics.hpp"
#include "core/glob.hpp"
#include "core/string_map.hpp"
#include "core/trace_id.hpp"
#include <xcore/json_schema.hpp>

namespace xcore::inline v1 {
namespace {

struct ToolEntry {
  ToolSpec spec;
  std::string qualified;
  std::shared_ptr<const JsonSchema> input, output;
  ToolHandler handler;
  std::uint64_t seq = 0;
  std::atomic<bool> enabled{true};
  std::shared_ptr<CallMetrics> metrics = std::make_shared<CallMetrics>();
};

using EntryPtr = std::shared_ptr<ToolEntry>;

std::string qualify(const ToolSpec& s) { return s.plugin.empty() ? s.name : s.plugin + "." + s.name; }

bool visible_to(const ToolEntry& e, std::string_view tenant) { return e.spec.tenant.empty() || e.spec.tenant == tenant; }

Result<EntryPtr> make_entry(ToolSpec spec) {
  XCORE_TRY(spec.validate());
  auto e = std::make_shared<ToolEntry>();
  json::value in = spec.input_schema.empty() ? json::value(json::object{{"type", "object"}}) : json::value(spec.input_schema);
  XCORE_ASSIGN_OR_RETURN(e->input, JsonSchema::compile(in));
  if (spec.output_schema) {
    XCORE_ASSIGN_OR_RETURN(e->output, JsonSchema::compile(*spec.output_schema));
  }
  e->qualified = qualify(spec);
  e->spec = std::move(spec);
  return e;
}

}  // namespace

struct detail::ToolRegistryState {
  HookBus* hooks = nullptr;
  mutable std::shared_mutex mutex;
  StringMap<EntryPtr> by_qualified;
  StringMap<std::vector<EntryPtr>> by_name;  // in seq order
  std::uint64_t seq = 0;

  // Caller holds the lock. nullptr when nothing matches; a disabled match is returned so the caller
  // can say "unavailable" rather than "not found".
  EntryPtr resolve(std::string_view name, std::string_view tenant) const {
    if (auto it = by_qualified.find(name); it != by_qualified.end() && visible_to(*it->second, tenant))
      return it->second;
    EntryPtr disabled;
    if (auto it = by_name.find(name); it != by_name.end())
      for (const auto& e : it->second)
        if (visible_to(*e, tenant)) {
          if (e->enabled.load(std::memory_order_acquire)) return e;
          if (!disabled) disabled = e;
        }
    return disabled;
  }

  void insert_locked(const EntryPtr& e) {
    e->seq = ++seq;
    by_qualified[e->qualified] = e;
    by_name[e->spec.name].push_back(e);
  }

  void erase_locked(const std::string& qualified) {
    auto it = by_qualified.find(qualified);
    if (it == by_qualified.end()) return;
    auto e = it->second;
    by_qualified.erase(it);
    auto& v = by_name[e->spec.name];
    v.erase(std::remove(v.begin(), v.end(), e), v.end());
    if (v.empty()) by_name.erase(e->spec.name);
  }

  // The bare name resolves to the first registered tool of that name; the others are reached qualified.
  std::string exposed_name_locked(const ToolEntry& e) const {
    auto it = by_name.find(e.spec.name);
    if (it != by_name.end() && !it->second.empty() && it->second.front().get() == &e) return e.spec.name;
    return e.qualified;
  }

  ToolInfo info_locked(const ToolEntry& e) const {
    return ToolInfo{e.spec, exposed_name_locked(e), e.qualified, e.enabled.load(), e.metrics->snapshot()};
  }
};

// ---- ToolRegistration --------------------------------------------------------------------------------

ToolRegistration::ToolRegistration(ToolRegistration&& o) noexcept
    : registry_(std::exchange(o.registry_, {})), qualified_(std::move(o.qualified_)) {}
ToolRegistration& ToolRegistration::operator=(ToolRegistration&& o) noexcept {
  if (this != &o) {
    reset();
    registry_ = std::exchange(o.registry_, {});
    qualified_ = std::move(o.qualified_);
  }
  return *this;
}
ToolRegistration::~ToolRegistration() { reset(); }
void ToolRegistration::reset() {
  if (auto state = registry_.lock()) {
    std::unique_lock lock(state->mutex);
    state->erase_locked(qualified_);
  }
  registry_.reset();
}

// ---- ToolRegistry ------------------------------------------------------------------------------------

ToolRegistry::ToolRegistry(HookBus* hooks) : state_(std::make_shared<detail::ToolRegistryState>()) {
  state_->hooks = hooks;
  if (hooks) {
    (void)hooks->define({"tool.before_call", "before a tool runs; a handler may veto the call", false, false, true});
    (void)hooks->define({"tool.after_call", "after a tool ran, with its outcome and duration"});
  }
}
ToolRegistry::~ToolRegistry() = default;

Result<ToolRegistration> ToolRegistry::add(ToolSpec spec, ToolHandler handler) {
  if (!handler) return Error{ErrorCode::invalid_argument, "tool handler is empty"};
  spec.plugin.clear();
  XCORE_ASSIGN_OR_RETURN(auto e, make_entry(std::move(spec)));
  e->handler = std::move(handler);
  std::unique_lock lock(state_->mutex);
  if (state_->by_qualified.contains(e->qualified))
    return Error{ErrorCode::already_exists, fmt::format("a tool named '{}' is already registered", e->qualified)};
  state_->insert_locked(e);
  return ToolRegistration(state_, e->qualified);
}

// ---- the Manager's plugin tool sets -----------------------------------------------------------------

Result<void> detail::PluginTools::check(const std::vector<ToolSpec>& specs) {
  std::set<std::string_view> seen;
  for (const auto& s : specs) {
    XCORE_TRY(s.validate());
    if (!seen.insert(s.name).second)
      return Error{ErrorCode::already_exists, fmt::format("tool '{}' is declared twice", s.name)};
  }
  return ok();
}

Result<void> detail::PluginTools::replace(ToolRegistry& registry, std::string_view plugin, std::vector<ToolSpec> specs,
                                          const std::function<ToolHandler(const ToolSpec&)>& make_handler) {
  auto& state_ = registry.state_;
  if (plugin.empty()) return Error{ErrorCode::invalid_argument, "plugin id is empty"};
  XCORE_TRY(check(specs));
  // Compile everything before touching the registry, so a bad schema changes nothing.
  std::vector<EntryPtr> fresh;
  for (auto& s : specs) {
    s.plugin = std::string(plugin);
    XCORE_ASSIGN_OR_RETURN(auto e, make_entry(std::move(s)));
    e->handler = make_handler(e->spec);
    fresh.push_back(std::move(e));
  }
  std::unique_lock lock(state_->mutex);
  std::unordered_map<std::string, EntryPtr> old;
  for (const auto& [q, e] : state_->by_qualified)
    if (e->spec.plugin == plugin) old.emplace(q, e);
  for (auto& e : fresh) {
    if (auto it = old.find(e->qualified); it != old.end()) {
      e->metrics = it->second->metrics;  // the same tool across a reload keeps its history
      e->enabled.store(it->second->enabled.load());
    }
  }
  for (const auto& [q, e] : old) state_->erase_locked(q);
  for (const auto& e : fresh) {
    // Keep a reloaded tool's place in bare-name resolution by reusing its old sequence number.
    auto it = old.find(e->qualified);
    state_->insert_locked(e);
    if (it != old.end()) {
      e->seq = it->second->seq;
      auto& v = state_->by_name[e->spec.name];
      std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a->seq < b->seq; });
    }
  }
  return ok();
}

std::size_t detail::PluginTools::remove(ToolRegistry& registry, std::string_view plugin) {
  auto& state_ = registry.state_;
  std::unique_lock lock(state_->mutex);
  std::vector<std::string> names;
  for (const auto& [q, e] : state_->by_qualified)
    if (e->spec.plugin == plugin) names.push_back(q);
  for (const auto& q : names) state_->erase_locked(q);
  return names.size();
}

void detail::PluginTools::set_enabled(ToolRegistry& registry, std::string_view plugin, bool enabled) {
  auto& state_ = registry.state_;
  std::shared_lock lock(state_->mutex);
  for (const auto& [q, e] : state_->by_qualified)
    if (e->spec.plugin == plugin) e->enabled.store(enabled, std::memory_order_release);
}

// ---- lookups ----------------------------------------------------------------------------------------

std::optional<ToolInfo> ToolRegistry::find(std::string_view name, std::string_view tenant) const {
  std::shared_lock lock(state_->mutex);
  auto e = state_->resolve(name, tenant);
  if (!e) return std::nullopt;
  return state_->info_locked(*e);
}

std::vector<ToolInfo> ToolRegistry::list(const ToolFilter& f) const {
  std::vector<ToolInfo> out;
  std::shared_lock lock(state_->mutex);
  for (const auto& [q, e] : state_->by_qualified) {
    if (!f.include_disabled && !e->enabled.load()) continue;
    if (!f.category.empty() && e->spec.category != f.category) continue;
    if (!f.plugin.empty() && e->spec.plugin != f.plugin) continue;
    if (f.tenant && !visible_to(*e, *f.tenant)) continue;
    if (!f.competency.empty() &&
        std::find(e->spec.competencies.begin(), e->spec.competencies.end(), f.competency) == e->spec.competencies.end())
      continue;
    out.push_back(state_->info_locked(*e));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.qualified_name < b.qualified_name; });
  return out;
}

json::array ToolRegistry::export_mcp(const ToolFilter& f) const {
  json::array out;
  for (const auto& t : list(f)) out.push_back(t.spec.to_mcp(t.exposed_name));
  return out;
}

json::array ToolRegistry::export_openai(const ToolFilter& f) const {
  json::array out;
  for (const auto& t : list(f)) {
    // OpenAI function names allow [a-zA-Z0-9_-] only, so dots become underscores.
    std::string fname = t.exposed_name;
    std::replace(fname.begin(), fname.end(), '.', '_');
    json::object fn{{"name", fname},
                    {"description", t.spec.description.empty() ? t.spec.title : t.spec.description},
                    {"parameters", t.spec.input_schema.empty() ? json::object{{"type", "object"}, {"properties", json::object{}}}
                                                               : t.spec.input_schema}};
    out.push_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
  }
  return out;
}

namespace {
// The principal must hold `tools.call:<tool>` (by the name it called or the qualified one) and, along its
// whole on-behalf-of chain, each permission the tool requires.
std::optional<Error> check_caller(const ToolEntry& e, std::string_view called, const Principal& who) {
  if (who.unrestricted()) return std::nullopt;
  const auto gate = fmt::format("tools.call:{}", e.qualified);
  if (!who.holds(gate) && (called == e.qualified || !who.holds(fmt::format("tools.call:{}", called))))
    return Error{ErrorCode::permission_denied, fmt::format("{} may not call tool '{}': it needs the permission '{}'", who.describe(), e.qualified, gate)};
  for (const auto& need : e.spec.permissions)
    if (!who.allows(need))
      return Error{ErrorCode::permission_denied, fmt::format("calling tool '{}' needs permission '{}', which {} does not hold{}", e.qualified, need,
                                                             who.describe(), who.holds(need) ? " on behalf of its caller" : "")};
  return std::nullopt;
}
}  // namespace

Result<ToolResult> ToolRegistry::invoke(std::string_view name, const json::value& arguments, const CallContext& ctx) {
  EntryPtr e;
  {
    std::shared_lock lock(state_->mutex);
    e = state_->resolve(name, ctx.tenant);
  }
  if (!e) return Error{ErrorCode::not_found, fmt::format("no tool named '{}'", name)};
  auto reject = [&](Error err) -> Result<ToolResult> {
    e->metrics->reject();
    return err;
  };
  if (!e->enabled.load(std::memory_order_acquire))
    return reject({ErrorCode::unavailable, fmt::format("tool '{}' is disabled (its plugin '{}' is not enabled)", e->qualified, e->spec.plugin)});
  if (auto denied = check_caller(*e, name, ctx.principal)) return reject(std::move(*denied));
  if (ctx.cancel.stop_requested()) return reject({ErrorCode::cancelled, fmt::format("call of tool '{}' was cancelled", e->qualified)});
  if (ctx.deadline && std::chrono::system_clock::now() >= *ctx.deadline)
    return reject({ErrorCode::timeout, fmt::format("deadline passed before tool '{}' started", e->qualified)});

  static const json::value empty_object = json::object();
  const json::value& args = arguments.is_null() ? empty_object : arguments;
  if (!args.is_object())
    return reject({ErrorCode::invalid_argument, fmt::format("tool '{}': arguments must be a JSON object", e->qualified)});
  if (auto v = e->input->validate(args, "argument"); !v)
    return reject({ErrorCode::invalid_argument, fmt::format("tool '{}': {}", e->qualified, v.error().message), v.error().details});

  HookBus* hooks = state_->hooks;
  std::string trace;  // only built when a hook will see it
  if (hooks && hooks->has_subscribers("tool.before_call")) {
    trace = ctx.trace_id.empty() ? new_trace_id() : ctx.trace_id;
    auto outcome = hooks->emit("tool.before_call",
                               json::object{{"tool", e->qualified}, {"plugin", e->spec.plugin}, {"arguments", args},
                                            {"tenant", ctx.tenant}, {"user", ctx.user}, {"trace_id", trace}},
                               ctx.tenant);
    if (outcome.vetoed)
      return reject({ErrorCode::permission_denied,
                     fmt::format("call of tool '{}' was vetoed{}: {}", e->qualified,
                                 outcome.vetoed_by.empty() ? "" : fmt::format(" by '{}'", outcome.vetoed_by), outcome.veto_reason)});
  }

  auto t0 = std::chrono::steady_clock::now();
  Result<ToolResult> r = Error{ErrorCode::internal, "tool handler did not run"};
  try {
    r = e->handler(args, ctx);
  } catch (const std::exception& ex) {
    r = Error{ErrorCode::internal, fmt::format("tool '{}' threw: {}", e->qualified, ex.what())};
  } catch (...) {
    r = Error{ErrorCode::internal, fmt::format("tool '{}' threw a non-standard exception", e->qualified)};
  }
  if (r && e->output && !r->is_error) {
    // MCP: a tool with an outputSchema must return conforming structuredContent.
    if (r->structured.is_null())
      *r = ToolResult::text(fmt::format("tool '{}' declares an outputSchema but returned no structuredContent", e->qualified), true);
    else if (auto v = e->output->validate(r->structured, "output"); !v)
      *r = ToolResult::text(fmt::format("tool '{}' returned output that does not match its outputSchema: {}", e->qualified, v.error().message), true);
  }
  auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  e->metrics->record(ns, !r || r->is_error);

  if (hooks && hooks->has_subscribers("tool.after_call")) {
    if (trace.empty()) trace = ctx.trace_id.empty() ? new_trace_id() : ctx.trace_id;
    json::object p{{"tool", e->qualified}, {"plugin", e->spec.plugin}, {"tenant", ctx.tenant}, {"user", ctx.user},
                   {"trace_id", trace}, {"duration_ms", static_cast<double>(ns) / 1e6}, {"ok", r.ok() && !r->is_error}};
    if (r) p["result"] = r->to_mcp();
    else p["error"] = json::object{{"code", to_string(r.error().code)}, {"message", r.error().message}};
    hooks->emit("tool.after_call", p, ctx.tenant);
  }
  return r;
}

}  // namespace xcore::inline v1
