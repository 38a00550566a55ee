// A real xcore-node process for tests, ended (by its pid) when this goes; and a bounded wait for what it
// makes happen, so no test sleeps a fixed time.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"
#include "support/test_support.hpp"

namespace xcore_test {

template <class F>
bool eventually(F ready, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ready();
}

struct NodeProcess {
  pid_t pid = -1;
  std::filesystem::path log;
  NodeProcess(const std::string& url, const std::string& token, const std::string& name, const std::filesystem::path& log_file,
              std::vector<std::string> extra = {}, std::vector<std::string> env = {}, std::vector<std::string> launcher = {})
      : log(log_file) {
    // `launcher`: what runs it (ip netns exec NS), which must exec it so that the pid is the node's.
    std::vector<std::string> args = std::move(launcher);
    for (std::string a : {std::string(XCORE_NODE_PATH), std::string("--server"), url, std::string("--token"), token, std::string("--name"), name,
                          std::string("--backoff-max-ms"), std::string("400")})
      args.push_back(std::move(a));
    args.insert(args.end(), extra.begin(), extra.end());
    const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    env.push_back("PATH=/usr/bin:/bin");
    pid = spawn_process(args, env, devnull, log_file);
    ::close(devnull);
  }
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;
  void kill(int sig = SIGKILL) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }
  ~NodeProcess() { kill(); }
  std::string output() const { return read_file(log); }
};

}  // namespace xcore_test
