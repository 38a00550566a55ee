#include "server_impl.hpp"

namespace xcore::server {

namespace {

std::string process_metrics() {
  std::string out;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  out += fmt::format("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n", cpu);
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  out += fmt::format("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n", resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
  std::size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++fds;
  out += fmt::format("# TYPE process_open_fds gauge\nprocess_open_fds {}\n", fds);
  return out;
}

// A Prometheus label value, escaped.
std::string label(std::string_view v) {
  std::string s;
  for (char c : v) {
    if (c == '\\' || c == '"') s.push_back('\\');
    if (c == '\n') {
      s += "\\n";
      continue;
    }
    s.push_back(c);
  }
  return s;
}

}  // namespace

void Server::Impl::add_routes() {
  add_meta_routes();
  add_access_routes();
  add_plugin_routes();
  add_task_routes();
}

void Server::Impl::add_meta_routes() {
  const std::string id = kIdPattern;
  const std::string name = kNamePattern;


  route("GET", "/healthz", Role::anonymous, "liveness", [](Call&) -> Result<Reply> { return Reply{200, json::object{{"status", "ok"}}}; });
  route("GET", "/readyz", Role::anonymous, "readiness: plugins started", [this](Call&) -> Result<Reply> {
    if (!ready) return Error{ErrorCode::unavailable, "starting"};
    return Reply{200, json::object{{"status", "ready"}}};
  });
  // Scrapers use an API token with the scope metrics.read. A tenant's principals see that tenant's
  // series; the default tenant's (the server's own) see every tenant's and the process's.
  route("GET", "/metrics", Role::operator_, "Prometheus metrics (needs metrics.read)", [this](Call& c) -> Result<Reply> {
    return Reply{200, nullptr, metrics(c.who.tenant == kDefaultTenant ? std::string() : c.who.tenant), "text/plain; version=0.0.4"};
  }, "metrics.read");

  route("GET", "/docs", Role::anonymous, "the API, rendered from /openapi.json", [](Call&) -> Result<Reply> {
    // Self-contained: no script or style from elsewhere (the server may have no way out).
    static const std::string page = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xcore-server API</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
code{font:13px ui-monospace,monospace}.m{font-weight:bold}</style></head>
<body><h1>xcore-server API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Errors are
<code>{"error":{"code","message","details"}}</code>; send <code>Authorization: Bearer &lt;token&gt;</code> from
<code>POST /api/v1/auth/login</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>least role</th><th>what</th></tr></thead><tbody id="routes"></tbody></table>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const body = document.getElementById('routes');
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops)) {
      const tr = document.createElement('tr');
      for (const [text, cls] of [[method.toUpperCase(), 'm'], [path, ''], [op['x-xcore-role'] || 'anyone', ''], [op.summary, '']]) {
        const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td);
      }
      body.appendChild(tr);
    }
});
</script></body></html>
)html";
    return Reply{200, nullptr, page, "text/html; charset=utf-8"};
  });
  route("GET", "/openapi.json", Role::anonymous, "this document", [this](Call&) -> Result<Reply> {
    json::object paths;
    for (const auto& r : routes) {
      // "/api/v1/plugins/([a-z0-9]...)/tools" -> "/api/v1/plugins/{p1}/tools"
      std::string path;
      int n = 0;
      for (std::size_t i = 0; i < r.pattern.size(); ++i) {
        if (r.pattern[i] != '(') {
          path.push_back(r.pattern[i]);
          continue;
        }
        int depth = 0;
        for (; i < r.pattern.size(); ++i) {
          if (r.pattern[i] == '(') ++depth;
          if (r.pattern[i] == ')' && --depth == 0) break;
        }
        path += fmt::format("{{p{}}}", ++n);
      }
      std::string m = r.method;
      std::transform(m.begin(), m.end(), m.begin(), ::tolower);
      json::object op{{"summary", r.summary}, {"responses", json::object{{"200", json::object{{"description", "JSON"}}}}}};
      if (r.min_role != Role::anonymous) {
        op["security"] = json::array{json::object{{"bearer", json::array{}}}};
        op["x-xcore-role"] = role_name(r.min_role);
        if (!r.permission.empty()) op["x-xcore-permission"] = r.permission;
      }
      json::array params;
      for (int i = 1; i <= n; ++i) params.push_back(json::object{{"name", fmt::format("p{}", i)}, {"in", "path"}, {"required", true}, {"schema", json::object{{"type", "string"}}}});
      if (n) op["parameters"] = std::move(params);
      auto& entry = paths[path];
      if (!entry.is_object()) entry.emplace_object();
      entry.get_object()[m] = std::move(op);
    }
    json::object doc{{"openapi", "3.1.0"},
                     {"info", json::object{{"title", "xcore-server"}, {"version", "0.1.0"}}},
                     {"paths", std::move(paths)},
                     {"components", json::object{{"securitySchemes", json::object{{"bearer", json::object{{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}}}}}}}};
    return Reply{200, doc};
  });
}

std::string Server::Impl::metrics(const std::string& only_tenant) {
  std::string out;
  const bool everything = only_tenant.empty();
  if (everything) {
    out += fmt::format("# TYPE xcore_http_requests_total counter\nxcore_http_requests_total {}\n", requests.load());
    out += fmt::format("# TYPE xcore_audit_dropped_total counter\nxcore_audit_dropped_total {}\n", audit->dropped());
    out += fmt::format("# TYPE xcore_password_hashes_peak gauge\nxcore_password_hashes_peak {}\n", passwords.peak());
  }
  out += "# TYPE xcore_plugin_calls_total counter\n# TYPE xcore_plugin_errors_total counter\n# TYPE xcore_plugin_in_flight gauge\n"
         "# TYPE xcore_sandbox_restarts_total counter\n";
  std::shared_lock lock(tenants_mutex);
  for (const auto& [tenant, m] : tenants)
    for (const auto& info : everything || tenant == only_tenant ? m->list() : std::vector<PluginInfo>{}) {
      auto labels = fmt::format("tenant=\"{}\",plugin=\"{}\"", label(tenant), label(info.manifest.id));
      out += fmt::format("xcore_plugin_calls_total{{{}}} {}\n", labels, info.stats.calls);
      out += fmt::format("xcore_plugin_errors_total{{{}}} {}\n", labels, info.stats.errors);
      out += fmt::format("xcore_plugin_in_flight{{{}}} {}\n", labels, info.stats.in_flight);
      if (auto it = info.runner.find("restarts"); it != info.runner.end())
        out += fmt::format("xcore_sandbox_restarts_total{{{}}} {}\n", labels, it->value().to_number<std::uint64_t>());
    }
  out += "# TYPE xcore_tool_calls_total counter\n# TYPE xcore_tool_errors_total counter\n# TYPE xcore_tool_rejected_total counter\n"
         "# TYPE xcore_tool_duration_seconds histogram\n";
  for (const auto& [tenant, m] : tenants) {
    if (!everything && tenant != only_tenant) continue;
    ToolFilter all;
    all.include_disabled = true;
    for (const auto& t : m->tools().list(all)) {
      auto labels = fmt::format("tenant=\"{}\",tool=\"{}\"", label(tenant), label(t.qualified_name));
      const auto& tm = t.metrics;
      out += fmt::format("xcore_tool_calls_total{{{}}} {}\n", labels, tm.calls);
      out += fmt::format("xcore_tool_errors_total{{{}}} {}\n", labels, tm.errors);
      out += fmt::format("xcore_tool_rejected_total{{{}}} {}\n", labels, tm.rejected);
      for (const auto& b : tm.buckets)
        if (std::isfinite(b.le_seconds)) out += fmt::format("xcore_tool_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, b.le_seconds, b.count);
      out += fmt::format("xcore_tool_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, tm.calls);
      out += fmt::format("xcore_tool_duration_seconds_sum{{{}}} {}\n", labels, tm.total_seconds);
      out += fmt::format("xcore_tool_duration_seconds_count{{{}}} {}\n", labels, tm.calls);
    }
  }
  if (everything) out += process_metrics();
  return out;
}

// ---- Server ----------------------------------------------------------------------------------------------

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
int Server::port() const { return impl_->bound_port; }
void Server::stop() { impl_->http.shutdown(); }

Result<std::unique_ptr<Server>> Server::create(ServerConfig config) {
  auto impl = std::make_unique<Impl>(std::move(config));
  auto& s = *impl;
  // Botan's system RNG is a function-local static opened on first use: opened here, before any worker
  // runs, rather than by whichever requests race to it first.
  (void)random_token(1);
  XCORE_TRY(s.open_store());
  XCORE_TRY(s.first_start());
  s.http.set_tcp_nodelay(true);  // keep-alive answers would otherwise wait on Nagle and delayed ACKs
  s.http.set_payload_max_length(s.config.max_body_bytes);
  // httplib's own refusals (no route, body too large, malformed request) in the API's error shape, with
  // httplib's status kept.
  s.http.set_error_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    int status = res.status;
    const auto rid = Impl::request_id_of(req);
    auto* connection = HttpServer::current();
    if (connection && connection->expired()) {
      // The headers stopped coming before their deadline (http_server.hpp).
      s.fail(res, Error{ErrorCode::timeout, fmt::format("the request's headers did not arrive within {} ms", s.config.http.header_timeout.count())}, rid);
      status = 408;
    } else if (status == 413) s.fail(res, Error{ErrorCode::invalid_argument, fmt::format("the body exceeds {} bytes", s.config.max_body_bytes)}, rid);
    else if (status == 404) s.fail(res, Error{ErrorCode::not_found, fmt::format("no route {} {}", req.method, req.path)}, rid);
    else s.fail(res, Error{ErrorCode::invalid_argument, fmt::format("the request was refused (HTTP {})", status)}, rid);
    res.status = status;
  });
  s.add_routes();
  s.http.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) { return s.screen(req, res); });
  if (s.config.port == 0) {
    s.bound_port = s.http.bind_to_any_port(s.config.host);
  } else {
    s.bound_port = s.http.bind_to_port(s.config.host, s.config.port) ? s.config.port : -1;
  }
  if (s.bound_port <= 0) return Error{ErrorCode::unavailable, fmt::format("cannot listen on {}:{}", s.config.host, s.config.port)};
  if (!s.http.widen_backlog()) return Error{ErrorCode::unavailable, fmt::format("cannot set the listen backlog to {}: {}", s.config.http.listen_backlog, std::strerror(errno))};
  // Plugins start after the port is bound (readyz says when), before requests are served.
  XCORE_TRY(s.start_tenants());
  s.ready = true;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<void> Server::run() {
  std::printf("xcore-server: listening on http://%s:%d\n", impl_->config.host.c_str(), impl_->bound_port);
  std::fflush(stdout);
  if (!impl_->http.listen_after_bind()) return Error{ErrorCode::unavailable, "the listener failed"};
  return ok();
}

}  // namespace xcore::server
