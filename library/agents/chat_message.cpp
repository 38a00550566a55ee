// OpenAI's chat message and provider objects as JSON.
#include <xcore/models.hpp>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace xcore::inline v1 {

namespace {

const json::value* field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() || it->value().is_null() ? nullptr : &it->value();
}

Result<std::string> string_field(const json::object& o, std::string_view key, std::string_view where) {
  const auto* v = field(o, key);
  if (!v) return std::string();
  if (!v->is_string()) return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: expected a string", where, key)};
  return std::string(v->as_string());
}

}  // namespace

json::object ChatMessage::to_json() const {
  json::object o{{"role", role}};
  // An assistant message that only calls tools has null content, as OpenAI sends it.
  if (role == "assistant" && content.empty() && !tool_calls.empty()) o["content"] = nullptr;
  else o["content"] = content;
  if (!tool_calls.empty()) {
    json::array calls;
    for (const auto& c : tool_calls)
      calls.push_back(json::object{{"id", c.id}, {"type", "function"}, {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}});
    o["tool_calls"] = std::move(calls);
  }
  if (!tool_call_id.empty()) o["tool_call_id"] = tool_call_id;
  return o;
}

Result<ChatMessage> ChatMessage::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "message: expected an object"};
  const auto& o = v.as_object();
  ChatMessage m;
  XCORE_ASSIGN_OR_RETURN(m.role, string_field(o, "role", "message"));
  if (m.role.empty()) m.role = "assistant";
  if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool")
    return Error{ErrorCode::invalid_argument, fmt::format("message.role: '{}' is not system, user, assistant or tool", m.role)};
  if (const auto* c = field(o, "content")) {
    if (c->is_string()) {
      m.content = std::string(c->as_string());
    } else if (c->is_array()) {  // content parts: the text ones, joined
      for (const auto& part : c->as_array())
        if (part.is_object())
          if (const auto* t = field(part.as_object(), "text"); t && t->is_string()) m.content += t->as_string();
    } else {
      return Error{ErrorCode::invalid_argument, "message.content: expected a string or content parts"};
    }
  }
  XCORE_ASSIGN_OR_RETURN(m.tool_call_id, string_field(o, "tool_call_id", "message"));
  if (const auto* calls = field(o, "tool_calls")) {
    if (!calls->is_array()) return Error{ErrorCode::invalid_argument, "message.tool_calls: expected an array"};
    std::size_t i = 0;
    for (const auto& c : calls->as_array()) {
      const auto where = fmt::format("message.tool_calls[{}]", i++);
      if (!c.is_object()) return Error{ErrorCode::invalid_argument, where + ": expected an object"};
      const auto* fn = field(c.as_object(), "function");
      if (!fn || !fn->is_object()) return Error{ErrorCode::invalid_argument, where + ".function: expected an object"};
      ModelToolCall call;
      XCORE_ASSIGN_OR_RETURN(call.id, string_field(c.as_object(), "id", where));
      XCORE_ASSIGN_OR_RETURN(call.name, string_field(fn->as_object(), "name", where + ".function"));
      if (call.name.empty()) return Error{ErrorCode::invalid_argument, where + ".function.name: missing"};
      // Arguments are JSON text; some servers send the object itself.
      if (const auto* a = field(fn->as_object(), "arguments")) call.arguments = a->is_string() ? std::string(a->as_string()) : json::serialize(*a);
      if (call.id.empty()) call.id = fmt::format("call_{}", i);  // servers that give none still need pairing
      m.tool_calls.push_back(std::move(call));
    }
  }
  return m;
}

json::object ProviderSpec::to_json() const {
  json::object o{{"name", name}, {"base_url", base_url}, {"default_model", default_model}, {"timeout_ms", timeout.count()},
                 {"max_retries", max_retries}};
  o["api_key_secret"] = api_key_secret.empty() ? json::value(nullptr) : json::value(api_key_secret);
  return o;
}

Result<ProviderSpec> ProviderSpec::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "provider: expected an object"};
  const auto& o = v.as_object();
  for (const auto& [k, _] : o)
    if (k != "name" && k != "base_url" && k != "api_key_secret" && k != "default_model" && k != "timeout_ms" && k != "max_retries")
      return Error{ErrorCode::invalid_argument, fmt::format("provider.{}: unknown field (expected name, base_url, api_key_secret, default_model, timeout_ms, max_retries)", std::string_view(k))};
  ProviderSpec p;
  XCORE_ASSIGN_OR_RETURN(p.name, string_field(o, "name", "provider"));
  if (auto url = string_field(o, "base_url", "provider"); !url) return std::move(url).error();
  else if (!url->empty()) p.base_url = std::move(*url);
  XCORE_ASSIGN_OR_RETURN(p.api_key_secret, string_field(o, "api_key_secret", "provider"));
  XCORE_ASSIGN_OR_RETURN(p.default_model, string_field(o, "default_model", "provider"));
  auto count = [&](std::string_view key, std::int64_t lo, std::int64_t hi) -> Result<std::optional<std::int64_t>> {
    const auto* f = field(o, key);
    if (!f) return std::optional<std::int64_t>();
    if (!f->is_int64() && !f->is_uint64()) return Error{ErrorCode::invalid_argument, fmt::format("provider.{}: expected an integer", key)};
    const auto n = f->is_int64() ? f->as_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(f->as_uint64(), INT64_MAX));
    if (n < lo || n > hi) return Error{ErrorCode::invalid_argument, fmt::format("provider.{}: {} is outside {}..{}", key, n, lo, hi)};
    return std::optional<std::int64_t>(n);
  };
  XCORE_ASSIGN_OR_RETURN(auto timeout, count("timeout_ms", 100, 3600000));
  if (timeout) p.timeout = std::chrono::milliseconds(*timeout);
  XCORE_ASSIGN_OR_RETURN(auto retries, count("max_retries", 0, 10));
  if (retries) p.max_retries = static_cast<unsigned>(*retries);
  return p;
}

}  // namespace xcore::inline v1
