// The "audit" example plugin: depends on core, watches every tool call through hooks, can veto calls to
// tools named in its config, and calls core's tools through host services.
#include <xcore/sdk.hpp>

#include <deque>
#include <map>
#include <mutex>

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::ToolOutput;

namespace {
// '*' matches any run of characters.
bool matches(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern[0] == '*') {
    for (std::size_t i = 0; i <= text.size(); ++i)
      if (matches(pattern.substr(1), text.substr(i))) return true;
    return false;
  }
  return !text.empty() && pattern[0] == text[0] && matches(pattern.substr(1), text.substr(1));
}
}  // namespace

class AuditPlugin : public xcore::sdk::Plugin {
 public:
  AuditPlugin() {
    tool("recent_calls")
        .title("Recent tool calls")
        .description("The most recent tool calls seen by the audit plugin, newest first.")
        .input(json::object{{"type", "object"},
                            {"properties", {{"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}, {"default", 20}}}}}})
        .category("observability")
        .read_only()
        .handler([this](const json::object& args, const Context&) {
          std::size_t limit = args.contains("limit") ? static_cast<std::size_t>(args.at("limit").as_int64()) : 20;
          std::lock_guard lock(mutex_);
          json::array out;
          for (auto it = recent_.rbegin(); it != recent_.rend() && out.size() < limit; ++it) out.push_back(*it);
          return ToolOutput(json::object{{"calls", std::move(out)}});
        });

    tool("tool_usage")
        .title("Tool usage")
        .description("How often each tool was called and how often it failed, since the audit plugin was loaded.")
        .input(json::object{{"type", "object"}})
        .category("observability")
        .read_only()
        .handler([this](const json::object&, const Context&) {
          std::lock_guard lock(mutex_);
          json::object usage;
          for (const auto& [tool, c] : usage_) usage[tool] = json::object{{"calls", c.first}, {"failures", c.second}};
          return ToolOutput(json::object{{"usage", std::move(usage)}, {"vetoed", vetoed_}});
        });
  }

  void on_load(const json::object& config) override {
    apply(config);
    // Band "first": a veto should come before anyone else spends work on the call.
    on_hook("tool.before_call", [this](std::string_view, const json::value& p, std::string_view) -> json::value {
      auto tool = std::string(p.at("tool").as_string());
      std::lock_guard lock(mutex_);
      for (const auto& pattern : deny_)
        if (matches(pattern, tool)) {
          ++vetoed_;
          throw xcore::sdk::Veto("tool '" + tool + "' is denied by the audit policy ('" + pattern + "')");
        }
      return nullptr;
    }, XCORE_BAND_FIRST);
    on_hook("tool.after_call", [this](std::string_view, const json::value& p, std::string_view) -> json::value {
      const auto& o = p.as_object();
      std::lock_guard lock(mutex_);
      auto& u = usage_[std::string(o.at("tool").as_string())];
      ++u.first;
      if (!o.at("ok").as_bool()) ++u.second;
      recent_.push_back(json::object{{"tool", o.at("tool")}, {"ok", o.at("ok")}, {"duration_ms", o.at("duration_ms")},
                                     {"tenant", o.at("tenant")}, {"trace_id", o.at("trace_id")}});
      while (recent_.size() > keep_) recent_.pop_front();
      return nullptr;
    });
  }

  void on_config(const json::object& config) override { apply(config); }

  // "summary": usage plus the machine's state, fetched from core's system_stats tool.
  json::value handle(std::string_view action, const json::value& params, const Context& ctx) override {
    if (action != "summary") return Plugin::handle(action, params, ctx);
    auto stats = host().call_tool("core.system_stats", json::object{}, ctx);
    std::lock_guard lock(mutex_);
    std::uint64_t calls = 0;
    for (const auto& [_, c] : usage_) calls += c.first;
    return json::object{{"tool_calls", calls}, {"vetoed", vetoed_}, {"system", stats.at("structuredContent")}};
  }

 private:
  void apply(const json::object& config) {
    std::lock_guard lock(mutex_);
    deny_.clear();
    if (auto it = config.find("deny"); it != config.end())
      for (const auto& d : it->value().as_array()) deny_.emplace_back(d.as_string());
    keep_ = config.contains("keep") ? static_cast<std::size_t>(config.at("keep").as_int64()) : 100;
  }

  std::mutex mutex_;
  std::vector<std::string> deny_;
  std::size_t keep_ = 100;
  std::deque<json::value> recent_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> usage_;
  std::uint64_t vetoed_ = 0;
};

XCORE_PLUGIN(AuditPlugin, "audit", "1.0.0")
