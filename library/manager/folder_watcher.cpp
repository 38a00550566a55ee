#include "manager/folder_watcher.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/thread_name.hpp"

namespace xcore::inline v1 {

Result<std::unique_ptr<FolderWatcher>> FolderWatcher::start(Callback cb, std::chrono::milliseconds quiet) {
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in < 0) return Error{ErrorCode::unavailable, fmt::format("inotify is not available: {}", std::strerror(errno))};
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    ::close(in);
    return Error{ErrorCode::unavailable, fmt::format("eventfd failed: {}", std::strerror(errno))};
  }
  std::unique_ptr<FolderWatcher> w(new FolderWatcher(in, wake, std::move(cb), quiet));
  w->thread_ = std::thread([p = w.get()] { p->run(); });
  name_thread(w->thread_, "xcore-watch");
  return w;
}

FolderWatcher::FolderWatcher(int in, int wake, Callback cb, std::chrono::milliseconds quiet)
    : inotify_fd_(in), wake_fd_(wake), on_change_(std::move(cb)), quiet_(quiet) {}

FolderWatcher::~FolderWatcher() {
  std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  ::close(inotify_fd_);
  ::close(wake_fd_);
}

void FolderWatcher::watch(const std::string& id, const std::filesystem::path& dir) {
  std::lock_guard lock(mutex_);
  if (by_id_.contains(id)) return;
  int wd = inotify_add_watch(inotify_fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
  if (wd < 0) return;
  by_wd_[wd] = id;
  by_id_[id] = wd;
}

void FolderWatcher::run() {
  using clock = std::chrono::steady_clock;
  std::map<std::string, clock::time_point> pending;
  alignas(inotify_event) char buf[16 * 1024];
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int timeout = pending.empty() ? -1 : 50;
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    if (fds[0].revents & POLLIN) {
      for (;;) {
        ssize_t len = ::read(inotify_fd_, buf, sizeof(buf));
        if (len <= 0) break;
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          {
            std::lock_guard lock(mutex_);
            if (auto it = by_wd_.find(ev->wd); it != by_wd_.end()) pending[it->second] = clock::now();
          }
          p += sizeof(inotify_event) + ev->len;
        }
      }
    }
    auto now = clock::now();
    for (auto it = pending.begin(); it != pending.end();) {
      if (now - it->second >= quiet_) {
        try {
          on_change_(it->first);
        } catch (...) {
        }
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace xcore::inline v1
