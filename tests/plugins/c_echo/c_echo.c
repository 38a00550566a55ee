/* A plugin in plain C: the ABI needs no C++ on the plugin's side. */
#include <xcore/plugin.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char kTools[] =
    "[{\"name\":\"c_echo\",\"description\":\"echo written in C\",\"inputSchema\":{\"type\":\"object\"}}]";

static void* create(const xcore_host_api* host, xcore_sink* err) {
  (void)err;
  return (void*)host; /* any non-NULL handle will do */
}
static void destroy(void* self) { (void)self; }
static int32_t list_tools(void* self, xcore_sink* out) {
  (void)self;
  out->append(out->ctx, kTools, sizeof(kTools) - 1);
  return XCORE_OK;
}
static int32_t call_tool(void* self, xcore_str name, xcore_str args, const xcore_call_context* ctx, xcore_sink* out) {
  (void)self;
  (void)ctx;
  if (name.size != 6 || memcmp(name.data, "c_echo", 6) != 0) {
    static const char msg[] = "unknown tool";
    out->append(out->ctx, msg, sizeof(msg) - 1);
    return XCORE_E_NOT_FOUND;
  }
  static const char a[] = "{\"content\":[],\"structuredContent\":";
  static const char b[] = ",\"isError\":false}";
  out->append(out->ctx, a, sizeof(a) - 1);
  out->append(out->ctx, args.size ? args.data : "{}", args.size ? args.size : 2);
  out->append(out->ctx, b, sizeof(b) - 1);
  return XCORE_OK;
}

/* Built as if against ABI 1.2's header: its table ends before serve_mcp (1.3) and its tag says 1.2, so a
 * newer host must load it and never call or read what its size does not cover. */
static const xcore_plugin_api kApi = {XCORE_ABI_MAJOR, offsetof(xcore_plugin_api, serve_mcp), create, destroy, NULL, NULL, NULL, NULL,
                                      NULL, NULL, list_tools, call_tool, NULL, NULL};

XCORE_PLUGIN_EXPORT const xcore_abi_tag xcore_plugin_abi_tag = {XCORE_ABI_MAGIC, XCORE_ABI_MAJOR, 2, "c-echo", "0.3.0"};
XCORE_PLUGIN_EXPORT const xcore_plugin_api* xcore_plugin_entry(void) { return &kApi; }
