#include <xcore/json_schema.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <locale>

#include <mutex>
#include <string>
#include <unordered_map>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "json-schema/draft7_metaschema.hpp"

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

// valijson compiles std::regex objects ("pattern", "format") while it validates, on whatever thread calls.
// libstdc++'s ctype<char>::narrow(), which every regex compile uses, fills its cache lazily and without a
// lock, so two threads compiling at once write the same cell. Filling the whole cache once, before main(),
// leaves nothing for them to write.
[[maybe_unused]] const bool ctype_cache_filled = [] {
  const auto& ctype = std::use_facet<std::ctype<char>>(std::locale::classic());
  for (int c = 0; c < 256; ++c) ctype.narrow(static_cast<char>(c), '\0');
  ctype.widen('0');
  return true;
}();
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
  // Checked against the meta-schema first, so that every problem is reported with where it is.
  static const JsonSchema* meta = [] {
    auto* m = new JsonSchema();  // never destroyed, like the cache
    m->impl_->source = json::parse(detail::kDraft7MetaSchema);
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::BoostJsonAdapter adapter(m->impl_->source);
    parser.populateSchema(adapter, m->impl_->schema);
    return m;
  }();
  if (auto checked = meta->validate(schema, "schema"); !checked) {
    std::string list;
    boost::system::error_code ec;
    auto details = json::parse(checked.error().details, ec);
    json::array problems;
    if (!ec && details.is_object() && details.get_object().contains("errors"))
      for (const auto& e : details.at("errors").as_array()) {
        const auto path = std::string(e.at("path").as_string());
        // One problem per place: the first (outermost) message says what that place must be.
        if (std::any_of(problems.begin(), problems.end(), [&](const json::value& p) { return p.at("path").as_string() == path; })) continue;
        problems.push_back(e);
        list += fmt::format("{}at '{}': {}", list.empty() ? "" : "; ", path, std::string_view(e.at("message").as_string()));
      }
    return Error{ErrorCode::invalid_argument, fmt::format("invalid JSON Schema: {}", list.empty() ? checked.error().message : list),
                 xcore::json_text::serialize(json::object{{"errors", std::move(problems)}})};
  }
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

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
  }
  return "value";
}

// The subschema that applies at `pointer` of the value, following properties, additionalProperties and
// items (enough for the type errors of the schemas tools and configs use; nullptr when it cannot tell).
// A local "$ref" ("#" or "#/definitions/x") resolved against the root schema.
const json::value* resolve(const json::value& root, const json::value* s) {
  for (int hops = 0; s && s->is_object() && hops < 8; ++hops) {
    auto r = s->get_object().find("$ref");
    if (r == s->get_object().end() || !r->value().is_string()) return s;
    std::string_view ref = r->value().get_string();
    if (!ref.starts_with('#')) return s;
    boost::system::error_code ec;
    s = root.find_pointer(ref.substr(1), ec);
  }
  return s;
}

const json::object* schema_at(const json::value& schema, std::string_view pointer) {
  const json::value* s = resolve(schema, &schema);
  std::size_t at = pointer.empty() || pointer == "/" ? pointer.size() : 1;
  while (at < pointer.size()) {
    auto end = pointer.find('/', at);
    if (end == std::string_view::npos) end = pointer.size();
    const std::string segment(pointer.substr(at, end - at));
    at = end + 1;
    if (!s->is_object()) return nullptr;
    const auto& o = s->get_object();
    const json::value* next = nullptr;
    if (auto p = o.find("properties"); p != o.end() && p->value().is_object()) next = p->value().get_object().if_contains(segment);
    if (!next)
      if (auto a = o.find("additionalProperties"); a != o.end() && a->value().is_object()) next = &a->value();
    if (!next && !segment.empty() && std::all_of(segment.begin(), segment.end(), ::isdigit))
      if (auto i = o.find("items"); i != o.end() && i->value().is_object()) next = &i->value();
    if (!next) return nullptr;
    s = resolve(schema, next);
    if (!s) return nullptr;
  }
  return s->is_object() ? &s->get_object() : nullptr;
}

// valijson says only that no enum value matched: say which are allowed.
std::string enum_message(const json::value& schema, const std::string& path) {
  const auto* sub = schema_at(schema, path);
  if (!sub) return {};
  auto e = sub->find("enum");
  // Or the enum of an anyOf's alternative (draft-07's "type": a simple type, or a list of them).
  if (auto any = sub->find("anyOf"); e == sub->end() && any != sub->end() && any->value().is_array())
    for (const auto& alt : any->value().get_array())
      if (const auto* a = resolve(schema, &alt); a && a->is_object() && a->get_object().contains("enum")) {
        sub = &a->get_object();
        e = sub->find("enum");
        break;
      }
  if (e == sub->end() || !e->value().is_array()) return {};
  std::string values;
  for (const auto& v : e->value().get_array()) values += (values.empty() ? "" : ", ") + xcore::json_text::serialize(v);
  return fmt::format("expected one of {}", values);
}

// valijson says only that a type was not permitted: say which were expected and which was given.
std::string type_message(const json::value& schema, const json::value& value, const std::string& path) {
  boost::system::error_code ec;
  const json::value* given = value.find_pointer(path == "/" ? "" : path, ec);
  if (!given) return {};
  std::string expected;
  if (const auto* sub = schema_at(schema, path))
    if (auto t = sub->find("type"); t != sub->end()) {
      if (t->value().is_string()) expected = t->value().get_string();
      else if (t->value().is_array())
        for (const auto& e : t->value().get_array())
          if (e.is_string()) expected += (expected.empty() ? "" : " or ") + std::string(e.get_string());
    }
  auto shown = xcore::json_text::serialize(*given);
  if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
  return expected.empty() ? fmt::format("this type is not allowed here: got {} {}", kind_name(*given), shown)
                          : fmt::format("expected {}, got {} {}", expected, kind_name(*given), shown);
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
    std::vector<std::pair<std::string, std::string>> found;  // path, message
    while (results.popError(err) && found.size() < 256) {
      auto path = pointer_of(err.context);
      auto message = err.description;
      if (message.find("'type' constraint") != std::string::npos) {
        if (auto better = type_message(impl_->source, value, path); !better.empty()) message = std::move(better);
      } else if (message.find("any enum values") != std::string::npos) {
        if (auto better = enum_message(impl_->source, path); !better.empty()) message = std::move(better);
      }
      found.emplace_back(std::move(path), std::move(message));
    }
    // An error whose place holds a deeper error only says "something inside failed": the deeper one says what.
    auto under = [](const std::string& inner, const std::string& outer) {
      return inner.size() > outer.size() && inner.starts_with(outer) && (outer == "/" || inner[outer.size()] == '/');
    };
    int n = 0;
    for (const auto& [path, message] : found) {
      if (std::any_of(found.begin(), found.end(), [&](const auto& other) { return under(other.first, path); })) continue;
      const std::size_t depth = static_cast<std::size_t>(std::count(path.begin(), path.end(), '/'));
      if (depth > best_depth || n == 0) {
        best_depth = depth;
        best_path = path;
        best_msg = message;
      }
      if (n++ < 8) all.push_back(json::object{{"path", path}, {"message", message}});
    }
    return Error{ErrorCode::invalid_argument, fmt::format("{} '{}': {}", what, best_path, best_msg),
                 xcore::json_text::serialize(json::object{{"path", best_path}, {"errors", std::move(all)}})};
  } catch (const std::exception& e) {
    return Error{ErrorCode::invalid_argument, fmt::format("{}: cannot be validated: {}", what, e.what())};
  }
}

void JsonSchema::apply_defaults(json::value& value) const { apply_defaults_rec(impl_->source, value, 0); }

}  // namespace xcore::inline v1
