#include <doctest/doctest.h>
#include <xcore/hooks.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace xcore;

namespace {
// A handler that appends `name` to `trace` and replies with it (or with nothing when reply is false).
HookHandler tracer(std::vector<std::string>& trace, std::string name, bool reply = false) {
  return [&trace, name, reply](const HookEvent&) -> HookReply {
    trace.push_back(name);
    return reply ? HookReply(json::value(name)) : HookReply::none();
  };
}
SubscribeOptions opts(HookBand band = HookBand::normal, int priority = 0, std::string owner = {}, std::string tenant = {}) {
  SubscribeOptions o;
  o.band = band;
  o.priority = priority;
  o.owner = std::move(owner);
  o.tenant = std::move(tenant);
  return o;
}
}  // namespace

TEST_CASE("order: band first, then priority, then last-registered first (pluggy's LIFO)") {
  HookBus bus;
  std::vector<std::string> trace;
  auto a = bus.subscribe("e", tracer(trace, "normal-1")).value();
  auto b = bus.subscribe("e", tracer(trace, "normal-2")).value();
  auto c = bus.subscribe("e", tracer(trace, "last"), opts(HookBand::last)).value();
  auto d = bus.subscribe("e", tracer(trace, "first"), opts(HookBand::first)).value();
  auto e = bus.subscribe("e", tracer(trace, "normal-prio-5"), opts(HookBand::normal, 5)).value();
  auto f = bus.subscribe("e", tracer(trace, "first-prio-1"), opts(HookBand::first, 1)).value();
  auto out = bus.emit("e", json::object());
  CHECK(trace == std::vector<std::string>{"first-prio-1", "first", "normal-prio-5", "normal-2", "normal-1", "last"});
  CHECK(out.handlers_called == 6);
}

TEST_CASE("results: every non-null reply, in call order; first_result stops at the first") {
  HookBus bus;
  std::vector<std::string> trace;
  auto a = bus.subscribe("collect", tracer(trace, "a", true)).value();
  auto b = bus.subscribe("collect", tracer(trace, "silent")).value();
  auto c = bus.subscribe("collect", tracer(trace, "c", true), opts(HookBand::first)).value();
  auto out = bus.emit("collect", nullptr);
  CHECK(out.results == json::array{"c", "a"});
  CHECK(out.first() == "c");

  REQUIRE(bus.define({"pick", "", true}).ok());
  trace.clear();
  auto x = bus.subscribe("pick", tracer(trace, "none-first"), opts(HookBand::first)).value();
  auto y = bus.subscribe("pick", tracer(trace, "answer", true)).value();
  auto z = bus.subscribe("pick", tracer(trace, "never"), opts(HookBand::last)).value();
  auto picked = bus.emit("pick", nullptr);
  CHECK(picked.results == json::array{"answer"});
  CHECK(trace == std::vector<std::string>{"none-first", "answer"});
}

TEST_CASE("wrappers run around the handlers and can see and change the outcome") {
  HookBus bus;
  std::vector<std::string> trace;
  auto h = bus.subscribe("w", tracer(trace, "handler", true)).value();
  auto outer = bus.wrap("w", [&](const HookEvent&, const HookNext& next) {
                    trace.push_back("outer-before");
                    auto out = next();
                    trace.push_back("outer-after");
                    out.results.push_back("added-by-outer");
                    return out;
                  }, opts(HookBand::first)).value();
  auto inner = bus.wrap("w", [&](const HookEvent&, const HookNext& next) {
                    trace.push_back("inner-before");
                    auto out = next();
                    CHECK(out.results == json::array{"handler"});  // the wrapper sees the inner result
                    trace.push_back("inner-after");
                    return out;
                  }).value();
  auto out = bus.emit("w", nullptr);
  CHECK(trace == std::vector<std::string>{"outer-before", "inner-before", "handler", "inner-after", "outer-after"});
  CHECK(out.results == json::array{"handler", "added-by-outer"});
}

TEST_CASE("a wrapper that skips next() short-circuits; one that throws keeps the inner outcome") {
  HookBus bus;
  std::vector<std::string> trace;
  auto h = bus.subscribe("s", tracer(trace, "handler", true)).value();
  {
    auto w = bus.wrap("s", [&](const HookEvent&, const HookNext&) {
                  HookOutcome o;
                  o.results.push_back("cached");
                  return o;
                }).value();
    CHECK(bus.emit("s", nullptr).results == json::array{"cached"});
    CHECK(trace.empty());
  }
  auto thrower = bus.wrap("s", [&](const HookEvent&, const HookNext& next) -> HookOutcome {
                        next();
                        throw std::runtime_error("wrapper broke");
                      }, opts(HookBand::normal, 0, "bad-plugin")).value();
  auto out = bus.emit("s", nullptr);
  CHECK(out.results == json::array{"handler"});
  REQUIRE(out.failures.size() == 1);
  CHECK(out.failures[0].owner == "bad-plugin");
  CHECK(out.failures[0].error.message.find("wrapper broke") != std::string::npos);
}

TEST_CASE("veto: before_* hooks are vetoable and the chain stops; others ignore a veto as a failure") {
  HookBus bus;
  std::vector<std::string> trace;
  auto a = bus.subscribe("tool.before_call", [&](const HookEvent&) { trace.push_back("veto"); return HookReply::veto("not today"); },
                         opts(HookBand::first, 0, "policy")).value();
  auto b = bus.subscribe("tool.before_call", tracer(trace, "after-veto")).value();
  auto out = bus.emit("tool.before_call", nullptr);
  CHECK(out.vetoed);
  CHECK(out.veto_reason == "not today");
  CHECK(out.vetoed_by == "policy");
  CHECK(trace == std::vector<std::string>{"veto"});

  auto c = bus.subscribe("tool.after_call", [](const HookEvent&) { return HookReply::veto("too late"); }).value();
  auto late = bus.emit("tool.after_call", nullptr);
  CHECK(!late.vetoed);
  REQUIRE(late.failures.size() == 1);
  CHECK(late.failures[0].error.message.find("not vetoable") != std::string::npos);
}

TEST_CASE("historic hooks replay past calls to late subscribers") {
  HookBus bus;
  HookSpec spec;
  spec.name = "plugin.loaded";
  spec.historic = true;
  spec.history_limit = 2;
  REQUIRE(bus.define(spec).ok());
  bus.emit("plugin.loaded", json::object{{"plugin", "a"}});
  bus.emit("plugin.loaded", json::object{{"plugin", "b"}}, "tenant-1");
  bus.emit("plugin.loaded", json::object{{"plugin", "c"}});
  std::vector<std::string> seen;
  auto sub = bus.subscribe("plugin.loaded", [&](const HookEvent& ev) {
                  seen.emplace_back(ev.payload.at("plugin").as_string());
                  return HookReply::none();
                }).value();
  CHECK(seen == std::vector<std::string>{"b", "c"});  // history_limit 2 kept the last two
  bus.emit("plugin.loaded", json::object{{"plugin", "d"}});
  CHECK(seen.back() == "d");

  std::vector<std::string> scoped;
  auto t2 = bus.subscribe("plugin.loaded", [&](const HookEvent& ev) {
                 scoped.emplace_back(ev.payload.at("plugin").as_string());
                 return HookReply::none();
               }, opts(HookBand::normal, 0, "", "tenant-2")).value();
  CHECK(scoped.empty());  // tenant-2 sees neither tenant-1's nor system events
}

TEST_CASE("tenant scope: scoped handlers see only their tenant's events; global ones see all") {
  HookBus bus;
  std::vector<std::string> trace;
  auto g = bus.subscribe("e", tracer(trace, "global")).value();
  auto t1 = bus.subscribe("e", tracer(trace, "t1"), opts(HookBand::normal, 0, "", "t1")).value();
  bus.emit("e", nullptr, "t1");
  bus.emit("e", nullptr, "t2");
  bus.emit("e", nullptr);
  CHECK(trace == std::vector<std::string>{"t1", "global", "global", "global"});
}

TEST_CASE("owners: unsubscribe_owner removes all of an owner's handlers and wrappers") {
  HookBus bus;
  std::vector<std::string> trace;
  auto a = bus.subscribe("e", tracer(trace, "p1-a"), opts(HookBand::normal, 0, "p1")).value().release();
  auto b = bus.subscribe("f", tracer(trace, "p1-b"), opts(HookBand::normal, 0, "p1")).value().release();
  auto w = bus.wrap("e", [](const HookEvent&, const HookNext& n) { return n(); }, opts(HookBand::normal, 0, "p1")).value().release();
  auto c = bus.subscribe("e", tracer(trace, "p2"), opts(HookBand::normal, 0, "p2")).value();
  (void)a, (void)b, (void)w;
  CHECK(bus.unsubscribe_owner("p1") == 3);
  bus.emit("e", nullptr);
  bus.emit("f", nullptr);
  CHECK(trace == std::vector<std::string>{"p2"});
}

TEST_CASE("errors are isolated: the chain goes on, failures are reported as hook.error events") {
  HookBus bus;
  std::vector<std::string> trace, errors;
  auto watcher = bus.subscribe("hook.error", [&](const HookEvent& ev) -> HookReply {
                      errors.emplace_back(ev.payload.at("owner").as_string());
                      throw std::runtime_error("the error handler itself fails");  // must not recurse
                    }).value();
  auto a = bus.subscribe("e", [](const HookEvent&) -> HookReply { throw std::runtime_error("boom"); }, opts(HookBand::first, 0, "thrower")).value();
  auto b = bus.subscribe("e", [](const HookEvent&) -> HookReply { throw 42; }, opts(HookBand::first, 0, "odd")).value();
  auto c = bus.subscribe("e", [](const HookEvent&) { return HookReply::fail(Error{ErrorCode::unavailable, "db down"}); },
                         opts(HookBand::normal, 0, "failer")).value();
  auto d = bus.subscribe("e", tracer(trace, "survivor", true), opts(HookBand::last)).value();
  auto out = bus.emit("e", nullptr);
  CHECK(out.results == json::array{"survivor"});
  CHECK(out.failures.size() == 3);
  CHECK(errors == std::vector<std::string>{"odd", "thrower", "failer"});
}

TEST_CASE("the stop_chain policy stops at the first failure") {
  HookBus bus;
  HookSpec s;
  s.name = "strict";
  s.on_error = HookErrorPolicy::stop_chain;
  REQUIRE(bus.define(s).ok());
  std::vector<std::string> trace;
  auto a = bus.subscribe("strict", [](const HookEvent&) { return HookReply::fail(Error{ErrorCode::internal, "x"}); }, opts(HookBand::first)).value();
  auto b = bus.subscribe("strict", tracer(trace, "never")).value();
  auto out = bus.emit("strict", nullptr);
  CHECK(out.failures.size() == 1);
  CHECK(trace.empty());
}

TEST_CASE("subscriptions are RAII, survive the bus, and honour an activity switch") {
  std::vector<std::string> trace;
  Subscription outlives;
  {
    HookBus bus;
    {
      auto sub = bus.subscribe("e", tracer(trace, "scoped")).value();
      CHECK(sub.subscribed());
      bus.emit("e", nullptr);
    }
    bus.emit("e", nullptr);
    CHECK(trace.size() == 1);

    auto active = std::make_shared<std::atomic<bool>>(false);
    SubscribeOptions o;
    o.active = active;
    auto gated = bus.subscribe("e", tracer(trace, "gated"), o).value();
    bus.emit("e", nullptr);
    CHECK(trace.size() == 1);
    active->store(true);
    bus.emit("e", nullptr);
    CHECK(trace.back() == "gated");

    Subscription moved = std::move(gated);
    CHECK(!gated.subscribed());
    CHECK(moved.subscribed());
    outlives = bus.subscribe("e", tracer(trace, "x")).value();
  }
  CHECK(!outlives.subscribed());
  outlives.reset();  // the bus is gone: nothing to do, nothing to crash
}

TEST_CASE("bad names and conflicting definitions are refused") {
  HookBus bus;
  CHECK(!bus.subscribe("", [](const HookEvent&) { return HookReply(); }).ok());
  CHECK(!bus.subscribe("has space", [](const HookEvent&) { return HookReply(); }).ok());
  CHECK(!bus.subscribe(".dot", [](const HookEvent&) { return HookReply(); }).ok());
  CHECK(!bus.subscribe("ok", HookHandler{}).ok());
  CHECK(bus.emit("bad name", nullptr).failures.size() == 1);
  REQUIRE(bus.define({"x", "", true}).ok());
  CHECK(bus.define({"x", "", true}).ok());
  auto conflict = bus.define({"x", "", false});
  REQUIRE(!conflict.ok());
  CHECK(conflict.error().code == ErrorCode::conflict);
}

TEST_CASE("list() reports hooks with their handler counts and calls") {
  HookBus bus;
  auto a = bus.subscribe("e", [](const HookEvent&) { return HookReply(); }).value();
  bus.emit("e", nullptr);
  bus.emit("e", nullptr);
  auto hooks = bus.list();
  REQUIRE(hooks.size() == 1);
  CHECK(hooks[0].spec.name == "e");
  CHECK(hooks[0].handlers == 1);
  CHECK(hooks[0].calls == 2);
}

TEST_CASE("historic replay reaches a subscriber that is not active yet (a plugin subscribing while it loads)") {
  HookBus bus;
  HookSpec spec;
  spec.name = "plugin.loaded";
  spec.historic = true;
  REQUIRE(bus.define(spec).ok());
  bus.emit("plugin.loaded", json::object{{"plugin", "core"}});
  auto active = std::make_shared<std::atomic<bool>>(false);
  SubscribeOptions o;
  o.active = active;
  std::vector<std::string> seen;
  auto sub = bus.subscribe("plugin.loaded", [&](const HookEvent& ev) {
                  seen.emplace_back(ev.payload.at("plugin").as_string());
                  return HookReply::none();
                }, o).value();
  CHECK(seen == std::vector<std::string>{"core"});
  bus.emit("plugin.loaded", json::object{{"plugin", "audit"}});
  CHECK(seen.size() == 1);  // live events still wait for the switch
}
