#include "runners/abi_tag.hpp"

#include <elf.h>
#include <fmt/format.h>
#include <xcore/plugin.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

namespace xcore::inline v1 {
namespace {

template <class T>
bool read_at(const std::vector<char>& f, std::uint64_t off, T& out) {
  if (off > f.size() || f.size() - off < sizeof(T)) return false;
  std::memcpy(&out, f.data() + off, sizeof(T));
  return true;
}

}  // namespace

Result<AbiTag> read_abi_tag(const std::filesystem::path& binary) {
  const auto name = binary.string();
  std::ifstream in(binary, std::ios::binary);
  if (!in) return Error{ErrorCode::not_found, fmt::format("plugin binary '{}' cannot be read", name)};
  in.seekg(0, std::ios::end);
  std::vector<char> f(static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg())));
  in.seekg(0);
  in.read(f.data(), static_cast<std::streamsize>(f.size()));
  auto bad = [&](std::string_view why) {
    return Error{ErrorCode::incompatible, fmt::format("plugin binary '{}': {}", name, why)};
  };

  Elf64_Ehdr eh;
  if (!read_at(f, 0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return bad("not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return bad("not a 64-bit little-endian ELF file");
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) return bad("unexpected section header size");

  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  for (unsigned i = 0; i < eh.e_shnum; ++i)
    if (!read_at(f, eh.e_shoff + std::uint64_t(i) * sizeof(Elf64_Shdr), sections[i])) return bad("truncated section table");

  for (const auto& sh : sections) {
    if (sh.sh_type != SHT_DYNSYM || sh.sh_link >= sections.size() || sh.sh_entsize != sizeof(Elf64_Sym)) continue;
    const auto& strtab = sections[sh.sh_link];
    for (std::uint64_t off = 0; off + sizeof(Elf64_Sym) <= sh.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      if (!read_at(f, sh.sh_offset + off, sym)) return bad("truncated symbol table");
      std::uint64_t name_off = strtab.sh_offset + sym.st_name;
      constexpr std::string_view wanted = XCORE_ABI_TAG_SYMBOL;
      if (name_off + wanted.size() + 1 > f.size()) continue;
      if (std::memcmp(f.data() + name_off, wanted.data(), wanted.size()) != 0 || f[name_off + wanted.size()] != '\0') continue;
      if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= sections.size()) return bad("the ABI tag symbol is not defined");
      const auto& sec = sections[sym.st_shndx];
      if (sec.sh_type == SHT_NOBITS) return bad("the ABI tag is not initialised data");
      if (sym.st_size < sizeof(xcore_abi_tag)) return bad("the ABI tag is smaller than expected");
      xcore_abi_tag tag;
      if (!read_at(f, sym.st_value - sec.sh_addr + sec.sh_offset, tag)) return bad("the ABI tag lies outside the file");
      if (tag.magic != XCORE_ABI_MAGIC) return bad("the ABI tag has the wrong magic number");
      // A string fills its array or ends at a NUL (a 64-character id has none).
      auto field = [](const char (&a)[64]) { return std::string(a, ::strnlen(a, sizeof(a))); };
      return AbiTag{tag.abi_major, tag.abi_minor, field(tag.plugin_id), field(tag.plugin_version)};
    }
  }
  return bad(fmt::format("no '{}' symbol: not built with the xcore SDK (XCORE_PLUGIN)", XCORE_ABI_TAG_SYMBOL));
}

}  // namespace xcore::inline v1
