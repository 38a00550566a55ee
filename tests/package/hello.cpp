#include <xcore/sdk.hpp>

class Hello : public xcore::sdk::Plugin {
 public:
  Hello() {
    tool("greet")
        .description("Greets someone")
        .input({{"type", "object"}, {"properties", {{"name", {{"type", "string"}}}}}, {"required", {"name"}}})
        .handler([](const boost::json::object& args, const xcore::sdk::Context&) {
          return xcore::sdk::ToolOutput(boost::json::object{{"greeting", "hello " + std::string(args.at("name").as_string())}});
        });
  }
};

XCORE_PLUGIN(Hello, "hello", "1.0.0")
