// The OpenAI-compatible chat-completions client, and the fallback chain over several.
#include <xcore/models.hpp>

#include <httplib.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "net/http_connection.hpp"
#include "net/sse_reader.hpp"

namespace xcore::inline v1 {

namespace {

using Clock = std::chrono::system_clock;

// Retry-After: delay-seconds or an HTTP date (RFC 9110 10.2.3).
std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& value, Clock::time_point now) {
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    if (value.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24));
    return std::chrono::seconds(std::stol(value));
  }
  std::tm tm{};
  if (!strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
  const auto at = Clock::from_time_t(timegm(&tm));
  return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(at - now));
}

// What a provider said in its error body ({"error":{"message":...}} or {"error":"..."}), if anything.
std::string provider_message(const std::string& body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) return body.size() <= 200 ? body : body.substr(0, 200) + "...";
  const auto& o = v.as_object();
  if (auto it = o.find("error"); it != o.end()) {
    if (it->value().is_string()) return std::string(it->value().as_string());
    if (it->value().is_object())
      if (auto m = it->value().as_object().find("message"); m != it->value().as_object().end() && m->value().is_string())
        return std::string(m->value().as_string());
  }
  if (auto m = o.find("message"); m != o.end() && m->value().is_string()) return std::string(m->value().as_string());
  return {};
}

TokenUsage read_usage(const json::object& o) {
  TokenUsage u;
  auto it = o.find("usage");
  if (it == o.end() || !it->value().is_object()) return u;
  auto count = [&](std::string_view key) -> std::uint64_t {
    auto f = it->value().as_object().find(key);
    if (f == it->value().as_object().end()) return 0;
    if (f->value().is_uint64()) return f->value().as_uint64();
    if (f->value().is_int64() && f->value().as_int64() > 0) return static_cast<std::uint64_t>(f->value().as_int64());
    return 0;
  };
  u.prompt = count("prompt_tokens");
  u.completion = count("completion_tokens");
  return u;
}

std::string string_of(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}

// A streamed answer put back together: text, tool calls by index, the finish reason and usage.
struct StreamedAnswer {
  ChatResponse response;
  std::optional<Error> failure;
  bool done = false;
  bool any_text = false;

  bool on_event(std::string_view data, const std::function<void(std::string_view)>& on_text, std::string_view provider) {
    if (data == "[DONE]") {
      done = true;
      return false;
    }
    boost::system::error_code ec;
    auto v = json::parse(data, ec);
    if (ec || !v.is_object()) return true;
    const auto& o = v.as_object();
    if (o.contains("error")) {
      failure = Error{ErrorCode::unavailable, fmt::format("provider '{}' failed while streaming: {}", provider, provider_message(json::serialize(v)))};
      return false;
    }
    if (auto m = string_of(o, "model"); !m.empty()) response.model = m;
    if (o.contains("usage")) response.usage = read_usage(o);
    auto choices = o.find("choices");
    if (choices == o.end() || !choices->value().is_array() || choices->value().as_array().empty()) return true;
    const auto& choice = choices->value().as_array()[0];
    if (!choice.is_object()) return true;
    if (auto f = string_of(choice.as_object(), "finish_reason"); !f.empty()) response.finish_reason = f;
    auto delta = choice.as_object().find("delta");
    if (delta == choice.as_object().end() || !delta->value().is_object()) return true;
    const auto& d = delta->value().as_object();
    if (auto text = string_of(d, "content"); !text.empty()) {
      response.message.content += text;
      any_text = true;
      if (on_text) on_text(text);
    }
    if (auto calls = d.find("tool_calls"); calls != d.end() && calls->value().is_array()) {
      for (const auto& c : calls->value().as_array()) {
        if (!c.is_object()) continue;
        const auto& co = c.as_object();
        std::size_t index = response.message.tool_calls.size();
        if (auto i = co.find("index"); i != co.end() && i->value().is_int64() && i->value().as_int64() >= 0)
          index = static_cast<std::size_t>(i->value().as_int64());
        if (index > 127) continue;
        if (response.message.tool_calls.size() <= index) response.message.tool_calls.resize(index + 1);
        auto& call = response.message.tool_calls[index];
        if (auto id = string_of(co, "id"); !id.empty()) call.id = id;
        if (auto fn = co.find("function"); fn != co.end() && fn->value().is_object()) {
          call.name += string_of(fn->value().as_object(), "name");
          call.arguments += string_of(fn->value().as_object(), "arguments");
        }
      }
    }
    return true;
  }
};

class OpenAIClient final : public ModelClient {
 public:
  OpenAIClient(ProviderSpec p, ModelClientOptions o, net::HttpTarget target)
      : provider_(std::move(p)), options_(std::move(o)), pool_(target, options_.connect_timeout, options_.pinned_address, options_.ca_file) {
    path_ = target.path;
    if (path_.empty() || path_.back() != '/') path_ += '/';
    path_ += "chat/completions";
    if (!options_.sleep) {
      options_.sleep = [](std::chrono::milliseconds delay, std::stop_token cancel) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait_for(lock, cancel, delay, [] { return false; });
      };
    }
  }

  std::string_view name() const override { return provider_.name; }

  Result<ChatResponse> complete(const ChatRequest& request) override {
    const std::string model = request.model.empty() ? provider_.default_model : request.model;
    const std::string body = request_body(request, model);
    for (unsigned attempt = 0;; ++attempt) {
      if (request.cancel.stop_requested()) return cancelled();
      if (request.deadline && Clock::now() >= *request.deadline) return timed_out();
      Attempt a = send(request, body);
      if (a.response) {
        a.response->attempts = attempt + 1;
        a.response->provider = provider_.name;
        if (a.response->model.empty()) a.response->model = model;
        return std::move(*a.response);
      }
      if (request.cancel.stop_requested()) return cancelled();
      // Text already handed to the caller cannot be taken back: no retry after it.
      if (!a.retriable || a.streamed || attempt >= provider_.max_retries) return std::move(*a.error);
      auto delay = backoff(attempt);
      if (a.retry_after) {
        if (*a.retry_after > provider_.max_retry_delay)
          return Error{a.error->code, fmt::format("{} (it asks to retry after {} s, beyond the {} s this client waits)", a.error->message,
                                                  std::chrono::duration_cast<std::chrono::seconds>(*a.retry_after).count(),
                                                  std::chrono::duration_cast<std::chrono::seconds>(provider_.max_retry_delay).count())};
        delay = *a.retry_after;
      }
      if (request.deadline && Clock::now() + delay >= *request.deadline)
        return Error{a.error->code, fmt::format("{} (no time left to retry before the deadline)", a.error->message)};
      options_.sleep(delay, request.cancel);
    }
  }

 private:
  struct Attempt {
    std::optional<ChatResponse> response;
    std::optional<Error> error;
    bool retriable = false;
    bool streamed = false;
    std::optional<std::chrono::milliseconds> retry_after;
  };

  Error cancelled() const { return Error{ErrorCode::cancelled, fmt::format("the request to provider '{}' was cancelled", provider_.name)}; }
  Error timed_out() const { return Error{ErrorCode::timeout, fmt::format("provider '{}' did not answer before the deadline", provider_.name)}; }

  std::chrono::milliseconds backoff(unsigned attempt) {
    auto base = provider_.retry_backoff * (1u << std::min(attempt, 10u));
    std::uniform_real_distribution<double> jitter(0.75, 1.25);
    double factor;
    {
      std::lock_guard lock(mutex_);
      factor = jitter(random_);
    }
    return std::min(provider_.max_retry_delay, std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * factor)));
  }

  std::string request_body(const ChatRequest& r, const std::string& model) const {
    json::array messages;
    for (const auto& m : r.messages) messages.push_back(m.to_json());
    json::object o{{"model", model}, {"messages", std::move(messages)}};
    if (!r.tools.empty()) o["tools"] = r.tools;
    if (r.max_tokens) o["max_tokens"] = *r.max_tokens;
    if (r.temperature) o["temperature"] = *r.temperature;
    if (r.on_text) {
      o["stream"] = true;
      o["stream_options"] = json::object{{"include_usage", true}};
    }
    return json::serialize(o);
  }

  Attempt send(const ChatRequest& r, const std::string& body) {
    Attempt a;
    auto connection = pool_.take();
    auto budget = provider_.timeout;
    if (r.deadline) budget = std::min(budget, net::time_left(*r.deadline));
    connection.set_read_budget(budget);
    httplib::Request req;
    req.method = "POST";
    req.path = path_;
    req.body = body;
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", r.on_text ? "text/event-stream" : "application/json");
    if (!provider_.api_key.empty()) req.set_header("Authorization", "Bearer " + provider_.api_key);
    for (const auto& [k, v] : provider_.headers) req.set_header(k, v);
    int status = 0;
    bool event_stream = false;
    std::string retry_after, text;
    StreamedAnswer streamed;
    net::SseReader sse([&](std::string_view data) { return streamed.on_event(data, r.on_text, provider_.name); });
    req.response_handler = [&](const httplib::Response& res) {
      status = res.status;
      event_stream = res.get_header_value("Content-Type").starts_with("text/event-stream");
      retry_after = res.get_header_value("Retry-After");
      return true;
    };
    req.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
      if (r.cancel.stop_requested()) return false;
      if (event_stream && status < 300) return sse.feed(std::string_view(data, size));
      if (text.size() + size > (32u << 20)) return false;
      text.append(data, size);
      return true;
    };
    httplib::Result res{nullptr, httplib::Error::Unknown};
    {
      std::stop_callback on_cancel(r.cancel, [&] { connection.interrupt(); });
      res = connection->send(req);
    }
    a.streamed = streamed.any_text;
    if (streamed.failure) {
      a.error = std::move(streamed.failure);
      return a;
    }
    if (event_stream && status < 300 && (streamed.done || res)) {
      if (res && streamed.done) pool_.give(std::move(connection));
      for (auto& c : streamed.response.message.tool_calls)
        if (c.id.empty()) c.id = fmt::format("call_{}", &c - streamed.response.message.tool_calls.data());
      streamed.response.message.role = "assistant";
      a.response = std::move(streamed.response);
      return a;
    }
    if (!res && status == 0) {
      a.error = Error{ErrorCode::unavailable, fmt::format("cannot reach provider '{}' at {}: {}", provider_.name, provider_.base_url, httplib::to_string(res.error()))};
      if (res.error() == httplib::Error::SSLServerVerification) {
        // Not the network's fault: retrying will not help, and the message should say what to fix.
        a.error = Error{ErrorCode::unavailable, fmt::format("provider '{}' at {}: its TLS certificate did not verify (OpenSSL verify result {}); "
                                                            "give the CA that signed it (ca_file)", provider_.name, provider_.base_url,
                                                            connection->get_openssl_verify_result())};
        return a;
      }
      if (res.error() == httplib::Error::Read && r.deadline && Clock::now() >= *r.deadline) a.error = timed_out();
      a.retriable = true;
      return a;
    }
    if (status >= 300) {
      a.retry_after = parse_retry_after(retry_after, Clock::now());
      const auto said = provider_message(text);
      const auto code = status == 401 ? ErrorCode::unauthenticated
                        : status == 403 ? ErrorCode::permission_denied
                        : status == 429 ? ErrorCode::resource_exhausted
                        : status >= 500 ? ErrorCode::unavailable
                        : status == 408 ? ErrorCode::timeout
                                        : ErrorCode::invalid_argument;
      a.error = Error{code, fmt::format("provider '{}' answered HTTP {}{}{}", provider_.name, status, said.empty() ? "" : ": ", said)};
      a.retriable = status == 429 || status >= 500 || status == 408;
      if (res) pool_.give(std::move(connection));
      return a;
    }
    if (res) pool_.give(std::move(connection));
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) {
      a.error = Error{ErrorCode::unavailable, fmt::format("provider '{}' answered something that is not a JSON object", provider_.name)};
      return a;
    }
    const auto& o = v.as_object();
    ChatResponse out;
    out.usage = read_usage(o);
    out.model = string_of(o, "model");
    auto choices = o.find("choices");
    if (choices == o.end() || !choices->value().is_array() || choices->value().as_array().empty() || !choices->value().as_array()[0].is_object()) {
      const auto said = provider_message(text);
      a.error = Error{ErrorCode::unavailable, fmt::format("provider '{}' answered without choices{}{}", provider_.name, said.empty() ? "" : ": ", said)};
      return a;
    }
    const auto& choice = choices->value().as_array()[0].as_object();
    out.finish_reason = string_of(choice, "finish_reason");
    auto message = choice.find("message");
    if (message == choice.end()) {
      a.error = Error{ErrorCode::unavailable, fmt::format("provider '{}' answered a choice without a message", provider_.name)};
      return a;
    }
    auto parsed = ChatMessage::from_json(message->value());
    if (!parsed) {
      a.error = Error{ErrorCode::unavailable, fmt::format("provider '{}' answered a malformed message: {}", provider_.name, parsed.error().message)};
      return a;
    }
    out.message = std::move(*parsed);
    out.message.role = "assistant";
    a.response = std::move(out);
    return a;
  }

  ProviderSpec provider_;
  ModelClientOptions options_;
  net::HttpConnectionPool pool_;
  std::string path_;
  std::mutex mutex_;
  std::mt19937_64 random_{std::random_device{}()};
};

class FallbackClient final : public ModelClient {
 public:
  explicit FallbackClient(std::vector<ModelRoute> routes) : routes_(std::move(routes)) {
    for (const auto& r : routes_) {
      if (!name_.empty()) name_ += ",";
      name_ += r.client ? r.client->name() : "?";
    }
  }
  std::string_view name() const override { return name_; }

  Result<ChatResponse> complete(const ChatRequest& request) override {
    std::string tried;
    std::optional<Error> last;
    for (const auto& route : routes_) {
      if (!route.client) continue;
      ChatRequest r = request;
      if (!route.model.empty()) r.model = route.model;
      auto answer = route.client->complete(r);
      if (answer) return answer;
      const auto& e = answer.error();
      if (e.code == ErrorCode::cancelled || request.cancel.stop_requested()) return std::move(answer).error();
      if (request.deadline && Clock::now() >= *request.deadline) return std::move(answer).error();
      tried += fmt::format("{}{}: {}", tried.empty() ? "" : "; ", route.client->name(), e.message);
      last = e;
    }
    if (!last) return Error{ErrorCode::failed_precondition, "no model provider is configured"};
    return Error{last->code, fmt::format("every model provider failed ({})", tried)};
  }

 private:
  std::vector<ModelRoute> routes_;
  std::string name_;
};

}  // namespace

Result<std::shared_ptr<ModelClient>> make_openai_client(ProviderSpec provider, ModelClientOptions options) {
  if (provider.name.empty()) return Error{ErrorCode::invalid_argument, "provider.name: missing"};
  XCORE_ASSIGN_OR_RETURN(auto target, net::parse_http_url(provider.base_url, fmt::format("provider '{}': base_url", provider.name)));
  if (options.ca_file.empty()) options.ca_file = provider.ca_file;
  return std::shared_ptr<ModelClient>(std::make_shared<OpenAIClient>(std::move(provider), std::move(options), std::move(target)));
}

std::shared_ptr<ModelClient> make_fallback_client(std::vector<ModelRoute> routes) {
  return std::make_shared<FallbackClient>(std::move(routes));
}

}  // namespace xcore::inline v1
