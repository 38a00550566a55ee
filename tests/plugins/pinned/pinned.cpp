// A plugin that glibc cannot unmap: a thread_local with a destructor, touched from the host's thread.
#include <xcore/sdk.hpp>

#include <string>

class Pinned : public xcore::sdk::Plugin {
 public:
  Pinned() {
    tool("touch").handler([](const boost::json::object&, const xcore::sdk::Context&) {
      thread_local std::string per_thread = "pins the library";
      return xcore::sdk::ToolOutput::text(per_thread);
    });
  }
};

XCORE_PLUGIN(Pinned, "pinned", "1.0.0")
