// File access confined to one folder. Paths are relative; '..' and absolute paths are refused up front,
// and openat2(RESOLVE_BENEATH) makes the kernel refuse any symlink that would lead outside.
#pragma once

#include <filesystem>
#include <string_view>

namespace files_plugin {

class ConfinedRoot {
 public:
  explicit ConfinedRoot(const std::filesystem::path& root);  // throws sdk::Error
  ~ConfinedRoot();
  ConfinedRoot(const ConfinedRoot&) = delete;
  ConfinedRoot& operator=(const ConfinedRoot&) = delete;

  // An fd for `relative` opened with `flags` (O_CLOEXEC is added). Throws sdk::Error naming the problem.
  int open(std::string_view relative, int flags, unsigned mode = 0644) const;
  const std::filesystem::path& path() const { return root_; }

 private:
  std::filesystem::path root_;
  int fd_ = -1;
};

}  // namespace files_plugin
