// Model providers: the chat-completions conversation an agent holds with an LLM, behind ModelClient, with an
// OpenAI-compatible client (LM Studio, llama.cpp's server, Ollama's /v1, OpenAI, any compatible endpoint) and
// a fallback chain. A host may plug in its own ModelClient.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1 {

// A tool call the model asked for. `arguments` is the JSON text as the model wrote it (it may be malformed:
// the agent loop answers that as the tool's result, so the model can correct itself).
struct ModelToolCall {
  std::string id;
  std::string name;
  std::string arguments;
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  std::vector<ModelToolCall> tool_calls;  // assistant: the calls it asks for
  std::string tool_call_id;               // tool: the call this answers

  static ChatMessage system(std::string text) { return {"system", std::move(text), {}, {}}; }
  static ChatMessage user(std::string text) { return {"user", std::move(text), {}, {}}; }
  static ChatMessage tool(std::string call_id, std::string text) { return {"tool", std::move(text), {}, std::move(call_id)}; }

  // OpenAI's message object; from_json names the field that is wrong.
  json::object to_json() const;
  static Result<ChatMessage> from_json(const json::value& v);
};

struct TokenUsage {
  std::uint64_t prompt = 0;
  std::uint64_t completion = 0;
  std::uint64_t total() const noexcept { return prompt + completion; }
  TokenUsage& operator+=(const TokenUsage& o) noexcept {
    prompt += o.prompt;
    completion += o.completion;
    return *this;
  }
};

struct ChatRequest {
  std::string model;  // empty: the provider's default model
  std::vector<ChatMessage> messages;
  json::array tools;  // OpenAI function form (ToolRegistry::export_openai); empty: none offered
  std::optional<std::uint32_t> max_tokens;
  std::optional<double> temperature;
  // Set: the answer is streamed (SSE) and each piece of text is handed here as it arrives.
  std::function<void(std::string_view text)> on_text;
  std::optional<std::chrono::system_clock::time_point> deadline;  // the whole request, retries included
  std::stop_token cancel;
};

struct ChatResponse {
  ChatMessage message;        // role "assistant"
  std::string finish_reason;  // "stop", "tool_calls", "length", ...
  TokenUsage usage;
  std::string model;     // as the provider named it
  std::string provider;  // which provider answered (a fallback chain says which of its own)
  unsigned attempts = 1;  // requests sent, retries included
};

class ModelClient {
 public:
  virtual ~ModelClient() = default;
  // One chat completion. Errors: `unavailable` (cannot connect, 5xx), `resource_exhausted` (429),
  // `unauthenticated`/`permission_denied` (401/403), `invalid_argument` (the provider refused the request:
  // its message is kept), `timeout`, `cancelled`. Thread-safe.
  virtual Result<ChatResponse> complete(const ChatRequest& request) = 0;
  virtual std::string_view name() const = 0;
};

// A provider by name: where it is and how to talk to it. Read from settings or a host's store.
struct ProviderSpec {
  std::string name;
  std::string base_url = "http://localhost:1234/v1";  // LM Studio's default; .../chat/completions is appended
  std::string api_key;                                 // sent as a bearer token when set
  std::string api_key_secret;                          // where a host keeps the key (name of a secret)
  std::string default_model;
  std::chrono::milliseconds timeout{120000};           // one request
  unsigned max_retries = 2;                            // on connection errors, 429 and 5xx
  std::chrono::milliseconds retry_backoff{500};        // first delay, doubled each retry (with jitter)
  std::chrono::milliseconds max_retry_delay{30000};    // no wait longer, Retry-After included
  std::vector<std::pair<std::string, std::string>> headers;
  std::string ca_file;  // https: CA certificates (PEM) to verify it against; set by the host, never read from JSON

  // {"name","base_url","api_key_secret","default_model","timeout_ms","max_retries"}; never the key itself.
  json::object to_json() const;
  // Errors name the field. The key is not read from JSON: a host resolves api_key_secret.
  static Result<ProviderSpec> from_json(const json::value& v);
};

struct ModelClientOptions {
  // How a retry waits (default: sleeps, woken early by the request's cancellation). Tests inject one.
  std::function<void(std::chrono::milliseconds delay, std::stop_token cancel)> sleep;
  std::chrono::milliseconds connect_timeout{5000};
  // Connect to this address for the base URL's host (a host's policy resolved and checked it). Empty:
  // resolve as usual.
  std::string pinned_address;
  // https: the provider's certificate is always verified (name and chain), against this PEM file of CA
  // certificates when set, else the system's.
  std::string ca_file;
};

// OpenAI's POST {base_url}/chat/completions, over http or https (OpenSSL). Retries connection errors, 429
// and 5xx up to max_retries, waiting as Retry-After asks (seconds or an HTTP date) or with backoff.
Result<std::shared_ptr<ModelClient>> make_openai_client(ProviderSpec provider, ModelClientOptions options = {});

// One link of a fallback chain: a client and the model to ask it for (empty: the request's).
struct ModelRoute {
  std::shared_ptr<ModelClient> client;
  std::string model;
};

// Tries each route in turn while one fails (after its own retries) with anything but a cancellation or the
// request's own deadline; the error names every route tried.
std::shared_ptr<ModelClient> make_fallback_client(std::vector<ModelRoute> routes);

}  // namespace xcore::inline v1
