#include <xcore/xcore.hpp>

// What libxcore needs to compile its own files stays its own.
#ifdef BOOST_DLL_USE_STD_FS
#error "the xcore package leaked BOOST_DLL_USE_STD_FS into its consumer"
#endif

#include <boost/json/parse.hpp>
#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  // The header and the library agree on the version, and say it.
  if (std::string_view(xcore::version()) != XCORE_VERSION_STRING) {
    std::fprintf(stderr, "version.hpp says %s, the library %s\n", XCORE_VERSION_STRING, xcore::version());
    return 1;
  }
  std::fprintf(stderr, "%s\n", xcore::version_line());
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
