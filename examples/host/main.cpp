// A minimal embedding host: load every plugin in a folder, call tools, watch hooks.
//   example-host <plugins-dir> [files-root]
#include <xcore/xcore.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
    std::fprintf(argc < 2 ? stderr : stdout, "usage: %s <plugins-dir> [files-root]\n", argv[0]);
    return argc < 2 ? 2 : 0;
  }
  if (std::string_view(argv[1]) == "--version") {
    std::printf("%s\n", xcore::version_line());
    return 0;
  }
  xcore::ManagerOptions options;
  options.plugin_dirs = {argv[1]};
  options.log = xcore::stderr_log_sink();
  if (argc > 2) options.configs["files"] = {{"root", argv[2]}};  // granted to the sandboxed file tools
  xcore::Manager manager(options);

  auto sub = manager.hooks().subscribe("tool.after_call", [](const xcore::HookEvent& ev) {
    std::printf("  [hook] %s took %.3f ms\n", std::string(ev.payload.at("tool").as_string()).c_str(),
                ev.payload.at("duration_ms").to_number<double>());
    return xcore::HookReply::none();
  });

  auto report = manager.discover();
  for (const auto& problem : report.problems) std::fprintf(stderr, "problem: %s\n", problem.message.c_str());
  if (auto r = manager.load_all(); !r) std::fprintf(stderr, "load: %s\n", r.error().message.c_str());

  for (const auto& p : manager.list())
    std::printf("plugin %-8s %-8s %s\n", p.manifest.id.c_str(), p.manifest.version.to_string().c_str(),
                std::string(xcore::to_string(p.state)).c_str());

  for (auto [tool, args] : {std::pair<const char*, const char*>{"calculate", R"({"expression":"2 * (3 + 4) ^ 2"})"},
                            {"echo", R"({"hello":"world"})"},
                            {"read_file", R"({"path":"hello.txt"})"},
                            {"read_file", R"({"path":"../../etc/passwd"})"},
                            {"calculate", R"({"expression":42})"},
                            {"audit.tool_usage", "{}"}}) {
    auto result = manager.call_tool(tool, boost::json::parse(args), xcore::CallContext::host());
    if (result)
      std::printf("%s -> %s\n", tool, xcore::json_text::serialize(result->to_mcp()).c_str());
    else
      std::printf("%s -> error %s\n", tool, result.error().to_string().c_str());
  }
  return 0;
}
