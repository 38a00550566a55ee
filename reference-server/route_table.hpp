// The API's routes as data: each declared once (method, path template with named parameters, least role,
// permission, summary), and from that one entry come the httplib registration (a regex), the role and
// permission checks, the metrics' route label, /openapi.json and /docs. No httplib here.
#pragma once

#include <atomic>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/json_schema.hpp>

#include "access.hpp"

namespace xcore::server {

// A named path parameter: what its values look like, as a regex and in words.
struct PathParameter {
  std::string_view name;
  std::string_view pattern;  // no capture groups of its own
  std::string_view description;
};

// The parameters the API's paths use; a template naming another is a bug, refused at start.
const PathParameter* path_parameter(std::string_view name);

// Request and response latency buckets, in seconds (Prometheus' defaults, finer at the low end).
inline constexpr std::array<double, 14> kLatencyBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// What one route has answered: requests by status, and their latency.
class RouteStats {
 public:
  void record(int status, double seconds);
  std::map<int, std::uint64_t> by_status() const;
  std::array<std::uint64_t, kLatencyBuckets.size()> buckets() const;  // cumulative, as Prometheus wants
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }

 private:
  mutable std::mutex status_mutex_;
  std::map<int, std::uint64_t> statuses_;
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size()> buckets_{};
  std::atomic<std::uint64_t> count_{0}, sum_ns_{0};
};

// The shapes the API answers with (api_schemas.cpp): components/schemas of /openapi.json, which route
// schemas reference as {"$ref": "#/components/schemas/<Name>"}.
const json::object& api_schemas();

// One answer a route gives on success: its status and what its body is.
struct RouteAnswer {
  int status = 200;
  std::string content_type = "application/json";
  json::value schema;  // JSON Schema (refs into api_schemas()); for other content types, null
  std::shared_ptr<const JsonSchema> validator;
};

// Error statuses every route may answer: a malformed request or query (400), a credential that does not
// hold (401, also on open routes), a request too slow to arrive (408), a limit (429), headers over
// max_header_bytes (431), the server's own failure (500).
inline constexpr std::array<int, 6> kCommonErrors{400, 401, 408, 429, 431, 500};

struct RouteSpec {
  std::string method;    // GET, POST, PUT, PATCH, DELETE
  std::string path;      // the template: /api/v1/plugins/{plugin}/tools
  std::string summary;
  Role min_role = Role::anonymous;
  std::string permission;  // besides the role; empty: none
  std::string tag;         // the area: plugins, tools, tasks, ...
  std::vector<std::string> parameters;  // in the order of the template, = the regex's capture groups
  std::string regex;                    // what httplib matches
  std::regex matcher;                   // the same, compiled: screen() asks before httplib routes
  bool in_document = true;              // false: a family of routes the document lists one by one instead
  std::unique_ptr<RouteStats> stats = std::make_unique<RouteStats>();
  // The body it takes (JSON Schema; null: any JSON, or none for GET), checked before the handler runs and
  // published in the document.
  json::value body_schema;
  std::shared_ptr<const JsonSchema> body_validator;

  // What it answers on success, and the error statuses it declares besides the common ones (403 where a
  // role is needed and 413 where it takes a body are added by the table).
  std::vector<RouteAnswer> answers;
  std::vector<int> declared_errors;

  // Sets the body's schema (JSON text); a schema that does not compile is a bug (aborts, naming the route).
  RouteSpec& body(std::string_view schema);
  // A success answer: its status and its body's schema (JSON text, may $ref api_schemas()); same abort.
  RouteSpec& returns(int status, std::string_view schema);
  // A success answer that is not JSON (metrics, the docs page).
  RouteSpec& returns_text(int status, std::string content_type);
  // Error statuses this route answers besides the common ones: 404, 409, 412, 422, 502, 503, 504...
  RouteSpec& errors(std::initializer_list<int> statuses);

  // Every error status it may answer, ascending: kCommonErrors, 403/413 by its kind, and declared_errors.
  std::vector<int> error_statuses() const;
  // Whether an answer is one the table declares: a declared error status, or a success status whose
  // body matches its schema. The error names the route, the status and what did not match.
  // `content_type`: the answer's; a route may answer one status in several (JSON, or an event stream).
  Result<void> check_answer(int status, const json::value& body, std::string_view content_type = "application/json") const;
};

// Fills parameters and regex from the template; an unknown parameter name is a bug (aborts, naming it).
void compile_route(RouteSpec& spec);

// "GET /api/v1/plugins/{plugin}/tools" -> "getPluginsPluginTools": stable, unique per route.
std::string operation_id(const RouteSpec& spec);

}  // namespace xcore::server
