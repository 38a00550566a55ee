// The client the MCP conformance suite drives in its client scenarios (`conformance client --command`):
// a Manager with one url: plugin, the suite's test server, so that what is tested is libxcore's own MCP
// client and runner. The suite passes the server's URL as the last argument and the scenario's name in
// MCP_CONFORMANCE_SCENARIO; this program does what a tools client does in that scenario.
#include <xcore/manager.hpp>

#include <boost/json/serialize.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/test_support.hpp"

namespace json = boost::json;

namespace {

// The caller on whose behalf the tools run: it accepts an elicitation with the defaults the request's
// schema gives (what a client does for fields its user leaves alone).
struct AcceptingCaller final : xcore::CallPeer {
  void progress(double, std::optional<double>, std::string_view) override {}
  void log(std::string_view, std::string_view, const json::value&) override {}
  xcore::Result<json::value> request(std::string_view method, const json::object& params, const xcore::CallContext&) override {
    if (method != "elicitation/create") return xcore::Error{xcore::ErrorCode::not_found, "this caller answers elicitation only"};
    json::object content;
    if (const auto* schema = params.if_contains("requestedSchema"); schema && schema->is_object())
      if (const auto* properties = schema->get_object().if_contains("properties"); properties && properties->is_object())
        for (const auto& [name, property] : properties->get_object())
          if (const auto* d = property.is_object() ? property.get_object().if_contains("default") : nullptr) content[name] = *d;
    return json::value(json::object{{"action", "accept"}, {"content", std::move(content)}});
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: conformance-client URL (with MCP_CONFORMANCE_SCENARIO set)\n");
    return 2;
  }
  const std::string url = argv[argc - 1];
  const char* scenario_env = std::getenv("MCP_CONFORMANCE_SCENARIO");
  const std::string scenario = scenario_env ? scenario_env : "";
  xcore_test::TempDir tmp;
  xcore_test::write_file(tmp / "plugins" / "server" / "plugin.yaml", "id: server\nversion: 1.0.0\nurl: " + url + "\n");
  xcore_test::CapturedLog log;
  xcore::Manager manager(xcore_test::test_options(tmp, tmp / "plugins", log));
  manager.discover();
  if (auto e = manager.enable("server"); !e) {
    std::fprintf(stderr, "%s: cannot connect: %s\n", scenario.c_str(), e.error().message.c_str());
    return 1;
  }
  auto call = [&](const std::string& tool, const json::value& args) {
    auto ctx = xcore::CallContext::host().with_deadline_in(std::chrono::seconds(20));
    ctx.peer = std::make_shared<AcceptingCaller>();
    auto r = manager.call_tool("server." + tool, args, ctx);
    if (!r) {
      std::fprintf(stderr, "%s: %s failed: %s\n", scenario.c_str(), tool.c_str(), r.error().message.c_str());
      return false;
    }
    std::printf("%s: %s\n", tool.c_str(), json::serialize(r->to_mcp()).c_str());
    return true;
  };
  if (scenario == "initialize") return 0;  // connecting was the scenario
  if (scenario == "tools_call") return call("add_numbers", json::object{{"a", 5}, {"b", 3}}) ? 0 : 1;
  if (scenario == "elicitation-sep1034-client-defaults") return call("test_client_elicitation_defaults", json::object{}) ? 0 : 1;
  // Any other: every tool the server has, without arguments.
  bool ok = true;
  for (const auto& t : manager.tools().list({})) ok = call(t.spec.name, json::object{}) && ok;
  return ok ? 0 : 1;
}
