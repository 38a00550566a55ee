// The MCP preset catalogue: presets/mcp.yaml built in, operators' files on top. A preset is checked field by
// field wherever it is read (the host's catalogue, and again on the node, which takes nothing on trust).
#include <xcore/manifest.hpp>
#include <xcore/nodes.hpp>
#include <xcore/semver.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>

namespace xcore::inline v1 {

namespace nodes {
extern const char* const builtin_mcp_presets;  // presets/mcp.yaml, generated at build time
}

namespace {

// npm's own rule for new package names: lower case, URL-safe, an optional @scope/.
bool valid_package(const std::string& p) {
  static const std::regex re(R"(^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$)");
  return p.size() <= 214 && std::regex_match(p, re);
}

bool valid_env_name(std::string_view n) {
  if (n.empty() || (n.front() >= '0' && n.front() <= '9')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; });
}

}  // namespace

bool is_node_name(std::string_view n) noexcept {
  if (n.empty() || n.size() > 40 || n.front() == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

json::object McpPreset::to_json() const {
  json::array a;
  for (const auto& s : args) a.emplace_back(s);
  json::object e;
  for (const auto& [k, v] : env) e[k] = v;
  return json::object{{"description", description},
                      {"package", package},
                      {"version", version},
                      {"entry", entry},
                      {"args", std::move(a)},
                      {"env", std::move(e)},
                      {"mounts", json::object{{"min", min_mounts}, {"max", max_mounts}, {"writable", writable}}},
                      {"limits", json::object{{"memory_mb", memory_mb}, {"timeout_ms", timeout_ms}}}};
}

Result<McpPreset> McpPreset::from_json(std::string_view name, const json::value& v) {
  auto fail = [&](std::string_view field, std::string_view why) {
    return Error{ErrorCode::invalid_argument, fmt::format("preset '{}': {}: {}", name, field, why)};
  };
  if (!is_node_name(name)) return fail("name", "1-40 of a-z 0-9 - (not starting with -)");
  if (!v.is_object()) return fail("preset", "expected a mapping");
  const auto& o = v.get_object();
  McpPreset p;
  p.name = std::string(name);
  auto text = [&](std::string_view key, bool required, std::string& out) -> Result<void> {
    const auto* x = o.if_contains(key);
    if (!x) return required ? Result<void>(fail(key, "missing")) : ok();
    if (!x->is_string()) return fail(key, "expected a string");
    out = std::string(x->get_string());
    return ok();
  };
  auto number = [&](const json::object& in, std::string_view where, std::string_view key, unsigned lo, unsigned hi, unsigned& out) -> Result<void> {
    const auto* x = in.if_contains(key);
    if (!x) return ok();
    const auto field = fmt::format("{}.{}", where, key);
    if (!x->is_int64() && !x->is_uint64()) return fail(field, "expected a whole number");
    const auto n = x->to_number<std::int64_t>();
    if (n < lo || n > hi) return fail(field, fmt::format("expected {} to {}", lo, hi));
    out = static_cast<unsigned>(n);
    return ok();
  };
  for (const auto& [k, x] : o) {
    static const std::vector<std::string_view> known{"description", "package", "version", "entry", "args", "env", "mounts", "limits"};
    if (std::find(known.begin(), known.end(), std::string_view(k)) == known.end())
      return fail(std::string_view(k), fmt::format("not a preset field (known: {})", fmt::join(known, ", ")));
  }
  XCORE_TRY(text("description", false, p.description));
  XCORE_TRY(text("package", true, p.package));
  if (!valid_package(p.package)) return fail("package", fmt::format("'{}' is not an npm package name", p.package));
  // YAML reads 1.0 as a number, which would lose what was written: a version is quoted.
  if (const auto* ver = o.if_contains("version"); ver && !ver->is_string()) return fail("version", "expected an exact version such as 1.2.3, quoted");
  XCORE_TRY(text("version", true, p.version));
  if (!Version::parse(p.version) || p.version.find_first_of("+ ") != std::string::npos)
    return fail("version", fmt::format("expected an exact version such as 1.2.3, got '{}'", p.version));
  XCORE_TRY(text("entry", true, p.entry));
  {
    std::filesystem::path e(p.entry);
    bool escapes = e.empty() || e.is_absolute() || p.entry.find('\0') != std::string::npos;
    for (const auto& part : e)
      if (part == "..") escapes = true;
    if (escapes) return fail("entry", fmt::format("expected a path inside the package, got '{}'", p.entry));
  }
  if (const auto* a = o.if_contains("args")) {
    if (!a->is_array()) return fail("args", "expected a list of strings");
    for (const auto& s : a->get_array()) {
      if (!s.is_string()) return fail("args", "expected a list of strings");
      p.args.emplace_back(s.get_string());
    }
  }
  if (const auto* e = o.if_contains("env")) {
    if (!e->is_object()) return fail("env", "expected a mapping of variable names to strings");
    for (const auto& [k, val] : e->get_object()) {
      if (!valid_env_name(k)) return fail(fmt::format("env.{}", std::string_view(k)), "a variable name is A-Z, 0-9 and _");
      if (!val.is_string()) return fail(fmt::format("env.{}", std::string_view(k)), "expected a string");
      p.env.emplace_back(std::string(k), std::string(val.get_string()));
    }
  }
  if (const auto* m = o.if_contains("mounts")) {
    if (!m->is_object()) return fail("mounts", "expected {min, max, writable}");
    for (const auto& [k, x] : m->get_object())
      if (k != "min" && k != "max" && k != "writable") return fail(fmt::format("mounts.{}", std::string_view(k)), "expected min, max or writable");
    XCORE_TRY(number(m->get_object(), "mounts", "min", 0, 16, p.min_mounts));
    p.max_mounts = p.min_mounts;
    XCORE_TRY(number(m->get_object(), "mounts", "max", 0, 16, p.max_mounts));
    if (p.max_mounts < p.min_mounts) return fail("mounts.max", "is below mounts.min");
    if (const auto* w = m->get_object().if_contains("writable")) {
      if (!w->is_bool()) return fail("mounts.writable", "expected true or false");
      p.writable = w->get_bool();
    }
  }
  const bool mounts_used = std::any_of(p.args.begin(), p.args.end(), [](const std::string& s) { return s == "{mounts}"; });
  if (p.max_mounts > 0 && !mounts_used) return fail("args", "the preset takes mounts but no argument is \"{mounts}\"");
  if (const auto* l = o.if_contains("limits")) {
    if (!l->is_object()) return fail("limits", "expected {memory_mb, timeout_ms}");
    for (const auto& [k, x] : l->get_object())
      if (k != "memory_mb" && k != "timeout_ms") return fail(fmt::format("limits.{}", std::string_view(k)), "expected memory_mb or timeout_ms");
    XCORE_TRY(number(l->get_object(), "limits", "memory_mb", 64, 65536, p.memory_mb));
    XCORE_TRY(number(l->get_object(), "limits", "timeout_ms", 100, 600000, p.timeout_ms));
  }
  return p;
}

McpCatalogue McpCatalogue::builtin() {
  McpCatalogue c;
  auto r = c.add_text(nodes::builtin_mcp_presets, "presets/mcp.yaml");
  if (!r) throw std::logic_error(r.error().message);  // the build's own file: a test reads it
  return c;
}

Result<void> McpCatalogue::add_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return Error{ErrorCode::not_found, fmt::format("MCP presets '{}': cannot be read", file.string())};
  std::ostringstream text;
  text << in.rdbuf();
  return add_text(text.str(), file);
}

Result<void> McpCatalogue::add_text(std::string_view yaml, const std::filesystem::path& file) {
  XCORE_ASSIGN_OR_RETURN(auto doc, parse_document(yaml, file));
  const auto* presets = doc.is_object() ? doc.get_object().if_contains("presets") : nullptr;
  if (!presets || !presets->is_object())
    return Error{ErrorCode::invalid_argument, fmt::format("MCP presets '{}': expected a mapping 'presets:' of names to presets", file.string())};
  std::map<std::string, McpPreset, std::less<>> read;
  for (const auto& [name, v] : presets->get_object()) {
    auto p = McpPreset::from_json(name, v);
    if (!p) return Error{ErrorCode::invalid_argument, fmt::format("MCP presets '{}': {}", file.string(), p.error().message)};
    read.insert_or_assign(std::string(name), std::move(*p));
  }
  for (auto& [name, p] : read) presets_.insert_or_assign(name, std::move(p));  // all or nothing
  return ok();
}

const McpPreset* McpCatalogue::find(std::string_view name) const {
  auto it = presets_.find(name);
  return it == presets_.end() ? nullptr : &it->second;
}

std::vector<McpPreset> McpCatalogue::list() const {
  std::vector<McpPreset> out;
  for (const auto& [n, p] : presets_) out.push_back(p);
  return out;
}

}  // namespace xcore::inline v1
