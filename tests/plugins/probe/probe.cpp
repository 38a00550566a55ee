// A test plugin built twice (PROBE_VERSION 1 and 2) for reload tests, with actions that exercise every
// host service so permission checks can be tested.
#include <xcore/sdk.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#ifndef PROBE_VERSION
#define PROBE_VERSION 1
#endif
#define PROBE_STR2(x) #x
#define PROBE_STR(x) PROBE_STR2(x)

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::ToolOutput;

class Probe : public xcore::sdk::Plugin {
 public:
  Probe() {
    tool("version").input(json::object{{"type", "object"}}).handler([](const json::object&, const Context&) {
      return ToolOutput(json::object{{"version", PROBE_VERSION}});
    });
    // Blocks until released by the "release" action or the call's deadline: lets tests hold a call in flight.
    tool("hold").handler([this](const json::object&, const Context& ctx) {
      ++held_;
      while (!release_.load() && !ctx.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      --held_;
      return ToolOutput(json::object{{"version", PROBE_VERSION}, {"released", true}});
    });
    // A plugin's own failure: an exception the SDK turns into an error status.
    tool("boom").handler([](const json::object&, const Context&) -> ToolOutput { throw std::runtime_error("kaboom"); });
#if PROBE_VERSION >= 2
    tool("added_in_v2").handler([](const json::object&, const Context&) { return ToolOutput::text("v2"); });
#endif
  }

  void on_load(const json::object& config) override {
    if (config.contains("fail_load") && config.at("fail_load").as_bool()) throw std::runtime_error("asked to fail");
    // A plugin stuck in on_load: says so in <gate>/entered, then waits for <gate>/go to appear.
    if (const auto* gate = config.if_contains("load_gate")) {
      const std::filesystem::path dir(std::string(gate->as_string()));
      std::ofstream(dir / "entered").put('1');
      while (!std::filesystem::exists(dir / "go")) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    on_hook("probe.ping", [](std::string_view, const json::value& p, std::string_view) -> json::value {
      return json::object{{"pong", PROBE_VERSION}, {"echo", p}};
    });
  }

  json::value health() override { return json::object{{"status", "ok"}, {"version", PROBE_VERSION}, {"held", held_.load()}}; }

  json::value handle(std::string_view action, const json::value& params, const Context& ctx) override {
    const auto& p = params.is_object() ? params.as_object() : json::object();
    auto str = [&](const char* k) { return std::string(p.at(k).as_string()); };
    if (action == "held") return held_.load();
    if (action == "boom") throw std::logic_error("kaboom");
    if (action == "release") {
      release_ = true;
      return true;
    }
    if (action == "call_tool") return host().call_tool(str("name"), p.contains("arguments") ? p.at("arguments") : json::object(), ctx);
    if (action == "call_action") return host().call_action(str("plugin"), str("action"), p.contains("params") ? p.at("params") : json::value(), ctx);
    if (action == "emit") return host().emit(str("hook"), p.contains("payload") ? p.at("payload") : json::object());
    if (action == "subscribe") {
      on_hook(str("hook"), [](std::string_view, const json::value&, std::string_view) { return json::value(); });
      return true;
    }
    if (action == "publish_tool") {
      publish_tool(std::move(xcore::sdk::ToolBuilder(str("name")).handler([](const json::object& a, const Context&) { return ToolOutput(json::value(a)); })));
      return true;
    }
    if (action == "config") return host().config();
    if (action == "call_host")  // a service by name (ABI 1.2)
      return host().call(str("service"), p.contains("request") ? p.at("request").as_object() : json::object(), ctx);
    if (action == "secret") return json::string(host().secret(str("name")));
    if (action == "add_route") {
      host().register_route(p.at("route").as_object());
      return true;
    }
    if (action == "schedule") {
      host().schedule(p.at("job").as_object());
      return true;
    }
    if (action == "unschedule") {
      host().unschedule(str("name"));
      return true;
    }
    if (action == "context") return json::object{{"tenant", ctx.tenant()}, {"user", ctx.user()}, {"trace_id", ctx.trace_id()}};
    return Plugin::handle(action, params, ctx);
  }

 private:
  std::atomic<int> held_{0};
  std::atomic<bool> release_{false};
};

XCORE_PLUGIN(Probe, "probe", PROBE_STR(PROBE_VERSION) ".0.0")
