/* The "wordcount" example plugin, in plain C: the C ABI of <xcore/plugin.h> needs no C++ on the plugin's
   side. Its one tool counts words, lines and bytes of a text. The host validates the arguments against the
   input schema before the call, so "text" is a string; its JSON escapes are read as the characters they
   stand for only as far as counting needs (\n, \t and \r as themselves, any other escape as one character,
   so "bytes" counts characters of ASCII text). */
#include <xcore/plugin.h>

#include <stdio.h>
#include <string.h>

static const char kTools[] =
    "[{\"name\":\"count\",\"title\":\"Count words\",\"description\":\"Counts the words, lines and bytes of a text.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"words\":{\"type\":\"integer\"},\"lines\":{\"type\":\"integer\"},"
    "\"bytes\":{\"type\":\"integer\"}}},\"annotations\":{\"readOnlyHint\":true}}]";

static void* create(const xcore_host_api* host, xcore_sink* err) {
  (void)err;
  return (void*)host; /* no state: any non-NULL handle will do */
}
static void destroy(void* self) { (void)self; }

static int32_t list_tools(void* self, xcore_sink* out) {
  (void)self;
  out->append(out->ctx, kTools, sizeof(kTools) - 1);
  return XCORE_OK;
}

/* The value of "text" in the compact JSON the host sends: its start (after the quote) and end. */
static int find_text(xcore_str args, const char** start, const char** end) {
  static const char key[] = "\"text\":\"";
  for (size_t i = 0; i + sizeof(key) - 1 <= args.size; ++i)
    if (memcmp(args.data + i, key, sizeof(key) - 1) == 0) {
      const char* p = args.data + i + sizeof(key) - 1;
      const char* last = args.data + args.size;
      *start = p;
      while (p < last && *p != '"') p += (*p == '\\' && p + 1 < last) ? 2 : 1;
      *end = p;
      return 1;
    }
  return 0;
}

static int32_t call_tool(void* self, xcore_str name, xcore_str args, const xcore_call_context* ctx, xcore_sink* out) {
  (void)self;
  (void)ctx;
  if (name.size != 5 || memcmp(name.data, "count", 5) != 0) {
    static const char msg[] = "unknown tool";
    out->append(out->ctx, msg, sizeof(msg) - 1);
    return XCORE_E_NOT_FOUND;
  }
  const char *p, *end;
  if (!find_text(args, &p, &end)) {
    static const char msg[] = "expected {\"text\": \"...\"}";
    out->append(out->ctx, msg, sizeof(msg) - 1);
    return XCORE_E_INVALID_ARGUMENT;
  }
  long words = 0, lines = 0, bytes = 0;
  int in_word = 0;
  char last = '\n';
  while (p < end) {
    char c = *p++;
    if (c == '\\' && p < end) {
      const char e = *p++;
      c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : 'x';
    }
    ++bytes;
    if (c == '\n') ++lines;
    const int space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
    last = c;
  }
  if (last != '\n') ++lines; /* a last line without its line break */
  char text[160];
  int n = snprintf(text, sizeof text, "{\"content\":[],\"structuredContent\":{\"words\":%ld,\"lines\":%ld,\"bytes\":%ld},\"isError\":false}",
                   words, lines, bytes);
  out->append(out->ctx, text, (size_t)n);
  return XCORE_OK;
}

static const xcore_plugin_api kApi = {XCORE_ABI_MAJOR, sizeof(xcore_plugin_api), create, destroy, NULL, NULL, NULL, NULL,
                                      NULL, NULL, list_tools, call_tool, NULL};

/* The id and version must match plugin.yaml: the host reads them from the ELF file before loading. */
XCORE_DECLARE_PLUGIN_SYMBOLS("wordcount", "1.0.0", kApi)
