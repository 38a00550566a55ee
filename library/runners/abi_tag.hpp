// Reads a plugin's ABI tag straight from its ELF file, so a mismatch is refused before any plugin code
// (not even a static constructor) runs.
#pragma once

#include <filesystem>
#include <string>

#include <xcore/error.hpp>

namespace xcore::inline v1 {

struct AbiTag {
  unsigned abi_major = 0, abi_minor = 0;
  std::string plugin_id, plugin_version;
};

Result<AbiTag> read_abi_tag(const std::filesystem::path& binary);

}  // namespace xcore::inline v1
