// Boost.DLL over std::filesystem rather than Boost.Filesystem (which Debian's Boost would need linked):
// defined here, the one file that includes it, so no consumer of libxcore inherits the definition.
#define BOOST_DLL_USE_STD_FS 1

#include "runners/plugin_module.hpp"

#include <boost/dll/shared_library.hpp>
#include <dlfcn.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <atomic>
#include <cstddef>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unistd.h>

namespace xcore::inline v1 {

struct PluginModule::Library {
  boost::dll::shared_library lib;
};

Result<std::shared_ptr<PluginModule>> PluginModule::load(const std::filesystem::path& file, bool owned) {
  // 1. The tag, read from the file: nothing of the plugin has run yet.
  XCORE_ASSIGN_OR_RETURN(auto tag, read_abi_tag(file));
  if (tag.abi_major != XCORE_ABI_MAJOR || tag.abi_minor > XCORE_ABI_MINOR)
    return Error{ErrorCode::incompatible,
                 fmt::format("plugin '{}' was built for plugin ABI {}.{}, this host provides {}.{} (same major and a minor "
                             "no newer than the host's are required): rebuild the plugin against this SDK",
                             tag.plugin_id, tag.abi_major, tag.abi_minor, XCORE_ABI_MAJOR, XCORE_ABI_MINOR)};
  std::shared_ptr<PluginModule> m(new PluginModule());
  m->lib_ = std::make_unique<Library>();
  m->tag_ = std::move(tag);
  m->file_ = file;
  m->owned_ = owned;
  // 2. Map it. RTLD_NOW: an unresolved symbol fails here, not in the middle of a call.
  try {
    m->lib_->lib.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return Error{ErrorCode::incompatible, fmt::format("plugin '{}': cannot load '{}': {}", m->tag_.plugin_id, file.string(), e.what())};
  }
  if (!m->lib_->lib.has(XCORE_ENTRY_SYMBOL))
    return Error{ErrorCode::incompatible, fmt::format("plugin '{}': '{}' exports no {}", m->tag_.plugin_id, file.filename().string(), XCORE_ENTRY_SYMBOL)};
  auto entry = m->lib_->lib.get<const xcore_plugin_api*()>(XCORE_ENTRY_SYMBOL);
  const xcore_plugin_api* api = entry();
  // ABI 1.0's table ends with `handle`. Later minors append members; a plugin built against an older minor
  // has a shorter table, which is fine: members past its size are treated as absent.
  constexpr std::size_t kPluginApiSize_1_0 = offsetof(xcore_plugin_api, handle) + sizeof(api->handle);
  if (!api || api->abi_major != XCORE_ABI_MAJOR || api->size < kPluginApiSize_1_0 || !api->create || !api->destroy || !api->call_tool)
    return Error{ErrorCode::incompatible, fmt::format("plugin '{}': its entry table is missing or malformed", m->tag_.plugin_id)};
  m->api_ = api;
  return m;
}

PluginModule::~PluginModule() {
  if (lib_) lib_->lib.unload();
  if (owned_) {
    std::error_code ec;
    std::filesystem::remove(file_, ec);
  }
}

bool still_mapped(const std::filesystem::path& file) {
  if (void* still = ::dlopen(file.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
    ::dlclose(still);
    return true;
  }
  return false;
}

namespace {

struct ModuleCache {
  std::mutex mutex;
  // A file version (device, inode, size, modification time in ns) -> the hash of its content.
  std::map<std::tuple<dev_t, ino_t, off_t, long long>, std::pair<std::size_t, off_t>> hashes;
  // (content hash, size) -> the module mapped for it, while any instance holds it.
  std::map<std::pair<std::size_t, off_t>, std::weak_ptr<PluginModule>> modules;
  std::atomic<std::uint64_t> counter{0};
};

ModuleCache& cache() {
  static auto* c = new ModuleCache();  // never destroyed: modules may outlive static destruction
  return *c;
}

}  // namespace

Result<std::shared_ptr<PluginModule>> shared_module(const std::filesystem::path& binary, const std::filesystem::path& shadow_dir,
                                                    std::string_view plugin_id) {
  auto& c = cache();
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error{ErrorCode::not_found, fmt::format("plugin '{}': binary '{}' not found", plugin_id, binary.string())};
  const auto version = std::make_tuple(st.st_dev, st.st_ino, st.st_size, static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec);
  std::lock_guard lock(c.mutex);
  std::string content;
  std::pair<std::size_t, off_t> key;
  if (auto h = c.hashes.find(version); h != c.hashes.end()) {
    key = h->second;
  } else {
    std::ifstream in(binary, std::ios::binary);
    content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) return Error{ErrorCode::unavailable, fmt::format("plugin '{}': cannot read '{}'", plugin_id, binary.string())};
    key = {std::hash<std::string_view>{}(content), static_cast<off_t>(content.size())};
    c.hashes.emplace(version, key);
  }
  if (auto it = c.modules.find(key); it != c.modules.end()) {
    if (auto alive = it->second.lock()) return alive;
    c.modules.erase(it);
  }
  // A private copy: rebuilding the plugin never rewrites mapped code.
  std::error_code ec;
  std::filesystem::create_directories(shadow_dir, ec);
  const auto shadow = shadow_dir / fmt::format("{}-{:016x}-{}{}", plugin_id, key.first, c.counter.fetch_add(1), binary.extension().string());
  if (content.empty()) {
    if (!std::filesystem::copy_file(binary, shadow, std::filesystem::copy_options::overwrite_existing, ec))
      return Error{ErrorCode::unavailable, fmt::format("plugin '{}': cannot copy binary to {}: {}", plugin_id, shadow.string(), ec.message())};
  } else {
    std::ofstream out(shadow, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) return Error{ErrorCode::unavailable, fmt::format("plugin '{}': cannot copy binary to {}", plugin_id, shadow.string())};
  }
  ::chmod(shadow.c_str(), 0755);
  auto module = PluginModule::load(shadow, true);
  if (!module) {
    std::filesystem::remove(shadow, ec);
    return module;
  }
  c.modules[key] = *module;
  return module;
}

}  // namespace xcore::inline v1
