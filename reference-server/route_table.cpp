#include "route_table.hpp"

#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <tuple>

namespace xcore::server {

namespace {

constexpr std::string_view kId = "[a-z0-9][a-z0-9_.-]{0,63}";
constexpr std::string_view kName = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";

constexpr PathParameter kParameters[] = {
    {"plugin", kId, "a plugin's id"},
    {"tenant", kId, "a tenant's id"},
    {"tool", kName, "a tool's name, qualified (plugin.tool) or not"},
    {"action", kName, "a plugin action's name"},
    {"secret", kName, "a secret's name"},
    {"webhook", kName, "a webhook's name"},
    {"user", "[A-Za-z0-9._@-]{1,64}", "a user's name"},
    {"token", "[0-9]{1,18}", "an API token's id"},
    {"task", "[A-Za-z0-9._:-]{1,128}", "a scheduled task's id"},
    {"provider", kName, "a model provider's name"},
    {"agent", kName, "an agent's name"},
    {"node", "[a-z0-9][a-z0-9-]{0,39}", "a remote node's name"},
    {"server", "[a-z0-9][a-z0-9-]{0,39}", "an MCP server's id on a node"},
    {"run", "[0-9a-f]{32}", "an agent run's id"},
    {"approval", "[0-9a-f]{32}", "a pending approval's id"},
    // The rest of a plugin route's path, slashes included; empty for the plugin's root.
    {"path", "(?:/[^?#]*)?", "the path below the plugin, as its manifest declares it"},
};

}  // namespace

const PathParameter* path_parameter(std::string_view name) {
  for (const auto& p : kParameters)
    if (p.name == name) return &p;
  return nullptr;
}

void RouteStats::record(int status, double seconds) {
  {
    std::lock_guard lock(status_mutex_);
    ++statuses_[status];
  }
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i)
    if (seconds <= kLatencyBuckets[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
}

std::map<int, std::uint64_t> RouteStats::by_status() const {
  std::lock_guard lock(status_mutex_);
  return statuses_;
}

std::array<std::uint64_t, kLatencyBuckets.size()> RouteStats::buckets() const {
  std::array<std::uint64_t, kLatencyBuckets.size()> out{};
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = running += buckets_[i].load(std::memory_order_relaxed);
  return out;
}

void compile_route(RouteSpec& spec) {
  spec.parameters.clear();
  spec.regex.clear();
  for (std::size_t i = 0; i < spec.path.size(); ++i) {
    const char c = spec.path[i];
    if (c != '{') {
      // Literal characters of a template are path characters; '.' is the only one a regex reads otherwise.
      if (c == '.') spec.regex += "\\.";
      else spec.regex.push_back(c);
      continue;
    }
    const auto end = spec.path.find('}', i);
    const auto name = std::string_view(spec.path).substr(i + 1, end == std::string::npos ? std::string_view::npos : end - i - 1);
    const auto* p = end == std::string::npos ? nullptr : path_parameter(name);
    if (!p) {
      std::fprintf(stderr, "xcore-server: route %s %s names the unknown path parameter '%.*s'\n", spec.method.c_str(), spec.path.c_str(),
                   static_cast<int>(name.size()), name.data());
      std::abort();
    }
    spec.parameters.emplace_back(name);
    spec.regex += fmt::format("({})", p->pattern);
    i = end;
  }
  spec.matcher = std::regex(spec.regex);
  if (spec.tag.empty()) {
    // The area: the first segment after /api/v1/ (/api/v1/plugins/... -> plugins), else the first one.
    std::string_view rest = spec.path;
    if (rest.starts_with("/api/v1/")) rest.remove_prefix(8);
    else if (rest.starts_with("/")) rest.remove_prefix(1);
    spec.tag = std::string(rest.substr(0, rest.find_first_of("/{")));
    if (spec.tag == "healthz" || spec.tag == "readyz" || spec.tag == "metrics" || spec.tag == "docs" || spec.tag == "openapi.json") spec.tag = "server";
  }
}

namespace {

// A schema of the table, compiled with the API's shared schemas beside it so that its
// "#/components/schemas/<Name>" references resolve as they do in the document. Not usable: a bug.
std::pair<json::value, std::shared_ptr<const JsonSchema>> table_schema(const RouteSpec& r, std::string_view what, std::string_view text) {
  boost::system::error_code ec;
  json::value schema = json::parse(text, ec);
  Result<std::shared_ptr<const JsonSchema>> compiled = Error{ErrorCode::invalid_argument, ec.message()};
  if (!ec) compiled = JsonSchema::compile(json::object{{"allOf", json::array{schema}}, {"components", json::object{{"schemas", api_schemas()}}}});
  if (!compiled) {
    std::fprintf(stderr, "xcore-server: route %s %s: the %.*s schema is not usable: %s\n", r.method.c_str(), r.path.c_str(), static_cast<int>(what.size()), what.data(),
                 compiled.error().message.c_str());
    std::abort();
  }
  return {std::move(schema), std::move(*compiled)};
}

const JsonSchema& error_validator() {
  static const auto compiled = [] {
    auto c = JsonSchema::compile(json::object{{"allOf", json::array{json::object{{"$ref", "#/components/schemas/Error"}}}}, {"components", json::object{{"schemas", api_schemas()}}}});
    if (!c) std::abort();
    return std::move(*c);
  }();
  return *compiled;
}

}  // namespace

RouteSpec& RouteSpec::body(std::string_view schema) {
  std::tie(body_schema, body_validator) = table_schema(*this, "body", schema);
  return *this;
}

RouteSpec& RouteSpec::returns(int status, std::string_view schema) {
  auto& a = answers.emplace_back();
  a.status = status;
  std::tie(a.schema, a.validator) = table_schema(*this, "answer", schema);
  return *this;
}

RouteSpec& RouteSpec::returns_text(int status, std::string content_type) {
  auto& a = answers.emplace_back();
  a.status = status;
  a.content_type = std::move(content_type);
  return *this;
}

RouteSpec& RouteSpec::errors(std::initializer_list<int> statuses) {
  declared_errors.insert(declared_errors.end(), statuses);
  return *this;
}

std::vector<int> RouteSpec::error_statuses() const {
  std::vector<int> out(kCommonErrors.begin(), kCommonErrors.end());
  if (min_role != Role::anonymous) out.push_back(403);
  if (method != "GET") out.push_back(413);
  out.insert(out.end(), declared_errors.begin(), declared_errors.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<void> RouteSpec::check_answer(int status, const json::value& body, std::string_view content_type) const {
  auto refuse = [&](std::string why) { return Error{ErrorCode::internal, fmt::format("the answer of {} {} does not match its route entry: {}", method, path, why)}; };
  if (status >= 400) {
    const auto declared = error_statuses();
    if (!std::binary_search(declared.begin(), declared.end(), status))
      return refuse(fmt::format("status {} is not among the errors it declares ({})", status, fmt::join(declared, ", ")));
    if (auto valid = error_validator().validate(body, "error body"); !valid) return refuse(valid.error().message);
    return ok();
  }
  const auto media = content_type.substr(0, content_type.find(';'));
  const bool several = std::count_if(answers.begin(), answers.end(), [&](const RouteAnswer& a) { return a.status == status; }) > 1;
  for (const auto& a : answers) {
    if (a.status != status) continue;
    if (several && std::string_view(a.content_type).substr(0, a.content_type.find(';')) != media) continue;
    if (!a.validator) return ok();
    if (auto valid = a.validator->validate(body, "answer"); !valid) return refuse(valid.error().message);
    return ok();
  }
  std::vector<int> statuses;
  for (const auto& a : answers) statuses.push_back(a.status);
  return refuse(fmt::format("status {} is not among its success answers ({})", status, fmt::join(statuses, ", ")));
}

std::string operation_id(const RouteSpec& spec) {
  std::string id;
  for (char c : spec.method) id.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  std::string_view path = spec.path;
  if (path.starts_with("/api/v1/")) path.remove_prefix(7);
  bool upper = true;
  for (char c : path) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      upper = true;
      continue;
    }
    id.push_back(upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c);
    upper = false;
  }
  return id;
}

}  // namespace xcore::server
