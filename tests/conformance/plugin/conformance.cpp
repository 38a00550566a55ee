// The MCP conformance suite's fixture tools, each answering exactly what its scenario describes.
#include <xcore/sdk.hpp>

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::ToolOutput;

namespace {
// A 1x1 red PNG, and a tiny WAV (44-byte header, one silent sample).
constexpr const char* kPng = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
constexpr const char* kWav = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==";

ToolOutput content(json::array blocks) {
  ToolOutput out;
  out.content = std::move(blocks);
  return out;
}
}  // namespace

class Conformance : public xcore::sdk::Plugin {
 public:
  Conformance() {
    const json::object no_arguments{{"type", "object"}, {"properties", json::object{}}};
    tool("test_simple_text").description("Returns simple text").input(no_arguments).handler([](const json::object&, const Context&) {
      return content({json::object{{"type", "text"}, {"text", "This is a simple text response for testing."}}});
    });
    tool("test_image_content").description("Returns an image").input(no_arguments).handler([](const json::object&, const Context&) {
      return content({json::object{{"type", "image"}, {"data", kPng}, {"mimeType", "image/png"}}});
    });
    tool("test_audio_content").description("Returns audio").input(no_arguments).handler([](const json::object&, const Context&) {
      return content({json::object{{"type", "audio"}, {"data", kWav}, {"mimeType", "audio/wav"}}});
    });
    tool("test_embedded_resource").description("Returns an embedded resource").input(no_arguments).handler([](const json::object&, const Context&) {
      return content({json::object{{"type", "resource"},
                                   {"resource", json::object{{"uri", "test://embedded-resource"}, {"mimeType", "text/plain"},
                                                             {"text", "This is an embedded resource content."}}}}});
    });
    tool("test_multiple_content_types").description("Returns text, an image and a resource").input(no_arguments).handler([](const json::object&, const Context&) {
      return content({json::object{{"type", "text"}, {"text", "Multiple content types test:"}},
                      json::object{{"type", "image"}, {"data", kPng}, {"mimeType", "image/png"}},
                      json::object{{"type", "resource"},
                                   {"resource", json::object{{"uri", "test://mixed-content-resource"}, {"mimeType", "application/json"},
                                                             {"text", "{\"test\":\"data\",\"value\":123}"}}}}});
    });
    tool("test_error_handling").description("Always fails").input(no_arguments).handler([](const json::object&, const Context&) -> ToolOutput {
      throw xcore::sdk::Error(XCORE_E_INTERNAL, "This tool intentionally returns an error for testing");
    });
    tool("json_schema_2020_12_tool")
        .description("Tool with JSON Schema 2020-12 features")
        .input(json::object{{"$schema", "https://json-schema.org/draft/2020-12/schema"},
                            {"type", "object"},
                            {"$defs", {{"address", {{"type", "object"}, {"properties", {{"street", {{"type", "string"}}}, {"city", {{"type", "string"}}}}}}}}},
                            {"properties", {{"name", {{"type", "string"}}}, {"address", {{"$ref", "#/$defs/address"}}}}},
                            {"additionalProperties", false}})
        .handler([](const json::object& args, const Context&) {
          return content({json::object{{"type", "text"}, {"text", "received " + json::serialize(args)}}});
        });
  }
};

XCORE_PLUGIN(Conformance, "conformance", "1.0.0")
