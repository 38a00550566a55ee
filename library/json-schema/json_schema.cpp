#include <xcore/json_schema.hpp>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <mutex>
#include <string>
#include <unordered_map>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace xcore::inline v1 {

struct JsonSchema::Impl {
  json::value source;
  valijson::Schema schema;
  // {} or {"type":"object"} (plus annotations): the answer is a type check, no validator pass needed.
  bool object_only = false;
};

namespace {
bool is_object_only(const json::value& schema) {
  if (!schema.is_object()) return false;
  for (const auto& [k, v] : schema.get_object()) {
    if (k == "type" && v == "object") continue;
    if (k == "title" || k == "description" || k == "$schema" || k == "$comment") continue;
    return false;
  }
  return true;
}
}  // namespace

JsonSchema::JsonSchema() : impl_(std::make_unique<Impl>()) {}
JsonSchema::~JsonSchema() = default;

namespace {
// Compiled schemas by their text, while anyone holds them: the same tool in a thousand tenants (one
// plugin enabled in each) is one compiled schema, not a thousand.
struct CompiledCache {
  std::mutex mutex;
  std::unordered_map<std::string, std::weak_ptr<const JsonSchema>> by_text;
  std::size_t inserts = 0;
};
CompiledCache& compiled_cache() {
  static auto* cache = new CompiledCache;  // never destroyed: schemas may be released during exit
  return *cache;
}
}  // namespace

Result<std::shared_ptr<const JsonSchema>> JsonSchema::compile(const json::value& schema) {
  if (!schema.is_object() && !schema.is_bool())
    return Error{ErrorCode::invalid_argument, "a JSON Schema must be an object"};
  auto& cache = compiled_cache();
  auto text = json::serialize(schema);
  {
    std::lock_guard lock(cache.mutex);
    if (auto it = cache.by_text.find(text); it != cache.by_text.end())
      if (auto shared = it->second.lock()) return shared;
  }
  XCORE_ASSIGN_OR_RETURN(auto compiled, compile_uncached(schema));
  std::lock_guard lock(cache.mutex);
  if (++cache.inserts % 256 == 0) std::erase_if(cache.by_text, [](const auto& e) { return e.second.expired(); });
  auto& slot = cache.by_text[std::move(text)];
  if (auto other = slot.lock()) return other;  // compiled by another thread meanwhile: one copy kept
  slot = compiled;
  return compiled;
}

Result<std::shared_ptr<const JsonSchema>> JsonSchema::compile_uncached(const json::value& schema) {
  std::shared_ptr<JsonSchema> s(new JsonSchema());
  s->impl_->source = schema;
  s->impl_->object_only = is_object_only(schema);
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::BoostJsonAdapter adapter(s->impl_->source);
    parser.populateSchema(adapter, s->impl_->schema);
  } catch (const std::exception& e) {
    return Error{ErrorCode::invalid_argument, fmt::format("invalid JSON Schema: {}", e.what())};
  }
  return std::shared_ptr<const JsonSchema>(std::move(s));
}

namespace {

// valijson's context looks like {"<root>", "[items]", "[2]"}: turn it into a JSON pointer "/items/2".
std::string pointer_of(const std::vector<std::string>& context) {
  std::string p;
  for (const auto& c : context) {
    if (c == "<root>") continue;
    std::string_view s = c;
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
    p += '/';
    p += s;
  }
  return p.empty() ? "/" : p;
}

// One Validator per thread: its regex cache is not thread-safe, and building regexes per call is slow.
valijson::Validator& thread_validator() {
  thread_local valijson::Validator v(valijson::Validator::kStrongTypes);
  return v;
}

void apply_defaults_rec(const json::value& schema, json::value& value, int depth) {
  if (depth > 32 || !schema.is_object() || !value.is_object()) return;
  const auto& so = schema.get_object();
  auto props = so.find("properties");
  if (props == so.end() || !props->value().is_object()) return;
  auto& vo = value.get_object();
  for (const auto& [key, sub] : props->value().get_object()) {
    if (!sub.is_object()) continue;
    auto it = vo.find(key);
    if (it == vo.end()) {
      auto def = sub.get_object().find("default");
      if (def != sub.get_object().end()) {
        vo[key] = def->value();
      } else if (auto t = sub.get_object().find("type");
                 t != sub.get_object().end() && t->value() == "object" &&
                 sub.get_object().contains("properties")) {
        // A nested object with defaults inside it gets created so its defaults apply.
        json::value nested = json::object();
        apply_defaults_rec(sub, nested, depth + 1);
        if (!nested.get_object().empty()) vo[key] = std::move(nested);
      }
    } else {
      apply_defaults_rec(sub, it->value(), depth + 1);
    }
  }
}

}  // namespace

Result<void> JsonSchema::validate(const json::value& value, std::string_view what) const {
  if (impl_->object_only && value.is_object()) return ok();
  valijson::adapters::BoostJsonAdapter target(value);
  try {
    // The fast pass stops at the first failure; only a failing value pays for the detailed pass.
    if (thread_validator().validate(impl_->schema, target, nullptr)) return ok();
    valijson::ValidationResults results;
    thread_validator().validate(impl_->schema, target, &results);
    // The deepest error is the most specific one.
    std::string best_path = "/", best_msg = "does not match the schema";
    std::size_t best_depth = 0;
    json::array all;  // details, for programs: {"path": the most specific, "errors": [{"path","message"}...]}
    valijson::ValidationResults::Error err;
    int n = 0;
    while (results.popError(err)) {
      if (err.context.size() > best_depth || n == 0) {
        best_depth = err.context.size();
        best_path = pointer_of(err.context);
        best_msg = err.description;
      }
      if (n++ < 8) all.push_back(json::object{{"path", pointer_of(err.context)}, {"message", err.description}});
    }
    return Error{ErrorCode::invalid_argument, fmt::format("{} '{}': {}", what, best_path, best_msg),
                 xcore::json_text::serialize(json::object{{"path", best_path}, {"errors", std::move(all)}})};
  } catch (const std::exception& e) {
    return Error{ErrorCode::invalid_argument, fmt::format("{}: cannot be validated: {}", what, e.what())};
  }
}

void JsonSchema::apply_defaults(json::value& value) const { apply_defaults_rec(impl_->source, value, 0); }

}  // namespace xcore::inline v1
