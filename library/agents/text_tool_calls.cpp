// Tool calls written as text, for models without native tool calling (many local models print a JSON object,
// often in a ```json fence, instead of filling tool_calls).
#include <xcore/agents.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace xcore::inline v1 {

namespace {

// The balanced {...} starting at `from`, strings and escapes respected; npos when it never closes.
std::size_t object_end(std::string_view text, std::size_t from) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = from; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

std::optional<ModelToolCall> as_call(const json::value& v, const std::vector<std::string>& known) {
  if (!v.is_object()) return std::nullopt;
  const json::object* o = &v.as_object();
  if (auto fn = o->find("function"); fn != o->end() && fn->value().is_object()) o = &fn->value().as_object();
  std::string name;
  for (auto key : {"name", "tool", "tool_name"})
    if (auto it = o->find(key); it != o->end() && it->value().is_string()) {
      name = std::string(it->value().as_string());
      break;
    }
  if (name.empty() || std::find(known.begin(), known.end(), name) == known.end()) return std::nullopt;
  ModelToolCall call{{}, name, "{}"};
  for (auto key : {"arguments", "parameters", "args", "input"})
    if (auto it = o->find(key); it != o->end()) {
      call.arguments = it->value().is_string() ? std::string(it->value().as_string()) : json::serialize(it->value());
      break;
    }
  return call;
}

}  // namespace

std::vector<ModelToolCall> read_text_tool_calls(std::string_view text, const std::vector<std::string>& known) {
  std::vector<ModelToolCall> calls;
  for (std::size_t at = text.find('{'); at != std::string_view::npos; at = text.find('{', at + 1)) {
    const auto end = object_end(text, at);
    if (end == std::string_view::npos) break;
    boost::system::error_code ec;
    auto v = json::parse(text.substr(at, end - at), ec);
    if (ec) continue;
    if (auto call = as_call(v, known)) {
      call->id = fmt::format("text_call_{}", calls.size() + 1);
      calls.push_back(std::move(*call));
      at = end - 1;
    }
  }
  return calls;
}

}  // namespace xcore::inline v1
