// A program run to its end: argv without a shell, in a process group of its own (killed whole on the
// deadline or cancellation), nothing inherited but stdin from /dev/null and two pipes, optional limits on
// its memory and CPU time, and its output kept up to a cap. Header-only: xcore-node's exec_command and a
// plugin that runs commands (the shell example) share it. Linux; C++17.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace xcore::sdk {

struct ProgramSpec {
  std::filesystem::path executable;  // resolved: run as is, never looked up again
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"; nothing else is passed
  std::filesystem::path cwd;
  std::chrono::steady_clock::time_point deadline;
  std::function<bool()> cancelled;    // asked every 100 ms at most; true ends the program
  std::size_t output_cap = 1u << 20;  // bytes kept of stdout and of stderr each
  std::size_t memory_bytes = 0;       // RLIMIT_AS; 0: none
  unsigned cpu_seconds = 0;           // RLIMIT_CPU; 0: none
};

struct ProgramRun {
  std::string out, err;
  bool truncated = false, timed_out = false, cancelled = false;
  int status = 0;  // as waitpid gives it
  bool succeeded() const { return !timed_out && !cancelled && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

// Throws std::runtime_error when the program cannot be started (naming it and why).
inline ProgramRun run_program(const ProgramSpec& spec) {
  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  std::vector<std::string> argv = spec.argv, env = spec.env;
  std::vector<char*> cargv, cenv;
  for (auto& s : argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  for (auto& s : env) cenv.push_back(s.data());
  cenv.push_back(nullptr);
  const std::string exe = spec.executable.string(), cwd = spec.cwd.string();
  int out_pipe[2], err_pipe[2], report[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("pipe failed");
  }
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    // Nothing else of the parent's (a node's link to its host above all) reaches the program. The report
    // pipe moves to fd 3, close-on-exec: it goes with the exec.
    ::dup2(report[1], 3);
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    if (::syscall(SYS_close_range, 4u, ~0u, 0u) != 0)
      for (int fd = 4; fd < 65536; ++fd) ::close(fd);
    if (spec.memory_bytes) {
      rlimit l{spec.memory_bytes, spec.memory_bytes};
      ::setrlimit(RLIMIT_AS, &l);
    }
    if (spec.cpu_seconds) {
      rlimit l{spec.cpu_seconds, spec.cpu_seconds + 1};
      ::setrlimit(RLIMIT_CPU, &l);
    }
    int err = 0;
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) err = errno;
    if (!err) {
      ::execve(exe.c_str(), cargv.data(), cenv.data());
      err = errno;
    }
    (void)!::write(3, &err, sizeof err);
    ::_exit(127);
  }
  ::close(devnull);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(report[1]);
  if (pid < 0) {
    const int e = errno;
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::close(report[0]);
    throw std::runtime_error("cannot start " + exe + ": fork: " + std::strerror(e));
  }
  int child_errno = 0;
  const bool failed = ::read(report[0], &child_errno, sizeof child_errno) == static_cast<ssize_t>(sizeof child_errno);
  ::close(report[0]);
  if (failed) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::waitpid(pid, nullptr, 0);
    throw std::runtime_error("cannot start " + exe + ": " + std::strerror(child_errno));
  }
  ProgramRun run;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[16384];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(spec.deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      run.timed_out = true;
      break;
    }
    if (spec.cancelled && spec.cancelled()) {
      run.cancelled = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 100)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      auto& sink = i == 0 ? run.out : run.err;
      const auto room = spec.output_cap > sink.size() ? spec.output_cap - sink.size() : 0;
      if (static_cast<std::size_t>(got) > room) run.truncated = true;
      sink.append(buf, std::min<std::size_t>(room, static_cast<std::size_t>(got)));
    }
  }
  if (run.timed_out || run.cancelled) ::kill(-pid, SIGKILL);
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  ::waitpid(pid, &run.status, 0);
  return run;
}

}  // namespace xcore::sdk
