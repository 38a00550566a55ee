// A sandboxed test plugin that misbehaves on request: one tool per fault. The host must survive every one.
#include <xcore/sdk.hpp>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sched.h>
#include <string>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <dirent.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::ToolOutput;

namespace {
// The protocol pipe is some fd other than 0, 1 and 2: find every writable pipe and write `data` to it,
// `times` times (a 100 MB line is streamed, not allocated: the plugin runs under a memory limit).
void write_to_protocol(const std::string& data, int times = 1) {
  for (int fd = 3; fd < 256; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) continue;
    int fl = ::fcntl(fd, F_GETFL);
    if ((fl & O_ACCMODE) == O_RDONLY) continue;
    ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    for (int t = 0; t < times; ++t) {
      std::size_t done = 0;
      while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
      }
    }
  }
}
}  // namespace

class Hostile : public xcore::sdk::Plugin {
 public:
  Hostile() {
    auto fault = [this](const char* name, std::function<ToolOutput(const json::object&)> fn) {
      tool(name).handler([fn](const json::object& a, const Context&) { return fn(a); });
    };
    fault("ok", [](const json::object& a) { return ToolOutput(json::object{{"pid", ::getpid()}, {"args", a}}); });
    // A host call written past the SDK, claiming a context of its own (another tenant, a user): the host
    // must answer it as a call for nobody, whatever it claims.
    fault("forge_context", [](const json::object&) {
      write_to_protocol(R"({"jsonrpc":"2.0","id":"forged-1","method":"xcore/host/emit_hook","params":{"hook":"hostile.forged","payload":{},)"
                        R"("context":{"tenant":"victim","user":"root","trace_id":"forged"}}})"
                        "\n");
      return ToolOutput::text("forged");
    });
    // Through the SDK, within the call it serves: an event in that call's tenant, then one naming another.
    tool("emit_in_tenants").handler([this](const json::object&, const Context& ctx) {
      json::object out;
      host().call("emit_hook", json::object{{"hook", "hostile.own"}, {"payload", json::object{}}}, ctx);
      try {
        host().call("emit_hook", json::object{{"hook", "hostile.cross"}, {"payload", json::object{}}, {"tenant", "victim"}}, ctx);
        out["cross"] = "emitted";
      } catch (const std::exception& e) {
        out["cross"] = e.what();
      }
      return ToolOutput(std::move(out));
    });
    fault("segfault", [](const json::object&) -> ToolOutput {
      volatile int* p = nullptr;
      *p = 1;
      return ToolOutput::text("unreachable");
    });
    fault("abort", [](const json::object&) -> ToolOutput { std::abort(); });
    fault("exit", [](const json::object&) -> ToolOutput { std::_Exit(3); });
    fault("spin", [](const json::object&) -> ToolOutput {
      for (volatile unsigned long i = 0;; ++i) {
      }
    });
    fault("never_answer", [](const json::object&) -> ToolOutput {
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    });
    fault("sleep", [](const json::object& a) {
      std::this_thread::sleep_for(std::chrono::milliseconds(a.at("ms").to_number<int>()));
      return ToolOutput::text("slept");
    });
    fault("garbage", [](const json::object&) {
      write_to_protocol("this is not JSON-RPC\n");
      return ToolOutput::text("wrote garbage");
    });
    fault("huge_line", [](const json::object&) {
      write_to_protocol(std::string(1u << 20, 'x'), 100);
      return ToolOutput::text("wrote 100 MB");
    });
    fault("close_stdout", [](const json::object&) {
      for (int fd = 3; fd < 256; ++fd) {
        struct stat st {};
        if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && (::fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY) ::close(fd);
      }
      std::this_thread::sleep_for(std::chrono::seconds(30));
      return ToolOutput::text("closed");
    });
    fault("memory_bomb", [](const json::object&) {
      std::vector<char*> blocks;
      try {
        for (int i = 0; i < 64; ++i) {  // 64 x 16 MiB = 1 GiB at most, touched
          char* b = new char[16u << 20];
          std::memset(b, 1, 16u << 20);
          blocks.push_back(b);
        }
      } catch (const std::bad_alloc&) {
        for (auto* b : blocks) delete[] b;
        return ToolOutput::error("out of memory after " + std::to_string(blocks.size() * 16) + " MiB");
      }
      for (auto* b : blocks) delete[] b;
      return ToolOutput::text("allocated 1 GiB");
    });
    fault("fd_exhaust", [](const json::object&) {
      std::vector<int> fds;
      int err = 0;
      for (int i = 0; i < 100000; ++i) {
        int fd = ::open("/dev/null", O_RDONLY);
        if (fd < 0) {
          err = errno;
          break;
        }
        fds.push_back(fd);
      }
      for (int fd : fds) ::close(fd);
      return ToolOutput(json::object{{"opened", fds.size()}, {"error", std::strerror(err)}});
    });
    fault("socket", [](const json::object&) {
      int s = ::socket(AF_INET, SOCK_STREAM, 0);
      int err = errno;
      if (s >= 0) ::close(s);
      return ToolOutput(json::object{{"opened", s >= 0}, {"error", s >= 0 ? "" : std::strerror(err)}});
    });
    fault("signal_storm", [](const json::object&) {
      for (int i = 0; i < 1000; ++i) ::kill(::getppid(), SIGUSR1);
      ::kill(0, SIGUSR2);  // its whole process group, itself included
      return ToolOutput::text("stormed");
    });
    fault("orphan_then_exit", [](const json::object&) -> ToolOutput {
      if (::fork() == 0) {  // a grandchild that keeps the protocol pipes open
        for (;;) ::pause();
      }
      std::_Exit(4);
    });
    fault("zombies", [](const json::object&) {
      int made = 0;
      for (int i = 0; i < 50; ++i)
        if (pid_t p = ::fork(); p == 0) std::_Exit(0);
        else if (p > 0) ++made;
      return ToolOutput(json::object{{"zombies", made}});
    });
    fault("read_host_memory", [](const json::object& a) {
      auto path = "/proc/" + std::to_string(a.at("pid").to_number<int>()) + "/mem";
      int fd = ::open(path.c_str(), O_RDONLY);
      int err = errno;
      if (fd >= 0) ::close(fd);
      return ToolOutput(json::object{{"opened", fd >= 0}, {"error", fd >= 0 ? "" : std::strerror(err)}});
    });
    fault("escape_attempts", [](const json::object&) {
      // What a plugin tries to widen its view: new namespaces (in which it would hold every capability),
      // a chroot, and the capabilities it holds now.
      auto try_clone = [](unsigned long flags) {
        pid_t p = static_cast<pid_t>(::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0));
        if (p == 0) ::_exit(0);
        int err = errno;
        if (p > 0) ::waitpid(p, nullptr, 0);
        return json::object{{"made", p > 0}, {"error", p > 0 ? "" : std::strerror(err)}};
      };
      errno = 0;
      int chroot_rc = ::chroot("/tmp");
      int chroot_err = errno;
      std::string cap_eff, no_new_privs, seccomp;
      std::ifstream status("/proc/self/status");
      for (std::string line; std::getline(status, line);) {
        auto value = [&](std::string_view key) { return line.substr(key.size() + line.substr(key.size()).find_first_not_of(" \t")); };
        if (line.starts_with("CapEff:")) cap_eff = value("CapEff:");
        if (line.starts_with("NoNewPrivs:")) no_new_privs = value("NoNewPrivs:");
        if (line.starts_with("Seccomp:")) seccomp = value("Seccomp:");
      }
      std::string cap_bnd;
      std::ifstream again("/proc/self/status");
      for (std::string line; std::getline(again, line);)
        if (line.starts_with("CapBnd:")) cap_bnd = line.substr(line.find_first_not_of(" \t", 7));
      return ToolOutput(json::object{{"clone_newuser", try_clone(CLONE_NEWUSER)},
                                     {"clone_newns", try_clone(CLONE_NEWNS)},
                                     {"clone_newnet", try_clone(CLONE_NEWNET)},
                                     {"clone3", ::syscall(435 /* clone3 */, nullptr, 0) == 0 ? "made" : std::strerror(errno)},
                                     {"chroot", chroot_rc == 0 ? "succeeded" : std::strerror(chroot_err)},
                                     {"cap_eff", cap_eff},
                                     {"cap_bnd", cap_bnd},
                                     {"no_new_privs", no_new_privs},
                                     {"seccomp", seccomp}});
    });
    fault("stderr_flood", [](const json::object& a) {
      const int lines = a.at("lines").to_number<int>();
      const std::string line = std::string(79, 'e') + "\n";
      for (int i = 0; i < lines; ++i)
        if (::write(2, line.data(), line.size()) < 0) break;
      return ToolOutput(json::object{{"written", lines}});
    });
    fault("fork_bomb", [](const json::object&) {
      // Every child forks too, without end; the process limit is all that stops it. The tool answers how
      // many it made itself before the limit.
      int made = 0, err = 0;
      for (int i = 0; i < 5000; ++i) {
        pid_t p = ::fork();
        if (p == 0) {
          for (;;)
            if (::fork() < 0) ::pause();
        }
        if (p < 0) {
          err = errno;
          break;
        }
        ++made;
      }
      return ToolOutput(json::object{{"forked", made}, {"error", std::strerror(err)}});
    });
    fault("write_file", [](const json::object& a) {
      // Anywhere the caller names: the sandbox decides.
      std::string path(a.at("path").as_string());
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      int err = errno;
      if (fd >= 0) {
        (void)::write(fd, "x", 1);
        ::close(fd);
      }
      return ToolOutput(json::object{{"written", fd >= 0}, {"error", fd >= 0 ? "" : std::strerror(err)}});
    });
    fault("whoami", [](const json::object&) {
      char cwd[4096] = {};
      (void)::getcwd(cwd, sizeof(cwd));
      const char* data = std::getenv("XCORE_PLUGIN_DATA");
      const char* secret = std::getenv("XCORE_TEST_SECRET");
      return ToolOutput(json::object{{"uid", ::getuid()}, {"cwd", cwd}, {"data", data ? data : ""}, {"secret_seen", secret != nullptr}});
    });
    // What the plugin can see: a file read, a folder listed, a unix socket connected, each with the errno text.
    fault("read_file", [](const json::object& a) {
      std::string path(a.at("path").as_string());
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      int err = errno;
      std::string text;
      if (fd >= 0) {
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) text.assign(buf, static_cast<std::size_t>(n));
        ::close(fd);
      }
      return ToolOutput(json::object{{"read", fd >= 0}, {"text", text}, {"error", fd >= 0 ? "" : std::strerror(err)}});
    });
    fault("list_dir", [](const json::object& a) {
      std::string path(a.at("path").as_string());
      json::array names;
      DIR* d = ::opendir(path.c_str());
      int err = errno;
      if (d) {
        while (dirent* e = ::readdir(d))
          if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
        ::closedir(d);
      }
      return ToolOutput(json::object{{"names", names}, {"error", d ? "" : std::strerror(err)}});
    });
    fault("connect_unix", [](const json::object& a) {
      std::string path(a.at("path").as_string());
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
      int r = fd < 0 ? -1 : ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      int err = errno;
      if (fd >= 0) ::close(fd);
      return ToolOutput(json::object{{"connected", r == 0}, {"error", r == 0 ? "" : std::strerror(err)}});
    });
    fault("ptrace_parent", [](const json::object&) {
      long r = ::ptrace(PTRACE_ATTACH, ::getppid(), nullptr, nullptr);
      return ToolOutput(json::object{{"attached", r == 0}});
    });
  }
};

XCORE_PLUGIN(Hostile, "hostile", "1.0.0")
