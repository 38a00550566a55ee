// Names a thread, so that top -H, ps -L and debuggers say what each of libxcore's threads does
// ("xcore-sched", "xcore-rpc-<plugin>"...). Called by the thread that started it, right after: the name is
// there before anyone looks. Linux keeps 15 characters: longer names are cut.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <string_view>
#include <thread>

namespace xcore::inline v1 {

inline void name_thread(std::thread& thread, std::string_view name) noexcept {
  char buf[16] = {};
  std::copy_n(name.data(), std::min<std::size_t>(name.size(), sizeof(buf) - 1), buf);
  ::pthread_setname_np(thread.native_handle(), buf);
}

}  // namespace xcore::inline v1
