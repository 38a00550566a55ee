#include <xcore/version.hpp>

#include <xcore/plugin.h>

#define XCORE_STR2(x) #x
#define XCORE_STR(x) XCORE_STR2(x)

namespace xcore::inline v1 {

const char* version() noexcept { return XCORE_VERSION_STRING; }

const char* version_line() noexcept {
  return "xcore " XCORE_VERSION_STRING " (plugin ABI " XCORE_STR(XCORE_ABI_MAJOR) "." XCORE_STR(XCORE_ABI_MINOR) ")";
}

}  // namespace xcore::inline v1
