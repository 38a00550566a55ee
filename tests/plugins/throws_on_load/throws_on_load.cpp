// Subscribes to a hook and publishes a tool, then throws in on_load: the host must roll all of it back.
#include <xcore/sdk.hpp>

#include <stdexcept>

class ThrowsOnLoad : public xcore::sdk::Plugin {
 public:
  ThrowsOnLoad() {
    tool("never_visible").handler([](const boost::json::object&, const xcore::sdk::Context&) { return xcore::sdk::ToolOutput::text("no"); });
  }
  void on_load(const boost::json::object&) override {
    on_hook("tool.after_call", [](std::string_view, const boost::json::value&, std::string_view) { return boost::json::value(); });
    on_hook("throws-on-load.ready", [](std::string_view, const boost::json::value&, std::string_view) { return boost::json::value(); });
    publish_tool(std::move(xcore::sdk::ToolBuilder("runtime_never_visible").handler(
        [](const boost::json::object&, const xcore::sdk::Context&) { return xcore::sdk::ToolOutput::text("no"); })));
    throw std::runtime_error("database unreachable");
  }
};

XCORE_PLUGIN(ThrowsOnLoad, "throws-on-load", "1.0.0")
