// The tool registry: MCP-shaped tools that agents and HTTP clients call by name with JSON arguments.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1 {

class HookBus;

struct ToolSpec {
  std::string name;  // 1-128 of [A-Za-z0-9_.-]
  std::string title;
  std::string description;
  json::object input_schema;                 // JSON Schema of the arguments; {"type":"object"} if empty
  std::optional<json::object> output_schema; // JSON Schema of structuredContent
  json::object annotations;                  // MCP hints: readOnlyHint, destructiveHint, ...
  std::string category;
  std::vector<std::string> competencies;     // what the tool is good for, for agents choosing tools
  std::vector<std::string> permissions;      // the caller must hold each of these
  std::string tenant;                        // empty: visible to every tenant
  std::string plugin;                        // owning plugin; empty for tools the host registers

  // Reads the MCP form (inputSchema, outputSchema) and xcore's fields. Errors name the field.
  static Result<ToolSpec> from_json(const json::value& v);
  // Checks the name and that the schemas are valid JSON Schema.
  Result<void> validate() const;
  // The MCP tool object, under `exposed_name` (default: name); xcore's own fields go in _meta.xcore,
  // where from_json() reads them back.
  json::object to_mcp(std::string_view exposed_name = {}) const;
};

// A call's result, compatible with MCP's CallToolResult.
struct ToolResult {
  json::array content;     // content blocks, e.g. {"type":"text","text":"..."}; may be empty when structured is set
  json::value structured;  // structuredContent; null when absent
  bool is_error = false;   // the tool ran and reports a failure (MCP: isError)

  static ToolResult text(std::string_view text, bool is_error = false);
  static ToolResult structured_value(json::value value);
  // A call that failed, as the tool's answer (isError, "<code>: <message>"): what MCP servers send for a
  // tool's failure or rejected arguments, so that a model reads why.
  static ToolResult failure(const Error& e);
  static Result<ToolResult> from_mcp(const json::value& v);
  static Result<ToolResult> from_mcp(json::value&& v);
  // MCP form. A structured result without content gets a text block holding the same JSON, as MCP
  // recommends for clients that read only text.
  json::object to_mcp() const;
};

// One entry of the latency histogram: calls that took at most `le_seconds`.
struct LatencyBucket {
  double le_seconds;
  std::uint64_t count;
};

struct ToolMetrics {
  std::uint64_t calls = 0;     // invocations that reached the handler
  std::uint64_t errors = 0;    // handler failures and isError results
  std::uint64_t rejected = 0;  // refused before the handler: bad arguments, veto, permission, deadline
  double total_seconds = 0;
  double max_seconds = 0;
  std::vector<LatencyBucket> buckets;  // cumulative, Prometheus style
};

struct ToolInfo {
  ToolSpec spec;
  std::string exposed_name;    // the bare name if it resolves to this tool, else "plugin.name"
  std::string qualified_name;  // "plugin.name", or the name for host tools
  bool enabled = true;
  ToolMetrics metrics;
};

struct ToolFilter {
  std::string category;
  std::string plugin;
  std::string competency;
  std::optional<std::string> tenant;  // set: only tools visible to this tenant
  bool include_disabled = false;
};

using ToolHandler = std::function<Result<ToolResult>(const json::value& arguments, const CallContext& ctx)>;

class ToolRegistry;

// RAII: the tool stays registered while this handle lives. Move-only.
namespace detail {
struct ToolRegistryState;
struct PluginTools;  // the Manager's access to plugin tool sets (library/tools/plugin_tools.hpp)
}  // namespace detail

// A host tool's registration: the tool is gone when this is reset or destroyed. Safe to outlive the
// registry (it then does nothing).
class ToolRegistration {
 public:
  ToolRegistration() = default;
  ToolRegistration(ToolRegistration&&) noexcept;
  ToolRegistration& operator=(ToolRegistration&&) noexcept;
  ToolRegistration(const ToolRegistration&) = delete;
  ToolRegistration& operator=(const ToolRegistration&) = delete;
  ~ToolRegistration();
  void reset();
  const std::string& qualified_name() const noexcept { return qualified_; }

 private:
  friend class ToolRegistry;
  ToolRegistration(std::weak_ptr<detail::ToolRegistryState> r, std::string q) : registry_(std::move(r)), qualified_(std::move(q)) {}
  std::weak_ptr<detail::ToolRegistryState> registry_;
  std::string qualified_;
};

class ToolRegistry {
 public:
  // With a bus, every invoke emits "tool.before_call" (vetoable) and "tool.after_call".
  explicit ToolRegistry(HookBus* hooks = nullptr);
  ~ToolRegistry();
  ToolRegistry(const ToolRegistry&) = delete;
  ToolRegistry& operator=(const ToolRegistry&) = delete;

  // A host tool (spec.plugin empty). Name taken: already_exists.
  Result<ToolRegistration> add(ToolSpec spec, ToolHandler handler);

  // Looks the tool up ("name" or "plugin.name"), checks tenant, the caller's principal (it must hold
  // `tools.call:<plugin>.<tool>` and the tool's required permissions; CallContext::host() for the host's
  // own calls), deadline and cancellation, validates the arguments against inputSchema, runs the hooks and the handler, records metrics.
  Result<ToolResult> invoke(std::string_view name, const json::value& arguments, const CallContext& ctx);

  std::optional<ToolInfo> find(std::string_view name, std::string_view tenant = {}) const;
  std::vector<ToolInfo> list(const ToolFilter& filter = {}) const;
  // The `tools` array of MCP's tools/list answer: [{"name","description","inputSchema",...}].
  json::array export_mcp(const ToolFilter& filter = {}) const;
  // [{"type":"function","function":{"name","description","parameters"}}] for OpenAI function calling.
  json::array export_openai(const ToolFilter& filter = {}) const;

 private:
  friend struct detail::PluginTools;
  std::shared_ptr<detail::ToolRegistryState> state_;
};

// Valid tool names: 1-128 of [A-Za-z0-9_.-].
bool is_valid_tool_name(std::string_view name) noexcept;

}  // namespace xcore::inline v1
