/*
 * xcore plugin ABI: the only thing that crosses between a host and a plugin.
 *
 * Rules:
 *  - Plain C: no C++ type, exception, allocator or RTTI crosses. Payloads are UTF-8 JSON text passed as
 *    (pointer, length); results are written into a host-provided sink.
 *  - Every table starts with its ABI major version and its size, so either side can grow it by appending
 *    members: a reader checks `size` before touching a member added in a later minor version.
 *  - A plugin exports two symbols: the data symbol XCORE_ABI_TAG_SYMBOL (read by the host from the file,
 *    before any plugin code runs) and the function XCORE_ENTRY_SYMBOL.
 *  - Compatibility (Qt's rule): same major, plugin minor <= host minor.
 *  - Status codes: 0 is success; anything else is an error whose UTF-8 message is in the sink.
 *  - xcore_str, xcore_sink and xcore_abi_tag never change: a new need gets a new type. (The tag's length
 *    is also its symbol's size in the file, which the host checks.)
 *
 * Threads and re-entrancy:
 *  - The host calls a plugin's members from any of its threads. create, on_load, on_enable, on_disable,
 *    on_unload, on_config and destroy are never called concurrently with each other for one instance, and
 *    destroy is called once no other call is running. call_tool, handle, health, list_tools and hook handlers
 *    may run concurrently with each other and with on_config (as many at once as the manifest's
 *    max_concurrency allows), and after on_disable only until the calls already running return.
 *  - A plugin may call the host's members from any thread, at any time between create and destroy,
 *    including from inside any of its own members (a tool that calls another tool, on_load subscribing to
 *    hooks). A host member may call back into the plugin before it returns (emit_hook runs the plugin's
 *    own handlers; call_tool may reach the plugin's own tools) on the same thread.
 *  - A hook handler runs on the thread that emitted the hook. It must not wait for another thread that
 *    is itself waiting for the handler's plugin to be loaded, enabled or unloaded.
 *  - Pointers passed to a member (strings, contexts, sinks) are valid only until that member returns.
 *  - One loaded binary may serve several instances at once: a host with one catalogue per tenant calls
 *    create() once per tenant on the same mapped module. Keep all mutable state in what create() returns;
 *    mutable globals would be shared between tenants.
 */
#ifndef XCORE_PLUGIN_H
#define XCORE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XCORE_ABI_MAJOR 1
#define XCORE_ABI_MINOR 3
#define XCORE_ABI_MAGIC 0x58434f52u /* "XCOR" */

#define XCORE_ABI_TAG_SYMBOL "xcore_plugin_abi_tag"
#define XCORE_ENTRY_SYMBOL "xcore_plugin_entry"

#if defined(_WIN32)
#define XCORE_PLUGIN_EXPORT __declspec(dllexport)
#else
#define XCORE_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Status codes, in the same order as xcore::ErrorCode (plus one). */
enum {
  XCORE_OK = 0,
  XCORE_E_INVALID_ARGUMENT = 1,
  XCORE_E_NOT_FOUND = 2,
  XCORE_E_ALREADY_EXISTS = 3,
  XCORE_E_PERMISSION_DENIED = 4,
  XCORE_E_CONFLICT = 5,
  XCORE_E_FAILED_PRECONDITION = 6,
  XCORE_E_RESOURCE_EXHAUSTED = 7,
  XCORE_E_TIMEOUT = 8,
  XCORE_E_CANCELLED = 9,
  XCORE_E_UNAVAILABLE = 10,
  XCORE_E_PLUGIN_CRASHED = 11,
  XCORE_E_INCOMPATIBLE = 12,
  XCORE_E_INTERNAL = 13,
  XCORE_E_UNAUTHENTICATED = 14,
  /* The plugin's own failure (an exception, a broken invariant). Hosts also read XCORE_E_INTERNAL from a
   * plugin this way: internal is the host's own bug, never the plugin's. */
  XCORE_E_PLUGIN_ERROR = 15,
  /* Only from a hook handler: veto the event; the sink holds the reason. */
  XCORE_HOOK_VETO = 100
};

enum { XCORE_LOG_TRACE = 0, XCORE_LOG_DEBUG = 1, XCORE_LOG_INFO = 2, XCORE_LOG_WARN = 3, XCORE_LOG_ERROR = 4 };
enum { XCORE_BAND_FIRST = 0, XCORE_BAND_NORMAL = 1, XCORE_BAND_LAST = 2 };

typedef struct xcore_str {
  const char* data;
  size_t size;
} xcore_str;

/* Where a callee writes its answer (JSON text, or an error message). append may be called repeatedly. */
typedef struct xcore_sink {
  void* ctx;
  void (*append)(void* ctx, const char* data, size_t size);
} xcore_sink;

/* Read from the file without running plugin code: fixed arrays, no pointers (which would need
 * relocation). Each string fills its array or ends with a NUL: an id of 64 characters has no NUL. */
typedef struct xcore_abi_tag {
  uint32_t magic; /* XCORE_ABI_MAGIC */
  uint16_t abi_major;
  uint16_t abi_minor;
  char plugin_id[64];
  char plugin_version[64];
} xcore_abi_tag;

/* What travels with a tool call or an action. */
typedef struct xcore_call_context {
  uint32_t size; /* sizeof(xcore_call_context) of the host that filled it */
  xcore_str tenant;
  xcore_str user;
  xcore_str trace_id;
  int64_t deadline_unix_ms; /* 0: no deadline */
  const void* cancel_state;
  int32_t (*is_cancelled)(const void* cancel_state); /* non-zero once the caller cancelled */
} xcore_call_context;

/* A hook handler of the plugin. Return XCORE_OK with an optional JSON reply in `reply` (empty: none),
 * XCORE_HOOK_VETO with the reason, or an error status with a message. */
typedef int32_t (*xcore_hook_fn)(void* user, xcore_str hook, xcore_str payload_json, xcore_str tenant,
                                 xcore_sink* reply);

/* Services the host offers a plugin. `host` is passed back on every call. Calls that act on other
 * plugins or hooks are checked against the plugin's manifest permissions. */
typedef struct xcore_host_api {
  uint32_t abi_major;
  uint32_t size; /* sizeof(xcore_host_api) of the host */
  void* host;

  void (*log)(void* host, int32_t level, xcore_str message);
  /* out: {"results":[...],"vetoed":bool,"veto_reason":"..."} */
  int32_t (*emit_hook)(void* host, xcore_str hook, xcore_str payload_json, xcore_sink* out);
  /* `user` stays the plugin's: the host never frees it. A call of fn already under way may still arrive
   * after unsubscribe_hook returns, but none after on_unload: free it in on_unload or destroy. */
  int32_t (*subscribe_hook)(void* host, xcore_str hook, int32_t band, int32_t priority, xcore_hook_fn fn,
                            void* user, uint64_t* subscription_id, xcore_sink* err);
  int32_t (*unsubscribe_hook)(void* host, uint64_t subscription_id);
  /* out: an MCP CallToolResult. ctx may be NULL, or the context of the call being served (propagates
   * tenant, user, trace id and deadline). */
  int32_t (*call_tool)(void* host, xcore_str name, xcore_str args_json, const xcore_call_context* ctx,
                       xcore_sink* out);
  int32_t (*call_action)(void* host, xcore_str plugin, xcore_str action, xcore_str params_json,
                         const xcore_call_context* ctx, xcore_sink* out);
  /* out: the plugin's current config, a JSON object */
  int32_t (*get_config)(void* host, xcore_sink* out);
  /* tool_json: an MCP tool object. Calls to it arrive through xcore_plugin_api.call_tool. */
  int32_t (*register_tool)(void* host, xcore_str tool_json, xcore_sink* err);
  int32_t (*unregister_tool)(void* host, xcore_str name, xcore_sink* err);
  /* ABI 1.1. out: the value of a secret the manifest grants ("secrets.read:<name>"). Check `size` before
   * calling: a 1.0 host's table ends before this member. */
  int32_t (*get_secret)(void* host, xcore_str name, xcore_sink* out);
  /* ABI 1.1. job_json: {"name", "trigger": {...}, "action", "params"}: runs one of the plugin's own
   * actions on a schedule, until unscheduled or the plugin stops. */
  int32_t (*schedule_job)(void* host, xcore_str job_json, xcore_sink* err);
  int32_t (*unschedule_job)(void* host, xcore_str name, xcore_sink* err);
  /* ABI 1.1. route_json: {"method","path","action","role"}: an HTTP route the host mounts for this
   * generation of the plugin (the host decides where). */
  int32_t (*register_route)(void* host, xcore_str route_json, xcore_sink* err);
  /* ABI 1.2. Any host service by name: request_json is a JSON object (empty: {}), out receives the
   * answer, a JSON value. Services added after 1.2 are reached only through here, so the table stops
   * growing. The services of the members above are also callable by name: "emit_hook", "call_tool",
   * "call_action", "config", "register_tool", "unregister_tool", "secret", "schedule", "unschedule",
   * "register_route"; and by name only: "progress", "caller_log", "client_request" (1.3),
   * "declare_competency" (see the SDK's Host for their requests). XCORE_E_NOT_FOUND: no such service. */
  int32_t (*call_host)(void* host, xcore_str service, xcore_str request_json, const xcore_call_context* ctx,
                       xcore_sink* out);
} xcore_host_api;

/* Whether a host table of `size` bytes has `member` (a later minor's members lie past an older host's). */
#define XCORE_HAS_MEMBER(table_type, table_ptr, member) \
  ((table_ptr)->size >= offsetof(table_type, member) + sizeof((table_ptr)->member) && (table_ptr)->member != NULL)

/* What a plugin offers. `self` is what create() returned. Any member may be NULL except create,
 * destroy and call_tool. */
typedef struct xcore_plugin_api {
  uint32_t abi_major;
  uint32_t size; /* sizeof(xcore_plugin_api) of the plugin */

  void* (*create)(const xcore_host_api* host, xcore_sink* err);
  void (*destroy)(void* self);
  int32_t (*on_load)(void* self, xcore_str config_json, xcore_sink* err);
  int32_t (*on_enable)(void* self, xcore_sink* err);
  int32_t (*on_disable)(void* self, xcore_sink* err);
  int32_t (*on_unload)(void* self, xcore_sink* err);
  int32_t (*on_config)(void* self, xcore_str config_json, xcore_sink* err);
  /* out: a JSON object, at least {"status":"ok"|"degraded"|"failing"} */
  int32_t (*health)(void* self, xcore_sink* out);
  /* out: a JSON array of MCP tool objects */
  int32_t (*list_tools)(void* self, xcore_sink* out);
  /* out: an MCP CallToolResult */
  int32_t (*call_tool)(void* self, xcore_str name, xcore_str args_json, const xcore_call_context* ctx,
                       xcore_sink* out);
  /* out: any JSON value */
  int32_t (*handle)(void* self, xcore_str action, xcore_str params_json, const xcore_call_context* ctx,
                    xcore_sink* out);
  /* ABI 1.3. The MCP requests besides tools, answered as MCP answers them: "resources/list",
   * "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
   * "prompts/list", "prompts/get", "completion/complete". params_json: the request's params (a JSON object);
   * out: the result object. XCORE_E_NOT_FOUND: not this plugin's (no such method, resource URI or prompt),
   * so the host asks the next plugin. The host reads `size` before calling: NULL or absent means none. */
  int32_t (*serve_mcp)(void* self, xcore_str method, xcore_str params_json, const xcore_call_context* ctx,
                       xcore_sink* out);
} xcore_plugin_api;

typedef const xcore_plugin_api* (*xcore_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

/* Declares the two exported symbols. The C++ SDK's XCORE_PLUGIN macro uses this. */
#ifdef __cplusplus
/* C++ does not let a 64-character literal initialise char[64] (no room for its NUL), C does: copy it.
 * A constant expression, so the tag is still constant-initialised data in the file. */
template <size_t N, size_t M>
constexpr xcore_abi_tag xcore_make_abi_tag(const char (&id)[N], const char (&version)[M]) {
  static_assert(N - 1 <= sizeof(xcore_abi_tag::plugin_id), "a plugin id has at most 64 characters");
  static_assert(M - 1 <= sizeof(xcore_abi_tag::plugin_version), "a plugin version has at most 64 characters");
  xcore_abi_tag t{XCORE_ABI_MAGIC, XCORE_ABI_MAJOR, XCORE_ABI_MINOR, {}, {}};
  for (size_t i = 0; i + 1 < N; ++i) t.plugin_id[i] = id[i];
  for (size_t i = 0; i + 1 < M; ++i) t.plugin_version[i] = version[i];
  return t;
}
#define XCORE_DECLARE_PLUGIN_SYMBOLS(id, version, api_table)                                                      \
  extern "C" XCORE_PLUGIN_EXPORT const xcore_abi_tag xcore_plugin_abi_tag;                                        \
  extern "C" XCORE_PLUGIN_EXPORT const xcore_abi_tag xcore_plugin_abi_tag = xcore_make_abi_tag(id, version); \
  extern "C" XCORE_PLUGIN_EXPORT const xcore_plugin_api* xcore_plugin_entry(void) { return &(api_table); }
#else
#define XCORE_DECLARE_PLUGIN_SYMBOLS(id, version, api_table)                                                   \
  XCORE_PLUGIN_EXPORT const xcore_abi_tag xcore_plugin_abi_tag = {XCORE_ABI_MAGIC, XCORE_ABI_MAJOR, XCORE_ABI_MINOR, \
                                                                  id, version};                                  \
  XCORE_PLUGIN_EXPORT const xcore_plugin_api* xcore_plugin_entry(void) { return &(api_table); }
#endif

#endif /* XCORE_PLUGIN_H */
