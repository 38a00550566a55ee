// Triggers, targets, job specs and run records: their JSON forms and fire-time arithmetic.
#include <xcore/scheduler.hpp>

#include <fmt/format.h>

#include <cctype>
#include <cstdio>

namespace xcore::inline v1 {

using namespace std::chrono;

namespace {

Error bad(std::string_view field, std::string_view why) { return Error{ErrorCode::invalid_argument, fmt::format("{}: {}", field, why)}; }

const json::value* member(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  return it == o.end() ? nullptr : &it->value();
}

Result<std::int64_t> whole(const json::object& o, std::string_view k, std::string_view field, std::int64_t lo, std::int64_t hi) {
  auto* v = member(o, k);
  if (!v) return bad(field, "is required");
  std::int64_t n = 0;
  if (v->is_int64()) n = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() < (1ull << 62)) n = static_cast<std::int64_t>(v->get_uint64());
  else return bad(field, "expected a whole number");
  if (n < lo || n > hi) return bad(field, fmt::format("{} is out of range {}-{}", n, lo, hi));
  return n;
}

Result<std::string> text(const json::object& o, std::string_view k, std::string_view field, bool required = true) {
  auto* v = member(o, k);
  if (!v || v->is_null()) {
    if (required) return bad(field, "is required");
    return std::string();
  }
  if (!v->is_string()) return bad(field, "expected a string");
  return std::string(v->get_string());
}

// "+02:00", "-0530", "Z", "UTC" -> minutes east of UTC.
Result<minutes> parse_offset(std::string_view s) {
  if (s == "Z" || s == "UTC" || s == "+00:00" || s.empty()) return minutes(0);
  int sign = s[0] == '+' ? 1 : s[0] == '-' ? -1 : 0;
  int h = 0, m = 0;
  if (sign != 0) {
    std::string rest(s.substr(1));
    if (std::sscanf(rest.c_str(), "%2d:%2d", &h, &m) == 2 || std::sscanf(rest.c_str(), "%2d%2d", &h, &m) == 2)
      if (h <= 14 && m < 60) return minutes(sign * (h * 60 + m));
  }
  return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a UTC offset such as +02:00", s)};
}

std::string format_offset(minutes off) {
  auto n = off.count();
  return fmt::format("{}{:02}:{:02}", n < 0 ? '-' : '+', std::abs(n) / 60, std::abs(n) % 60);
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64: a stable spread for jitter
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

Result<SysSeconds> parse_iso8601(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0, used = 0;
  std::string str(s);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &used) != 6 || used != 19)
    return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not an ISO 8601 time such as 2026-12-01T08:00:00Z", s)};
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 60) return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a valid date and time", s)};
  std::string_view rest = s.substr(19);
  if (!rest.empty() && rest[0] == '.') {  // fractions: dropped
    rest.remove_prefix(1);
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0]))) rest.remove_prefix(1);
  }
  if (rest.empty()) return Error{ErrorCode::invalid_argument, fmt::format("'{}' has no zone: end it with Z or an offset such as +02:00", s)};
  XCORE_ASSIGN_OR_RETURN(auto off, parse_offset(rest));
  return sys_days{ymd} + hours{h} + minutes{mi} + seconds{se} - off;
}

std::string format_iso8601(SysSeconds t) {
  auto dp = floor<days>(t);
  year_month_day ymd{dp};
  hh_mm_ss hms{t - dp};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::string format_iso8601_ms(system_clock::time_point t) {
  auto s = floor<seconds>(t);
  auto ms = duration_cast<milliseconds>(t - s).count();
  auto base = format_iso8601(SysSeconds{s.time_since_epoch()});
  base.pop_back();
  return fmt::format("{}.{:03}Z", base, ms);
}

Result<Trigger> Trigger::from_json(const json::value& v) {
  if (!v.is_object()) return bad("trigger", "expected an object with a 'type'");
  const auto& o = v.get_object();
  XCORE_ASSIGN_OR_RETURN(auto type, text(o, "type", "trigger.type"));
  Trigger t;
  if (type == "cron") {
    t.kind = Kind::cron;
    XCORE_ASSIGN_OR_RETURN(auto expr, text(o, "expression", "trigger.expression"));
    auto c = CronExpression::parse(expr);
    if (!c) return bad("trigger.expression", c.error().message);
    t.cron = std::move(*c);
    XCORE_ASSIGN_OR_RETURN(auto off, text(o, "utc_offset", "trigger.utc_offset", false));
    auto parsed = parse_offset(off);
    if (!parsed) return bad("trigger.utc_offset", parsed.error().message);
    t.utc_offset = *parsed;
  } else if (type == "interval") {
    t.kind = Kind::interval;
    XCORE_ASSIGN_OR_RETURN(auto secs, whole(o, "seconds", "trigger.seconds", 1, 366LL * 86400 * 100));
    t.interval = seconds(secs);
    if (member(o, "jitter_seconds")) {
      XCORE_ASSIGN_OR_RETURN(auto j, whole(o, "jitter_seconds", "trigger.jitter_seconds", 0, secs));
      t.jitter = seconds(j);
    }
    XCORE_ASSIGN_OR_RETURN(auto start, text(o, "start", "trigger.start", false));
    if (!start.empty()) {
      auto s = parse_iso8601(start);
      if (!s) return bad("trigger.start", s.error().message);
      t.start = *s;
    }
  } else if (type == "date") {
    t.kind = Kind::date;
    XCORE_ASSIGN_OR_RETURN(auto at, text(o, "at", "trigger.at"));
    auto s = parse_iso8601(at);
    if (!s) return bad("trigger.at", s.error().message);
    t.at = *s;
  } else if (type == "webhook") {
    t.kind = Kind::webhook;
    XCORE_ASSIGN_OR_RETURN(t.webhook, text(o, "name", "trigger.name"));
    bool ok_name = !t.webhook.empty() && t.webhook.size() <= 64;
    for (char c : t.webhook) ok_name = ok_name && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    if (!ok_name) return bad("trigger.name", "a webhook name is [A-Za-z0-9._-]{1,64}");
    XCORE_ASSIGN_OR_RETURN(t.webhook_secret, text(o, "secret", "trigger.secret", false));
    if (t.webhook_secret.empty()) t.webhook_secret = "webhook_" + t.webhook;
  } else {
    return bad("trigger.type", fmt::format("'{}': expected cron, interval, date or webhook", type));
  }
  return t;
}

json::object Trigger::to_json() const {
  switch (kind) {
    case Kind::cron: {
      json::object o{{"type", "cron"}, {"expression", cron ? cron->text() : std::string()}};
      if (utc_offset.count() != 0) o["utc_offset"] = format_offset(utc_offset);
      return o;
    }
    case Kind::interval: {
      json::object o{{"type", "interval"}, {"seconds", interval.count()}};
      if (jitter.count()) o["jitter_seconds"] = jitter.count();
      if (start) o["start"] = format_iso8601(*start);
      return o;
    }
    case Kind::date:
      return json::object{{"type", "date"}, {"at", format_iso8601(at)}};
    case Kind::webhook:
      return json::object{{"type", "webhook"}, {"name", webhook}, {"secret", webhook_secret}};
  }
  return {};
}

std::optional<SysSeconds> Trigger::next_after(SysSeconds after, std::uint64_t seed) const {
  switch (kind) {
    case Kind::cron:
      return cron ? cron->next_after(after, utc_offset) : std::nullopt;
    case Kind::interval: {
      const auto origin = start.value_or(SysSeconds{});
      auto k = after < origin ? 0 : (after - origin) / interval + 1;
      // With jitter, a fire may land after a later grid point's own: walk on until one is after `after`.
      for (int guard = 0; guard < 4; ++guard, ++k) {
        auto t = origin + k * interval;
        if (jitter.count() > 0) t += seconds(static_cast<std::int64_t>(mix(seed ^ static_cast<std::uint64_t>(k)) % static_cast<std::uint64_t>(jitter.count() + 1)));
        if (t > after) return t;
      }
      return origin + k * interval;
    }
    case Kind::date:
      return at > after ? std::optional(at) : std::nullopt;
    case Kind::webhook:
      return std::nullopt;
  }
  return std::nullopt;
}

Result<JobTarget> JobTarget::from_json(const json::value& v) {
  if (!v.is_object()) return bad("target", "expected {tool, arguments} or {plugin, action, params} or {callback, input} or {agent, input}");
  const auto& o = v.get_object();
  JobTarget t;
  if (member(o, "tool")) {
    t.kind = Kind::tool;
    XCORE_ASSIGN_OR_RETURN(t.name, text(o, "tool", "target.tool"));
    if (auto* a = member(o, "arguments")) t.arguments = *a;
    else t.arguments = json::object();
    if (!t.arguments.is_object()) return bad("target.arguments", "expected an object");
  } else if (member(o, "action")) {
    t.kind = Kind::action;
    XCORE_ASSIGN_OR_RETURN(t.plugin, text(o, "plugin", "target.plugin"));
    XCORE_ASSIGN_OR_RETURN(t.name, text(o, "action", "target.action"));
    if (auto* a = member(o, "params")) t.arguments = *a;
  } else if (member(o, "callback")) {
    t.kind = Kind::callback;
    XCORE_ASSIGN_OR_RETURN(t.name, text(o, "callback", "target.callback"));
    if (auto* a = member(o, "input")) t.arguments = *a;
  } else if (member(o, "agent")) {
    t.kind = Kind::agent;
    XCORE_ASSIGN_OR_RETURN(t.name, text(o, "agent", "target.agent"));
    t.arguments = "";
    if (auto* a = member(o, "input")) {
      if (!a->is_string()) return bad("target.input", "expected the agent's task as a string");
      t.arguments = *a;
    }
  } else {
    return bad("target", "name a 'tool', an 'action' (with its 'plugin'), a 'callback' or an 'agent'");
  }
  if (t.name.empty()) return bad("target", "the name is empty");
  return t;
}

json::object JobTarget::to_json() const {
  switch (kind) {
    case Kind::tool:
      return json::object{{"tool", name}, {"arguments", arguments}};
    case Kind::action:
      return json::object{{"plugin", plugin}, {"action", name}, {"params", arguments}};
    case Kind::callback:
      return json::object{{"callback", name}, {"input", arguments}};
    case Kind::agent:
      return json::object{{"agent", name}, {"input", arguments}};
  }
  return {};
}

Result<JobSpec> JobSpec::from_json(const json::value& v) {
  if (!v.is_object()) return bad("task", "expected a JSON object");
  const auto& o = v.get_object();
  JobSpec j;
  XCORE_ASSIGN_OR_RETURN(j.id, text(o, "id", "id", false));
  XCORE_ASSIGN_OR_RETURN(j.name, text(o, "name", "name", false));
  XCORE_ASSIGN_OR_RETURN(j.tenant, text(o, "tenant", "tenant", false));
  XCORE_ASSIGN_OR_RETURN(j.owner, text(o, "owner", "owner", false));
  auto* trig = member(o, "trigger");
  if (!trig) return bad("trigger", "is required");
  XCORE_ASSIGN_OR_RETURN(j.trigger, Trigger::from_json(*trig));
  auto* target = member(o, "target");
  if (!target) return bad("target", "is required");
  XCORE_ASSIGN_OR_RETURN(j.target, JobTarget::from_json(*target));
  if (member(o, "misfire_grace_seconds")) {
    XCORE_ASSIGN_OR_RETURN(auto g, whole(o, "misfire_grace_seconds", "misfire_grace_seconds", 0, 366LL * 86400));
    j.misfire_grace = seconds(g);
  }
  if (member(o, "max_instances")) {
    XCORE_ASSIGN_OR_RETURN(auto n, whole(o, "max_instances", "max_instances", 1, 1000));
    j.max_instances = static_cast<unsigned>(n);
  }
  for (auto [k, out] : {std::pair{"coalesce", &j.coalesce}, std::pair{"paused", &j.paused}}) {
    if (auto* b = member(o, k)) {
      if (!b->is_bool()) return bad(k, "expected true or false");
      *out = b->get_bool();
    }
  }
  j.run_as = Principal{};
  if (auto* r = member(o, "run_as")) {
    if (!r->is_object()) return bad("run_as", "expected {kind, id, permissions}");
    const auto& ro = r->get_object();
    XCORE_ASSIGN_OR_RETURN(auto kind, text(ro, "kind", "run_as.kind", true));
    auto k = principal_kind_from_string(kind);
    if (!k) return bad("run_as.kind", fmt::format("'{}' is not a kind of principal", kind));
    j.run_as.kind = *k;
    XCORE_ASSIGN_OR_RETURN(j.run_as.id, text(ro, "id", "run_as.id", false));
    if (auto* ps = member(ro, "permissions")) {
      if (!ps->is_array()) return bad("run_as.permissions", "expected a list of strings");
      for (const auto& p : ps->get_array()) {
        if (!p.is_string()) return bad("run_as.permissions", "expected a list of strings");
        j.run_as.permissions.emplace_back(p.get_string());
      }
    }
  }
  if (auto* c = member(o, "created"); c && c->is_string()) {
    auto t = parse_iso8601(c->get_string());
    if (t) j.created = *t;
  }
  return j;
}

json::object JobSpec::to_json() const {
  json::object o{{"id", id},
                 {"name", name},
                 {"tenant", tenant},
                 {"trigger", trigger.to_json()},
                 {"target", target.to_json()},
                 {"misfire_grace_seconds", misfire_grace.count()},
                 {"coalesce", coalesce},
                 {"max_instances", max_instances},
                 {"paused", paused},
                 {"created", format_iso8601(created)}};
  if (!owner.empty()) o["owner"] = owner;
  json::array perms;
  for (const auto& p : run_as.permissions) perms.emplace_back(p);
  o["run_as"] = json::object{{"kind", to_string(run_as.kind)}, {"id", run_as.id}, {"permissions", std::move(perms)}};
  return o;
}

std::string_view to_string(RunStatus s) noexcept {
  switch (s) {
    case RunStatus::running: return "running";
    case RunStatus::succeeded: return "succeeded";
    case RunStatus::failed: return "failed";
    case RunStatus::interrupted: return "interrupted";
    case RunStatus::skipped: return "skipped";
  }
  return "running";
}

bool parse_run_status(std::string_view s, RunStatus& out) noexcept {
  for (auto st : {RunStatus::running, RunStatus::succeeded, RunStatus::failed, RunStatus::interrupted, RunStatus::skipped})
    if (to_string(st) == s) {
      out = st;
      return true;
    }
  return false;
}

json::object RunRecord::to_json() const {
  json::object o{{"id", id}, {"job_id", job_id}, {"status", to_string(status)}, {"reason", reason}, {"start", format_iso8601_ms(started)}};
  if (scheduled_for) o["scheduled_for"] = format_iso8601(*scheduled_for);
  if (status != RunStatus::running) {
    o["end"] = format_iso8601_ms(ended);
    o["duration_ms"] = duration_cast<milliseconds>(ended - started).count();
  }
  if (!result.is_null()) o["result"] = result;
  if (!error.empty()) o["error"] = error;
  return o;
}

}  // namespace xcore::inline v1
