// A plugin binary mapped into this process, shared by every instance created from it. Trusted plugins of
// any Manager (one per tenant, say) that load the same content share one module: the process-wide cache
// below maps each binary version once, and a module is unmapped when its last instance is gone.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include <xcore/error.hpp>
#include <xcore/plugin.h>

#include "runners/abi_tag.hpp"

namespace xcore::inline v1 {

class PluginModule {
 public:
  // Maps `file` as it is (the sandbox's child loads its own binary this way). The ABI tag is read from
  // the file and checked before any of its code runs. `owned`: the file is a private copy, removed with
  // the module.
  static Result<std::shared_ptr<PluginModule>> load(const std::filesystem::path& file, bool owned);
  ~PluginModule();
  PluginModule(const PluginModule&) = delete;
  PluginModule& operator=(const PluginModule&) = delete;

  const AbiTag& tag() const { return tag_; }
  const xcore_plugin_api* api() const { return api_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  struct Library;
  PluginModule() = default;
  std::unique_ptr<Library> lib_;
  AbiTag tag_;
  const xcore_plugin_api* api_ = nullptr;
  std::filesystem::path file_;
  bool owned_ = false;
};

// The module for `binary`'s content: the one already mapped if any instance of the same content lives
// (keyed by a 64-bit hash of the content and its size; the hash is kept per file version, by inode, size
// and modification time, so a binary is read once), else a private copy made under `shadow_dir` (a
// rebuild never rewrites mapped code) and mapped.
Result<std::shared_ptr<PluginModule>> shared_module(const std::filesystem::path& binary, const std::filesystem::path& shadow_dir,
                                                    std::string_view plugin_id);

// Whether a module's file is still mapped after its last instance went (glibc keeps a library with
// thread_local destructors or STB_GNU_UNIQUE symbols).
bool still_mapped(const std::filesystem::path& file);

}  // namespace xcore::inline v1
