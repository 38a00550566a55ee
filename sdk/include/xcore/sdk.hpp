// The C++ layer over plugin.h, compiled into each plugin. It never lets an exception cross the ABI.
//
//   class Hello : public xcore::sdk::Plugin {
//    public:
//     Hello() {
//       tool("greet").description("Say hello")
//           .input({{"type", "object"}, {"properties", {{"name", {{"type", "string"}}}}}, {"required", {"name"}}})
//           .handler([](const json::object& args, const xcore::sdk::Context&) {
//             return json::value{{"greeting", "hello " + std::string(args.at("name").as_string())}};
//           });
//     }
//   };
//   XCORE_PLUGIN(Hello, "hello", "1.0.0")
#pragma once

#include <xcore/json_text.hpp>
#include <xcore/plugin.h>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <initializer_list>
#include <utility>
#include <vector>

namespace xcore::sdk {

namespace json = boost::json;

// Throw to fail a call with a specific status (XCORE_E_...) and message.
class Error : public std::runtime_error {
 public:
  Error(std::int32_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
  std::int32_t code() const noexcept { return code_; }

 private:
  std::int32_t code_;
};

inline Error invalid_argument(const std::string& m) { return {XCORE_E_INVALID_ARGUMENT, m}; }
inline Error not_found(const std::string& m) { return {XCORE_E_NOT_FOUND, m}; }
inline Error permission_denied(const std::string& m) { return {XCORE_E_PERMISSION_DENIED, m}; }
inline Error failed_precondition(const std::string& m) { return {XCORE_E_FAILED_PRECONDITION, m}; }

// Throw from a hook handler of a vetoable hook ("*.before_*") to veto the event.
class Veto : public std::runtime_error {
 public:
  explicit Veto(const std::string& reason) : std::runtime_error(reason) {}
};

namespace detail {
struct StringSink {
  std::string text;
  xcore_sink sink{this, &StringSink::append};
  static void append(void* ctx, const char* data, std::size_t size) { static_cast<StringSink*>(ctx)->text.append(data, size); }
};
inline xcore_str str(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view view(xcore_str s) { return {s.data ? s.data : "", s.size}; }
inline void write(xcore_sink* sink, std::string_view s) {
  if (sink && sink->append) sink->append(sink->ctx, s.data(), s.size());
}
// Parses with the parser's scratch memory on the stack. Throws on bad JSON.
// Never a thread_local here: a thread-local object with a destructor in a plugin makes glibc keep the
// plugin mapped until the thread exits, so it could never be unloaded or hot-reloaded.
inline json::value parse(std::string_view text, json::storage_ptr sp = {}) {
  unsigned char scratch[1024];
  json::parser parser(json::storage_ptr(), json::parse_options(), scratch, sizeof(scratch));
  parser.reset(std::move(sp));
  parser.write(text);
  return parser.release();
}
inline json::value parse_or_empty(xcore_str s, json::storage_ptr sp = {}) {
  if (s.size == 0) return json::object(sp);
  return parse(view(s), std::move(sp));
}
// Runs f at the ABI edge: every exception becomes a status and a message in `out`. A Veto is a veto only
// where the caller is a hook handler.
template <bool HookHandler = false, class F>
std::int32_t guard(xcore_sink* out, F&& f) noexcept {
  try {
    f();
    return XCORE_OK;
  } catch (const Veto& v) {
    write(out, v.what());
    return HookHandler ? XCORE_HOOK_VETO : XCORE_E_INVALID_ARGUMENT;
  } catch (const Error& e) {
    write(out, e.what());
    return e.code();
  } catch (const std::exception& e) {
    write(out, e.what());
    return XCORE_E_PLUGIN_ERROR;
  } catch (...) {
    write(out, "a non-standard exception");
    return XCORE_E_PLUGIN_ERROR;
  }
}
// Per-call scratch memory: a call's arguments and whatever the handler builds from them live in a stack
// buffer, released at once when the answer has been written. Declare it before the values that use it.
struct CallArena {
  unsigned char buffer[4096];
  json::monotonic_resource resource{buffer, sizeof(buffer)};
  json::storage_ptr storage() { return json::storage_ptr(&resource); }
};
}  // namespace detail

// The call's context: tenant, user, trace id, deadline, cancellation.
class Context {
 public:
  Context() = default;
  explicit Context(const xcore_call_context* raw) : raw_(raw) {}
  std::string_view tenant() const { return raw_ ? detail::view(raw_->tenant) : std::string_view(); }
  std::string_view user() const { return raw_ ? detail::view(raw_->user) : std::string_view(); }
  std::string_view trace_id() const { return raw_ ? detail::view(raw_->trace_id) : std::string_view(); }
  std::optional<std::int64_t> deadline_unix_ms() const {
    if (!raw_ || raw_->deadline_unix_ms == 0) return std::nullopt;
    return raw_->deadline_unix_ms;
  }
  // Long-running tools should poll this and stop early.
  bool cancelled() const { return raw_ && raw_->is_cancelled && raw_->is_cancelled(raw_->cancel_state) != 0; }
  const xcore_call_context* raw() const { return raw_; }

 private:
  const xcore_call_context* raw_ = nullptr;
};

// What a tool returns: structured JSON (the usual case) or content blocks, possibly marked as an error.
struct ToolOutput {
  json::array content;
  json::value structured;
  bool is_error = false;

  ToolOutput() = default;
  // Structured output. The host adds the text block MCP clients expect when it exports the result, so
  // the payload crosses the boundary once.
  ToolOutput(json::value v) : structured(std::move(v)) {}
  static ToolOutput text(std::string_view t, bool error = false) {
    ToolOutput o;
    o.content.push_back(json::object{{"type", "text"}, {"text", t}});
    o.is_error = error;
    return o;
  }
  // A failure the caller (often a model) should read and act on, as MCP prescribes for tool errors.
  static ToolOutput error(std::string_view message) { return text(message, true); }

  // The MCP CallToolResult text, written without building (and copying into) an intermediate object.
  std::string to_json_text() const {
    std::string out = "{\"content\":";
    out += xcore::json_text::serialize(content);
    out += is_error ? ",\"isError\":true" : ",\"isError\":false";
    if (!structured.is_null()) {
      out += ",\"structuredContent\":";
      out += xcore::json_text::serialize(structured);
    }
    out += '}';
    return out;
  }
};

using ToolFn = std::function<ToolOutput(const json::object& args, const Context& ctx)>;

// Input schemas in a line: an object with these properties, these required, nothing else.
inline json::value object_schema(std::initializer_list<std::pair<std::string_view, json::value>> properties,
                                 std::initializer_list<std::string_view> required = {}) {
  json::object p;
  for (const auto& [k, v] : properties) p[k] = v;
  json::array r;
  for (auto k : required) r.push_back(json::string(k));
  return json::object{{"type", "object"}, {"properties", std::move(p)}, {"required", std::move(r)}, {"additionalProperties", false}};
}
inline json::value string_property(std::string_view description) { return json::object{{"type", "string"}, {"description", description}}; }

// A tool's declaration, built fluently.
class ToolBuilder {
 public:
  explicit ToolBuilder(std::string name) { spec_["name"] = name; }
  ToolBuilder& title(std::string_view v) { return set("title", json::string(v)); }
  ToolBuilder& description(std::string_view v) { return set("description", json::string(v)); }
  ToolBuilder& input(json::value schema) { return set("inputSchema", std::move(schema)); }
  ToolBuilder& output(json::value schema) { return set("outputSchema", std::move(schema)); }
  ToolBuilder& category(std::string_view v) { return set("category", json::string(v)); }
  ToolBuilder& competency(std::string_view v) { return append("competencies", v); }
  ToolBuilder& permission(std::string_view v) { return append("permissions", v); }
  ToolBuilder& read_only(bool v = true) { return hint("readOnlyHint", v); }
  ToolBuilder& destructive(bool v = true) { return hint("destructiveHint", v); }
  ToolBuilder& idempotent(bool v = true) { return hint("idempotentHint", v); }
  ToolBuilder& open_world(bool v = true) { return hint("openWorldHint", v); }
  ToolBuilder& handler(ToolFn fn) {
    fn_ = std::move(fn);
    return *this;
  }

  std::string_view name() const { return spec_.at("name").as_string(); }
  const json::object& spec() const { return spec_; }
  const ToolFn& fn() const { return fn_; }

 private:
  ToolBuilder& set(std::string_view k, json::value v) {
    spec_[k] = std::move(v);
    return *this;
  }
  ToolBuilder& append(std::string_view k, std::string_view v) {
    auto& a = spec_[k];
    if (!a.is_array()) a = json::array();
    a.as_array().push_back(json::string(v));
    return *this;
  }
  ToolBuilder& hint(std::string_view k, bool v) {
    auto& a = spec_["annotations"];
    if (!a.is_object()) a = json::object();
    a.as_object()[k] = v;
    return *this;
  }
  json::object spec_;
  ToolFn fn_;
};

// ---- MCP resources and prompts (ABI 1.3) --------------------------------------------------------------

// One entry of a resource's contents, as MCP's resources/read returns it.
inline json::object text_contents(std::string_view uri, std::string_view mime_type, std::string_view text) {
  return json::object{{"uri", uri}, {"mimeType", mime_type}, {"text", text}};
}
inline json::object blob_contents(std::string_view uri, std::string_view mime_type, std::string_view base64) {
  return json::object{{"uri", uri}, {"mimeType", mime_type}, {"blob", base64}};
}

// Reads a resource: its URI, the values of a template's {variables} (empty for a fixed URI), the call.
// Returns the contents entries (text_contents, blob_contents).
using ResourceFn = std::function<json::array(const std::string& uri, const json::object& variables, const Context& ctx)>;
// Completes an argument's value from what was typed so far: the candidates, best first.
using CompleteFn = std::function<std::vector<std::string>(std::string_view typed, const Context& ctx)>;

namespace detail {
// RFC 6570's simple expansion read backwards: does `uri` fit `uri_template` ("test://items/{id}/data"), and
// with which values? A variable matches one or more characters up to the next literal (never a '/').
inline bool match_template(std::string_view uri_template, std::string_view uri, json::object& variables) {
  while (!uri_template.empty()) {
    const auto open = uri_template.find('{');
    const auto literal = uri_template.substr(0, open);
    if (uri.substr(0, literal.size()) != literal) return false;
    uri.remove_prefix(literal.size());
    if (open == std::string_view::npos) return uri.empty();
    const auto close = uri_template.find('}', open);
    if (close == std::string_view::npos) return false;
    const auto name = uri_template.substr(open + 1, close - open - 1);
    uri_template.remove_prefix(close + 1);
    const auto next = uri_template.substr(0, uri_template.find('{'));
    std::size_t end = next.empty() ? uri.size() : uri.find(next);
    if (end == std::string_view::npos) return false;
    const auto value = uri.substr(0, end);
    if (value.empty() || value.find('/') != std::string_view::npos) return false;
    variables[name] = value;
    uri.remove_prefix(end);
  }
  return uri.empty();
}
}  // namespace detail

// A resource (a fixed URI) or a resource template (a URI with {variables}), built fluently.
class ResourceBuilder {
 public:
  ResourceBuilder(std::string uri, bool is_template) : uri_(std::move(uri)), template_(is_template) {
    entry_[is_template ? "uriTemplate" : "uri"] = uri_;
    entry_["name"] = uri_;
  }
  ResourceBuilder& name(std::string_view v) { return set("name", v); }
  ResourceBuilder& title(std::string_view v) { return set("title", v); }
  ResourceBuilder& description(std::string_view v) { return set("description", v); }
  ResourceBuilder& mime_type(std::string_view v) { return set("mimeType", v); }
  // Clients may subscribe to it (resources/subscribe).
  ResourceBuilder& subscribable(bool v = true) {
    subscribable_ = v;
    return *this;
  }
  ResourceBuilder& reader(ResourceFn fn) {
    fn_ = std::move(fn);
    return *this;
  }
  // For a template: completes the value of one of its variables.
  ResourceBuilder& complete(std::string variable, CompleteFn fn) {
    completers_.emplace_back(std::move(variable), std::move(fn));
    return *this;
  }

  bool is_template() const { return template_; }
  const std::string& uri() const { return uri_; }
  const json::object& entry() const { return entry_; }
  bool is_subscribable() const { return subscribable_; }
  // Whether `uri` is this resource, and the template's variables if so.
  bool matches(std::string_view uri, json::object& variables) const { return template_ ? detail::match_template(uri_, uri, variables) : uri == uri_; }
  const ResourceFn& fn() const { return fn_; }
  const CompleteFn* completer(std::string_view variable) const {
    for (const auto& [v, fn] : completers_)
      if (v == variable) return &fn;
    return nullptr;
  }

 private:
  ResourceBuilder& set(std::string_view k, std::string_view v) {
    entry_[k] = v;
    return *this;
  }
  std::string uri_;
  bool template_;
  bool subscribable_ = false;
  json::object entry_;
  ResourceFn fn_;
  std::vector<std::pair<std::string, CompleteFn>> completers_;
};

// Makes a prompt's messages from its arguments (all strings, the required ones present).
using PromptFn = std::function<json::array(const json::object& arguments, const Context& ctx)>;

// A prompt template, built fluently.
class PromptBuilder {
 public:
  explicit PromptBuilder(std::string name) { entry_["name"] = name; }
  PromptBuilder& title(std::string_view v) { return set("title", v); }
  PromptBuilder& description(std::string_view v) { return set("description", v); }
  PromptBuilder& argument(std::string_view name, std::string_view description, bool required = true, CompleteFn complete = {}) {
    auto& a = entry_["arguments"];
    if (!a.is_array()) a = json::array();
    a.as_array().push_back(json::object{{"name", name}, {"description", description}, {"required", required}});
    if (complete) completers_.emplace_back(std::string(name), std::move(complete));
    return *this;
  }
  PromptBuilder& messages(PromptFn fn) {
    fn_ = std::move(fn);
    return *this;
  }

  std::string_view name() const { return entry_.at("name").as_string(); }
  const json::object& entry() const { return entry_; }
  const PromptFn& fn() const { return fn_; }
  const CompleteFn* completer(std::string_view argument) const {
    for (const auto& [a, fn] : completers_)
      if (a == argument) return &fn;
    return nullptr;
  }

 private:
  PromptBuilder& set(std::string_view k, std::string_view v) {
    entry_[k] = v;
    return *this;
  }
  json::object entry_;
  PromptFn fn_;
  std::vector<std::pair<std::string, CompleteFn>> completers_;
};

using HookFn = std::function<json::value(std::string_view hook, const json::value& payload, std::string_view tenant)>;

// The host's services, as the plugin sees them. Failures throw sdk::Error.
class Host {
 public:
  explicit Host(const xcore_host_api* api = nullptr) : api_(api) {}

  void log(std::int32_t level, std::string_view message) const {
    if (api_ && api_->log) api_->log(api_->host, level, detail::str(message));
  }
  void debug(std::string_view m) const { log(XCORE_LOG_DEBUG, m); }
  void info(std::string_view m) const { log(XCORE_LOG_INFO, m); }
  void warn(std::string_view m) const { log(XCORE_LOG_WARN, m); }
  void error(std::string_view m) const { log(XCORE_LOG_ERROR, m); }

  // Another tool, by name; the answer is an MCP CallToolResult object.
  json::object call_tool(std::string_view name, const json::value& args, const Context& ctx = {}) const {
    auto text = xcore::json_text::serialize(args);
    detail::StringSink out;
    check(api_->call_tool(api_->host, detail::str(name), detail::str(text), ctx.raw(), &out.sink), out.text);
    return json::parse(out.text).as_object();
  }
  json::value call_action(std::string_view plugin, std::string_view action, const json::value& params,
                          const Context& ctx = {}) const {
    auto text = xcore::json_text::serialize(params);
    detail::StringSink out;
    check(api_->call_action(api_->host, detail::str(plugin), detail::str(action), detail::str(text), ctx.raw(), &out.sink),
          out.text);
    return out.text.empty() ? json::value() : json::parse(out.text);
  }
  json::object config() const {
    detail::StringSink out;
    check(api_->get_config(api_->host, &out.sink), out.text);
    return json::parse(out.text).as_object();
  }
  // A secret the manifest grants ("secrets.read:<name>"), from the host's secret store.
  std::string secret(std::string_view name) const {
    require(XCORE_HAS_MEMBER(xcore_host_api, api_, get_secret), "secrets", "1.1");
    detail::StringSink out;
    check(api_->get_secret(api_->host, detail::str(name), &out.sink), out.text);
    return out.text;
  }
  // Runs one of this plugin's actions on a schedule: {"name", "trigger": {"type": "cron", ...}, "action",
  // "params"}. The job ends with the plugin (or unschedule()).
  void schedule(const json::object& job) const {
    require(XCORE_HAS_MEMBER(xcore_host_api, api_, schedule_job), "scheduling", "1.1");
    auto text = xcore::json_text::serialize(job);
    detail::StringSink err;
    check(api_->schedule_job(api_->host, detail::str(text), &err.sink), err.text);
  }
  void unschedule(std::string_view name) const {
    require(XCORE_HAS_MEMBER(xcore_host_api, api_, unschedule_job), "scheduling", "1.1");
    detail::StringSink err;
    check(api_->unschedule_job(api_->host, detail::str(name), &err.sink), err.text);
  }
  // An HTTP route answered by one of this plugin's actions: {"method","path":"/items/{id}","action","role"}.
  // It lasts as long as this load of the plugin (register it again in on_load).
  void register_route(const json::object& route) const {
    require(XCORE_HAS_MEMBER(xcore_host_api, api_, register_route), "routes", "1.1");
    auto text = xcore::json_text::serialize(route);
    detail::StringSink err;
    check(api_->register_route(api_->host, detail::str(text), &err.sink), err.text);
  }
  // {"results":[...],"vetoed":bool,"veto_reason":"..."}
  json::object emit(std::string_view hook, const json::value& payload) const {
    auto text = xcore::json_text::serialize(payload);
    detail::StringSink out;
    check(api_->emit_hook(api_->host, detail::str(hook), detail::str(text), &out.sink), out.text);
    return json::parse(out.text).as_object();
  }
  // Any host service by name (ABI 1.2), for services newer than this SDK's typed members: the request
  // is a JSON object, the answer whatever the service returns.
  json::value call(std::string_view service, const json::object& request = {}, const Context& ctx = {}) const {
    require(XCORE_HAS_MEMBER(xcore_host_api, api_, call_host), "services by name", "1.2");
    auto text = xcore::json_text::serialize(request);
    detail::StringSink out;
    check(api_->call_host(api_->host, detail::str(service), detail::str(text), ctx.raw(), &out.sink), out.text);
    return out.text.empty() ? json::value() : json::parse(out.text);
  }
  // To the caller of the call `ctx` serves, when it listens (an MCP client that asked for progress or set
  // a log level); otherwise nothing happens. How far the call has come, of `total` when known:
  void progress(const Context& ctx, double done, std::optional<double> total = std::nullopt, std::string_view message = {}) const {
    json::object r{{"progress", done}};
    if (total) r["total"] = *total;
    if (!message.empty()) r["message"] = message;
    call("progress", r, ctx);
  }
  // A log message for the caller (MCP's notifications/message) at one of MCP's levels: "debug", "info",
  // "notice", "warning", "error", "critical", "alert", "emergency". `data`: any JSON, usually a string.
  void tell_caller(const Context& ctx, std::string_view level, const json::value& data, std::string_view logger = {}) const {
    json::object r{{"level", level}, {"data", data}};
    if (!logger.empty()) r["logger"] = logger;
    call("caller_log", r, ctx);
  }
  // A request to the caller's client: "sampling/createMessage", "elicitation/create" or "roots/list", with
  // MCP's params; the client's result. Needs the manifest's permission "client.request:<method>"; throws
  // when the caller has no client that can be asked, or it does not answer within the call's deadline.
  json::value ask_client(const Context& ctx, std::string_view method, const json::object& params) const {
    return call("client_request", json::object{{"method", method}, {"params", params}}, ctx);
  }
  // A competency for agents, registered while this load of the plugin is enabled: {"id", "name",
  // "description", "category", "level" (1-5), "prerequisites": [ids], "tools": [names or patterns]}. An
  // agent given it may call those tools. Declaring an id again replaces it. (Static ones go in the
  // manifest's `competencies:`.)
  void declare_competency(const json::object& competency) const { call("declare_competency", json::object{{"competency", competency}}); }
  const xcore_host_api* raw() const { return api_; }

 private:
  static void check(std::int32_t status, const std::string& message) {
    if (status != XCORE_OK) throw Error(status, message);
  }
  // A member an older host's table does not have.
  static void require(bool present, const char* what, const char* since) {
    if (!present) throw Error(XCORE_E_UNAVAILABLE, std::string("this host does not offer ") + what + " (it needs xcore ABI " + since + ")");
  }
  const xcore_host_api* api_;
};

template <class T>
struct Adapter;

class Plugin {
 public:
  virtual ~Plugin() = default;

  virtual void on_load(const json::object& /*config*/) {}
  virtual void on_enable() {}
  virtual void on_disable() {}
  virtual void on_unload() {}
  // A new config, already validated against the manifest's config_schema; throw to refuse it.
  virtual void on_config(const json::object& /*config*/) {}
  virtual json::value health() { return json::object{{"status", "ok"}}; }
  // Plugin actions (POST /app/{plugin}/{action} in the reference server).
  virtual json::value handle(std::string_view action, const json::value& /*params*/, const Context& /*ctx*/) {
    throw not_found("unknown action '" + std::string(action) + "'");
  }

  const Host& host() const { return host_; }

 protected:
  // Declare a tool. Tools declared before on_load returns are part of the plugin's tool list; later ones
  // are registered with the host at once.
  ToolBuilder& tool(std::string name) {
    tools_.emplace_back(std::move(name));
    return tools_.back();
  }
  // Declare a resource (a fixed URI) or a resource template ("notes://{id}"), and a prompt: in the
  // constructor, so that they are there before the first request.
  ResourceBuilder& resource(std::string uri) { return resources_.emplace_back(std::move(uri), false); }
  ResourceBuilder& resource_template(std::string uri_template) { return resources_.emplace_back(std::move(uri_template), true); }
  PromptBuilder& prompt(std::string name) { return prompts_.emplace_back(std::move(name)); }
  // Add a tool while running (after on_load). Thread-safe with calls in flight.
  void publish_tool(ToolBuilder builder) {
    auto text = xcore::json_text::serialize(builder.spec());
    {
      std::lock_guard lock(mutex_);
      if (find_tool_locked(builder.name())) throw Error(XCORE_E_ALREADY_EXISTS, "tool '" + std::string(builder.name()) + "' exists");
      tools_.push_back(std::move(builder));
    }
    detail::StringSink err;
    auto status = host_.raw()->register_tool(host_.raw()->host, detail::str(text), &err.sink);
    if (status != XCORE_OK) {
      std::lock_guard lock(mutex_);
      tools_.pop_back();
      throw Error(status, err.text);
    }
  }
  // Subscribe to a hook. Returning a non-null value contributes a result; throw Veto to veto.
  void on_hook(std::string hook, HookFn fn, std::int32_t band = XCORE_BAND_NORMAL, std::int32_t priority = 0) {
    HookSlot* slot;
    {
      std::lock_guard lock(mutex_);
      hooks_.push_back({std::move(hook), std::move(fn), band, priority, 0});
      slot = &hooks_.back();
    }
    // In the constructor the host is not bound yet: on_load subscribes what was declared there.
    if (host_.raw()) subscribe(*slot);
  }

 private:
  template <class T>
  friend struct Adapter;

  struct HookSlot {
    std::string hook;
    HookFn fn;
    std::int32_t band, priority;
    std::uint64_t id;
  };

  static std::int32_t hook_trampoline(void* user, xcore_str hook, xcore_str payload, xcore_str tenant, xcore_sink* reply) {
    auto* slot = static_cast<HookSlot*>(user);
    return detail::guard<true>(reply, [&] {
      detail::CallArena arena;
      json::value p = payload.size ? detail::parse(detail::view(payload), arena.storage()) : json::value();
      json::value r = slot->fn(detail::view(hook), p, detail::view(tenant));
      if (!r.is_null()) detail::write(reply, xcore::json_text::serialize(r));
    });
  }

  void subscribe(HookSlot& s) {
    detail::StringSink err;
    auto status = host_.raw()->subscribe_hook(host_.raw()->host, detail::str(s.hook), s.band, s.priority,
                                              &Plugin::hook_trampoline, &s, &s.id, &err.sink);
    if (status != XCORE_OK) throw Error(status, "cannot subscribe to hook '" + s.hook + "': " + err.text);
  }

  const ToolBuilder* find_tool_locked(std::string_view name) const {
    for (const auto& t : tools_)
      if (t.name() == name) return &t;
    return nullptr;
  }
  // List nodes never move and tools are never removed, so the pointer stays valid after the lock.
  const ToolBuilder* find_tool(std::string_view name) const {
    std::lock_guard lock(mutex_);
    return find_tool_locked(name);
  }

  // MCP's resources, prompts and completions (plugin.h's serve_mcp).
  json::value serve_mcp(std::string_view method, const json::object& params, const Context& ctx) const {
    auto text = [&](const json::object& o, std::string_view k) -> std::string {
      const auto* v = o.if_contains(k);
      if (!v || !v->is_string()) throw invalid_argument(std::string(method) + ": params." + std::string(k) + " must be a string");
      return std::string(v->get_string());
    };
    if (method == "resources/list" || method == "resources/templates/list") {
      const bool templates = method == "resources/templates/list";
      json::array out;
      for (const auto& r : resources_)
        if (r.is_template() == templates) out.push_back(r.entry());
      return json::object{{templates ? "resourceTemplates" : "resources", std::move(out)}};
    }
    if (method == "resources/read" || method == "resources/subscribe" || method == "resources/unsubscribe") {
      const auto uri = text(params, "uri");
      json::object variables;
      const ResourceBuilder* found = nullptr;
      for (const auto& r : resources_)  // a fixed URI before any template it would also fit
        if (!r.is_template() && r.matches(uri, variables)) found = &r;
      for (const auto& r : resources_)
        if (!found && r.is_template() && r.matches(uri, variables)) found = &r;
      if (!found || (method == "resources/read" && !found->fn())) throw not_found("no resource '" + uri + "'");
      if (method != "resources/read") {
        if (!found->is_subscribable()) throw invalid_argument("resource '" + uri + "' cannot be subscribed to");
        return json::object();
      }
      return json::object{{"contents", found->fn()(uri, variables, ctx)}};
    }
    if (method == "prompts/list") {
      json::array out;
      for (const auto& p : prompts_) out.push_back(p.entry());
      return json::object{{"prompts", std::move(out)}};
    }
    if (method == "prompts/get") {
      const auto name = text(params, "name");
      const PromptBuilder* found = find_prompt(name);
      if (!found || !found->fn()) throw not_found("no prompt '" + name + "'");
      const auto* given = params.if_contains("arguments");
      json::object arguments = given && given->is_object() ? given->get_object() : json::object();
      if (const auto* declared = found->entry().if_contains("arguments"))
        for (const auto& a : declared->get_array()) {
          const auto& arg = a.get_object();
          const auto* v = arguments.if_contains(arg.at("name").get_string());
          if (v && !v->is_string()) throw invalid_argument("prompt '" + name + "': argument '" + std::string(arg.at("name").get_string()) + "' must be a string");
          if (!v && arg.at("required").as_bool()) throw invalid_argument("prompt '" + name + "' needs the argument '" + std::string(arg.at("name").get_string()) + "'");
        }
      json::object r{{"messages", found->fn()(arguments, ctx)}};
      if (const auto* d = found->entry().if_contains("description")) r["description"] = *d;
      return r;
    }
    if (method == "completion/complete") {
      const auto* ref = params.if_contains("ref");
      const auto* argument = params.if_contains("argument");
      if (!ref || !ref->is_object() || !argument || !argument->is_object()) throw invalid_argument("completion/complete: params needs 'ref' and 'argument' objects");
      const auto arg_name = text(argument->get_object(), "name");
      const auto typed = text(argument->get_object(), "value");
      const CompleteFn* completer = nullptr;
      if (ref->get_object().contains("name")) {
        const auto name = text(ref->get_object(), "name");
        const auto* p = find_prompt(name);
        if (!p) throw not_found("no prompt '" + name + "'");
        completer = p->completer(arg_name);
      } else {
        const auto uri = text(ref->get_object(), "uri");
        const ResourceBuilder* found = nullptr;
        for (const auto& r : resources_)
          if (r.uri() == uri) found = &r;
        if (!found) throw not_found("no resource template '" + uri + "'");
        completer = found->completer(arg_name);
      }
      json::array values;
      if (completer)
        for (auto& v : (*completer)(typed, ctx)) values.push_back(json::string(v));
      // MCP sends at most 100 values at once.
      const auto total = values.size();
      if (values.size() > 100) values.resize(100);
      return json::object{{"completion", json::object{{"values", std::move(values)}, {"total", total}, {"hasMore", total > 100}}}};
    }
    throw not_found("no MCP method '" + std::string(method) + "' here");
  }
  const PromptBuilder* find_prompt(std::string_view name) const {
    for (const auto& p : prompts_)
      if (p.name() == name) return &p;
    return nullptr;
  }

  Host host_;
  mutable std::mutex mutex_;      // guards the two lists against publish_tool/on_hook at run time
  std::list<ToolBuilder> tools_;  // list: references handed out by tool() stay valid
  std::list<HookSlot> hooks_;     // list: the C side holds pointers to slots
  std::list<ResourceBuilder> resources_;  // declared in the constructor, read-only afterwards
  std::list<PromptBuilder> prompts_;
};

// Turns a Plugin subclass into the C function table. Every entry point catches everything.
template <class T>
struct Adapter {
  static Plugin* self(void* p) { return static_cast<Plugin*>(static_cast<T*>(p)); }

  template <class F>
  static std::int32_t guard(xcore_sink* err, F&& f) {
    return detail::guard(err, std::forward<F>(f));
  }

  static void* create(const xcore_host_api* host, xcore_sink* err) {
    T* made = nullptr;
    auto status = guard(err, [&] {
      made = new T();
      static_cast<Plugin*>(made)->host_ = Host(host);
    });
    return status == XCORE_OK ? made : nullptr;
  }
  static void destroy(void* p) {
    try {
      delete static_cast<T*>(p);
    } catch (...) {
    }
  }
  static std::int32_t on_load(void* p, xcore_str config, xcore_sink* err) {
    return guard(err, [&] {
      Plugin* pl = self(p);
      std::vector<Plugin::HookSlot*> pending;
      {
        std::lock_guard lock(pl->mutex_);
        for (auto& h : pl->hooks_)
          if (h.id == 0) pending.push_back(&h);  // hooks declared in the constructor
      }
      for (auto* h : pending) pl->subscribe(*h);
      auto cfg = detail::parse_or_empty(config);
      pl->on_load(cfg.as_object());
    });
  }
  static std::int32_t on_enable(void* p, xcore_sink* err) { return guard(err, [&] { self(p)->on_enable(); }); }
  static std::int32_t on_disable(void* p, xcore_sink* err) { return guard(err, [&] { self(p)->on_disable(); }); }
  static std::int32_t on_unload(void* p, xcore_sink* err) { return guard(err, [&] { self(p)->on_unload(); }); }
  static std::int32_t on_config(void* p, xcore_str config, xcore_sink* err) {
    return guard(err, [&] { self(p)->on_config(detail::parse_or_empty(config).as_object()); });
  }
  static std::int32_t health(void* p, xcore_sink* out) {
    return guard(out, [&] { detail::write(out, xcore::json_text::serialize(self(p)->health())); });
  }
  static std::int32_t list_tools(void* p, xcore_sink* out) {
    return guard(out, [&] {
      json::array a;
      std::lock_guard lock(self(p)->mutex_);
      for (const auto& t : self(p)->tools_) a.push_back(t.spec());
      detail::write(out, xcore::json_text::serialize(a));
    });
  }
  static std::int32_t call_tool(void* p, xcore_str name, xcore_str args, const xcore_call_context* ctx, xcore_sink* out) {
    return guard(out, [&] {
      const ToolBuilder* t = self(p)->find_tool(detail::view(name));
      if (!t || !t->fn()) throw not_found("unknown tool '" + std::string(detail::view(name)) + "'");
      detail::CallArena arena;
      json::value a = detail::parse_or_empty(args, arena.storage());
      if (!a.is_object()) throw invalid_argument("tool arguments must be a JSON object");
      ToolOutput o = t->fn()(a.as_object(), Context(ctx));
      detail::write(out, o.to_json_text());
    });
  }
  static std::int32_t handle(void* p, xcore_str action, xcore_str params, const xcore_call_context* ctx, xcore_sink* out) {
    return guard(out, [&] {
      detail::CallArena arena;
      json::value prm = params.size ? detail::parse(detail::view(params), arena.storage()) : json::value();
      json::value r = self(p)->handle(detail::view(action), prm, Context(ctx));
      detail::write(out, xcore::json_text::serialize(r));
    });
  }

  static std::int32_t serve_mcp(void* p, xcore_str method, xcore_str params, const xcore_call_context* ctx, xcore_sink* out) {
    return guard(out, [&] {
      detail::CallArena arena;
      json::value prm = detail::parse_or_empty(params, arena.storage());
      if (!prm.is_object()) throw invalid_argument("MCP params must be a JSON object");
      detail::write(out, xcore::json_text::serialize(self(p)->serve_mcp(detail::view(method), prm.as_object(), Context(ctx))));
    });
  }

  static constexpr xcore_plugin_api table() {
    return xcore_plugin_api{XCORE_ABI_MAJOR, sizeof(xcore_plugin_api), &create, &destroy, &on_load, &on_enable,
                            &on_disable, &on_unload, &on_config, &health, &list_tools, &call_tool, &handle, &serve_mcp};
  }
};

}  // namespace xcore::sdk

// XCORE_PLUGIN(MyPlugin, "my-plugin", "1.0.0"): id and version must match the plugin's manifest.
#define XCORE_PLUGIN(Class, id, version)                                                      \
  static constexpr xcore_plugin_api xcore_plugin_api_table_ = ::xcore::sdk::Adapter<Class>::table(); \
  XCORE_DECLARE_PLUGIN_SYMBOLS(id, version, xcore_plugin_api_table_)
