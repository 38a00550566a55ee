// The "files" example plugin: read, write and list files below one folder. It runs sandboxed: the
// folder is its data folder unless its config's `root` names another, which the host then grants it
// (the manifest marks `root` with "x-xcore-grant": "fs.write"), so the kernel, not only this code, keeps
// it there.
#include <xcore/sdk.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "confined_root.hpp"

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::object_schema;
using xcore::sdk::string_property;
using xcore::sdk::ToolOutput;

namespace {

// Reads a whole fd, refusing more than `limit` bytes.
std::string read_all(int fd, std::size_t limit, const std::string& name) {
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) throw xcore::sdk::Error(XCORE_E_INTERNAL, "reading '" + name + "' failed");
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit)
      throw xcore::sdk::invalid_argument("'" + name + "' is larger than the limit of " + std::to_string(limit) + " bytes");
  }
  return out;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

class FilesPlugin : public xcore::sdk::Plugin {
 public:
  FilesPlugin() {
    tool("read_file")
        .title("Read a file")
        .description("Reads a UTF-8 text file under the configured root folder.")
        .input(object_schema({{"path", string_property("relative to the root folder")}}, {"path"}))
        .category("files")
        .competency("filesystem")
        .read_only()
        .handler([this](const json::object& args, const Context&) {
          auto path = std::string(args.at("path").as_string());
          auto r = root();
          Fd f{r->open(path, O_RDONLY)};
          auto content = read_all(f.fd, max_bytes(), path);
          return ToolOutput(json::object{{"path", path}, {"size", content.size()}, {"content", content}});
        });

    tool("write_file")
        .title("Write a file")
        .description("Writes (or appends) text to a file under the configured root folder; the folder must exist.")
        .input(object_schema({{"path", string_property("relative to the root folder")},
                       {"content", string_property("the text to write")},
                       {"append", json::object{{"type", "boolean"}, {"default", false}}}},
                      {"path", "content"}))
        .category("files")
        .competency("filesystem")
        .destructive()
        .handler([this](const json::object& args, const Context&) {
          auto path = std::string(args.at("path").as_string());
          const auto& content = args.at("content").as_string();
          if (content.size() > max_bytes()) throw xcore::sdk::invalid_argument("content is larger than the limit");
          bool append = args.contains("append") && args.at("append").as_bool();
          auto r = root();
          Fd f{r->open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC), 0644)};
          std::size_t done = 0;
          while (done < content.size()) {
            ssize_t n = ::write(f.fd, content.data() + done, content.size() - done);
            if (n <= 0) throw xcore::sdk::Error(XCORE_E_INTERNAL, "writing '" + path + "' failed");
            done += static_cast<std::size_t>(n);
          }
          return ToolOutput(json::object{{"path", path}, {"bytes_written", done}, {"appended", append}});
        });

    tool("list_directory")
        .title("List a folder")
        .description("Lists the entries of a folder under the configured root folder.")
        .input(object_schema({{"path", json::object{{"type", "string"}, {"default", "."}}}}, {}))
        .category("files")
        .competency("filesystem")
        .read_only()
        .handler([this](const json::object& args, const Context&) {
          std::string path = args.contains("path") ? std::string(args.at("path").as_string()) : ".";
          auto r = root();
          int fd = r->open(path, O_RDONLY | O_DIRECTORY);
          DIR* d = ::fdopendir(fd);
          if (!d) {
            ::close(fd);
            throw xcore::sdk::Error(XCORE_E_INTERNAL, "cannot list '" + path + "'");
          }
          json::array entries;
          while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            struct stat st {};
            std::string type = "other";
            std::uint64_t size = 0;
            if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
              type = S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : S_ISLNK(st.st_mode) ? "symlink" : "other";
              size = static_cast<std::uint64_t>(st.st_size);
            }
            entries.push_back(json::object{{"name", name}, {"type", type}, {"size", size}});
          }
          ::closedir(d);
          std::sort(entries.begin(), entries.end(), [](const json::value& a, const json::value& b) {
            return a.at("name").as_string() < b.at("name").as_string();
          });
          return ToolOutput(json::object{{"path", path}, {"entries", std::move(entries)}});
        });

  }

  void on_load(const json::object& config) override { configure(config); }
  void on_config(const json::object& config) override { configure(config); }

  json::value handle(std::string_view action, const json::value& params, const Context&) override {
    if (action == "info") {
      std::lock_guard lock(mutex_);
      return json::object{{"plugin", "files"}, {"root", root_ ? root_->path().string() : ""}, {"max_file_bytes", max_bytes_}};
    }
    return Plugin::handle(action, params, Context());
  }

 private:
  void configure(const json::object& config) {
    // No root configured: the plugin's own data folder (the sandbox names it in XCORE_PLUGIN_DATA).
    std::string folder;
    if (auto it = config.find("root"); it != config.end() && it->value().is_string()) folder = std::string(it->value().as_string());
    if (folder.empty())
      if (const char* data = std::getenv("XCORE_PLUGIN_DATA"); data && *data) {
        folder = std::string(data) + "/files";
        ::mkdir(folder.c_str(), 0700);  // ours to make; EEXIST after the first start
      }
    std::unique_ptr<files_plugin::ConfinedRoot> root;
    if (!folder.empty()) root = std::make_unique<files_plugin::ConfinedRoot>(folder);
    std::size_t max = 1 << 20;
    if (auto it = config.find("max_file_bytes"); it != config.end() && it->value().is_int64()) max = it->value().as_int64();
    std::lock_guard lock(mutex_);
    root_ = std::shared_ptr<files_plugin::ConfinedRoot>(std::move(root));
    max_bytes_ = max;
  }

  // A shared_ptr copy, so a config change never closes the fd under a running call.
  std::shared_ptr<files_plugin::ConfinedRoot> root() {
    std::lock_guard lock(mutex_);
    if (!root_) throw xcore::sdk::failed_precondition("file access is not configured: no data folder, and no 'root' in the plugin's config");
    return root_;
  }
  std::size_t max_bytes() {
    std::lock_guard lock(mutex_);
    return max_bytes_;
  }

  std::mutex mutex_;
  std::shared_ptr<files_plugin::ConfinedRoot> root_;
  std::size_t max_bytes_ = 1 << 20;
};

XCORE_PLUGIN(FilesPlugin, "files", "1.0.0")
