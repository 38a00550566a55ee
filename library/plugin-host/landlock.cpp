#include "plugin-host/landlock.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace xcore::inline v1::sandbox {

namespace {

// The kernel's ABI, spelled out here so that building against older kernel headers loses nothing: the
// ruleset's size tells the kernel which fields we know.
struct RulesetAttr {
  std::uint64_t handled_access_fs;
  std::uint64_t handled_access_net;  // ABI 4
  std::uint64_t scoped;              // ABI 6
};
struct [[gnu::packed]] PathBeneathAttr {
  std::uint64_t allowed_access;
  std::int32_t parent_fd;
};
constexpr long kCreateRuleset = 444, kAddRule = 445, kRestrictSelf = 446;  // the same on every architecture
constexpr std::uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

constexpr std::uint64_t kExecute = 1ull << 0, kWriteFile = 1ull << 1, kReadFile = 1ull << 2, kReadDir = 1ull << 3,
                        kRemoveDir = 1ull << 4, kRemoveFile = 1ull << 5, kMakeChar = 1ull << 6, kMakeDir = 1ull << 7,
                        kMakeReg = 1ull << 8, kMakeSock = 1ull << 9, kMakeFifo = 1ull << 10, kMakeBlock = 1ull << 11,
                        kMakeSym = 1ull << 12, kRefer = 1ull << 13, kTruncate = 1ull << 14, kIoctlDev = 1ull << 15;
constexpr std::uint64_t kNetBindTcp = 1ull << 0, kNetConnectTcp = 1ull << 1;
constexpr std::uint64_t kScopeAbstractUnix = 1ull << 0, kScopeSignal = 1ull << 1;

// Rights that make sense on a file (not a directory) rule.
constexpr std::uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

std::uint64_t fs_rights(int abi) {
  std::uint64_t r = kExecute | kWriteFile | kReadFile | kReadDir | kRemoveDir | kRemoveFile | kMakeChar | kMakeDir | kMakeReg |
                    kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) r |= kRefer;
  if (abi >= 3) r |= kTruncate;
  if (abi >= 5) r |= kIoctlDev;
  return r;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int landlock_abi() {
  long v = ::syscall(kCreateRuleset, nullptr, 0, kCreateRulesetVersion);
  return v < 0 ? 0 : static_cast<int>(v);
}

Result<std::vector<std::string>> apply_landlock(const LandlockRules& rules) {
  const int abi = landlock_abi();
  if (abi <= 0) return Error{ErrorCode::unavailable, fmt::format("Landlock is not available in this kernel: {}", std::strerror(errno))};
  const std::uint64_t handled = fs_rights(abi);
  RulesetAttr attr{handled, 0, 0};
  std::size_t size = sizeof(std::uint64_t);
  std::vector<std::string> applied{"landlock:fs"};
  if (abi >= 4 && !rules.network) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;  // handled, never granted
    size = 2 * sizeof(std::uint64_t);
    applied.push_back("landlock:net");
  }
  if (abi >= 6) {
    // No signals to, and no abstract sockets of, processes outside the sandbox: the host, its other plugins.
    attr.scoped = kScopeSignal | kScopeAbstractUnix;
    size = sizeof(RulesetAttr);
    applied.push_back("landlock:scope");
  }
  Fd ruleset{static_cast<int>(::syscall(kCreateRuleset, &attr, size, 0))};
  if (ruleset.fd < 0) return Error{ErrorCode::unavailable, fmt::format("landlock_create_ruleset failed: {}", std::strerror(errno))};

  const std::uint64_t read = kExecute | kReadFile | kReadDir;
  auto allow = [&](const std::string& path, std::uint64_t access) -> Result<void> {
    Fd fd{::open(path.c_str(), O_PATH | O_CLOEXEC)};
    if (fd.fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return ok();  // nothing there to grant
      return Error{ErrorCode::unavailable, fmt::format("Landlock: cannot open '{}': {}", path, std::strerror(errno))};
    }
    struct stat st {};
    if (::fstat(fd.fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= kFileRights;
    PathBeneathAttr rule{access & handled, fd.fd};
    if (::syscall(kAddRule, ruleset.fd, kRulePathBeneath, &rule, 0) != 0)
      return Error{ErrorCode::unavailable, fmt::format("Landlock: cannot grant '{}': {}", path, std::strerror(errno))};
    return ok();
  };
  for (const auto& p : rules.read) XCORE_TRY(allow(p, read));
  for (const auto& p : rules.write) XCORE_TRY(allow(p, handled));
  if (::syscall(kRestrictSelf, ruleset.fd, 0) != 0)
    return Error{ErrorCode::unavailable, fmt::format("landlock_restrict_self failed: {}", std::strerror(errno))};
  return applied;
}

}  // namespace xcore::inline v1::sandbox
