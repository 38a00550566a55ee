#include <xcore/manifest.hpp>
#include <xcore/json_text.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/split.hpp"
#include <xcore/json_schema.hpp>

namespace xcore::inline v1 {

std::string_view to_string(PluginMode mode) noexcept {
  return mode == PluginMode::trusted ? "trusted" : "sandboxed";
}

namespace {
// ".method" from a route error's {"field":"method"}; "" for the route as a whole.
std::string route_field(const Error& e) {
  boost::system::error_code ec;
  auto v = json::parse(e.details, ec);
  if (ec || !v.is_object()) return {};
  auto f = v.get_object().find("field");
  if (f == v.get_object().end() || !f->value().is_string() || f->value().get_string().empty()) return {};
  return "." + std::string(f->value().get_string());
}
}  // namespace

namespace {

// The top-level properties of a config schema, each with its own schema object.
template <class Fn>
void for_each_config_property(const std::optional<json::object>& schema, Fn&& fn) {
  if (!schema) return;
  const auto* props = schema->if_contains("properties");
  if (!props || !props->is_object()) return;
  for (const auto& [k, v] : props->get_object())
    if (v.is_object()) fn(std::string_view(k), v.get_object());
}


// ---- YAML -> JSON: plain scalars get YAML 1.2 core-schema types, quoted ones stay strings ----------

std::optional<json::value> plain_scalar(const std::string& s) {
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return json::value(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return json::value(true);
  if (s == "false" || s == "False" || s == "FALSE") return json::value(false);
  const char* b = s.data();
  const char* e = s.data() + s.size();
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(b + (s[0] == '+'), e, i); ec == std::errc{} && p == e) return json::value(i);
  // Only things that look like decimal numbers; "1.2.3" stays a string.
  if (s.find_first_not_of("+-0123456789.eE") == std::string::npos && s.find_first_of("0123456789") != std::string::npos) {
    double d = 0;
    if (auto [p, ec] = std::from_chars(b + (s[0] == '+'), e, d); ec == std::errc{} && p == e) return json::value(d);
  }
  return std::nullopt;
}

json::value yaml_to_json(const YAML::Node& n, int depth = 0) {
  if (depth > 64) throw std::runtime_error("nesting deeper than 64 levels");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: {
      const auto& s = n.Scalar();
      if (n.Tag() == "?")  // plain, unquoted
        if (auto v = plain_scalar(s)) return *v;
      return json::value(json::string(s));
    }
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& item : n) a.push_back(yaml_to_json(item, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : n) {
        auto key = kv.first.as<std::string>();
        if (o.contains(key)) throw std::runtime_error(fmt::format("key '{}' appears twice", key));
        o[key] = yaml_to_json(kv.second, depth + 1);
      }
      return o;
    }
  }
  return nullptr;
}

// ---- field checks -----------------------------------------------------------------------------------

struct Checker {
  std::string file;
  json::array problems;
  std::vector<std::string> warnings;

  void fail(std::string_view field, std::string message) {
    problems.push_back(json::object{{"field", field}, {"message", message}});
  }
  void warn(std::string_view field, std::string_view message) {
    warnings.push_back(fmt::format("{}: field '{}': {}", file, field, message));
  }

  static std::string describe(const json::value& v) {
    switch (v.kind()) {
      case json::kind::null: return "null";
      case json::kind::bool_: return "a boolean";
      case json::kind::int64:
      case json::kind::uint64:
      case json::kind::double_: return fmt::format("the number {}", xcore::json_text::serialize(v));
      case json::kind::string: return fmt::format("'{}'", std::string_view(v.get_string()));
      case json::kind::array: return "a list";
      case json::kind::object: return "a mapping";
    }
    return "?";
  }

  std::optional<std::string> string(const json::object& o, std::string_view field, bool required,
                                    std::string_view expected = "a string") {
    auto it = o.find(field);
    if (it == o.end() || it->value().is_null()) {
      if (required) fail(field, fmt::format("is required: expected {}", expected));
      return std::nullopt;
    }
    if (!it->value().is_string()) {
      fail(field, fmt::format("expected {}, got {}", expected, describe(it->value())));
      return std::nullopt;
    }
    return std::string(it->value().get_string());
  }

  std::vector<std::string> string_list(const json::object& o, std::string_view field) {
    std::vector<std::string> out;
    auto it = o.find(field);
    if (it == o.end() || it->value().is_null()) return out;
    if (!it->value().is_array()) {
      fail(field, fmt::format("expected a list of strings, got {}", describe(it->value())));
      return out;
    }
    std::size_t i = 0;
    for (const auto& item : it->value().get_array()) {
      if (!item.is_string())
        fail(fmt::format("{}[{}]", field, i), fmt::format("expected a string, got {}", describe(item)));
      else
        out.emplace_back(item.get_string());
      ++i;
    }
    return out;
  }
};

bool valid_plugin_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok_first(id[0])) return false;
  for (char c : id)
    if (!ok_first(c) && c != '-' && c != '_' && c != '.') return false;
  return id.find("..") == std::string_view::npos;
}

const std::set<std::string, std::less<>> kKnownFields{
    "id",       "name",        "version",     "description", "author",      "license", "homepage",
    "tags",     "mode",        "entry",       "api_version", "requires",    "permissions",
    "limits",   "config_schema", "tools",       "command",     "env",         "cwd",   "routes", "schedules",
    "url",      "headers",       "bearer_secret", "competencies"};

bool route_segment_ok(std::string_view seg) {
  if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') seg = seg.substr(1, seg.size() - 2);
  if (seg.empty() || seg == "." || seg == "..") return false;
  for (char ch : seg)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') return false;
  return true;
}

bool role_name_ok(std::string_view role) {
  if (role.empty() || role.size() > 32 || role.front() < 'a' || role.front() > 'z') return false;
  return std::all_of(role.begin(), role.end(), [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'; });
}

void read_routes(Checker& c, const json::object& o, PluginManifest& m) {
  auto it = o.find("routes");
  if (it == o.end() || it->value().is_null()) return;
  if (!it->value().is_array()) {
    c.fail("routes", fmt::format("expected a list of routes, got {}", Checker::describe(it->value())));
    return;
  }
  std::size_t i = 0;
  for (const auto& v : it->value().get_array()) {
    auto r = parse_route(v);
    if (r) m.routes.push_back(std::move(*r));
    else c.fail(fmt::format("routes[{}]{}", i, route_field(r.error())), r.error().message);
    ++i;
  }
}

void check_entry(Checker& c, const std::string& entry) {
  std::filesystem::path p(entry);
  if (entry.empty()) c.fail("entry", "must name the plugin binary, e.g. libmyplugin.so");
  else if (p.is_absolute()) c.fail("entry", fmt::format("'{}' must be relative to the manifest's folder", entry));
  else
    for (const auto& part : p)
      if (part == "..") {
        c.fail("entry", fmt::format("'{}' must stay inside the plugin's folder (no '..')", entry));
        break;
      }
}

void read_dependencies(Checker& c, const json::object& o, PluginManifest& m) {
  auto it = o.find("requires");
  if (it == o.end() || it->value().is_null()) return;
  auto add = [&](std::string field, std::string_view id, const json::value& range_v) {
    if (!valid_plugin_id(id)) {
      c.fail(field, fmt::format("'{}' is not a plugin id", id));
      return;
    }
    std::string range_text = "*";
    if (range_v.is_string()) range_text = std::string(range_v.get_string());
    else if (!range_v.is_null()) {
      c.fail(field, fmt::format("expected a version range such as '^1.2', got {}", Checker::describe(range_v)));
      return;
    }
    auto r = VersionRange::parse(range_text);
    if (!r) {
      c.fail(field, r.error().message);
      return;
    }
    if (id == m.id) {
      c.fail(field, "a plugin cannot require itself");
      return;
    }
    m.dependencies.push_back({std::string(id), std::move(*r)});
  };
  const auto& v = it->value();
  if (v.is_object()) {  // requires: {core: "^1.0"}
    for (const auto& [id, range] : v.get_object()) add(fmt::format("requires.{}", std::string_view(id)), id, range);
  } else if (v.is_array()) {  // requires: [{id: core, version: "^1.0"}] or ["core"]
    std::size_t i = 0;
    for (const auto& item : v.get_array()) {
      auto field = fmt::format("requires[{}]", i++);
      if (item.is_string()) add(field, item.get_string(), nullptr);
      else if (item.is_object() && item.get_object().contains("id") && item.get_object().at("id").is_string()) {
        auto ver = item.get_object().find("version");
        add(field, item.get_object().at("id").get_string(), ver == item.get_object().end() ? json::value() : ver->value());
      } else
        c.fail(field, "expected a plugin id or {id: ..., version: ...}");
    }
  } else {
    c.fail("requires", fmt::format("expected a mapping of plugin id to version range, got {}", Checker::describe(v)));
  }
}

void read_limits(Checker& c, const json::object& o, PluginManifest& m) {
  auto it = o.find("limits");
  if (it == o.end() || it->value().is_null()) return;
  if (!it->value().is_object()) {
    c.fail("limits", fmt::format("expected a mapping, got {}", Checker::describe(it->value())));
    return;
  }
  auto positive = [&](std::string_view key, const json::value& v) -> std::optional<std::int64_t> {
    if (v.is_int64() && v.get_int64() > 0) return v.get_int64();
    if (v.is_uint64() && v.get_uint64() > 0 && v.get_uint64() < (1ULL << 62)) return static_cast<std::int64_t>(v.get_uint64());
    c.fail(fmt::format("limits.{}", key), fmt::format("expected a positive whole number, got {}", Checker::describe(v)));
    return std::nullopt;
  };
  for (const auto& [key, v] : it->value().get_object()) {
    if (key == "max_concurrency") {
      if (auto n = positive(key, v)) m.limits.max_concurrency = static_cast<unsigned>(std::min<std::int64_t>(*n, 1 << 20));
    } else if (key == "timeout_ms") {
      if (auto n = positive(key, v)) m.limits.timeout = std::chrono::milliseconds(*n);
    } else if (key == "memory_mb") {
      m.limits.memory_mb = positive(key, v);
    } else if (key == "cpu_seconds") {
      m.limits.cpu_seconds = positive(key, v);
    } else if (key == "open_files") {
      m.limits.open_files = positive(key, v);
    } else if (key == "file_size_mb") {
      m.limits.file_size_mb = positive(key, v);
    } else if (key == "processes") {
      m.limits.processes = positive(key, v);
    } else if (key == "cpu_percent") {
      m.limits.cpu_percent = positive(key, v);
    } else if (key == "rate") {
      // rate: {calls: 100, per_seconds: 60}
      if (!v.is_object()) {
        c.fail("limits.rate", fmt::format("expected {{calls: N, per_seconds: S}}, got {}", Checker::describe(v)));
        continue;
      }
      const auto& r = v.get_object();
      auto calls = r.find("calls");
      if (calls == r.end()) c.fail("limits.rate.calls", "required: how many calls per period");
      else m.limits.rate_calls = positive("rate.calls", calls->value());
      if (auto per = r.find("per_seconds"); per != r.end())
        if (auto n = positive("rate.per_seconds", per->value())) m.limits.rate_period = std::chrono::seconds(*n);
      for (const auto& [k, unused] : r)
        if (k != "calls" && k != "per_seconds") c.warn(fmt::format("limits.rate.{}", std::string_view(k)), "unknown field, ignored");
    } else {
      c.warn(fmt::format("limits.{}", std::string_view(key)), "unknown limit, ignored");
    }
  }
}

void read_competencies(Checker& c, const json::object& o, PluginManifest& m) {
  auto it = o.find("competencies");
  if (it == o.end() || it->value().is_null()) return;
  if (!it->value().is_array()) {
    c.fail("competencies", fmt::format("expected a list of competencies, got {}", Checker::describe(it->value())));
    return;
  }
  std::set<std::string> ids;
  std::size_t i = 0;
  for (const auto& v : it->value().get_array()) {
    auto field = fmt::format("competencies[{}]", i++);
    auto competency = Competency::from_json(v);
    if (!competency) {
      c.fail(field, competency.error().message);
      continue;
    }
    if (!ids.insert(competency->id).second) {
      c.fail(field, fmt::format("competency '{}' is declared twice", competency->id));
      continue;
    }
    competency->plugin = m.id;
    m.competencies.push_back(std::move(*competency));
  }
}

void read_tools(Checker& c, const json::object& o, PluginManifest& m) {
  auto it = o.find("tools");
  if (it == o.end() || it->value().is_null()) return;
  if (!it->value().is_array()) {
    c.fail("tools", fmt::format("expected a list of tools, got {}", Checker::describe(it->value())));
    return;
  }
  std::set<std::string> names;
  std::size_t i = 0;
  for (const auto& t : it->value().get_array()) {
    auto field = fmt::format("tools[{}]", i++);
    auto spec = ToolSpec::from_json(t);
    if (!spec) {
      c.fail(field, spec.error().message);
      continue;
    }
    if (auto v = spec->validate(); !v) {
      c.fail(field, v.error().message);
      continue;
    }
    if (!names.insert(spec->name).second) {
      c.fail(field, fmt::format("tool '{}' is declared twice", spec->name));
      continue;
    }
    spec->plugin = m.id;
    m.tools.push_back(std::move(*spec));
  }
}

}  // namespace

Result<PluginRoute> parse_route(const json::value& v) {
  // The error's details say which field of the route is wrong ({"field":"method"}), so that a manifest
  // can name "routes[2].method".
  auto fail = [](std::string field, std::string message) {
    return Error{ErrorCode::invalid_argument, std::move(message), xcore::json_text::serialize(json::object{{"field", field}})};
  };
  if (!v.is_object()) return fail("", "expected {method, path, action, role}");
  const auto& r = v.get_object();
  auto str = [&](const char* k) -> std::string {
    auto f = r.find(k);
    return f != r.end() && f->value().is_string() ? std::string(f->value().get_string()) : std::string();
  };
  PluginRoute route{str("method"), str("path"), str("action"), str("role")};
  std::transform(route.method.begin(), route.method.end(), route.method.begin(), ::toupper);
  if (route.method != "GET" && route.method != "POST" && route.method != "PUT" && route.method != "PATCH" && route.method != "DELETE")
    return fail("method", fmt::format("'{}': expected GET, POST, PUT, PATCH or DELETE", route.method));
  if (!route.path.starts_with("/")) return fail("path", fmt::format("'{}' must start with '/'", route.path));
  for (std::string_view rest = std::string_view(route.path).substr(1); !rest.empty();) {
    auto slash = rest.find('/');
    if (!route_segment_ok(rest.substr(0, slash)))
      return fail("path", fmt::format("'{}': segments are [A-Za-z0-9._-]+ or {{name}}", route.path));
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (route.action.empty()) return fail("action", "must name the action that answers the route");
  if (!route.role.empty() && !role_name_ok(route.role))
    return fail("role", fmt::format("'{}': a role name is [a-z][a-z0-9_-]{{0,31}}", route.role));
  return route;
}

RouteMatch match_route(const std::vector<PluginRoute>& routes, std::string_view method, std::string_view path) {
  auto segments_of = [](std::string_view p) {
    auto all = split(p, '/');
    std::erase_if(all, [](std::string_view s) { return s.empty(); });
    return all;
  };
  const auto segments = segments_of(path);
  for (const auto& r : routes) {
    if (r.method != method) continue;
    const auto pattern = segments_of(r.path);
    if (pattern.size() != segments.size()) continue;
    RouteMatch m{&r, {}};
    for (std::size_t i = 0; m.route && i < pattern.size(); ++i) {
      if (pattern[i].starts_with('{')) m.params[pattern[i].substr(1, pattern[i].size() - 2)] = segments[i];
      else if (pattern[i] != segments[i]) m.route = nullptr;
    }
    if (m.route) return m;
  }
  return {};
}

namespace {

// What a plugin may be granted: these families, each with what follows its colon, and `network`.
constexpr std::string_view kPermissionFamilies[] = {"tools.call", "actions.call", "hooks.emit", "hooks.subscribe",
                                                    "secrets.read", "fs.read", "fs.write", "client.request"};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

// A JSON pointer as the manifest's field names write it: "/properties/a" -> ".properties.a".
std::string dotted(std::string_view pointer) {
  std::string out(pointer == "/" ? std::string_view() : pointer);
  std::replace(out.begin(), out.end(), '/', '.');
  return out;
}

std::optional<std::string> permission_problem(std::string_view perm) {
  if (perm == "network") return std::nullopt;
  const auto colon = perm.find(':');
  const auto family = perm.substr(0, colon);
  const bool known = std::find(std::begin(kPermissionFamilies), std::end(kPermissionFamilies), family) != std::end(kPermissionFamilies);
  if (known && colon != std::string_view::npos && colon + 1 < perm.size()) return std::nullopt;
  if (known)
    return fmt::format("'{}' needs {} after '{}:'", perm, family.starts_with("fs.") ? "a path" : "a name or pattern", family);
  // The closest valid permission, keeping what followed the family.
  std::string_view best = "network";
  std::size_t best_distance = edit_distance(family, best);
  for (auto f : kPermissionFamilies)
    if (auto d = edit_distance(family, f); d < best_distance) {
      best = f;
      best_distance = d;
    }
  std::string families;
  for (auto f : kPermissionFamilies) families += fmt::format("{}:..., ", f);
  const std::string suggestion = best == "network" ? std::string(best)
                                                   : fmt::format("{}:{}", best, colon == std::string_view::npos ? "..." : perm.substr(colon + 1));
  return fmt::format("unknown permission '{}'{}; a plugin may be granted {}network", perm,
                     best_distance <= 3 ? fmt::format(" (did you mean '{}'?)", suggestion) : std::string(), families);
}

Result<json::value> parse_document(std::string_view text, const std::filesystem::path& file) {
  const auto name = file.string();
  try {
    if (file.extension() == ".json") {
      // Parsed in one step, which says how far it got: the error names the line and column.
      json::stream_parser p;
      boost::system::error_code ec;
      std::size_t used = p.write_some(text.data(), text.size(), ec);
      if (!ec) p.finish(ec);
      if (ec) {
        const auto before = text.substr(0, std::min(used, text.size()));
        const auto line = 1 + std::count(before.begin(), before.end(), '\n');
        const auto nl = before.rfind('\n');
        const auto column = 1 + before.size() - (nl == std::string_view::npos ? 0 : nl + 1);
        return Error{ErrorCode::invalid_argument, fmt::format("{}: not valid JSON at line {}, column {}: {}", name, line, column, ec.message())};
      }
      return p.release();
    }
    return yaml_to_json(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::invalid_argument,
                 fmt::format("{}: not valid YAML at line {}, column {}: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg)};
  } catch (const std::exception& e) {
    return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", name, e.what())};
  }
}

Result<ManifestLoad> parse_manifest(std::string_view text, const std::filesystem::path& file) {
  Checker c;
  c.file = file.string();
  XCORE_ASSIGN_OR_RETURN(json::value doc, parse_document(text, file));
  if (!doc.is_object())
    return Error{ErrorCode::invalid_argument, fmt::format("{}: expected a mapping of fields at the top level", c.file)};
  const auto& o = doc.get_object();

  ManifestLoad out;
  auto& m = out.manifest;
  m.file = file;
  m.raw = std::make_shared<const json::object>(o);

  if (auto id = c.string(o, "id", true, "a plugin id such as 'my-plugin'")) {
    if (!valid_plugin_id(*id))
      c.fail("id", fmt::format("'{}' is not a plugin id: expected 1-64 of [a-z0-9_.-], starting with a letter or digit", *id));
    else
      m.id = *id;
  }
  m.name = c.string(o, "name", false).value_or(m.id);
  if (auto v = c.string(o, "version", true, "a semantic version such as 1.0.0")) {
    auto ver = Version::parse(*v);
    if (!ver) c.fail("version", fmt::format("expected a semantic version such as 1.0.0: {}", ver.error().message));
    else m.version = std::move(*ver);
  }
  m.description = c.string(o, "description", false).value_or("");
  m.author = c.string(o, "author", false).value_or("");
  m.license = c.string(o, "license", false).value_or("");
  m.homepage = c.string(o, "homepage", false).value_or("");
  m.tags = c.string_list(o, "tags");
  if (auto mode = c.string(o, "mode", false, "'trusted' or 'sandboxed'")) {
    if (*mode == "trusted") m.mode = PluginMode::trusted;
    else if (*mode == "sandboxed") m.mode = PluginMode::sandboxed;
    else c.fail("mode", fmt::format("expected 'trusted' or 'sandboxed', got '{}'", *mode));
  }
  m.command = c.string_list(o, "command");
  if (o.contains("command") && m.command.empty()) c.fail("command", "expected a non-empty list: the program and its arguments");
  if (!m.command.empty()) {
    if (o.contains("entry")) c.fail("entry", "give either 'entry' (a plugin binary) or 'command' (an external MCP server), not both");
    if (m.mode != PluginMode::sandboxed)
      c.fail("command", "an external command runs in its own process: set 'mode: sandboxed'");
    if (auto it = o.find("env"); it != o.end() && !it->value().is_null()) {
      if (!it->value().is_object()) c.fail("env", "expected a mapping of variable names to strings");
      else
        for (const auto& [k, v] : it->value().get_object()) {
          if (!v.is_string()) c.fail(fmt::format("env.{}", std::string_view(k)), "expected a string");
          else m.env.emplace_back(std::string(k), std::string(v.get_string()));
        }
    }
    m.cwd = c.string(o, "cwd", false).value_or("");
  } else if (o.contains("url")) {
    // An MCP server elsewhere: no code of its own runs here.
    if (o.contains("entry")) c.fail("entry", "give either 'entry' (a plugin binary) or 'url' (a remote MCP server), not both");
    if (auto url = c.string(o, "url", true, "the MCP server's Streamable HTTP endpoint, e.g. https://tools.example.com/mcp")) {
      if (!url->starts_with("http://") && !url->starts_with("https://")) c.fail("url", fmt::format("expected an http:// or https:// URL, got '{}'", *url));
      else if (url->find_first_of(" \t\r\n") != std::string::npos) c.fail("url", "a URL has no spaces or line breaks");
      else m.url = *url;
    }
    if (auto it = o.find("headers"); it != o.end() && !it->value().is_null()) {
      if (!it->value().is_object()) c.fail("headers", "expected a mapping of header names to strings");
      else
        for (const auto& [k, v] : it->value().get_object()) {
          const std::string name(k);
          const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_'; });
          if (!token) c.fail(fmt::format("headers.{}", name), "a header name is letters, digits, '-' and '_'");
          else if (!v.is_string() || std::string_view(v.get_string()).find_first_of("\r\n") != std::string_view::npos)
            c.fail(fmt::format("headers.{}", name), "expected a string on one line");
          else m.headers.emplace_back(name, std::string(v.get_string()));
        }
    }
    m.bearer_secret = c.string(o, "bearer_secret", false, "the name of a secret holding the bearer token").value_or("");
  } else if (auto entry = c.string(o, "entry", true, "the plugin binary's file name, e.g. libmyplugin.so, 'command' or 'url'")) {
    check_entry(c, *entry);
    m.entry = *entry;
  }
  {
    auto api = c.string(o, "api_version", false, "a version range such as '^1.0'").value_or("^1");
    auto r = VersionRange::parse(api);
    if (!r) c.fail("api_version", r.error().message);
    else m.api_version = std::move(*r);
  }
  read_dependencies(c, o, m);
  m.permissions = c.string_list(o, "permissions");
  for (std::size_t i = 0; i < m.permissions.size(); ++i)
    if (auto problem = permission_problem(m.permissions[i])) c.fail(fmt::format("permissions[{}]", i), std::move(*problem));
  if (!m.bearer_secret.empty() && std::find(m.permissions.begin(), m.permissions.end(), "secrets.read:" + m.bearer_secret) == m.permissions.end())
    c.fail("bearer_secret", fmt::format("the secret '{}' is read for the plugin: add 'secrets.read:{}' to its permissions", m.bearer_secret, m.bearer_secret));
  read_limits(c, o, m);
  if (auto it = o.find("config_schema"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      c.fail("config_schema", fmt::format("expected a JSON Schema object, got {}", Checker::describe(it->value())));
    } else if (auto s = JsonSchema::compile(it->value()); !s) {
      // Each problem of the schema at its own place: "config_schema.properties.keep.minimum".
      boost::system::error_code ec;
      auto details = json::parse(s.error().details, ec);
      const json::array* errors = !ec && details.is_object() && details.get_object().contains("errors") && details.at("errors").is_array()
                                      ? &details.at("errors").get_array() : nullptr;
      if (!errors || errors->empty()) c.fail("config_schema", s.error().message);
      else
        for (const auto& e : *errors)
          c.fail("config_schema" + dotted(e.at("path").as_string()),
                 fmt::format("not a valid JSON Schema: {}", std::string_view(e.at("message").as_string())));
    } else {
      m.config_schema = it->value().get_object();
      for_each_config_property(m.config_schema, [&](std::string_view k, const json::object& v) {
        const auto* g = v.if_contains("x-xcore-grant");
        if (!g) return;
        const auto where = fmt::format("config_schema.properties.{}", k);
        if (!(*g == "fs.read" || *g == "fs.write"))
          c.fail(where, "'x-xcore-grant' must be \"fs.read\" or \"fs.write\"");
        else if (const auto* t = v.if_contains("type"); !t || *t != "string")
          c.fail(where, "a key with 'x-xcore-grant' names a folder: its type must be \"string\"");
        else if (const auto* p = v.if_contains("x-xcore-privileged"); !p || *p != true)
          c.fail(where, "a key with 'x-xcore-grant' widens what the plugin reaches: mark it \"x-xcore-privileged\": true");
      });
      // The defaults themselves must satisfy the schema, or no plugin could ever load with them.
      json::value defaults = json::object();
      (*s)->apply_defaults(defaults);
      if (auto ok = (*s)->validate(defaults, "default config"); !ok && !defaults.get_object().empty())
        c.warn("config_schema", ok.error().message);
    }
  }
  read_tools(c, o, m);
  read_competencies(c, o, m);
  read_routes(c, o, m);
  for (const auto& [key, v] : o)
    if (!kKnownFields.contains(std::string_view(key))) c.warn(key, "unknown field, ignored");

  if (!c.problems.empty()) {
    std::string msg = fmt::format("{}: invalid manifest", c.file);
    for (const auto& p : c.problems)
      msg += fmt::format("; field '{}': {}", std::string_view(p.at("field").get_string()),
                         std::string_view(p.at("message").get_string()));
    return Error{ErrorCode::invalid_argument, std::move(msg), xcore::json_text::serialize(c.problems)};
  }
  out.warnings = std::move(c.warnings);
  return out;
}

Result<ManifestLoad> load_manifest(const std::filesystem::path& file) {
  XCORE_ASSIGN_OR_RETURN(auto shared, load_manifest_shared(file));
  return *shared;
}

Result<std::shared_ptr<const ManifestLoad>> load_manifest_shared(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{ErrorCode::not_found, fmt::format("{}: cannot be read", file.string())};
  std::ostringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  if (text.size() > (1u << 20))
    return Error{ErrorCode::invalid_argument, fmt::format("{}: larger than 1 MiB", file.string())};
  // The same file with the same text was read before (another tenant's Manager, a rediscovery): the same
  // parse is handed out instead of a new one. Failures are not kept: they are read again.
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<const ManifestLoad>> by_file_and_text;
  };
  static auto* cache = new Cache;  // never destroyed: readers may run during exit
  auto key = file.string();
  key.push_back('\0');
  key += text;
  {
    std::lock_guard lock(cache->mutex);
    if (auto it = cache->by_file_and_text.find(key); it != cache->by_file_and_text.end()) return it->second;
  }
  XCORE_ASSIGN_OR_RETURN(auto parsed, parse_manifest(text, file));
  auto loaded = std::make_shared<const ManifestLoad>(std::move(parsed));
  std::lock_guard lock(cache->mutex);
  if (cache->by_file_and_text.size() >= 4096) cache->by_file_and_text.clear();  // bounded: plugin folders hold far fewer
  cache->by_file_and_text.emplace(std::move(key), loaded);
  return loaded;
}

std::optional<std::filesystem::path> find_manifest(const std::filesystem::path& dir) {
  for (const char* name : {"plugin.yaml", "plugin.yml", "plugin.json"}) {
    std::error_code ec;
    auto p = dir / name;
    if (std::filesystem::is_regular_file(p, ec)) return p;
  }
  return std::nullopt;
}

std::vector<std::string> PluginManifest::privileged_config_keys() const {
  std::vector<std::string> out;
  for_each_config_property(config_schema, [&](std::string_view k, const json::object& v) {
    if (const auto* flag = v.if_contains("x-xcore-privileged"); flag && *flag == true) out.emplace_back(k);
  });
  return out;
}

std::vector<std::pair<std::string, std::string>> PluginManifest::config_grants() const {
  std::vector<std::pair<std::string, std::string>> out;
  for_each_config_property(config_schema, [&](std::string_view k, const json::object& v) {
    if (const auto* g = v.if_contains("x-xcore-grant"); g && g->is_string()) out.emplace_back(k, std::string(g->get_string()));
  });
  return out;
}

}  // namespace xcore::inline v1
