#include "sandbox/child_process.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "core/thread_name.hpp"

namespace xcore::inline v1::sandbox {

using Clock = std::chrono::steady_clock;

int spawn_on_lasting_thread(const std::function<int()>& spawn) {
  struct Spawner {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::packaged_task<int()>*> queue;
    Spawner() {
      // Never joined, never destroyed: it must outlive every child, i.e. last as long as the process.
      std::thread spawner([this] {
        for (;;) {
          std::unique_lock lock(mutex);
          cv.wait(lock, [&] { return !queue.empty(); });
          auto* task = queue.front();
          queue.pop_front();
          lock.unlock();
          (*task)();
        }
      });
      name_thread(spawner, "xcore-spawn");
      spawner.detach();
    }
  };
  static Spawner* spawner = new Spawner();
  std::packaged_task<int()> task(spawn);
  auto done = task.get_future();
  {
    std::lock_guard lock(spawner->mutex);
    spawner->queue.push_back(&task);
  }
  spawner->cv.notify_one();
  return done.get();
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return fmt::format("killed by SIG{} ({})", abbrev ? abbrev : "?", strsignal(sig));
  }
  return "ended";
}

// SIGKILL to every process of the session `sid` but its leader. Every process of a plugin is in its
// helper's session unless it called setsid(), and then the pid namespace's end takes it anyway.
void kill_session_except_leader(pid_t sid) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const auto name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t p = static_cast<pid_t>(std::stol(name));
    if (p == sid || ::getsid(p) != sid) continue;
    ::kill(p, SIGKILL);
  }
}

// Resident memory and CPU time of a process, from /proc/<pid>/stat.
void add_process_figures(pid_t pid, json::object& out) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');  // the command name may contain spaces
  if (close == std::string::npos) return;
  std::istringstream rest(stat.substr(close + 2));
  std::vector<std::string> fields{std::istream_iterator<std::string>(rest), std::istream_iterator<std::string>()};
  // Fields after the name start at 3 (state); utime 14, stime 15, rss 24 in proc(5) numbering.
  if (fields.size() < 22) return;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  out["cpu_seconds"] = (std::stod(fields[11]) + std::stod(fields[12])) / tick;
  out["rss_bytes"] = std::stoull(fields[21]) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

void Child::kill_group() {
  if (pid <= 0 || reaped) return;
  kill_session_except_leader(pid);
  if (cgroup) cgroup->kill_all(pid);
}

void Child::reap(std::chrono::milliseconds grace, std::chrono::milliseconds term_grace) {
  std::lock_guard lock(end_mutex_);
  reap_locked(grace, term_grace);
}

void Child::end_for(std::string reason) {
  std::lock_guard lock(end_mutex_);
  if (reaped) return;
  if (exit_reason.empty()) exit_reason = std::move(reason);
  kill_group();
  reap_locked(std::chrono::milliseconds(1000), std::chrono::milliseconds(0));
}

std::string Child::ended() const {
  std::lock_guard lock(end_mutex_);
  return exit_reason;
}

void Child::reap_locked(std::chrono::milliseconds grace, std::chrono::milliseconds term_grace) {
  if (reaped || pid <= 0) return;
  int status = 0;
  auto until = Clock::now() + grace;
  enum { waiting, termed, killed } stage = term_grace.count() == 0 ? termed : waiting;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) {
      status = 0;
      break;
    }
    if (Clock::now() >= until) {
      if (stage == waiting) {
        ::kill(-pid, SIGTERM);
        stage = termed;
        until = Clock::now() + term_grace;
        continue;
      }
      if (stage == termed) {
        kill_group();
        stage = killed;
        until = Clock::now() + std::chrono::milliseconds(500);
        continue;
      }
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Whatever the plugin started in its process group (or, escaping that, in its cgroup) goes with it.
  ::kill(-pid, SIGKILL);
  if (cgroup) cgroup->kill_all();
  reaped = true;
  if (exit_reason.empty()) {
    exit_reason = describe_exit(status);
    if (cgroup && cgroup->oom_kills() > oom_kills_at_start)
      exit_reason += cgroup->memory_limit() ? fmt::format(" by the kernel's OOM killer (its cgroup's memory limit of {} MiB)", *cgroup->memory_limit() >> 20)
                                            : std::string(" by the kernel's OOM killer (memory limit of its cgroup)");
  }
}

Child::~Child() {
  kill_group();
  reap(std::chrono::milliseconds(500));
  peer.reset();  // joins the reader
  if (stderr_reader.joinable()) stderr_reader.join();
}

}  // namespace xcore::inline v1::sandbox
