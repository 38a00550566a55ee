// A plugin whose id has the most characters an id may have (64): its ABI tag has no room for a NUL.
#include <xcore/sdk.hpp>

class LongId : public xcore::sdk::Plugin {
 public:
  LongId() {
    tool("ping").handler([](const boost::json::object&, const xcore::sdk::Context&) { return xcore::sdk::ToolOutput::text("pong"); });
  }
};

XCORE_PLUGIN(LongId, "a-long-plugin-id-long-plugin-id-long-plugin-id-long-plugin-idxxx", "1.0.0")
