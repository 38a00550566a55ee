// @dwmkerr/mock-llm, an OpenAI-compatible server whose answers come from rules matched on the request
// (JMESPath over {body, headers, ...}; the last matching rule wins), as a real peer for the agent tests. Each
// instance is a process of its own on a free port of 127.0.0.1, ended with the instance.
#pragma once

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "support/peers.hpp"
#include "support/process.hpp"

namespace xcore_test {

inline std::filesystem::path mock_llm_script() {
  return peers_dir() / "node_modules" / "@dwmkerr" / "mock-llm" / "dist" / "main.js";
}

class MockLlm {
 public:
  // `rules_yaml`: the `rules:` list (and `streaming:`) of mock-llm's configuration file.
  explicit MockLlm(const std::string& config_yaml) : port_(free_port()) {
    REQUIRE_MESSAGE(std::filesystem::exists(mock_llm_script()), "run tests/peers/install.sh first");
    config_ = std::filesystem::temp_directory_path() / ("mock-llm-" + std::to_string(::getpid()) + "-" + std::to_string(port_) + ".yaml");
    std::ofstream(config_) << config_yaml;
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_ = spawn_process({"/usr/bin/env", "node", mock_llm_script().string(), "--config", config_.string()},
                         {"PORT=" + std::to_string(port_), "HOST=127.0.0.1", "PATH=/usr/local/bin:/usr/bin:/bin"}, out[1], {}, /*both=*/true);
    ::close(out[1]);
    std::string seen;
    char buf[512];
    while (seen.find("server running on") == std::string::npos) {
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      seen.append(buf, static_cast<std::size_t>(n));
    }
    output_ = out[0];  // kept open so that it never gets SIGPIPE
    REQUIRE_MESSAGE(seen.find("server running on") != std::string::npos, seen);
  }
  ~MockLlm() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    ::close(output_);
    std::error_code ec;
    std::filesystem::remove(config_, ec);
  }
  MockLlm(const MockLlm&) = delete;
  MockLlm& operator=(const MockLlm&) = delete;

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
  int output_ = -1;
  std::filesystem::path config_;
};

}  // namespace xcore_test
