// Watches plugin folders with inotify and reports a plugin once its files stop changing (debounced), so a
// build that writes the binary in several steps triggers one reload.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <xcore/error.hpp>

namespace xcore::inline v1 {

class FolderWatcher {
 public:
  using Callback = std::function<void(const std::string& plugin_id)>;
  static Result<std::unique_ptr<FolderWatcher>> start(Callback on_change,
                                                      std::chrono::milliseconds quiet = std::chrono::milliseconds(200));
  ~FolderWatcher();
  void watch(const std::string& plugin_id, const std::filesystem::path& dir);

 private:
  FolderWatcher(int inotify_fd, int wake_fd, Callback cb, std::chrono::milliseconds quiet);
  void run();

  int inotify_fd_;
  int wake_fd_;
  Callback on_change_;
  std::chrono::milliseconds quiet_;
  std::mutex mutex_;
  std::map<int, std::string> by_wd_;
  std::map<std::string, int> by_id_;
  std::thread thread_;
};

}  // namespace xcore::inline v1
