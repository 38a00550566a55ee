// Names the calling thread, so that top -H, ps -L and debuggers say what each of libxcore's threads does
// ("xcore-sched", "xcore-rpc-<plugin>"...). Linux keeps 15 characters: longer names are cut.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <string_view>

namespace xcore::inline v1 {

inline void name_this_thread(std::string_view name) noexcept {
  char buf[16] = {};
  std::copy_n(name.data(), std::min<std::size_t>(name.size(), sizeof(buf) - 1), buf);
  ::pthread_setname_np(::pthread_self(), buf);
}

}  // namespace xcore::inline v1
