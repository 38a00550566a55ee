// The "core" example plugin: calculate, system_stats and echo. Pure functions of their arguments, so it
// runs trusted, in the host's process; the file tools are the sandboxed "files" plugin's.
#include <xcore/sdk.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <thread>

#include "expression.hpp"

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::object_schema;
using xcore::sdk::string_property;
using xcore::sdk::ToolOutput;

class CorePlugin : public xcore::sdk::Plugin {
 public:
  CorePlugin() {
    tool("echo")
        .title("Echo")
        .description("Returns its arguments unchanged; useful to test a connection.")
        .input(json::object{{"type", "object"}})
        .category("utility")
        .read_only()
        .idempotent()
        .handler([](const json::object& args, const Context&) { return ToolOutput(json::value(args)); });

    tool("calculate")
        .title("Calculator")
        .description("Evaluates an arithmetic expression: + - * / % ^, parentheses, pi, e, and sqrt abs sin cos tan asin acos "
                     "atan exp ln log10 log2 floor ceil round pow hypot min max.")
        .input(object_schema({{"expression", string_property("e.g. '2 * (3 + 4) ^ 2'")}}, {"expression"}))
        .output(json::object{{"type", "object"},
                             {"properties", {{"result", {{"type", "number"}}}, {"expression", {{"type", "string"}}}}},
                             {"required", {"result"}}})
        .category("math")
        .competency("arithmetic")
        .read_only()
        .idempotent()
        .handler([](const json::object& args, const Context&) {
          auto expr = std::string(args.at("expression").as_string());
          auto r = core_plugin::evaluate(expr);
          if (!r.ok) return ToolOutput::error("cannot evaluate '" + expr + "': " + r.error);
          // Whole results read better as integers (Boost.JSON would print 98 as 9.8E1).
          json::value result = r.value;
          if (std::nearbyint(r.value) == r.value && std::fabs(r.value) < 9007199254740992.0)
            result = static_cast<std::int64_t>(r.value);
          return ToolOutput(json::object{{"result", result}, {"expression", expr}});
        });

    tool("system_stats")
        .title("System statistics")
        .description("Load average, memory, uptime and CPU count of the machine, and this process's memory.")
        .input(json::object{{"type", "object"}})
        .category("system")
        .competency("monitoring")
        .read_only()
        .handler([](const json::object&, const Context&) { return ToolOutput(system_stats()); });
  }

  json::value handle(std::string_view action, const json::value& params, const Context&) override {
    if (action == "echo") return params;
    if (action == "info") return json::object{{"plugin", "core"}, {"tools", json::array{"echo", "calculate", "system_stats"}}};
    return Plugin::handle(action, params, Context());
  }

 private:
  static json::object system_stats() {
    json::object out;
    double l1 = 0, l5 = 0, l15 = 0;
    if (std::ifstream f("/proc/loadavg"); f >> l1 >> l5 >> l15) out["load_average"] = json::array{l1, l5, l15};
    std::uint64_t total = 0, available = 0;
    std::ifstream mem("/proc/meminfo");
    for (std::string key; mem >> key;) {
      std::uint64_t v = 0;
      mem >> v;
      if (key == "MemTotal:") total = v;
      if (key == "MemAvailable:") available = v;
      mem.ignore(256, '\n');
    }
    out["memory"] = json::object{{"total_kb", total}, {"available_kb", available}};
    double up = 0;
    if (std::ifstream f("/proc/uptime"); f >> up) out["uptime_seconds"] = up;
    out["cpus"] = std::thread::hardware_concurrency();
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) out["process_rss_kb"] = std::strtoull(line.c_str() + 6, nullptr, 10);
    return out;
  }

};

XCORE_PLUGIN(CorePlugin, "core", "1.0.0")
