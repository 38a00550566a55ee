#include "sandbox/wire.hpp"

#include <fmt/format.h>

#include <chrono>

namespace xcore::inline v1::wire {

bool supported_protocol(std::string_view version) {
  for (auto v : kProtocolVersions)
    if (v == version) return true;
  return false;
}

json::object initialize_params(std::string_view client_name, std::string_view client_version) {
  // "experimental.xcore" tells an xcore plugin host that xcore/* lifecycle calls will follow.
  return json::object{{"protocolVersion", std::end(kProtocolVersions)[-1]},
                      {"capabilities", json::object{{"experimental", json::object{{"xcore", json::object{}}}}}},
                      {"clientInfo", json::object{{"name", client_name}, {"version", client_version}}}};
}

json::object initialize_result(const json::object& params, std::string_view name, std::string_view version, bool list_changed) {
  std::string_view asked;
  if (auto it = params.find("protocolVersion"); it != params.end() && it->value().is_string()) asked = it->value().get_string();
  std::string_view answer = supported_protocol(asked) ? asked : std::end(kProtocolVersions)[-1];
  return json::object{{"protocolVersion", answer},
                      {"capabilities", json::object{{"tools", json::object{{"listChanged", list_changed}}}}},
                      {"serverInfo", json::object{{"name", name}, {"version", version}}}};
}

json::object tool_to_json(const ToolSpec& spec) { return spec.to_mcp(); }

Result<std::vector<ToolSpec>> list_tool_pages(std::string_view plugin, const std::function<Result<json::value>(const json::object& params)>& list_page) {
  std::vector<ToolSpec> out;
  json::value cursor;
  for (int page = 0; page < 1000; ++page) {  // MCP pagination, bounded
    json::object params;
    if (!cursor.is_null()) params["cursor"] = cursor;
    XCORE_ASSIGN_OR_RETURN(auto r, list_page(params));
    const auto* tools = r.is_object() ? r.get_object().if_contains("tools") : nullptr;
    if (!tools || !tools->is_array()) return Error{ErrorCode::plugin_crashed, fmt::format("plugin '{}': tools/list answered without a tool list", plugin)};
    for (const auto& t : tools->get_array()) {
      auto spec = ToolSpec::from_json(t);
      if (!spec) return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}': {}", plugin, spec.error().message)};
      out.push_back(std::move(*spec));
    }
    const auto* next = r.get_object().if_contains("nextCursor");
    if (!next || next->is_null()) break;
    cursor = *next;
  }
  return out;
}

json::object context_to_json(const CallContext& ctx, std::string_view serving) {
  json::object o{{"tenant", ctx.tenant}, {"user", ctx.user}, {"trace_id", ctx.trace_id}};
  if (!serving.empty()) o["serving"] = serving;
  if (ctx.deadline)
    o["deadline_unix_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline->time_since_epoch()).count();
  return o;
}

CallContext context_from_json(const json::value& v) {
  CallContext ctx;
  if (!v.is_object()) return ctx;
  const auto& o = v.get_object();
  auto str = [&](const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string();
  };
  ctx.tenant = str("tenant");
  ctx.user = str("user");
  ctx.trace_id = str("trace_id");
  if (auto it = o.find("deadline_unix_ms"); it != o.end() && it->value().is_int64())
    ctx.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(it->value().get_int64()));
  return ctx;
}

json::object meta_with_context(const CallContext& ctx, std::string_view serving) { return json::object{{"xcore", context_to_json(ctx, serving)}}; }

std::string serving_of(const json::value& context) {
  if (!context.is_object()) return {};
  const auto* s = context.get_object().if_contains("serving");
  return s && s->is_string() ? std::string(s->get_string()) : std::string();
}

CallContext context_from_meta(const json::object& params) {
  auto meta = params.find("_meta");
  if (meta == params.end() || !meta->value().is_object()) return {};
  auto x = meta->value().get_object().find("xcore");
  return x == meta->value().get_object().end() ? CallContext{} : context_from_json(x->value());
}

json::object outcome_to_json(const HookOutcome& o) {
  json::object r{{"results", o.results}, {"vetoed", o.vetoed}};
  if (o.vetoed) r["veto_reason"] = o.veto_reason;
  return r;
}

json::object reply_to_json(const HookReply& r) {
  switch (r.kind()) {
    case HookReply::Kind::none: return json::object{{"kind", "none"}};
    case HookReply::Kind::value: return json::object{{"kind", "value"}, {"value", r.value()}};
    case HookReply::Kind::veto: return json::object{{"kind", "veto"}, {"message", r.error().message}};
    case HookReply::Kind::failure:
      return json::object{{"kind", "failure"}, {"code", to_string(r.error().code)}, {"message", r.error().message}};
  }
  return json::object{{"kind", "none"}};
}

HookReply reply_from_json(const json::value& v) {
  if (!v.is_object()) return HookReply::fail(Error{ErrorCode::plugin_crashed, "malformed hook reply"});
  const auto& o = v.get_object();
  auto kind = o.find("kind");
  if (kind == o.end() || !kind->value().is_string()) return HookReply::fail(Error{ErrorCode::plugin_crashed, "malformed hook reply"});
  auto msg = [&] {
    auto it = o.find("message");
    return it != o.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string();
  };
  const auto& k = kind->value().get_string();
  if (k == "value") return HookReply(o.contains("value") ? o.at("value") : json::value());
  if (k == "veto") return HookReply::veto(msg());
  if (k == "failure") {
    ErrorCode code = ErrorCode::internal;
    if (auto c = o.find("code"); c != o.end() && c->value().is_string()) parse_error_code(c->value().get_string(), code);
    return HookReply::fail(Error{code, msg()});
  }
  return HookReply::none();
}

}  // namespace xcore::inline v1::wire
