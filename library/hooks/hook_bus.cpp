#include <xcore/hooks.hpp>

#include "core/shared_cell.hpp"
#include "core/string_map.hpp"

#include <algorithm>
#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace xcore::inline v1 {

bool is_valid_hook_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

const json::value& HookOutcome::first() const noexcept {
  static const json::value null_value;
  return results.empty() ? null_value : results.front();
}

namespace detail {

struct HookEntry {
  std::uint64_t id;
  HookBand band;
  int priority;
  std::string owner;
  std::string tenant;
  std::shared_ptr<const std::atomic<bool>> active;
  HookHandler handler;  // exactly one of handler / wrapper is set
  HookWrapper wrapper;
};

// Immutable once published: emit() runs over a snapshot while subscribe/unsubscribe publish new ones.
struct HookChain {
  std::vector<std::shared_ptr<const HookEntry>> wrappers;
  std::vector<std::shared_ptr<const HookEntry>> handlers;
};

struct HookChannel {
  HookSpec spec;
  bool defined = false;
  SharedCell<const HookChain> chain{empty_chain()};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> failures{0};
  std::mutex history_mutex;
  // payload, tenant; made at the first event kept: most channels never keep one, and an empty deque
  // costs ~600 bytes (a Manager defines a dozen channels, a host may have thousands of Managers).
  std::unique_ptr<std::deque<std::pair<json::value, std::string>>> history;

  // The chain of a channel nobody subscribed to yet: one for all, never changed.
  static std::shared_ptr<const HookChain> empty_chain() {
    static const auto empty = std::make_shared<const HookChain>();
    return empty;
  }
};

struct HookBusState {
  mutable std::shared_mutex mutex;  // guards the maps; channels themselves are never removed
  StringMap<std::unique_ptr<HookChannel>> channels;
  std::unordered_map<std::uint64_t, HookChannel*> by_id;
  std::uint64_t next_id = 1;

  HookChannel* find(std::string_view name) const {
    std::shared_lock lock(mutex);
    auto it = channels.find(name);
    return it == channels.end() ? nullptr : it->second.get();
  }

  static HookSpec default_spec(std::string_view name) {
    HookSpec s;
    s.name = std::string(name);
    // "tool.before_call", "agent.before_run": the before_* convention makes a hook vetoable.
    auto dot = name.rfind('.');
    auto last = dot == std::string_view::npos ? name : name.substr(dot + 1);
    s.vetoable = last.starts_with("before_");
    return s;
  }

  // Caller holds the unique lock.
  HookChannel& channel_locked(std::string_view name) {
    auto it = channels.find(name);
    if (it != channels.end()) return *it->second;
    auto ch = std::make_unique<HookChannel>();
    ch->spec = default_spec(name);
    auto* raw = ch.get();
    channels.emplace(std::string(name), std::move(ch));
    return *raw;
  }

  bool remove(std::uint64_t id) {
    std::unique_lock lock(mutex);
    auto it = by_id.find(id);
    if (it == by_id.end()) return false;
    HookChannel* ch = it->second;
    by_id.erase(it);
    auto old = ch->chain.load();
    auto next = std::make_shared<HookChain>(*old);
    auto drop = [id](auto& v) {
      v.erase(std::remove_if(v.begin(), v.end(), [id](const auto& e) { return e->id == id; }), v.end());
    };
    drop(next->handlers);
    drop(next->wrappers);
    ch->chain.store(std::move(next));
    return true;
  }
};

}  // namespace detail

using detail::HookBusState;
using detail::HookChain;
using detail::HookChannel;
using detail::HookEntry;

// ---- Subscription -----------------------------------------------------------------------------------

Subscription::Subscription(Subscription&& o) noexcept : bus_(std::move(o.bus_)), id_(std::exchange(o.id_, 0)) {}
Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    reset();
    bus_ = std::move(o.bus_);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}
Subscription::~Subscription() { reset(); }

bool Subscription::subscribed() const noexcept { return id_ != 0 && !bus_.expired(); }

void Subscription::reset() {
  if (id_ == 0) return;
  if (auto s = bus_.lock()) s->remove(id_);
  id_ = 0;
  bus_.reset();
}

std::uint64_t Subscription::release() {
  bus_.reset();
  return std::exchange(id_, 0);
}

// ---- HookBus ----------------------------------------------------------------------------------------

HookBus::HookBus() : state_(std::make_shared<HookBusState>()) {}
HookBus::~HookBus() = default;

Result<void> HookBus::define(HookSpec spec) {
  if (!is_valid_hook_name(spec.name))
    return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a valid hook name", spec.name)};
  std::unique_lock lock(state_->mutex);
  auto& ch = state_->channel_locked(spec.name);
  if (ch.defined) {
    const auto& a = ch.spec;
    if (a.first_result != spec.first_result || a.historic != spec.historic || a.vetoable != spec.vetoable ||
        a.on_error != spec.on_error)
      return Error{ErrorCode::conflict, fmt::format("hook '{}' is already defined with other semantics", spec.name)};
    return ok();
  }
  ch.spec = std::move(spec);
  ch.defined = true;
  return ok();
}

namespace {

// Band first, then higher priority, then the later subscription first (pluggy's LIFO rule).
bool runs_before(const HookEntry& a, const HookEntry& b) {
  if (a.band != b.band) return a.band < b.band;
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.id > b.id;
}

bool answers(const HookEntry& e, std::string_view tenant) {
  if (e.active && !e.active->load(std::memory_order_acquire)) return false;
  return e.tenant.empty() || e.tenant == tenant;
}

struct Emitter {
  HookChannel& ch;
  const HookChain& chain;
  const HookEvent& ev;
  bool stopped = false;

  void record_failure(HookOutcome& out, const HookEntry& e, Error err) {
    out.failures.push_back({e.owner, std::move(err)});
    if (ch.spec.on_error == HookErrorPolicy::stop_chain) stopped = true;
  }

  HookReply call_handler(const HookEntry& e) {
    try {
      return e.handler(ev);
    } catch (const std::exception& ex) {
      return HookReply::fail(Error{ErrorCode::internal, fmt::format("hook handler threw: {}", ex.what())});
    } catch (...) {
      return HookReply::fail(Error{ErrorCode::internal, "hook handler threw a non-standard exception"});
    }
  }

  HookOutcome run_handlers() {
    HookOutcome out;
    for (const auto& ep : chain.handlers) {
      if (stopped) break;
      const auto& e = *ep;
      if (!answers(e, ev.tenant)) continue;
      ++out.handlers_called;
      HookReply r = call_handler(e);
      switch (r.kind()) {
        case HookReply::Kind::none: break;
        case HookReply::Kind::value:
          out.results.push_back(std::move(r.value()));
          if (ch.spec.first_result) return out;
          break;
        case HookReply::Kind::veto:
          if (!ch.spec.vetoable) {
            record_failure(out, e, Error{ErrorCode::invalid_argument,
                                         fmt::format("hook '{}' is not vetoable; the veto was ignored", ch.spec.name)});
            break;
          }
          out.vetoed = true;
          out.veto_reason = r.error().message;
          out.vetoed_by = e.owner;
          return out;
        case HookReply::Kind::failure: record_failure(out, e, r.error()); break;
      }
    }
    return out;
  }

  HookOutcome run_from(std::size_t wrapper_index) {
    // Skip wrappers that do not answer this event.
    while (wrapper_index < chain.wrappers.size() && !answers(*chain.wrappers[wrapper_index], ev.tenant)) ++wrapper_index;
    if (wrapper_index >= chain.wrappers.size()) return run_handlers();
    const auto& w = *chain.wrappers[wrapper_index];
    bool called_next = false;
    HookOutcome inner;
    HookNext next = [&]() -> HookOutcome {
      if (called_next) return inner;  // a second call sees the same outcome, the chain runs once
      called_next = true;
      inner = run_from(wrapper_index + 1);
      return inner;
    };
    try {
      HookOutcome out = w.wrapper(ev, next);
      ++out.handlers_called;
      return out;
    } catch (const std::exception& ex) {
      if (!called_next) inner = run_from(wrapper_index + 1);
      ++inner.handlers_called;
      record_failure(inner, w, Error{ErrorCode::internal, fmt::format("hook wrapper threw: {}", ex.what())});
      return inner;
    } catch (...) {
      if (!called_next) inner = run_from(wrapper_index + 1);
      ++inner.handlers_called;
      record_failure(inner, w, Error{ErrorCode::internal, "hook wrapper threw a non-standard exception"});
      return inner;
    }
  }
};

}  // namespace

Result<Subscription> HookBus::subscribe(std::string_view hook, HookHandler handler, SubscribeOptions o) {
  if (!is_valid_hook_name(hook))
    return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a valid hook name", hook)};
  if (!handler) return Error{ErrorCode::invalid_argument, "hook handler is empty"};
  auto entry = std::make_shared<HookEntry>(
      HookEntry{0, o.band, o.priority, std::move(o.owner), std::move(o.tenant), std::move(o.active), std::move(handler), {}});
  HookChannel* ch;
  {
    std::unique_lock lock(state_->mutex);
    entry->id = state_->next_id++;
    ch = &state_->channel_locked(hook);
    auto next = std::make_shared<HookChain>(*ch->chain.load());
    auto pos = std::find_if(next->handlers.begin(), next->handlers.end(),
                            [&](const auto& e) { return runs_before(*entry, *e); });
    next->handlers.insert(pos, entry);
    ch->chain.store(std::move(next));
    state_->by_id.emplace(entry->id, ch);
  }
  // Historic hooks replay what was emitted before, to this handler only; its replies are dropped.
  if (ch->spec.historic) {
    std::vector<std::pair<json::value, std::string>> past;
    {
      std::lock_guard lock(ch->history_mutex);
      if (ch->history) past.assign(ch->history->begin(), ch->history->end());
    }
    // Replay is delivery to the new subscriber, so it ignores the activity switch (a plugin subscribing
    // while it loads is not active yet) but keeps to the subscriber's tenant.
    for (const auto& [payload, tenant] : past) {
      if (!entry->tenant.empty() && entry->tenant != tenant) continue;
      HookEvent ev{ch->spec.name, payload, tenant};
      try {
        (void)entry->handler(ev);
      } catch (...) {
        ch->failures.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  return Subscription(state_, entry->id);
}

Result<Subscription> HookBus::wrap(std::string_view hook, HookWrapper wrapper, SubscribeOptions o) {
  if (!is_valid_hook_name(hook))
    return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a valid hook name", hook)};
  if (!wrapper) return Error{ErrorCode::invalid_argument, "hook wrapper is empty"};
  auto entry = std::make_shared<HookEntry>(
      HookEntry{0, o.band, o.priority, std::move(o.owner), std::move(o.tenant), std::move(o.active), {}, std::move(wrapper)});
  std::unique_lock lock(state_->mutex);
  entry->id = state_->next_id++;
  auto& ch = state_->channel_locked(hook);
  auto next = std::make_shared<HookChain>(*ch.chain.load());
  auto pos = std::find_if(next->wrappers.begin(), next->wrappers.end(),
                          [&](const auto& e) { return runs_before(*entry, *e); });
  next->wrappers.insert(pos, entry);
  ch.chain.store(std::move(next));
  state_->by_id.emplace(entry->id, &ch);
  return Subscription(state_, entry->id);
}

bool HookBus::unsubscribe(std::uint64_t id) noexcept { return state_->remove(id); }

std::size_t HookBus::unsubscribe_owner(std::string_view owner) noexcept {
  std::vector<std::uint64_t> ids;
  {
    std::shared_lock lock(state_->mutex);
    for (const auto& [id, ch] : state_->by_id) {
      auto chain = ch->chain.load();
      for (const auto* list : {&chain->handlers, &chain->wrappers})
        for (const auto& e : *list)
          if (e->id == id && e->owner == owner) ids.push_back(id);
    }
  }
  for (auto id : ids) state_->remove(id);
  return ids.size();
}

bool HookBus::has_subscribers(std::string_view hook) const noexcept {
  HookChannel* ch = state_->find(hook);
  if (!ch) return false;
  auto chain = ch->chain.load();
  return !chain->handlers.empty() || !chain->wrappers.empty() || ch->spec.historic;
}

HookOutcome HookBus::emit(std::string_view hook, const json::value& payload, std::string_view tenant) {
  HookChannel* ch = state_->find(hook);
  if (!ch) {
    if (!is_valid_hook_name(hook)) {
      HookOutcome out;
      out.failures.push_back({"", Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a valid hook name", hook)}});
      return out;
    }
    return {};  // nobody subscribed and nothing to remember
  }
  ch->calls.fetch_add(1, std::memory_order_relaxed);
  if (ch->spec.historic) {
    std::lock_guard lock(ch->history_mutex);
    if (!ch->history) ch->history = std::make_unique<std::deque<std::pair<json::value, std::string>>>();
    ch->history->emplace_back(payload, std::string(tenant));
    while (ch->history->size() > ch->spec.history_limit) ch->history->pop_front();
  }
  auto chain = ch->chain.load();
  if (chain->handlers.empty() && chain->wrappers.empty()) return {};
  HookEvent ev{ch->spec.name, payload, tenant};
  Emitter em{*ch, *chain, ev};
  HookOutcome out = em.run_from(0);
  if (!out.failures.empty()) {
    ch->failures.fetch_add(out.failures.size(), std::memory_order_relaxed);
    // Report failures as events; failures of hook.error's own handlers are not reported again.
    if (hook != "hook.error" && has_subscribers("hook.error")) {
      for (const auto& f : out.failures)
        emit("hook.error", json::object{{"hook", hook},
                                        {"owner", f.owner},
                                        {"code", to_string(f.error.code)},
                                        {"message", f.error.message}},
             tenant);
    }
  }
  return out;
}

std::vector<HookInfo> HookBus::list() const {
  std::vector<HookInfo> out;
  std::shared_lock lock(state_->mutex);
  for (const auto& [name, ch] : state_->channels) {
    auto chain = ch->chain.load();
    out.push_back({ch->spec, chain->handlers.size(), chain->wrappers.size(), ch->calls.load(), ch->failures.load(),
                   ch->defined});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.spec.name < b.spec.name; });
  return out;
}

}  // namespace xcore::inline v1
