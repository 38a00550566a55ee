#include "plugin-host/filesystem_view.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace xcore::inline v1::sandbox {

namespace {

// Where the staging tmpfs goes in our private namespace; after the first pivot it is the root, the host's
// root is at /oldroot and the plugin's root is built at /newroot.
constexpr const char* kBase = "/tmp";
constexpr std::string_view kOld = "/oldroot";
constexpr std::string_view kNew = "/newroot";

// What every process needs; symlinks among them (usrmerge's /bin -> usr/bin) are made again as symlinks.
constexpr const char* kSystem[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys/devices/system/cpu"};
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

struct Entry {
  enum Kind { tmpfs, proc, bind, device, symlink } kind;
  std::string target;  // the path as the plugin sees it
  std::string source;  // bind, device: the host's real path; symlink: the link's text; tmpfs: mount options
  bool read_only = false;
};

Error failure(std::string what) { return Error{ErrorCode::unavailable, fmt::format("{}: {}", what, std::strerror(errno))}; }

bool beneath(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/';
}

std::string normal(const std::string& p) { return std::filesystem::path(p).lexically_normal().string(); }

// Every missing component of `path` made 0755 (below the new root, which holds nothing of the plugin's).
bool make_dirs(const std::string& path) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

bool make_mount_point(const std::string& target, bool directory) {
  if (directory) return make_dirs(target);
  if (!make_dirs(std::filesystem::path(target).parent_path().string())) return false;
  int fd = ::open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
  if (fd < 0) return errno == EEXIST;
  ::close(fd);
  return true;
}

// Sets flags on a mount (and, `recursive`, on every mount beneath it); only ever adds restrictions, which a user namespace
// allows (clearing a flag the host locked would be refused).
int restrict_mount(const std::string& target, std::uint64_t attr_set, bool recursive = true) {
  mount_attr attr{};
  attr.attr_set = attr_set;
  if (::syscall(SYS_mount_setattr, AT_FDCWD, target.c_str(), recursive ? AT_RECURSIVE : 0, &attr, sizeof attr) == 0) return 0;
  if (errno != ENOSYS) return -1;
  // Kernels before 5.12: a remount of the top mount only, keeping the flags it already has.
  struct statvfs sv{};
  if (::statvfs(target.c_str(), &sv) != 0) return -1;
  unsigned long flags = MS_REMOUNT | MS_BIND;
  if (attr_set & MOUNT_ATTR_RDONLY) flags |= MS_RDONLY;
  if ((attr_set & MOUNT_ATTR_NOSUID) || (sv.f_flag & ST_NOSUID)) flags |= MS_NOSUID;
  if ((attr_set & MOUNT_ATTR_NODEV) || (sv.f_flag & ST_NODEV)) flags |= MS_NODEV;
  if ((attr_set & MOUNT_ATTR_NOEXEC) || (sv.f_flag & ST_NOEXEC)) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return ::mount(nullptr, target.c_str(), nullptr, flags, nullptr);
}

// The host path a bind reads from, resolved while the host's root is still ours (so absolute symlinks such
// as /var/run -> /run mean what they mean on the host); empty when it does not exist.
std::string real_source(const std::string& path) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return {};
  return resolved;
}

// The entries of the view, sorted so that a folder is mounted before anything beneath it.
std::vector<Entry> plan(const ViewRules& rules) {
  std::vector<Entry> out;
  out.push_back({Entry::tmpfs, "/tmp", fmt::format("mode=1777,size={}", rules.tmp_bytes)});
  out.push_back({Entry::tmpfs, "/run", "mode=0755,size=1m"});
  out.push_back({Entry::tmpfs, "/dev", "mode=0755,size=64k"});
  out.push_back({Entry::tmpfs, "/dev/shm", fmt::format("mode=1777,size={}", rules.tmp_bytes)});
  out.push_back({Entry::proc, "/proc", {}});
  for (const char* d : kDevices)
    if (auto src = real_source(fmt::format("/dev/{}", d)); !src.empty()) out.push_back({Entry::device, fmt::format("/dev/{}", d), src});
  for (auto [link, to] : {std::pair{"fd", "/proc/self/fd"}, std::pair{"stdin", "/proc/self/fd/0"}, std::pair{"stdout", "/proc/self/fd/1"},
                          std::pair{"stderr", "/proc/self/fd/2"}})
    out.push_back({Entry::symlink, fmt::format("/dev/{}", link), to});
  for (const char* dir : kSystem) {
    struct stat st{};
    if (::lstat(dir, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char text[PATH_MAX];
      ssize_t n = ::readlink(dir, text, sizeof text - 1);
      if (n > 0) out.push_back({Entry::symlink, dir, std::string(text, static_cast<std::size_t>(n))});
    } else {
      out.push_back({Entry::bind, dir, dir, true});
    }
  }
  if (rules.network)
    if (auto conf = real_source("/etc/resolv.conf"); !conf.empty() && !beneath(conf, "/etc")) out.push_back({Entry::bind, conf, conf, true});

  // A grant beneath a writable one is visible already, and the plugin could have put a symlink on its
  // path; a read grant beneath another read grant is visible already.
  std::vector<std::string> write, read;
  for (const auto& w : rules.write) write.push_back(normal(w));
  for (const auto& r : rules.read) read.push_back(normal(r));
  auto covered = [&](const std::string& p, bool writable) {
    for (const auto& w : write)
      if (beneath(p, w)) return true;
    if (!writable)
      for (const auto& r : read)
        if (beneath(p, r)) return true;
    return false;
  };
  for (const auto& w : write)
    if (!covered(w, true))
      if (auto src = real_source(w); !src.empty()) out.push_back({Entry::bind, w, src, false});
  for (const auto& r : read)
    if (!covered(r, false) && std::find(write.begin(), write.end(), r) == write.end())
      if (auto src = real_source(r); !src.empty()) out.push_back({Entry::bind, r, src, true});
  std::stable_sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.target < b.target; });
  return out;
}

Result<void> build(const Entry& e) {
  const std::string target = std::string(kNew) + e.target;
  switch (e.kind) {
    case Entry::tmpfs:
      if (!make_dirs(target)) return failure(fmt::format("creating {}", e.target));
      if (::mount("tmpfs", target.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, e.source.c_str()) != 0) return failure(fmt::format("tmpfs on {}", e.target));
      return ok();
    case Entry::proc:
      if (!make_dirs(target)) return failure("creating /proc");
      // The pid namespace's own: the host's processes are not even visible. Needs the host's /proc still
      // reachable (at /oldroot/proc): the kernel lets a user namespace mount proc only where one is visible.
      if (::mount("proc", target.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return failure("a private /proc");
      return ok();
    case Entry::symlink:
      if (!make_dirs(std::filesystem::path(target).parent_path().string()) || ::symlink(e.source.c_str(), target.c_str()) != 0)
        return failure(fmt::format("the symlink {}", e.target));
      return ok();
    case Entry::bind:
    case Entry::device: {
      const std::string source = std::string(kOld) + e.source;
      struct stat st{};
      if (::stat(source.c_str(), &st) != 0) return ok();  // gone since the plan: nothing to show
      if (!make_mount_point(target, S_ISDIR(st.st_mode))) return failure(fmt::format("the mount point {}", e.target));
      if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) return failure(fmt::format("binding {}", e.target));
      std::uint64_t attrs = MOUNT_ATTR_NOSUID;
      if (e.kind == Entry::bind) attrs |= MOUNT_ATTR_NODEV;
      if (e.read_only) attrs |= MOUNT_ATTR_RDONLY;
      if (restrict_mount(target, attrs) != 0) return failure(fmt::format("making {} {}", e.target, e.read_only ? "read-only" : "nosuid"));
      return ok();
    }
  }
  return ok();
}

[[noreturn]] void cannot_go_on(const Error& e) {
  std::fprintf(stderr, "xcore-plugin-host: the filesystem view could not be built: %s\n", e.message.c_str());
  std::_Exit(70);
}

}  // namespace

Result<std::vector<std::string>> enter_filesystem_view(const ViewRules& rules) {
  auto entries = plan(rules);  // paths resolved in the host's view
  if (::mount("tmpfs", kBase, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") != 0) return failure("a tmpfs for the new root");
  const std::string base(kBase);
  const std::string newroot = base + std::string(kNew), oldroot = base + std::string(kOld);
  if (::mkdir(newroot.c_str(), 0755) != 0 || ::mkdir(oldroot.c_str(), 0755) != 0 ||
      ::mount(newroot.c_str(), newroot.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 || ::syscall(SYS_pivot_root, kBase, oldroot.c_str()) != 0) {
    Error e = failure("changing to the new root");
    ::umount2(kBase, MNT_DETACH);
    return e;
  }
  // From here on there is no way back: the process is already between two roots.
  if (::chdir("/") != 0) cannot_go_on(failure("entering the new root"));
  for (const auto& e : entries)
    if (auto r = build(e); !r) cannot_go_on(r.error());
  // The skeleton itself (the mount points) and /dev are read-only; /tmp, /run and /dev/shm stay writable.
  for (const char* top : {"", "/dev"})
    if (restrict_mount(std::string(kNew) + top + "/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, /*recursive=*/false) != 0)
      cannot_go_on(failure(fmt::format("making {} read-only", *top ? top : "/")));
  // The host's root goes (as one tree: a user namespace may not take apart what it inherited), then the
  // staging tmpfs: pivot_root(".", ".") stacks it over the new root, and the unmount takes it off.
  if (::umount2(std::string(kOld).c_str(), MNT_DETACH) != 0) cannot_go_on(failure("detaching the host's root"));
  if (::chdir(std::string(kNew).c_str()) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 || ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0)
    cannot_go_on(failure("changing to the plugin's root"));
  return std::vector<std::string>{"filesystem:view", "proc:private"};
}

}  // namespace xcore::inline v1::sandbox
