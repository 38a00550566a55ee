#include "server_impl.hpp"

namespace xcore::server {

extern const std::string_view kDocsPage;  // docs/index.html, built in (docs_page.cpp.in)

namespace {

// One metric family's HELP and TYPE lines: every family has both (promtool checks it).
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string process_metrics() {
  std::string out;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  family(out, "process_cpu_seconds_total", "counter", "CPU time the server used, user and system.");
  out += fmt::format("process_cpu_seconds_total {}\n", cpu);
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory of the server.");
  out += fmt::format("process_resident_memory_bytes {}\n", resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
  std::size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++fds;
  family(out, "process_open_fds", "gauge", "Open file descriptors of the server.");
  out += fmt::format("process_open_fds {}\n", fds);
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
  add_mcp_routes();
  add_agent_routes();
  add_node_routes();
  // Each route says what it answers: one without is a bug in the table, found at start.
  for (const auto& r : routes) {
    // A route that only says "not here" (405, naming the methods that are) has no success to declare.
    const bool only_refuses = std::find(r.declared_errors.begin(), r.declared_errors.end(), 405) != r.declared_errors.end();
    if (r.answers.empty() && !only_refuses) {
      std::fprintf(stderr, "xcore-server: route %s %s declares no answer (.returns)\n", r.method.c_str(), r.path.c_str());
      std::abort();
    }
  }
}

void Server::Impl::check_answer(const RouteSpec& spec, httplib::Response& res, const std::string& request_id) noexcept {
  try {
    json::value body;
    Result<void> checked = ok();
    if (res.get_header_value("Content-Type").starts_with("application/json")) {
      boost::system::error_code ec;
      body = json::parse(res.body, ec);
      if (ec) checked = Error{ErrorCode::internal, fmt::format("the answer of {} {} is not JSON: {}", spec.method, spec.path, ec.message())};
    }
    if (checked) checked = spec.check_answer(res.status, body, res.get_header_value("Content-Type"));
    if (checked) return;
    log(LogLevel::error, "http", fmt::format("request {}: {}", request_id, checked.error().message));
    res.headers.erase("Content-Type");
    res.headers.erase("X-Request-Id");
    answer(res, 500, error_body(checked.error(), request_id), request_id);
  } catch (const std::exception& e) {
    log(LogLevel::error, "http", fmt::format("request {}: checking the answer failed: {}", request_id, e.what()));
  }
}

void Server::Impl::add_meta_routes() {


  route("GET", "/healthz", Role::anonymous, "liveness", [](Call&) -> Result<Reply> { return Reply{200, json::object{{"status", "ok"}}}; }).returns(200, R"json({"$ref":"#/components/schemas/Status"})json");
  route("GET", "/readyz", Role::anonymous, "readiness: plugins started", [this](Call&) -> Result<Reply> {
    if (!ready) return Error{ErrorCode::unavailable, "starting"};
    return Reply{200, json::object{{"status", "ready"}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Status"})json").errors({503});
  // Scrapers use an API token with the scope metrics.read. A tenant's principals see that tenant's
  // series; the default tenant's (the server's own) see every tenant's and the process's.
  route("GET", "/metrics", Role::operator_, "Prometheus metrics (needs metrics.read)", [this](Call& c) -> Result<Reply> {
    return Reply{200, nullptr, metrics(c.who.tenant == kDefaultTenant ? std::string() : c.who.tenant), "text/plain; version=0.0.4"};
  }, "metrics.read").returns_text(200, "text/plain; version=0.0.4");

  route("GET", "/docs", Role::anonymous, "the API, interactive: browse, authorize with a token, call any operation", [](Call&) -> Result<Reply> {
    return Reply{200, nullptr, std::string(kDocsPage), "text/html; charset=utf-8"};
  }).returns_text(200, "text/html; charset=utf-8");
  route("GET", "/openapi.json", Role::anonymous, "this API as an OpenAPI 3.1 document (with the caller's tenant's plugin routes)",
        [this](Call& c) -> Result<Reply> { return Reply{200, openapi_document(c)}; }).returns(200, R"json({"type":"object","required":["openapi","info","paths","components"],"properties":{"openapi":{"const":"3.1.0"},"info":{"type":"object"},"paths":{"type":"object"},"components":{"type":"object"}}})json");
}

static void histogram(std::string& out, std::string_view name, const std::string& labels, const std::array<std::uint64_t, kLatencyBuckets.size()>& buckets,
               std::uint64_t count, double sum) {
  const auto sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < buckets.size(); ++i) out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, kLatencyBuckets[i], buckets[i]);
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, count);
  out += fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, sum, name, labels, count);
}

std::string Server::Impl::metrics(const std::string& only_tenant) {
  std::string out;
  const bool everything = only_tenant.empty();
  if (everything) {
    // Requests by route template (bounded: the route table's size), method and status.
    auto each_route = [&](auto&& f) {
      for (const auto& r : routes) f(r.method, r.path, *r.stats);
      f(std::string("any"), std::string("unmatched"), unmatched);
    };
    family(out, "xcore_http_requests_total", "counter", "HTTP requests answered, by method, route template and status.");
    each_route([&](const std::string& method, const std::string& route, const RouteStats& st) {
      for (const auto& [status, n] : st.by_status())
        out += fmt::format("xcore_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{}\"}} {}\n", method, label(route), status, n);
    });
    family(out, "xcore_http_request_duration_seconds", "histogram", "Time from a request's first byte to its answer, by method and route template.");
    each_route([&](const std::string& method, const std::string& route, const RouteStats& st) {
      if (st.count() == 0) return;
      histogram(out, "xcore_http_request_duration_seconds", fmt::format("method=\"{}\",route=\"{}\"", method, label(route)), st.buckets(), st.count(), st.sum_seconds());
    });
    const auto& h = http.counters();
    family(out, "xcore_http_connections_total", "counter", "TCP connections accepted.");
    out += fmt::format("xcore_http_connections_total {}\n", h.connections_total.load());
    family(out, "xcore_http_connections_open", "gauge", "TCP connections open now.");
    out += fmt::format("xcore_http_connections_open {}\n", h.connections_open.load());
    family(out, "xcore_http_connections_closed_total", "counter", "Connections the server closed on a limit, by reason.");
    out += fmt::format("xcore_http_connections_closed_total{{reason=\"header_timeout\"}} {}\n", h.header_timeouts.load());
    out += fmt::format("xcore_http_connections_closed_total{{reason=\"body_timeout\"}} {}\n", h.body_timeouts.load());
    out += fmt::format("xcore_http_connections_closed_total{{reason=\"idle_timeout\"}} {}\n", h.idle_closes.load());
    out += fmt::format("xcore_http_connections_closed_total{{reason=\"per_address_limit\"}} {}\n", h.refused_per_address.load());
    family(out, "xcore_http_workers", "gauge", "HTTP worker threads, by state.");
    out += fmt::format("xcore_http_workers{{state=\"busy\"}} {}\n", h.workers_busy.load());
    out += fmt::format("xcore_http_workers{{state=\"idle\"}} {}\n", std::max<std::int64_t>(0, h.workers.load() - h.workers_busy.load()));
    family(out, "xcore_http_workers_peak", "gauge", "The most HTTP worker threads alive at once since start.");
    out += fmt::format("xcore_http_workers_peak {}\n", h.workers_peak.load());
    family(out, "xcore_http_connections_queued", "gauge", "Accepted connections waiting for a worker.");
    out += fmt::format("xcore_http_connections_queued {}\n", std::max<std::int64_t>(0, h.queued.load()));
    family(out, "xcore_audit_dropped_total", "counter", "Audit rows dropped because the writer's queue was full.");
    out += fmt::format("xcore_audit_dropped_total {}\n", audit->dropped());
    family(out, "xcore_password_hashes_peak", "gauge", "The most password hashes that ran at once.");
    out += fmt::format("xcore_password_hashes_peak {}\n", passwords.peak());
  }
  // The per-tenant families: series gathered first, each family written whole (HELP, TYPE, series).
  struct Family {
    std::string_view name, type, help;
    std::string series;
  };
  Family calls{"xcore_plugin_calls_total", "counter", "Calls into a plugin (tools and actions), by tenant and plugin.", {}};
  Family errors{"xcore_plugin_errors_total", "counter", "Calls into a plugin that failed, by tenant and plugin.", {}};
  Family in_flight{"xcore_plugin_in_flight", "gauge", "Calls running in a plugin now, by tenant and plugin.", {}};
  Family restarts{"xcore_sandbox_restarts_total", "counter", "Restarts of a sandboxed plugin's process, by tenant and plugin.", {}};
  Family tool_calls{"xcore_tool_calls_total", "counter", "Tool calls, by tenant and tool.", {}};
  Family tool_errors{"xcore_tool_errors_total", "counter", "Tool calls that failed, by tenant and tool.", {}};
  Family tool_rejected{"xcore_tool_rejected_total", "counter", "Tool calls refused before the plugin ran (arguments, permissions, limits), by tenant and tool.", {}};
  Family tool_durations{"xcore_tool_duration_seconds", "histogram", "Tool call latency, by tenant and tool.", {}};
  std::shared_lock lock(tenants_mutex);
  for (const auto& [tenant, running] : tenants) {  // running tenants: a parked one has no plugin figures
    if (!everything && tenant != only_tenant) continue;
    const auto& m = running->manager;
    for (const auto& info : m->list()) {
      auto labels = fmt::format("tenant=\"{}\",plugin=\"{}\"", label(tenant), label(info.manifest.id));
      calls.series += fmt::format("{}{{{}}} {}\n", calls.name, labels, info.stats.calls);
      errors.series += fmt::format("{}{{{}}} {}\n", errors.name, labels, info.stats.errors);
      in_flight.series += fmt::format("{}{{{}}} {}\n", in_flight.name, labels, info.stats.in_flight);
      if (auto it = info.runner.find("restarts"); it != info.runner.end())
        restarts.series += fmt::format("{}{{{}}} {}\n", restarts.name, labels, it->value().to_number<std::uint64_t>());
    }
    ToolFilter all;
    all.include_disabled = true;
    for (const auto& t : m->tools().list(all)) {
      auto labels = fmt::format("tenant=\"{}\",tool=\"{}\"", label(tenant), label(t.qualified_name));
      const auto& tm = t.metrics;
      tool_calls.series += fmt::format("{}{{{}}} {}\n", tool_calls.name, labels, tm.calls);
      tool_errors.series += fmt::format("{}{{{}}} {}\n", tool_errors.name, labels, tm.errors);
      tool_rejected.series += fmt::format("{}{{{}}} {}\n", tool_rejected.name, labels, tm.rejected);
      for (const auto& b : tm.buckets)
        if (std::isfinite(b.le_seconds)) tool_durations.series += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", tool_durations.name, labels, b.le_seconds, b.count);
      tool_durations.series += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", tool_durations.name, labels, tm.calls,
                                           tool_durations.name, labels, tm.total_seconds, tool_durations.name, labels, tm.calls);
    }
  }
  for (const auto* f : {&calls, &errors, &in_flight, &restarts, &tool_calls, &tool_errors, &tool_rejected, &tool_durations}) {
    family(out, f->name, f->type, f->help);
    out += f->series;
  }
  if (everything) out += process_metrics();
  return out;
}

// ---- Server ----------------------------------------------------------------------------------------------

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
int Server::port() const { return impl_->bound_port; }
void Server::stop() {
  impl_->mcp_sessions.close_streams();
  impl_->http.shutdown();
}

Result<std::unique_ptr<Server>> Server::create(ServerConfig config) {
  auto impl = std::make_unique<Impl>(std::move(config));
  auto& s = *impl;
  // Botan's system RNG is a function-local static opened on first use: opened here, before any worker
  // runs, rather than by whichever requests race to it first.
  (void)random_token(1);
  XCORE_TRY(s.load_trusted_keys());
  XCORE_TRY(s.open_store());
  XCORE_TRY(s.first_start());
  XCORE_TRY(s.start_agents());  // before the tenants' Schedulers, whose tasks may run agents
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
  // Requests no route took (404s, refusals before routing) are metered too, under route="unmatched".
  s.http.set_logger([&s](const httplib::Request&, const httplib::Response& res) {
    auto* c = HttpServer::current();
    if (c && c->routed) return;
    s.unmatched.record(res.status, c ? std::chrono::duration<double>(std::chrono::steady_clock::now() - c->request_start()).count() : 0.0);
  });
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
  XCORE_TRY(s.start_nodes());  // after the tenants: a node's tools go into its tenant's Manager
  // Runs a crash left under way end as failed (their tenants' hooks hear it); those awaiting approval wait on.
  if (auto r = s.agents->restore(); !r) return Error{ErrorCode::unavailable, fmt::format("cannot restore the agent runs: {}", r.error().message)};
  s.ready = true;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<void> Server::run() {
  std::printf("xcore-server: listening on http://%s:%d\n", impl_->config.host.c_str(), impl_->bound_port);
  if (impl_->nodes) std::printf("xcore-server: nodes dial %s://%s/nodes\n", impl_->config.node_tls_cert_file.empty() ? "ws" : "wss",
                                fmt::format("{}:{}", impl_->config.node_listen.substr(0, impl_->config.node_listen.rfind(':')), impl_->node_port).c_str());
  std::fflush(stdout);
  if (!impl_->http.listen_after_bind()) return Error{ErrorCode::unavailable, "the listener failed"};
  return ok();
}

}  // namespace xcore::server
