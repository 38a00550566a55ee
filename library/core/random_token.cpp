#include "core/random_token.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include <fmt/format.h>

namespace xcore::inline v1 {

std::string random_token() {
  std::uint64_t r[2] = {0, 0};
  for (std::size_t got = 0; got < sizeof r;) {
    const auto n = ::getrandom(reinterpret_cast<char*>(r) + got, sizeof r - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (errno != EINTR) std::abort();  // no randomness: nothing here can be trusted
  }
  return fmt::format("{:016x}{:016x}", r[0], r[1]);
}

}  // namespace xcore::inline v1
