// A host with a Scheduler: loads the plugins of a folder and runs a tool on a cron schedule and another on
// an interval, printing each run, until Ctrl-C (or --for SECONDS).
//   scheduler-host <plugins-dir> [--for SECONDS]
#include <xcore/xcore.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <array>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help") {
    std::fprintf(argc < 2 ? stderr : stdout, "usage: %s <plugins-dir> [--for SECONDS]\n", argv[0]);
    return argc < 2 ? 2 : 0;
  }
  int seconds = argc > 3 && std::string_view(argv[2]) == "--for" ? std::stoi(argv[3]) : -1;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // taken by sigwait below, on this thread only

  xcore::Manager manager({.plugin_dirs = {argv[1]}, .log = xcore::stderr_log_sink()});
  manager.discover();
  if (auto r = manager.load_all(); !r) std::fprintf(stderr, "%s\n", r.error().message.c_str());

  // Tool targets run in this Manager; the plugins' own `schedules:` join too.
  xcore::Scheduler scheduler({.manager = &manager, .log = xcore::stderr_log_sink()});
  // A job made in C++ runs as the host; one read from outside would name its principal in "run_as".
  auto every_minute = xcore::JobSpec::from_json(boost::json::parse(R"({
      "name": "stats every minute",
      "trigger": {"type": "cron", "expression": "* * * * *"},
      "target": {"tool": "core.system_stats", "arguments": {}}})"));
  auto every_five = xcore::JobSpec::from_json(boost::json::parse(R"({
      "name": "echo every 5 s",
      "trigger": {"type": "interval", "seconds": 5},
      "target": {"tool": "core.echo", "arguments": {"text": "tick"}}})"));
  for (auto* job : std::array{&every_minute, &every_five}) {
    if (!*job) {
      std::fprintf(stderr, "%s\n", job->error().message.c_str());
      return 1;
    }
    job->value().run_as = xcore::Principal::host();
    if (auto id = scheduler.add(job->value()); !id) {
      std::fprintf(stderr, "%s\n", id.error().message.c_str());
      return 1;
    }
  }
  // Every run, as it ends.
  auto sub = manager.hooks().subscribe("tool.after_call", [](const xcore::HookEvent& ev) {
    std::printf("ran %s: %s\n", std::string(ev.payload.at("tool").as_string()).c_str(), ev.payload.at("ok").as_bool() ? "ok" : "failed");
    std::fflush(stdout);
    return xcore::HookReply::none();
  });
  for (const auto& job : scheduler.list())
    std::printf("%s: next at %s\n", job.spec.name.c_str(), job.next_run ? xcore::format_iso8601(*job.next_run).c_str() : "never");
  std::fflush(stdout);

  if (seconds >= 0) {
    timespec t{seconds, 0};
    sigtimedwait(&stop, nullptr, &t);
  } else {
    int sig = 0;
    sigwait(&stop, &sig);
  }
}
