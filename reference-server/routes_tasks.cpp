// Routes: scheduled tasks and signed webhooks.
#include "server_impl.hpp"

namespace xcore::server {

void Server::Impl::add_task_routes() {

  // ---- scheduled tasks
  route("GET", "/api/v1/tasks", Role::viewer, "this tenant's scheduled tasks", [this](Call& c) -> Result<Reply> {
    json::array out;
    if (auto* s = scheduler_of(c.who.tenant))
      for (const auto& j : s->list()) out.push_back(task_json(j));
    return Reply{200, json::object{{"tasks", std::move(out)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/TaskList"})json");
  route("POST", "/api/v1/tasks", Role::operator_, "schedule a task ({name, trigger, target, ...})", [this](Call& c) -> Result<Reply> {
    if (c.body.is_object())
      for (const char* k : {"id", "tenant", "owner", "run_as", "created"})
        if (c.body.get_object().contains(k))
          return Error{ErrorCode::invalid_argument, fmt::format("'{}' cannot be given: the server sets it (task ids are made by the server)", k)};
    XCORE_ASSIGN_OR_RETURN(auto spec, JobSpec::from_json(c.body));
    XCORE_TRY(webhook_secret_allowed(spec));
    spec.tenant = c.who.tenant;  // never from the body
    spec.run_as = c.who.principal;  // its runs call as whoever scheduled it
    spec.id = random_token(12);
    auto* s = scheduler_of(c.who.tenant);
    XCORE_ASSIGN_OR_RETURN(auto id, s->add(std::move(spec)));
    return Reply{201, task_json(*s->get(id))};
  }).body(R"json({"type":"object","properties":{"name":{"type":"string","minLength":1},"trigger":{"type":"object","description":"{type: cron|interval|date|webhook, ...}"},"target":{"type":"object","description":"{tool, arguments} or {plugin, action, params}"}},"required":["trigger","target"]})json").returns(201, R"json({"$ref":"#/components/schemas/Task"})json").errors({404, 409});
  route("GET", "/api/v1/tasks/{task}", Role::viewer, "one task, with its next fire times", [this](Call& c) -> Result<Reply> {
    auto* s = scheduler_of(c.who.tenant);
    auto j = s->get(c.arg(1));
    if (!j) return Error{ErrorCode::not_found, fmt::format("no task '{}'", c.arg(1))};
    auto o = task_json(*j);
    json::array next;
    for (auto t : s->preview(c.arg(1), 5)) next.emplace_back(format_iso8601(t));
    o["next_runs"] = std::move(next);
    return Reply{200, o};
  }).returns(200, R"json({"allOf":[{"$ref":"#/components/schemas/Task"}],"required":["next_runs"]})json").errors({404});
  route("PATCH", "/api/v1/tasks/{task}", Role::operator_, "change a task (the fields given replace the task's)", [this](Call& c) -> Result<Reply> {
    auto* s = scheduler_of(c.who.tenant);
    auto j = s->get(c.arg(1));
    if (!j) return Error{ErrorCode::not_found, fmt::format("no task '{}'", c.arg(1))};
    if (!c.body.is_object()) return Error{ErrorCode::invalid_argument, "expected a JSON object with the fields to change"};
    for (const char* k : {"id", "tenant", "owner", "run_as", "created"})
      if (c.body.get_object().contains(k)) return Error{ErrorCode::invalid_argument, fmt::format("'{}' cannot be changed: the server sets it", k)};
    auto merged = j->spec.to_json();
    for (const auto& [k, v] : c.body.get_object()) merged[k] = v;
    XCORE_ASSIGN_OR_RETURN(auto spec, JobSpec::from_json(merged));
    XCORE_TRY(webhook_secret_allowed(spec));
    spec.tenant = c.who.tenant;
    spec.run_as = c.who.principal;  // the task now does what its last editor asked, with their rights
    XCORE_TRY(s->update(c.arg(1), std::move(spec)));
    return Reply{200, task_json(*s->get(c.arg(1)))};
  }).body(R"json({"type":"object","description":"the task's fields to replace"})json").returns(200, R"json({"$ref":"#/components/schemas/Task"})json").errors({404, 409});
  route("DELETE", "/api/v1/tasks/{task}", Role::operator_, "delete a task and its history", [this](Call& c) -> Result<Reply> {
    XCORE_TRY(scheduler_of(c.who.tenant)->remove(c.arg(1)));
    return Reply{200, json::object{{"deleted", c.arg(1)}}};
  }).returns(200, R"json({"$ref":"#/components/schemas/Deleted"})json").errors({404});
  route("POST", "/api/v1/tasks/{task}/run", Role::operator_, "run a task now", [this](Call& c) -> Result<Reply> {
    XCORE_ASSIGN_OR_RETURN(auto run, scheduler_of(c.who.tenant)->run_now(c.arg(1), nullptr, "manual"));
    return Reply{202, json::object{{"run_id", run}, {"task_id", c.arg(1)}}};
  }).returns(202, R"json({"$ref":"#/components/schemas/RunStarted"})json").errors({404});
  for (const char* verb : {"pause", "resume"}) {
    route("POST", "/api/v1/tasks/{task}/" + std::string(verb), Role::operator_, std::string(verb) + " a task", [this, v = std::string(verb)](Call& c) -> Result<Reply> {
      auto* s = scheduler_of(c.who.tenant);
      XCORE_TRY(v == "pause" ? s->pause(c.arg(1)) : s->resume(c.arg(1)));
      return Reply{200, task_json(*s->get(c.arg(1)))};
    }).returns(200, R"json({"$ref":"#/components/schemas/Task"})json").errors({404});
  }
  route("GET", "/api/v1/tasks/{task}/runs", Role::viewer, "a task's runs, newest first (?limit=)", [this](Call& c) -> Result<Reply> {
    auto* s = scheduler_of(c.who.tenant);
    if (!s->get(c.arg(1))) return Error{ErrorCode::not_found, fmt::format("no task '{}'", c.arg(1))};
    std::size_t limit = 100;
    if (auto l = c.query("limit"); !l.empty()) limit = static_cast<std::size_t>(std::clamp(std::atoi(l.c_str()), 1, 1000));
    json::array out;
    XCORE_ASSIGN_OR_RETURN(auto runs, s->runs(c.arg(1), limit));
    for (const auto& r : runs) out.push_back(r.to_json());
    return Reply{200, out};
  }).returns(200, R"json({"type":"array","items":{"$ref":"#/components/schemas/Run"},"description":"newest first"})json").errors({404});
  // Signed webhooks, per tenant: HMAC-SHA256 over "<timestamp>.<body>" with the task's secret, a timestamp
  // window, and each signature accepted once. Every refusal of a signed post reads the same, so the
  // answers tell nothing of which webhooks or secrets exist; failures are limited per address.
  route("POST", "/api/v1/webhooks/{tenant}/{webhook}", Role::anonymous,
        "trigger a tenant's webhook task (X-Xcore-Timestamp, X-Xcore-Signature: sha256=<hex>)", [this](Call& c) -> Result<Reply> {
    const auto stamp = c.req.get_header_value("X-Xcore-Timestamp");
    auto signature = c.req.get_header_value("X-Xcore-Signature");
    if (stamp.empty() || signature.empty())
      return Error{ErrorCode::unauthenticated, "a webhook needs X-Xcore-Timestamp and X-Xcore-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + \".\" + body)>"};
    const auto limiter_key = "webhook|" + c.req.remote_addr;
    if (int wait = limiter.retry_after(limiter_key)) {
      Error e{ErrorCode::resource_exhausted, fmt::format("too many refused webhook posts; retry in {} s", wait)};
      e.details = xcore::json_text::serialize(json::object{{"retry_after", wait}});
      return e;
    }
    std::int64_t ts = 0;
    try {
      std::size_t used = 0;
      ts = std::stoll(stamp, &used);
      if (used != stamp.size()) throw std::invalid_argument("stamp");
    } catch (const std::exception&) {
      return Error{ErrorCode::unauthenticated, "X-Xcore-Timestamp must be seconds since the epoch"};
    }
    if (std::llabs(unix_now() - ts) > config.webhook_window)
      return Error{ErrorCode::unauthenticated, fmt::format("the timestamp is outside the {} s window", config.webhook_window)};
    const auto tenant = c.arg(1);
    auto refused = [&] {
      limiter.failed(limiter_key);
      return Error{ErrorCode::unauthenticated, "the signature does not match"};
    };
    auto* scheduler = scheduler_of(tenant);
    auto job = scheduler ? scheduler->find_webhook(c.arg(2)) : std::nullopt;
    if (!job) return refused();
    XCORE_ASSIGN_OR_RETURN(auto sealed, db->secret(tenant, job->spec.trigger.webhook_secret));
    if (!sealed) {
      log(LogLevel::warn, tenant, fmt::format("webhook '{}': its secret '{}' is not set", c.arg(2), job->spec.trigger.webhook_secret));
      return refused();
    }
    XCORE_ASSIGN_OR_RETURN(auto key, secrets->open(tenant + "/" + job->spec.trigger.webhook_secret, *sealed));
    if (signature.starts_with("sha256=")) signature = signature.substr(7);
    if (!constant_time_equal(signature, hex_encode(hmac_sha256(key, stamp + "." + c.raw)))) return refused();
    XCORE_ASSIGN_OR_RETURN(const bool first, db->first_delivery(signature, unix_now(), config.webhook_window));
    if (!first)
      return Error{ErrorCode::conflict, "this delivery was received before (replay)"};
    XCORE_ASSIGN_OR_RETURN(auto run, scheduler->run_now(job->spec.id, c.body, "webhook"));
    return Reply{202, json::object{{"run_id", run}, {"task_id", job->spec.id}}};
  }).returns(202, R"json({"$ref":"#/components/schemas/RunStarted"})json").errors({404, 409, 503});

}

}  // namespace xcore::server
