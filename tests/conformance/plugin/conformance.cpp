// The MCP conformance suite's fixture tools, each answering exactly what its scenario describes.
#include <xcore/sdk.hpp>

#include <chrono>
#include <thread>

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

    // What the caller hears while a call runs: log messages and progress, with the pauses the scenarios ask for.
    tool("test_tool_with_logging").description("Sends three log messages while it runs").input(no_arguments).handler([this](const json::object&, const Context& ctx) {
      host().tell_caller(ctx, "info", "Tool execution started");
      pause();
      host().tell_caller(ctx, "info", "Tool processing data");
      pause();
      host().tell_caller(ctx, "info", "Tool execution completed");
      return text("Tool with logging executed successfully");
    });
    tool("test_tool_with_progress").description("Reports progress 0, 50 and 100 of 100").input(no_arguments).handler([this](const json::object&, const Context& ctx) {
      host().progress(ctx, 0, 100);
      pause();
      host().progress(ctx, 50, 100);
      pause();
      host().progress(ctx, 100, 100);
      return text("Tool with progress executed successfully");
    });

    // Requests to the caller's client.
    tool("test_sampling")
        .description("Asks the client's model to complete a prompt")
        .input(json::object{{"type", "object"}, {"properties", {{"prompt", {{"type", "string"}}}}}, {"required", {"prompt"}}})
        .handler([this](const json::object& args, const Context& ctx) {
          json::object message{{"role", "user"}, {"content", {{"type", "text"}, {"text", args.at("prompt")}}}};
          auto r = host().ask_client(ctx, "sampling/createMessage", {{"messages", json::array{message}}, {"maxTokens", 100}});
          const auto* content = r.is_object() ? r.as_object().if_contains("content") : nullptr;
          const auto* said = content && content->is_object() ? content->as_object().if_contains("text") : nullptr;
          return text("LLM response: " + (said && said->is_string() ? std::string(said->get_string()) : json::serialize(r)));
        });
    tool("test_elicitation")
        .description("Asks the user for a name and an email address")
        .input(json::object{{"type", "object"}, {"properties", {{"message", {{"type", "string"}}}}}, {"required", {"message"}}})
        .handler([this](const json::object& args, const Context& ctx) {
          json::object schema{{"type", "object"},
                              {"properties", {{"username", {{"type", "string"}, {"description", "User's response"}}},
                                              {"email", {{"type", "string"}, {"description", "User's email address"}}}}},
                              {"required", {"username", "email"}}};
          auto r = host().ask_client(ctx, "elicitation/create", {{"message", args.at("message")}, {"requestedSchema", schema}});
          return text("User response: " + json::serialize(r));
        });
    tool("test_elicitation_sep1034_defaults").description("Asks for values that all have defaults").input(no_arguments).handler([this](const json::object&, const Context& ctx) {
      json::object schema{{"type", "object"},
                          {"properties",
                           {{"name", {{"type", "string"}, {"default", "John Doe"}}},
                            {"age", {{"type", "integer"}, {"default", 30}}},
                            {"score", {{"type", "number"}, {"default", 95.5}}},
                            {"status", {{"type", "string"}, {"enum", {"active", "inactive", "pending"}}, {"default", "active"}}},
                            {"verified", {{"type", "boolean"}, {"default", true}}}}}};
      return elicited(ctx, "Please review the defaults", schema);
    });
    tool("test_elicitation_sep1330_enums").description("Asks with each kind of enum").input(no_arguments).handler([this](const json::object&, const Context& ctx) {
      auto titled = [](const char* prefix, const char* a, const char* b, const char* c) {
        return json::array{json::object{{"const", std::string(prefix) + "1"}, {"title", a}}, json::object{{"const", std::string(prefix) + "2"}, {"title", b}},
                           json::object{{"const", std::string(prefix) + "3"}, {"title", c}}};
      };
      json::object schema{{"type", "object"},
                          {"properties",
                           {{"untitledSingle", {{"type", "string"}, {"enum", {"option1", "option2", "option3"}}}},
                            {"titledSingle", {{"type", "string"}, {"oneOf", titled("value", "First Option", "Second Option", "Third Option")}}},
                            {"legacyEnum", {{"type", "string"}, {"enum", {"opt1", "opt2", "opt3"}}, {"enumNames", {"Option One", "Option Two", "Option Three"}}}},
                            {"untitledMulti", {{"type", "array"}, {"items", {{"type", "string"}, {"enum", {"option1", "option2", "option3"}}}}}},
                            {"titledMulti", {{"type", "array"}, {"items", {{"anyOf", titled("value", "First Choice", "Second Choice", "Third Choice")}}}}}}}};
      return elicited(ctx, "Please choose", schema);
    });

    // Resources: fixed ones, text and binary, a template, one to subscribe to.
    resource("test://static-text").name("static-text").description("A static text resource").mime_type("text/plain")
        .reader([](const std::string& uri, const json::object&, const Context&) {
          return json::array{xcore::sdk::text_contents(uri, "text/plain", "This is the content of the static text resource.")};
        });
    resource("test://static-binary").name("static-binary").description("A static binary resource (a PNG)").mime_type("image/png")
        .reader([](const std::string& uri, const json::object&, const Context&) { return json::array{xcore::sdk::blob_contents(uri, "image/png", kPng)}; });
    resource("test://watched-resource").name("watched-resource").description("A resource clients may subscribe to").mime_type("text/plain")
        .subscribable()
        .reader([](const std::string& uri, const json::object&, const Context&) { return json::array{xcore::sdk::text_contents(uri, "text/plain", "Watched.")}; });
    resource_template("test://template/{id}/data").name("template-data").description("Data for an id").mime_type("application/json")
        .reader([](const std::string& uri, const json::object& vars, const Context&) {
          const std::string id(vars.at("id").as_string());
          json::object data{{"id", id}, {"templateTest", true}, {"data", "Data for ID: " + id}};
          return json::array{xcore::sdk::text_contents(uri, "application/json", json::serialize(data))};
        });

    // Prompts, and completion of their arguments.
    prompt("test_simple_prompt").description("A simple prompt without arguments").messages([](const json::object&, const Context&) {
      return json::array{user(json::object{{"type", "text"}, {"text", "This is a simple prompt for testing."}})};
    });
    prompt("test_prompt_with_arguments")
        .description("A prompt with two arguments")
        .argument("arg1", "First test argument", true,
                  [](std::string_view typed, const Context&) {
                    std::vector<std::string> out;
                    for (const char* v : {"paris", "park", "party"})
                      if (std::string_view(v).starts_with(typed)) out.emplace_back(v);
                    return out;
                  })
        .argument("arg2", "Second test argument")
        .messages([](const json::object& args, const Context&) {
          const std::string text = "Prompt with arguments: arg1='" + std::string(args.at("arg1").as_string()) + "', arg2='" +
                                   std::string(args.at("arg2").as_string()) + "'";
          return json::array{user(json::object{{"type", "text"}, {"text", text}})};
        });
    prompt("test_prompt_with_embedded_resource")
        .description("A prompt that embeds a resource")
        .argument("resourceUri", "URI of the resource to embed")
        .messages([](const json::object& args, const Context&) {
          return json::array{user(json::object{{"type", "resource"},
                                               {"resource", {{"uri", args.at("resourceUri")}, {"mimeType", "text/plain"}, {"text", "Embedded resource content for testing."}}}}),
                             user(json::object{{"type", "text"}, {"text", "Please process the embedded resource above."}})};
        });
    prompt("test_prompt_with_image").description("A prompt with an image").messages([](const json::object&, const Context&) {
      return json::array{user(json::object{{"type", "image"}, {"data", kPng}, {"mimeType", "image/png"}}),
                         user(json::object{{"type", "text"}, {"text", "Please analyze the image above."}})};
    });
  }

 private:
  static json::object user(json::object content) { return json::object{{"role", "user"}, {"content", std::move(content)}}; }
  static void pause() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }
  static ToolOutput text(std::string said) { return content({json::object{{"type", "text"}, {"text", std::move(said)}}}); }
  ToolOutput elicited(const Context& ctx, const char* message, const json::object& schema) {
    auto r = host().ask_client(ctx, "elicitation/create", {{"message", message}, {"requestedSchema", schema}}).as_object();
    const auto* action = r.if_contains("action");
    const auto* content = r.if_contains("content");
    return text("Elicitation completed: action=" + (action && action->is_string() ? std::string(action->get_string()) : std::string("?")) +
                ", content=" + (content ? json::serialize(*content) : std::string("{}")));
  }
};

XCORE_PLUGIN(Conformance, "conformance", "1.0.0")
