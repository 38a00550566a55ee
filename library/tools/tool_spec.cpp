// ToolSpec and ToolResult: reading and writing the MCP shapes.
#include <xcore/tools.hpp>
#include <xcore/json_text.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <fmt/format.h>

#include <xcore/json_schema.hpp>

namespace xcore::inline v1 {

bool is_valid_tool_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

namespace {

Result<std::string> opt_string(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::string();
  if (!it->value().is_string()) return Error{ErrorCode::invalid_argument, fmt::format("'{}' must be a string", key)};
  return std::string(it->value().get_string());
}

Result<std::vector<std::string>> opt_strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return out;
  if (!it->value().is_array()) return Error{ErrorCode::invalid_argument, fmt::format("'{}' must be a list of strings", key)};
  for (const auto& v : it->value().get_array()) {
    if (!v.is_string()) return Error{ErrorCode::invalid_argument, fmt::format("'{}' must be a list of strings", key)};
    out.emplace_back(v.get_string());
  }
  return out;
}

// Accepts both MCP's camelCase and snake_case spellings.
const json::value* either(const json::object& o, std::string_view a, std::string_view b) {
  if (auto it = o.find(a); it != o.end()) return &it->value();
  if (auto it = o.find(b); it != o.end()) return &it->value();
  return nullptr;
}

}  // namespace

Result<ToolSpec> ToolSpec::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "a tool must be a JSON object"};
  const auto& o = v.get_object();
  ToolSpec s;
  XCORE_ASSIGN_OR_RETURN(s.name, opt_string(o, "name"));
  if (s.name.empty()) return Error{ErrorCode::invalid_argument, "a tool needs a 'name'"};
  XCORE_ASSIGN_OR_RETURN(s.title, opt_string(o, "title"));
  XCORE_ASSIGN_OR_RETURN(s.description, opt_string(o, "description"));
  // xcore's fields stand at the top level (manifests) or in _meta.xcore (the MCP form).
  const json::object* x = &o;
  if (auto meta = o.find("_meta"); meta != o.end() && meta->value().is_object())
    if (auto xc = meta->value().get_object().find("xcore"); xc != meta->value().get_object().end() && xc->value().is_object())
      x = &xc->value().get_object();
  XCORE_ASSIGN_OR_RETURN(s.category, opt_string(*x, "category"));
  XCORE_ASSIGN_OR_RETURN(s.tenant, opt_string(o, "tenant"));
  XCORE_ASSIGN_OR_RETURN(s.competencies, opt_strings(*x, "competencies"));
  XCORE_ASSIGN_OR_RETURN(s.permissions, opt_strings(*x, "permissions"));
  if (const auto* in = either(o, "inputSchema", "input_schema"); in && !in->is_null()) {
    if (!in->is_object()) return Error{ErrorCode::invalid_argument, fmt::format("tool '{}': 'inputSchema' must be an object", s.name)};
    s.input_schema = in->get_object();
  }
  if (const auto* out = either(o, "outputSchema", "output_schema"); out && !out->is_null()) {
    if (!out->is_object()) return Error{ErrorCode::invalid_argument, fmt::format("tool '{}': 'outputSchema' must be an object", s.name)};
    s.output_schema = out->get_object();
  }
  if (auto it = o.find("annotations"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_object()) return Error{ErrorCode::invalid_argument, fmt::format("tool '{}': 'annotations' must be an object", s.name)};
    s.annotations = it->value().get_object();
  }
  return s;
}

json::object ToolSpec::to_mcp(std::string_view exposed_name) const {
  json::object o;
  o["name"] = exposed_name.empty() ? std::string_view(name) : exposed_name;
  if (!title.empty()) o["title"] = title;
  if (!description.empty()) o["description"] = description;
  o["inputSchema"] = input_schema.empty() ? json::object{{"type", "object"}} : input_schema;
  if (output_schema) o["outputSchema"] = *output_schema;
  if (!annotations.empty()) o["annotations"] = annotations;
  json::object meta;
  if (!category.empty()) meta["category"] = category;
  if (!plugin.empty()) meta["plugin"] = plugin;
  if (!competencies.empty()) meta["competencies"] = json::value_from(competencies);
  if (!permissions.empty()) meta["permissions"] = json::value_from(permissions);
  if (!meta.empty()) o["_meta"] = json::object{{"xcore", std::move(meta)}};
  return o;
}

Result<void> ToolSpec::validate() const {
  if (!is_valid_tool_name(name))
    return Error{ErrorCode::invalid_argument,
                 fmt::format("'{}' is not a valid tool name: expected 1-128 of [A-Za-z0-9_.-]", name)};
  if (!input_schema.empty()) {
    auto t = input_schema.find("type");
    if (t != input_schema.end() && t->value() != "object")
      return Error{ErrorCode::invalid_argument, fmt::format("tool '{}': inputSchema must describe an object", name)};
    if (auto s = JsonSchema::compile(input_schema); !s)
      return Error{ErrorCode::invalid_argument, fmt::format("tool '{}': inputSchema: {}", name, s.error().message)};
  }
  if (output_schema)
    if (auto s = JsonSchema::compile(*output_schema); !s)
      return Error{ErrorCode::invalid_argument, fmt::format("tool '{}': outputSchema: {}", name, s.error().message)};
  return ok();
}

ToolResult ToolResult::failure(const Error& e) { return text(fmt::format("{}: {}", to_string(e.code), e.message), true); }

ToolResult ToolResult::text(std::string_view text, bool is_error) {
  ToolResult r;
  r.content.push_back(json::object{{"type", "text"}, {"text", text}});
  r.is_error = is_error;
  return r;
}

ToolResult ToolResult::structured_value(json::value value) {
  ToolResult r;
  r.structured = std::move(value);
  return r;
}

Result<ToolResult> ToolResult::from_mcp(const json::value& v) { return from_mcp(json::value(v)); }

Result<ToolResult> ToolResult::from_mcp(json::value&& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "a tool result must be a JSON object"};
  auto& o = v.get_object();
  ToolResult r;
  if (auto it = o.find("content"); it != o.end()) {
    if (!it->value().is_array()) return Error{ErrorCode::invalid_argument, "tool result: 'content' must be a list"};
    r.content = std::move(it->value().get_array());
  }
  if (auto it = o.find("structuredContent"); it != o.end()) r.structured = std::move(it->value());
  if (auto it = o.find("isError"); it != o.end()) {
    if (!it->value().is_bool()) return Error{ErrorCode::invalid_argument, "tool result: 'isError' must be a boolean"};
    r.is_error = it->value().get_bool();
  }
  return r;
}

json::object ToolResult::to_mcp() const {
  json::object o;
  if (content.empty() && !structured.is_null())
    o["content"] = json::array{json::object{{"type", "text"}, {"text", xcore::json_text::serialize(structured)}}};
  else
    o["content"] = content;
  if (!structured.is_null()) o["structuredContent"] = structured;
  o["isError"] = is_error;
  return o;
}

}  // namespace xcore::inline v1
