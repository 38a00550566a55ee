#include <xcore/xcore.hpp>

#include <boost/json/parse.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  xcore::Manager manager({.plugin_dirs = {argv[1]}, .log = xcore::stderr_log_sink()});
  manager.discover();
  if (auto r = manager.load_all(); !r) {
    std::fprintf(stderr, "%s\n", r.error().message.c_str());
    return 1;
  }
  auto result = manager.call_tool("greet", boost::json::parse(R"({"name":"package"})"), xcore::CallContext::host());
  if (!result) {
    std::fprintf(stderr, "%s\n", result.error().message.c_str());
    return 1;
  }
  std::printf("%s\n", std::string(result->structured.at("greeting").as_string()).c_str());
  return result->structured.at("greeting") == "hello package" ? 0 : 1;
}
