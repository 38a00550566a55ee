#include "confined_root.hpp"

#include <xcore/sdk.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace files_plugin {

using xcore::sdk::Error;

ConfinedRoot::ConfinedRoot(const std::filesystem::path& root) : root_(root) {
  fd_ = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0)
    throw Error(XCORE_E_FAILED_PRECONDITION, "root folder '" + root.string() + "' cannot be opened: " + std::strerror(errno));
}

ConfinedRoot::~ConfinedRoot() {
  if (fd_ >= 0) ::close(fd_);
}

int ConfinedRoot::open(std::string_view relative, int flags, unsigned mode) const {
  const std::string rel(relative);
  if (rel.empty()) throw xcore::sdk::invalid_argument("path is empty");
  if (rel.find('\0') != std::string::npos) throw xcore::sdk::invalid_argument("path contains a NUL byte");
  if (rel.front() == '/') throw xcore::sdk::permission_denied("'" + rel + "': absolute paths are not allowed; give a path relative to the root");
  for (const auto& part : std::filesystem::path(rel))
    if (part == "..") throw xcore::sdk::permission_denied("'" + rel + "': '..' is not allowed");

  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, fd_, rel.c_str(), &how, sizeof(how)));
  if (fd < 0 && errno == ENOSYS) {
    // Kernels before 5.6: resolve by hand and refuse anything that lands outside, then never follow a
    // final symlink.
    std::error_code ec;
    auto base = std::filesystem::canonical(root_, ec);
    auto target = std::filesystem::weakly_canonical(root_ / rel, ec);
    auto b = base.string() + "/";
    if (ec || (target != base && target.string().rfind(b, 0) != 0))
      throw xcore::sdk::permission_denied("'" + rel + "' leads outside the root");
    fd = ::openat(fd_, rel.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode);
  }
  if (fd >= 0) return fd;
  int err = errno;
  switch (err) {
    case EXDEV:
    case ELOOP: throw xcore::sdk::permission_denied("'" + rel + "' leads outside the root (through a symbolic link)");
    case ENOENT: throw xcore::sdk::not_found("'" + rel + "' does not exist");
    case ENOTDIR: throw xcore::sdk::invalid_argument("'" + rel + "': a part of the path is not a folder");
    case EISDIR: throw xcore::sdk::invalid_argument("'" + rel + "' is a folder");
    case EACCES:
    case EPERM: throw xcore::sdk::permission_denied("'" + rel + "': " + std::strerror(err));
    default: throw Error(XCORE_E_INTERNAL, "'" + rel + "': " + std::strerror(err));
  }
}

}  // namespace files_plugin
