#include "runners/in_process_runner.hpp"
#include <xcore/json_text.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <cstddef>
#include <dlfcn.h>
#include <fmt/format.h>
#include <mutex>
#include <unordered_map>

#include "runners/abi_codec.hpp"
#include "runners/abi_tag.hpp"
#include "runners/plugin_module.hpp"

namespace xcore::inline v1 {
namespace {

class InProcessRunner final : public Runner {
 public:
  InProcessRunner(std::string id, std::shared_ptr<PluginModule> module, PluginServices& services)
      : id_(std::move(id)), module_(std::move(module)), api_(module_->api()), services_(services) {
    host_.abi_major = XCORE_ABI_MAJOR;
    host_.size = sizeof(xcore_host_api);
    host_.host = this;
    host_.log = &InProcessRunner::h_log;
    host_.emit_hook = &InProcessRunner::h_emit_hook;
    host_.subscribe_hook = &InProcessRunner::h_subscribe_hook;
    host_.unsubscribe_hook = &InProcessRunner::h_unsubscribe_hook;
    host_.call_tool = &InProcessRunner::h_call_tool;
    host_.call_action = &InProcessRunner::h_call_action;
    host_.get_config = &InProcessRunner::h_get_config;
    host_.register_tool = &InProcessRunner::h_register_tool;
    host_.unregister_tool = &InProcessRunner::h_unregister_tool;
    host_.get_secret = &InProcessRunner::h_get_secret;
    host_.schedule_job = &InProcessRunner::h_schedule_job;
    host_.unschedule_job = &InProcessRunner::h_unschedule_job;
    host_.register_route = &InProcessRunner::h_register_route;
    host_.call_host = &InProcessRunner::h_call_host;
  }

  ~InProcessRunner() override {
    if (self_ && api_->destroy) api_->destroy(self_);
    // The module goes with its last instance. glibc keeps a library mapped when it holds thread_local
    // objects with destructors or STB_GNU_UNIQUE symbols (built without -fno-gnu-unique). Reload still
    // works, because each version loads from its own copy, but the old code stays in memory: say so.
    const auto file = module_->file();
    const bool last = module_.use_count() == 1;
    module_.reset();
    if (last && still_mapped(file)) {
      try {
        services_.log(LogLevel::warn, fmt::format("plugin '{}' stays mapped after unload (thread_local objects with destructors, "
                                                  "or built without -fno-gnu-unique); its memory is not returned",
                                                  id_));
      } catch (...) {
      }
    }
  }

  Result<void> create() {
    StringSink err;
    self_ = api_->create(&host_, &err.sink);
    if (!self_) return Error{ErrorCode::plugin_crashed, fmt::format("plugin '{}' failed to construct: {}", id_, err.text)};
    return ok();
  }

  Result<void> on_load(const json::object& config) override {
    auto text = xcore::json_text::serialize(config);
    return lifecycle("on_load", [&](xcore_sink* s) { return api_->on_load ? api_->on_load(self_, to_c(text), s) : XCORE_OK; });
  }
  Result<void> on_enable() override {
    return lifecycle("on_enable", [&](xcore_sink* s) { return api_->on_enable ? api_->on_enable(self_, s) : XCORE_OK; });
  }
  Result<void> on_disable() override {
    return lifecycle("on_disable", [&](xcore_sink* s) { return api_->on_disable ? api_->on_disable(self_, s) : XCORE_OK; });
  }
  Result<void> on_unload() override {
    return lifecycle("on_unload", [&](xcore_sink* s) { return api_->on_unload ? api_->on_unload(self_, s) : XCORE_OK; });
  }
  Result<void> on_config(const json::object& config) override {
    auto text = xcore::json_text::serialize(config);
    return lifecycle("on_config", [&](xcore_sink* s) { return api_->on_config ? api_->on_config(self_, to_c(text), s) : XCORE_OK; });
  }

  Result<json::value> health() override {
    if (!api_->health) return json::value(json::object{{"status", "ok"}});
    StringSink out;
    auto st = api_->health(self_, &out.sink);
    if (st != XCORE_OK) return Error{code_from_status(st), out.text};
    return parse_json(out.text, "health");
  }

  Result<std::vector<ToolSpec>> list_tools() override {
    std::vector<ToolSpec> specs;
    if (!api_->list_tools) return specs;
    StringSink out;
    auto st = api_->list_tools(self_, &out.sink);
    if (st != XCORE_OK) return Error{code_from_status(st), fmt::format("plugin '{}': list_tools: {}", id_, out.text)};
    XCORE_ASSIGN_OR_RETURN(auto v, parse_json(out.text, "list_tools"));
    if (!v.is_array()) return Error{ErrorCode::plugin_crashed, fmt::format("plugin '{}': list_tools did not return a list", id_)};
    for (const auto& t : v.get_array()) {
      auto spec = ToolSpec::from_json(t);
      if (!spec) return Error{ErrorCode::invalid_argument, fmt::format("plugin '{}': {}", id_, spec.error().message)};
      specs.push_back(std::move(*spec));
    }
    return specs;
  }

  Result<ToolResult> call_tool(std::string_view name, const json::value& args, const CallContext& ctx) override {
    auto text = xcore::json_text::serialize(args);
    CContext c(ctx);
    Serving serving(*this, c.c, ctx);
    StringSink out;
    auto st = api_->call_tool(self_, to_c(name), to_c(text), &c.c, &out.sink);
    if (st != XCORE_OK) return Error{code_from_status(st), std::move(out.text)};
    XCORE_ASSIGN_OR_RETURN(auto v, parse_json(out.text, "call_tool"));
    return ToolResult::from_mcp(std::move(v));
  }

  json::object describe() const override { return json::object{{"kind", "in_process"}}; }

  Result<json::value> serve_mcp(std::string_view method, const json::value& params, const CallContext& ctx) override {
    if (!XCORE_HAS_MEMBER(xcore_plugin_api, api_, serve_mcp)) return Error{ErrorCode::not_found, fmt::format("plugin '{}' serves no {}", id_, method)};
    auto text = xcore::json_text::serialize(params.is_null() ? json::value(json::object()) : params);
    CContext c(ctx);
    Serving serving(*this, c.c, ctx);
    StringSink out;
    auto st = api_->serve_mcp(self_, to_c(method), to_c(text), &c.c, &out.sink);
    if (st != XCORE_OK) return Error{code_from_status(st), std::move(out.text)};
    return parse_json(out.text, method);
  }

  Result<json::value> handle(std::string_view action, const json::value& params, const CallContext& ctx) override {
    if (!api_->handle) return Error{ErrorCode::not_found, fmt::format("plugin '{}' has no actions", id_)};
    auto text = params.is_null() ? std::string() : xcore::json_text::serialize(params);
    CContext c(ctx);
    Serving serving(*this, c.c, ctx);
    StringSink out;
    auto st = api_->handle(self_, to_c(action), to_c(text), &c.c, &out.sink);
    if (st != XCORE_OK) return Error{code_from_status(st), std::move(out.text)};
    if (out.text.empty()) return json::value();
    return parse_json(out.text, "handle");
  }

 private:
  template <class F>
  Result<void> lifecycle(std::string_view what, F&& call) {
    StringSink err;
    auto st = call(&err.sink);
    if (st != XCORE_OK)
      return Error{code_from_status(st), fmt::format("plugin '{}' failed in {}: {}", id_, what, err.text.empty() ? "no message" : err.text)};
    return ok();
  }

  Result<json::value> parse_json(std::string_view text, std::string_view what) const {
    // One parser per thread: its internal stack is reused instead of allocated on every call.
    thread_local json::parser parser;
    parser.reset();
    boost::system::error_code ec;
    parser.write(text, ec);
    if (ec) return Error{ErrorCode::plugin_crashed, fmt::format("plugin '{}': {} returned malformed JSON: {}", id_, what, ec.message())};
    return parser.release();
  }

  static InProcessRunner& self(void* host) { return *static_cast<InProcessRunner*>(host); }

  // Host services: every trampoline catches everything, nothing may unwind into plugin code.
  template <class F>
  static std::int32_t guarded(xcore_sink* out, F&& f) noexcept {
    try {
      return f();
    } catch (const std::exception& e) {
      write_sink(out, e.what());
    } catch (...) {
      write_sink(out, "internal error");
    }
    return XCORE_E_INTERNAL;
  }
  static std::int32_t fail(xcore_sink* out, const Error& e) {
    write_sink(out, e.message);
    return status_from_code(e.code);
  }
  static Result<json::value> parse_arg(xcore_str s, std::string_view what) {
    if (s.size == 0) return json::value();
    boost::system::error_code ec;
    auto v = json::parse(from_c(s), ec);
    if (ec) return Error{ErrorCode::invalid_argument, fmt::format("{} is not valid JSON: {}", what, ec.message())};
    return v;
  }

  static void h_log(void* host, std::int32_t level, xcore_str message) noexcept {
    try {
      auto lv = level <= XCORE_LOG_TRACE ? LogLevel::trace : level >= XCORE_LOG_ERROR ? LogLevel::error : static_cast<LogLevel>(level);
      self(host).services_.log(lv, from_c(message));
    } catch (...) {
    }
  }
  static std::int32_t h_subscribe_hook(void* host, xcore_str hook, std::int32_t band, std::int32_t priority, xcore_hook_fn fn,
                                       void* user, std::uint64_t* id, xcore_sink* err) noexcept {
    return guarded(err, [&] {
      if (!fn) return fail(err, Error{ErrorCode::invalid_argument, "hook handler is NULL"});
      std::string hook_name(from_c(hook));
      HookHandler h = [fn, user, hook_name](const HookEvent& ev) -> HookReply {
        auto payload = xcore::json_text::serialize(ev.payload);
        StringSink reply;
        auto st = fn(user, to_c(hook_name), to_c(payload), to_c(ev.tenant), &reply.sink);
        if (st == XCORE_HOOK_VETO) return HookReply::veto(reply.text);
        if (st != XCORE_OK) return HookReply::fail(Error{code_from_status(st), reply.text});
        if (reply.text.empty()) return HookReply::none();
        boost::system::error_code ec;
        auto v = json::parse(reply.text, ec);
        if (ec) return HookReply::fail(Error{ErrorCode::plugin_crashed, "hook handler replied with malformed JSON"});
        return HookReply(std::move(v));
      };
      auto b = band <= XCORE_BAND_FIRST ? HookBand::first : band >= XCORE_BAND_LAST ? HookBand::last : HookBand::normal;
      auto r = self(host).services_.subscribe_hook(hook_name, b, priority, std::move(h));
      if (!r) return fail(err, r.error());
      if (id) *id = *r;
      return std::int32_t(XCORE_OK);
    });
  }
  static std::int32_t h_unsubscribe_hook(void* host, std::uint64_t id) noexcept {
    try {
      return self(host).services_.unsubscribe_hook(id) ? XCORE_OK : XCORE_E_NOT_FOUND;
    } catch (...) {
      return XCORE_E_INTERNAL;
    }
  }
  // The fixed members of the host table are named services with older signatures: each turns its
  // arguments into the service's request and the answer into what its member promises.
  enum class Answer { json, none, secret };
  static std::int32_t serve(void* host, std::string_view service, json::object request, const CallContext& ctx, xcore_sink* out,
                            Answer answer) {
    auto r = self(host).services_.call(service, request, ctx);
    if (!r) return fail(out, r.error());
    switch (answer) {
      case Answer::json: write_sink(out, xcore::json_text::serialize(*r)); break;
      case Answer::none: break;
      case Answer::secret: {
        const auto* v = r->is_object() ? r->get_object().if_contains("value") : nullptr;
        if (!v || !v->is_string()) return fail(out, Error{ErrorCode::internal, "the secret service answered without a value"});
        write_sink(out, v->get_string());
        break;
      }
    }
    return XCORE_OK;
  }
  // A JSON argument as a request field (absent when empty).
  static Result<json::object> with_json(json::object request, std::string_view field, xcore_str text, std::string_view what) {
    if (text.size == 0) return request;
    XCORE_ASSIGN_OR_RETURN(auto v, parse_arg(text, what));
    request[field] = std::move(v);
    return request;
  }
  template <class Build>
  static std::int32_t serve_built(void* host, std::string_view service, Build&& build, const CallContext& ctx, xcore_sink* out,
                                  Answer answer) noexcept {
    return guarded(out, [&] {
      Result<json::object> request = build();
      if (!request) return fail(out, request.error());
      return serve(host, service, std::move(*request), ctx, out, answer);
    });
  }

  static std::int32_t h_emit_hook(void* host, xcore_str hook, xcore_str payload, xcore_sink* out) noexcept {
    return serve_built(host, host_service::emit_hook, [&] { return with_json({{"hook", from_c(hook)}}, "payload", payload, "hook payload"); },
                       {}, out, Answer::json);
  }
  static std::int32_t h_call_tool(void* host, xcore_str name, xcore_str args, const xcore_call_context* c, xcore_sink* out) noexcept {
    return serve_built(host, host_service::call_tool, [&] { return with_json({{"name", from_c(name)}}, "arguments", args, "tool arguments"); },
                       self(host).served_context(c), out, Answer::json);
  }
  static std::int32_t h_call_action(void* host, xcore_str plugin, xcore_str action, xcore_str params, const xcore_call_context* c,
                                    xcore_sink* out) noexcept {
    return serve_built(
        host, host_service::call_action,
        [&] { return with_json({{"plugin", from_c(plugin)}, {"action", from_c(action)}}, "params", params, "action params"); },
        self(host).served_context(c), out, Answer::json);
  }
  static std::int32_t h_get_config(void* host, xcore_sink* out) noexcept {
    return serve_built(host, host_service::config, [] { return Result<json::object>(json::object()); }, {}, out, Answer::json);
  }
  static std::int32_t h_get_secret(void* host, xcore_str name, xcore_sink* out) noexcept {
    return serve_built(host, host_service::secret, [&] { return Result<json::object>(json::object{{"name", from_c(name)}}); }, {}, out,
                       Answer::secret);
  }
  static std::int32_t h_schedule_job(void* host, xcore_str job, xcore_sink* err) noexcept {
    return serve_built(host, host_service::schedule, [&] { return with_json({}, "job", job, "job"); }, {}, err, Answer::none);
  }
  static std::int32_t h_unschedule_job(void* host, xcore_str name, xcore_sink* err) noexcept {
    return serve_built(host, host_service::unschedule, [&] { return Result<json::object>(json::object{{"name", from_c(name)}}); }, {}, err,
                       Answer::none);
  }
  static std::int32_t h_register_route(void* host, xcore_str route, xcore_sink* err) noexcept {
    return serve_built(host, host_service::register_route, [&] { return with_json({}, "route", route, "route"); }, {}, err, Answer::none);
  }
  static std::int32_t h_register_tool(void* host, xcore_str tool, xcore_sink* err) noexcept {
    return serve_built(host, host_service::register_tool, [&] { return with_json({}, "tool", tool, "tool"); }, {}, err, Answer::none);
  }
  static std::int32_t h_unregister_tool(void* host, xcore_str name, xcore_sink* err) noexcept {
    return serve_built(host, host_service::unregister_tool, [&] { return Result<json::object>(json::object{{"name", from_c(name)}}); }, {},
                       err, Answer::none);
  }
  // ABI 1.2: any service by name.
  static std::int32_t h_call_host(void* host, xcore_str service, xcore_str request, const xcore_call_context* c, xcore_sink* out) noexcept {
    return serve_built(
        host, from_c(service),
        [&]() -> Result<json::object> {
          if (!host_service::by_name(from_c(service)))
            return Error{ErrorCode::invalid_argument,
                         fmt::format("host service '{}' cannot be called by name: it has its own member of the host table", from_c(service))};
          if (request.size == 0) return json::object();
          XCORE_ASSIGN_OR_RETURN(auto v, parse_arg(request, "host service request"));
          if (!v.is_object())
            return Error{ErrorCode::invalid_argument, fmt::format("host service '{}': the request must be a JSON object", from_c(service))};
          return std::move(v.get_object());
        },
        self(host).served_context(c), out, Answer::json);
  }

  // The calls the plugin serves now, by the address of the C context handed to it. A host call passing that
  // context acts in that call (its principal, cancellation, listening caller); any other context is read
  // field by field and acts for nobody, as in the sandbox.
  struct Serving {
    InProcessRunner& runner;
    const xcore_call_context* key;
    Serving(InProcessRunner& r, const xcore_call_context& c, const CallContext& ctx) : runner(r), key(&c) {
      std::lock_guard lock(runner.serving_mutex_);
      runner.serving_.emplace(key, &ctx);
    }
    ~Serving() {
      std::lock_guard lock(runner.serving_mutex_);
      runner.serving_.erase(key);
    }
  };
  CallContext served_context(const xcore_call_context* c) const {
    {
      std::lock_guard lock(serving_mutex_);
      if (auto it = serving_.find(c); it != serving_.end()) return *it->second;
    }
    return from_c(c);
  }
  mutable std::mutex serving_mutex_;
  std::unordered_map<const xcore_call_context*, const CallContext*> serving_;

  std::string id_;
  std::shared_ptr<PluginModule> module_;  // shared with every other instance of the same binary
  const xcore_plugin_api* api_;
  PluginServices& services_;
  xcore_host_api host_{};
  void* self_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<Runner>> open_in_process(const PluginManifest& m, std::shared_ptr<PluginModule> module,
                                                PluginServices& services) {
  // The tag was read from the file when the module was mapped: nothing of the plugin has run yet.
  const auto& tag = module->tag();
  if (tag.plugin_id != m.id)
    return Error{ErrorCode::incompatible,
                 fmt::format("plugin binary '{}' declares id '{}' but its manifest {} says '{}'", m.entry, tag.plugin_id, m.file.string(), m.id)};
  auto binary_version = Version::parse(tag.plugin_version);
  if (!binary_version || *binary_version != m.version)
    return Error{ErrorCode::incompatible,
                 fmt::format("plugin binary '{}' declares version '{}' but its manifest {} says '{}'", m.entry, tag.plugin_version,
                             m.file.string(), m.version.to_string())};
  auto runner = std::make_unique<InProcessRunner>(m.id, std::move(module), services);
  XCORE_TRY(runner->create());
  return std::unique_ptr<Runner>(std::move(runner));
}

Result<std::unique_ptr<Runner>> open_in_process(const PluginManifest& m, const std::filesystem::path& binary, PluginServices& services) {
  auto module = PluginModule::load(binary, false);
  if (!module) return Error{module.error().code, module.error().message, module.error().details};
  return open_in_process(m, std::move(*module), services);
}

}  // namespace xcore::inline v1
