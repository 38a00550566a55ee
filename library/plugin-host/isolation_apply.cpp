#include "plugin-host/isolation_apply.hpp"

#include "plugin-host/filesystem_view.hpp"
#include "plugin-host/landlock.hpp"

#include <fmt/format.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace xcore::inline v1::sandbox {

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // ASan and TSan reserve terabytes of address space
#else
constexpr bool kSanitized = false;
#endif

std::vector<std::string>& applied() {
  static std::vector<std::string> v;
  return v;
}

Result<void> set_limit(int resource, std::uint64_t value, const char* name) {
  rlimit rl{static_cast<rlim_t>(value), static_cast<rlim_t>(value)};
  if (::setrlimit(resource, &rl) != 0)
    return Error{ErrorCode::unavailable, fmt::format("setrlimit({}) failed: {}", name, std::strerror(errno))};
  applied().push_back(fmt::format("rlimit:{}", name));
  return ok();
}

// A deny-list: everything else stays allowed, so ordinary plugins (and node, python) keep working.
Result<void> install_seccomp(bool network) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return Error{ErrorCode::unavailable, "seccomp_init failed"};
  auto deny = [&](const char* name, std::uint32_t action) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return 0;  // not on this architecture
    return seccomp_rule_add(ctx, action, nr, 0);
  };
  const std::uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  int rc = 0;
  for (const char* name : {"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick",
                           "unshare", "setns", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
                           "io_uring_register", "process_vm_readv", "process_vm_writev", "init_module", "finit_module",
                           "delete_module", "kexec_load", "kexec_file_load", "add_key", "request_key", "keyctl", "reboot",
                           "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
                           "syslog", "quotactl", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at"})
    rc |= deny(name, eperm);
  rc |= deny("chroot", eperm);
  // New namespaces: the plugin would hold every capability in a user namespace of its own, and could
  // mount over its view. clone() is refused with any namespace flag (plain fork and threads pass); clone3
  // passes its flags in memory a filter cannot read, so it is "not implemented" and libc falls back to clone.
  if (int clone_nr = seccomp_syscall_resolve_name("clone"); clone_nr != __NR_SCMP_ERROR)
    for (scmp_datum_t flag : std::initializer_list<scmp_datum_t>{CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
                               0x00000080UL /* CLONE_NEWTIME */})
      rc |= seccomp_rule_add(ctx, eperm, clone_nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
  rc |= deny("clone3", SCMP_ACT_ERRNO(ENOSYS));
  // Tracing another process is an attack, not an accident: the plugin dies.
  rc |= deny("ptrace", SCMP_ACT_KILL_PROCESS);
  if (!network) {
    // Local (AF_UNIX) sockets stay allowed; anything that reaches a network does not.
    int socket_nr = seccomp_syscall_resolve_name("socket");
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), socket_nr, 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  }
  if (rc != 0) {
    seccomp_release(ctx);
    return Error{ErrorCode::unavailable, "building the seccomp filter failed"};
  }
  rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) return Error{ErrorCode::unavailable, fmt::format("seccomp_load failed: {}", std::strerror(-rc))};
  applied().push_back("seccomp");
  return ok();
}

// Before the plugin's user is taken: no capability can come back (securebits locked: root is not special,
// no ambient raise), and none is left in the bounding set. Needs CAP_SETPCAP, which root has, and which a
// process holds in the user namespace it made.
Result<void> lock_capabilities() {
  constexpr unsigned long kSecbits = (1UL << 0) | (1UL << 1)     // NOROOT, locked
                                     | (1UL << 3)                // NO_SETUID_FIXUP locked (off: a setuid drops capabilities)
                                     | (1UL << 5)                // KEEP_CAPS locked (off)
                                     | (1UL << 6) | (1UL << 7);  // NO_CAP_AMBIENT_RAISE, locked
  if (::prctl(PR_SET_SECUREBITS, kSecbits, 0, 0, 0) != 0)
    return Error{ErrorCode::unavailable, fmt::format("locking the securebits failed: {}", std::strerror(errno))};
  for (int cap = 0; cap <= 63; ++cap)
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return Error{ErrorCode::unavailable, fmt::format("dropping capability {} from the bounding set failed: {}", cap, std::strerror(errno))};
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  applied().push_back("capabilities:bounding");
  return ok();
}

// After it: nothing effective, permitted or inheritable, whatever user namespace we are in.
Result<void> drop_capabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capset, &header, data) != 0) return Error{ErrorCode::unavailable, fmt::format("capset failed: {}", std::strerror(errno))};
  applied().push_back("capabilities:none");
  return ok();
}

// Gives up root for the sandbox's own user: no supplementary groups, real, effective and saved ids all changed.
Result<void> become_user(std::uint32_t uid, std::uint32_t gid) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0)
    return Error{ErrorCode::unavailable, fmt::format("switching to uid {} gid {} failed: {}", uid, gid, std::strerror(errno))};
  if (::getuid() != uid || ::geteuid() != uid || ::getegid() != gid)
    return Error{ErrorCode::unavailable, fmt::format("the switch to uid {} did not take", uid)};
  applied().push_back(fmt::format("uid:{}", uid));
  return ok();
}

// What every process needs to read besides what the policy grants; writes go to the data folder only.
Result<void> install_landlock(const IsolationPolicy& p) {
  LandlockRules rules;
  rules.read = {"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/dev", "/sys/devices/system/cpu"};
  rules.read.insert(rules.read.end(), p.read_paths.begin(), p.read_paths.end());
  rules.write = p.write_paths;
  if (!p.data_dir.empty()) rules.write.push_back(p.data_dir);
  rules.write.push_back("/dev/null");
  // The view's /tmp and /dev/shm are the plugin's own tmpfs, not the host's.
  const auto& done = applied();
  if (std::find(done.begin(), done.end(), "filesystem:view") != done.end()) rules.write.insert(rules.write.end(), {"/tmp", "/dev/shm"});
  rules.network = p.network;
  XCORE_ASSIGN_OR_RETURN(auto mechanisms, apply_landlock(rules));
  applied().insert(applied().end(), mechanisms.begin(), mechanisms.end());
  return ok();
}

}  // namespace

namespace {

bool write_proc(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// Points 0, 1 and 2 at /dev/null (opened before the plugin changes the namespace's root under us): a
// helper must not hold the protocol pipes open, or the host would never see end-of-file when the plugin dies.
void let_go_of_stdio(int null) {
  for (int fd = 0; fd <= 2; ++fd) ::dup2(null, fd);
  if (null > 2) ::close(null);
}

// The plugin's filesystem: only the system folders and what is granted, or at least the pid namespace's
// own /proc where a view cannot be built.
void enter_view(const IsolationPolicy& p) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::fprintf(stderr, "xcore-plugin-host: isolation not applied: a private mount namespace: %s\n", std::strerror(errno));
    return;
  }
  if (p.filesystem_view) {
    ViewRules rules{p.read_paths, p.write_paths, p.network};
    if (!p.data_dir.empty()) rules.write.push_back(p.data_dir);
    auto view = enter_filesystem_view(rules);
    if (view) {
      applied().insert(applied().end(), view->begin(), view->end());
      return;
    }
    const char* strict = std::getenv("XCORE_SANDBOX_STRICT");
    if (strict && std::string_view(strict) == "1") {
      std::fprintf(stderr, "xcore-plugin-host: %s\n", view.error().message.c_str());
      std::_Exit(70);
    }
    std::fprintf(stderr, "xcore-plugin-host: isolation not applied: the filesystem view: %s\n", view.error().message.c_str());
  }
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) applied().push_back("proc:private");
  else std::fprintf(stderr, "xcore-plugin-host: isolation not applied: private /proc: %s\n", std::strerror(errno));
}

// Exits the way `status` says a child ended: a death by signal is repeated on ourselves.
[[noreturn]] void end_like(int status) {
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (code > 128 && code < 128 + NSIG) {
    int sig = code - 128;
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    ::signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(sig);
  }
  ::_exit(code);
}

}  // namespace

Result<void> enter_namespaces(const IsolationPolicy& p) {
  if (!p.namespaces) return ok();
  const bool root = ::geteuid() == 0;
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  int flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
  if (!p.network) flags |= CLONE_NEWNET;
  if (!root) flags |= CLONE_NEWUSER;  // what lets an unprivileged user create the others
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return Error{ErrorCode::unavailable, fmt::format("cannot open /dev/null: {}", std::strerror(errno))};
  if (::unshare(flags) != 0) {
    ::close(null);
    return Error{ErrorCode::unavailable, fmt::format("unshare failed: {}", std::strerror(errno))};
  }
  if (!root) {
    // Keep the same ids inside; nothing maps to root.
    if (!write_proc("/proc/self/setgroups", "deny") || !write_proc("/proc/self/uid_map", fmt::format("{0} {0} 1\n", uid)) ||
        !write_proc("/proc/self/gid_map", fmt::format("{0} {0} 1\n", gid)))
      return Error{ErrorCode::unavailable, fmt::format("writing the user namespace's id maps failed: {}", std::strerror(errno))};
  }
  // No process of the sandbox keeps a folder of the host's as its working one (the view replaces "/").
  if (::chdir("/") != 0) return Error{ErrorCode::unavailable, fmt::format("chdir(/) failed: {}", std::strerror(errno))};
  // The next child is pid 1 of the new pid namespace: the reaper.
  pid_t reaper = ::fork();
  if (reaper < 0) return Error{ErrorCode::unavailable, fmt::format("fork failed: {}", std::strerror(errno))};
  if (reaper > 0) {  // the helper outside: waits, then ends as the plugin did
    // A stop request is for the plugin (it is in the same process group and gets it too). Were the helper
    // to die first, its reaper would be left to the system's init as a zombie.
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    let_go_of_stdio(null);
    int status = 0;
    while (::waitpid(reaper, &status, 0) < 0 && errno == EINTR) {
    }
    end_like(status);
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pid_t plugin = ::fork();
  if (plugin < 0) ::_exit(70);
  if (plugin > 0) {  // pid 1: reap everything; when the plugin ends, end everything else in the namespace
    let_go_of_stdio(null);
    int plugin_status = 0;
    for (;;) {
      int status = 0;
      pid_t r = ::wait(&status);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) break;  // no children left
      if (r == plugin) {
        plugin_status = status;
        ::kill(-1, SIGKILL);  // orphans and grandchildren (pid 1 itself is never hit)
      }
    }
    // pid 1 cannot die by most signals: encode the plugin's end in the exit code for the helper.
    ::_exit(WIFEXITED(plugin_status) ? WEXITSTATUS(plugin_status) : 128 + WTERMSIG(plugin_status));
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::close(null);
  enter_view(p);
  applied().push_back("namespace:pid");
  applied().push_back("namespace:ipc");
  applied().push_back("namespace:uts");
  applied().push_back("namespace:mount");
  if (!p.network) applied().push_back("namespace:net");
  if (!root) applied().push_back("namespace:user");
  return ok();
}

Result<void> join_cgroups(const IsolationPolicy& p) {
  for (const auto& dir : p.cgroups) {
    auto file = dir + "/cgroup.procs";
    if (!write_proc(file.c_str(), std::to_string(::getpid())))
      return Error{ErrorCode::unavailable, fmt::format("cannot join cgroup {}: {}", dir, std::strerror(errno))};
  }
  return ok();
}

Result<std::vector<std::string>> apply_in_child(const IsolationPolicy& p) {
  const char* strict_env = std::getenv("XCORE_SANDBOX_STRICT");
  const bool strict = strict_env && std::string_view(strict_env) == "1";
  auto step = [&](Result<void> r) -> Result<void> {
    if (!r && strict) return r;
    if (!r) std::fprintf(stderr, "xcore-plugin-host: isolation not applied: %s\n", r.error().message.c_str());
    return ok();
  };
  XCORE_TRY(step(lock_capabilities()));
  // The user first: rlimits such as RLIMIT_NPROC count the processes of the user that is in force.
  if (p.uid && p.gid) XCORE_TRY(step(become_user(*p.uid, *p.gid)));
  XCORE_TRY(step(drop_capabilities()));
  XCORE_TRY(step(set_limit(RLIMIT_CORE, 0, "core")));
  if (p.memory_bytes && !kSanitized) XCORE_TRY(step(set_limit(RLIMIT_AS, *p.memory_bytes, "as")));
  if (p.data_bytes && !kSanitized) XCORE_TRY(step(set_limit(RLIMIT_DATA, *p.data_bytes, "data")));
  if (p.cpu_seconds) XCORE_TRY(step(set_limit(RLIMIT_CPU, *p.cpu_seconds, "cpu")));
  if (p.open_files) XCORE_TRY(step(set_limit(RLIMIT_NOFILE, *p.open_files, "nofile")));
  if (p.file_size_bytes) XCORE_TRY(step(set_limit(RLIMIT_FSIZE, *p.file_size_bytes, "fsize")));
  if (p.processes) XCORE_TRY(step(set_limit(RLIMIT_NPROC, *p.processes, "nproc")));
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) applied().push_back("no_new_privs");
  else XCORE_TRY(step(Error{ErrorCode::unavailable, fmt::format("no_new_privs failed: {}", std::strerror(errno))}));
  if (p.landlock) XCORE_TRY(step(install_landlock(p)));
  if (p.seccomp) XCORE_TRY(step(install_seccomp(p.network)));
  return applied();
}

const std::vector<std::string>& applied_mechanisms() { return applied(); }

}  // namespace xcore::inline v1::sandbox
