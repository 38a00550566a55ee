#include <doctest/doctest.h>
#include <xcore/hooks.hpp>
#include <xcore/json_schema.hpp>
#include <xcore/tools.hpp>

#include <boost/json/parse.hpp>

#include <atomic>
#include <stdexcept>
#include "tools/plugin_tools.hpp"

using namespace xcore;

namespace {
json::value J(std::string_view s) { return json::parse(s); }

ToolSpec spec(std::string name, std::string_view schema = R"({"type":"object"})") {
  ToolSpec s;
  s.name = std::move(name);
  s.input_schema = J(schema).as_object();
  return s;
}

ToolHandler echo_handler(std::atomic<int>* calls = nullptr) {
  return [calls](const json::value& args, const CallContext&) -> Result<ToolResult> {
    if (calls) ++*calls;
    return ToolResult::structured_value(args);
  };
}
}  // namespace

TEST_CASE("a host tool is registered, invoked and unregistered with its handle") {
  ToolRegistry reg;
  {
    auto r = reg.add(spec("echo"), echo_handler());
    REQUIRE(r.ok());
    auto out = reg.invoke("echo", J(R"({"a":1})"), xcore::CallContext::host());
    REQUIRE(out.ok());
    CHECK(out->structured == J(R"({"a":1})"));
    CHECK(out->to_mcp().at("isError") == false);
    CHECK(reg.invoke("echo", nullptr, xcore::CallContext::host()).ok());  // no arguments means {}
  }
  auto gone = reg.invoke("echo", J("{}"), xcore::CallContext::host());
  REQUIRE(!gone.ok());
  CHECK(gone.error().code == ErrorCode::not_found);
}

TEST_CASE("a registration that outlives its registry does nothing when it ends") {
  ToolRegistration kept;
  {
    ToolRegistry reg;
    auto r = reg.add(spec("echo"), echo_handler());
    REQUIRE(r.ok());
    kept = std::move(*r);
    CHECK(kept.qualified_name() == "echo");
  }
  kept.reset();  // the registry is gone: nothing to remove, nothing touched
  CHECK(kept.qualified_name() == "echo");
}

TEST_CASE("arguments are validated before the handler runs, and the failing path is named") {
  ToolRegistry reg;
  std::atomic<int> calls = 0;
  auto r = reg.add(spec("sum", R"({"type":"object","properties":{"items":{"type":"array","items":{"type":"integer"}},
                                    "opts":{"type":"object","properties":{"mode":{"enum":["fast","exact"]}}}},
                                   "required":["items"],"additionalProperties":false})"),
                   echo_handler(&calls));
  REQUIRE(r.ok());
  auto bad_item = reg.invoke("sum", J(R"({"items":[1,2,"three"]})"), xcore::CallContext::host());
  REQUIRE(!bad_item.ok());
  CHECK(bad_item.error().code == ErrorCode::invalid_argument);
  CHECK_MESSAGE(bad_item.error().message.find("'/items/2'") != std::string::npos, bad_item.error().message);
  // What was expected and what was given.
  CHECK_MESSAGE(bad_item.error().message.find("expected integer, got string \"three\"") != std::string::npos, bad_item.error().message);
  auto bad_enum = reg.invoke("sum", J(R"({"items":[],"opts":{"mode":"slow"}})"), xcore::CallContext::host());
  REQUIRE(!bad_enum.ok());
  CHECK_MESSAGE(bad_enum.error().message.find("'/opts/mode'") != std::string::npos, bad_enum.error().message);
  CHECK_MESSAGE(bad_enum.error().message.find("expected one of \"fast\", \"exact\"") != std::string::npos, bad_enum.error().message);
  auto missing = reg.invoke("sum", J(R"({})"), xcore::CallContext::host());
  REQUIRE(!missing.ok());
  auto extra = reg.invoke("sum", J(R"({"items":[],"x":1})"), xcore::CallContext::host());
  REQUIRE(!extra.ok());
  auto not_object = reg.invoke("sum", J("[1]"), xcore::CallContext::host());
  REQUIRE(!not_object.ok());
  CHECK(not_object.error().message.find("must be a JSON object") != std::string::npos);
  CHECK(calls == 0);
  CHECK(reg.invoke("sum", J(R"({"items":[1,2]})"), xcore::CallContext::host()).ok());
  CHECK(calls == 1);
  CHECK(reg.find("sum")->metrics.rejected == 5);
}

TEST_CASE("names and schemas are checked at registration") {
  ToolRegistry reg;
  CHECK(reg.add(spec("bad name"), echo_handler()).error().code == ErrorCode::invalid_argument);
  CHECK(!reg.add(spec(std::string(129, 'a')), echo_handler()).ok());
  CHECK(!reg.add(spec("x", R"({"type":"string"})"), echo_handler()).ok());
  CHECK(!reg.add(spec("x", R"({"type":"object","properties":{"a":{"type":"nonsense"}}})"), echo_handler()).ok());
  auto first = reg.add(spec("dup"), echo_handler());
  REQUIRE(first.ok());
  CHECK(reg.add(spec("dup"), echo_handler()).error().code == ErrorCode::already_exists);
}

TEST_CASE("name conflicts between owners resolve as plugin.tool") {
  ToolRegistry reg;
  auto host_echo = reg.add(spec("echo"), [](const json::value&, const CallContext&) -> Result<ToolResult> { return ToolResult::text("host"); });
  REQUIRE(host_echo.ok());
  auto made = [](const char* who) {
    return [who](const ToolSpec&) -> ToolHandler {
      return [who](const json::value&, const CallContext&) -> Result<ToolResult> { return ToolResult::text(who); };
    };
  };
  REQUIRE(detail::PluginTools::replace(reg, "core", {spec("echo"), spec("calc")}, made("core")).ok());
  REQUIRE(detail::PluginTools::replace(reg, "other", {spec("echo")}, made("other")).ok());
  CHECK(reg.invoke("echo", {}, xcore::CallContext::host())->content.at(0).at("text") == "host");
  CHECK(reg.invoke("core.echo", {}, xcore::CallContext::host())->content.at(0).at("text") == "core");
  CHECK(reg.invoke("other.echo", {}, xcore::CallContext::host())->content.at(0).at("text") == "other");
  CHECK(reg.invoke("calc", {}, xcore::CallContext::host())->content.at(0).at("text") == "core");
  auto names = reg.export_mcp();
  std::vector<std::string> exported;
  for (const auto& t : names) exported.emplace_back(t.at("name").as_string());
  // Listed in order of qualified name; the bare name goes to the first registered owner.
  CHECK(exported == std::vector<std::string>{"calc", "core.echo", "echo", "other.echo"});

  // When the host tool goes, the bare name passes to the next owner in registration order.
  host_echo->reset();
  CHECK(reg.invoke("echo", {}, xcore::CallContext::host())->content.at(0).at("text") == "core");
}

TEST_CASE("replacing a plugin's tools keeps metrics of kept tools and drops the rest atomically") {
  ToolRegistry reg;
  auto factory = [](const ToolSpec&) { return echo_handler(); };
  REQUIRE(detail::PluginTools::replace(reg, "p", {spec("a"), spec("b")}, factory).ok());
  REQUIRE(reg.invoke("a", J("{}"), xcore::CallContext::host()).ok());
  REQUIRE(detail::PluginTools::replace(reg, "p", {spec("a"), spec("c")}, factory).ok());
  CHECK(reg.find("a")->metrics.calls == 1);
  CHECK(!reg.find("b"));
  CHECK(reg.find("c"));
  // A bad schema changes nothing.
  auto bad = detail::PluginTools::replace(reg, "p", {spec("a"), spec("d", R"({"type":"object","properties":{"x":{"type":7}}})")}, factory);
  CHECK(!bad.ok());
  CHECK(reg.find("c"));
  CHECK(!reg.find("d"));
  CHECK(detail::PluginTools::remove(reg, "p") == 2);
  CHECK(reg.list().empty());
}

TEST_CASE("disabled plugins' tools stop answering and leave the default listing") {
  ToolRegistry reg;
  REQUIRE(detail::PluginTools::replace(reg, "p", {spec("a")}, [](const ToolSpec&) { return echo_handler(); }).ok());
  detail::PluginTools::set_enabled(reg, "p", false);
  auto r = reg.invoke("a", J("{}"), xcore::CallContext::host());
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::unavailable);
  CHECK(reg.list().empty());
  ToolFilter all;
  all.include_disabled = true;
  CHECK(reg.list(all).size() == 1);
  detail::PluginTools::set_enabled(reg, "p", true);
  CHECK(reg.invoke("a", J("{}"), xcore::CallContext::host()).ok());
}

TEST_CASE("tenant scope, the caller's principal, deadline and cancellation are checked before the handler") {
  ToolRegistry reg;
  std::atomic<int> calls = 0;
  auto scoped = spec("tenant_tool");
  scoped.tenant = "acme";
  auto guarded = spec("admin_tool");
  guarded.permissions = {"admin.tools"};
  auto a = reg.add(scoped, echo_handler(&calls));
  auto b = reg.add(guarded, echo_handler(&calls));
  auto user = [](std::vector<std::string> perms) {
    CallContext c;
    c.principal.kind = Principal::Kind::user;
    c.principal.id = "7";
    c.principal.permissions = std::move(perms);
    return c;
  };

  auto acme = user({"tools.call:*"});
  acme.tenant = "acme";
  CHECK(reg.invoke("tenant_tool", {}, acme).ok());
  auto other = user({"tools.call:*"});
  other.tenant = "globex";
  CHECK(reg.invoke("tenant_tool", {}, other).error().code == ErrorCode::not_found);

  // A context nobody filled in is anonymous: it holds nothing, not even the right to call.
  CallContext nobody;
  nobody.tenant = "acme";
  auto anon = reg.invoke("tenant_tool", {}, nobody);
  REQUIRE(!anon.ok());
  CHECK(anon.error().code == ErrorCode::permission_denied);
  CHECK(anon.error().message.find("tools.call:tenant_tool") != std::string::npos);

  auto unprivileged = user({"tools.call:*", "tools.read"});
  auto denied = reg.invoke("admin_tool", {}, unprivileged);
  REQUIRE(!denied.ok());
  CHECK(denied.error().code == ErrorCode::permission_denied);
  CHECK(denied.error().message.find("admin.tools") != std::string::npos);
  CHECK(reg.invoke("admin_tool", {}, user({"admin.*"})).error().code == ErrorCode::permission_denied);  // no tools.call
  CHECK(reg.invoke("admin_tool", {}, user({"tools.call:admin_tool", "admin.*"})).ok());
  CHECK(reg.invoke("admin_tool", {}, xcore::CallContext::host()).ok());  // the host itself is unrestricted

  // A plugin calling on a viewer's behalf reaches no more than the viewer: both must hold admin.tools.
  auto deputy = user({});
  deputy.principal = Principal::plugin("helper", {"tools.call:*", "admin.tools"});
  deputy.principal.on_behalf_of = std::make_shared<const Principal>(user({"tools.call:*"}).principal);
  auto confused = reg.invoke("admin_tool", {}, deputy);
  REQUIRE(!confused.ok());
  CHECK(confused.error().message.find("on behalf of its caller") != std::string::npos);
  deputy.principal.on_behalf_of = std::make_shared<const Principal>(Principal::host());
  CHECK(reg.invoke("admin_tool", {}, deputy).ok());

  auto late = xcore::CallContext::host();
  late.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  CHECK(reg.invoke("admin_tool", {}, late).error().code == ErrorCode::timeout);
  std::stop_source stop;
  auto cancelled = xcore::CallContext::host();
  cancelled.cancel = stop.get_token();
  stop.request_stop();
  CHECK(reg.invoke("admin_tool", {}, cancelled).error().code == ErrorCode::cancelled);
  CHECK(calls == 4);
}

TEST_CASE("a principal covers only the patterns it holds as text, for narrowing tokens") {
  Principal op;
  op.kind = Principal::Kind::user;
  op.permissions = {"tools.call:*", "tasks.read"};
  CHECK(op.covers("tools.call:core.echo"));
  CHECK(op.covers("tools.call:core.*"));
  CHECK(op.covers("tasks.read"));
  CHECK_FALSE(op.covers("tasks.write"));
  CHECK_FALSE(op.covers("*"));
  Principal narrow = op;
  narrow.permissions = {"tools.call:core.echo"};
  CHECK_FALSE(narrow.covers("tools.call:core.*"));
  CHECK(Principal::host().covers("*"));
}

TEST_CASE("tool.before_call can veto; tool.after_call sees the outcome") {
  HookBus bus;
  ToolRegistry reg(&bus);
  std::atomic<int> calls = 0;
  auto a = reg.add(spec("safe"), echo_handler(&calls));
  auto b = reg.add(spec("rm_rf"), echo_handler(&calls));
  SubscribeOptions policy;
  policy.owner = "policy";
  auto veto = bus.subscribe("tool.before_call", [](const HookEvent& ev) {
                   if (ev.payload.at("tool") == "rm_rf") return HookReply::veto("destructive tools are off");
                   return HookReply::none();
                 }, policy).value();
  json::array seen;
  auto after = bus.subscribe("tool.after_call", [&](const HookEvent& ev) {
                    seen.push_back(ev.payload);
                    return HookReply::none();
                  }).value();
  auto ctx = xcore::CallContext::host();
  ctx.tenant = "t";
  ctx.trace_id = "trace-1";
  auto r = reg.invoke("rm_rf", J("{}"), ctx);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::permission_denied);
  CHECK(r.error().message.find("vetoed by 'policy': destructive tools are off") != std::string::npos);
  CHECK(calls == 0);
  REQUIRE(reg.invoke("safe", J(R"({"k":1})"), ctx).ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].at("tool") == "safe");
  CHECK(seen[0].at("ok") == true);
  CHECK(seen[0].at("trace_id") == "trace-1");
  CHECK(seen[0].at("result").at("structuredContent") == J(R"({"k":1})"));
}

TEST_CASE("a throwing handler is an error, never an escaping exception; metrics count it") {
  ToolRegistry reg;
  auto a = reg.add(spec("boom"), [](const json::value&, const CallContext&) -> Result<ToolResult> { throw std::runtime_error("kaput"); });
  auto r = reg.invoke("boom", J("{}"), xcore::CallContext::host());
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::internal);
  CHECK(r.error().message.find("kaput") != std::string::npos);
  auto m = reg.find("boom")->metrics;
  CHECK(m.calls == 1);
  CHECK(m.errors == 1);
  CHECK(m.buckets.back().count == 1);
}

TEST_CASE("structured output must match the outputSchema") {
  ToolRegistry reg;
  auto s = spec("typed");
  s.output_schema = J(R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})").as_object();
  auto a = reg.add(s, echo_handler());
  CHECK(!reg.invoke("typed", J(R"({"n":1})"), xcore::CallContext::host())->is_error);
  auto wrong = reg.invoke("typed", J(R"({"n":"one"})"), xcore::CallContext::host());
  REQUIRE(wrong.ok());
  CHECK(wrong->is_error);
  CHECK(wrong->content.at(0).at("text").as_string().find("outputSchema") != std::string::npos);
}

TEST_CASE("export: MCP and OpenAI function-calling shapes, with filters") {
  ToolRegistry reg;
  auto s = spec("calc.eval", R"({"type":"object","properties":{"e":{"type":"string"}}})");
  s.title = "Calculator";
  s.description = "evaluates";
  s.category = "math";
  s.competencies = {"arithmetic"};
  s.annotations = J(R"({"readOnlyHint":true})").as_object();
  auto a = reg.add(s, echo_handler());
  auto t = spec("other");
  t.category = "misc";
  auto b = reg.add(t, echo_handler());

  ToolFilter math;
  math.category = "math";
  auto mcp = reg.export_mcp(math);
  REQUIRE(mcp.size() == 1);
  CHECK(mcp[0].at("name") == "calc.eval");
  CHECK(mcp[0].at("title") == "Calculator");
  CHECK(mcp[0].at("inputSchema").at("properties").at("e").at("type") == "string");
  CHECK(mcp[0].at("annotations").at("readOnlyHint") == true);
  CHECK(mcp[0].at("_meta").at("xcore").at("category") == "math");

  ToolFilter skill;
  skill.competency = "arithmetic";
  auto oai = reg.export_openai(skill);
  REQUIRE(oai.size() == 1);
  CHECK(oai[0].at("type") == "function");
  CHECK(oai[0].at("function").at("name") == "calc_eval");
  CHECK(oai[0].at("function").at("parameters").at("type") == "object");
  CHECK(reg.export_mcp().size() == 2);
}

TEST_CASE("ToolSpec::from_json reads MCP and snake_case forms and names bad fields") {
  auto s = ToolSpec::from_json(J(R"({"name":"x","input_schema":{"type":"object"},"outputSchema":{"type":"object"},"competencies":["a"]})"));
  REQUIRE(s.ok());
  CHECK(s->output_schema);
  CHECK(s->competencies.size() == 1);
  CHECK(ToolSpec::from_json(J(R"({"name":"x","inputSchema":"nope"})")).error().message.find("inputSchema") != std::string::npos);
  CHECK(ToolSpec::from_json(J(R"({"title":"no name"})")).error().message.find("name") != std::string::npos);
  CHECK(!ToolResult::from_mcp(J(R"({"content":"x"})")).ok());
  CHECK(!ToolResult::from_mcp(J(R"({"isError":"yes"})")).ok());
}

TEST_CASE("a structured result gets its text block in MCP form, once") {
  auto r = ToolResult::structured_value(J(R"({"n":1})"));
  CHECK(r.content.empty());
  auto mcp = r.to_mcp();
  REQUIRE(mcp.at("content").as_array().size() == 1);
  CHECK(mcp.at("content").at(0).at("text") == R"({"n":1})");
  CHECK(mcp.at("structuredContent") == J(R"({"n":1})"));
  auto back = ToolResult::from_mcp(json::value(mcp));
  REQUIRE(back.ok());
  CHECK(back->to_mcp() == mcp);  // content present now: kept as is, not duplicated
}

TEST_CASE("a schema compiled again while the first is held is the same compiled schema") {
  const auto schema = boost::json::parse(R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})");
  auto a = JsonSchema::compile(schema);
  auto b = JsonSchema::compile(boost::json::parse(R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})"));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->get() == b->get());
  CHECK_FALSE((*b)->validate(boost::json::parse(R"({"n":"x"})"), "argument"));
  auto other = JsonSchema::compile(boost::json::parse(R"({"type":"object","required":["m"]})"));
  REQUIRE(other);
  CHECK(other->get() != a->get());
  CHECK((*other)->validate(boost::json::parse(R"({"m":1})"), "argument"));
}
