// Shared helpers for the test suites: temporary folders, staged plugins, a log that can be searched.
#pragma once

#include <xcore/xcore.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "support/peers.hpp"

namespace xcore_test {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "xcore-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    // Searchable by others: a root host runs sandboxed plugins as another user, who must reach the
    // staged binaries and its data folder below.
    fs::permissions(path_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

// Runs a shell command and returns what it printed, stdout and stderr together.
inline std::string run_command(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen((command + " 2>&1").c_str(), "r")) {
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

inline fs::path test_plugins() { return XCORE_TEST_PLUGIN_DIR; }

inline fs::path example_plugins() { return XCORE_EXAMPLE_PLUGIN_DIR; }

// Copies a staged plugin folder (e.g. test_plugins()/"probe") to dest/<as>.
inline fs::path stage(const fs::path& staged, const fs::path& dest_root, const std::string& as = {}) {
  auto dest = dest_root / (as.empty() ? staged.filename().string() : as);
  fs::create_directories(dest);
  fs::copy(staged, dest, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  return dest;
}

inline void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::FILE* f = std::fopen(p.c_str(), "wb");
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct CapturedLog {
  std::mutex m;
  std::vector<std::string> lines;
  xcore::LogSink sink() {
    return [this](xcore::LogLevel lv, std::string_view src, std::string_view msg) {
      std::lock_guard lock(m);
      lines.push_back(std::string(xcore::to_string(lv)) + " " + std::string(src) + ": " + std::string(msg));
    };
  }
  bool contains(std::string_view needle) {
    std::lock_guard lock(m);
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

inline boost::json::value J(std::string_view text) { return boost::json::parse(text); }

// Options for a test's Manager: one plugins folder, a private shadow folder, a log the test can search.
inline xcore::ManagerOptions test_options(const TempDir& tmp, const fs::path& plugins, CapturedLog& log) {
  xcore::ManagerOptions o;
  o.plugin_dirs = {plugins};
  o.shadow_dir = tmp / "shadow";
  o.log = log.sink();
  return o;
}

}  // namespace xcore_test
