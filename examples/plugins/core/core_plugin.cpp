// The "core" example plugin: calculate, confined file tools, system_stats and echo.
#include <xcore/sdk.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "confined_root.hpp"
#include "expression.hpp"

namespace json = boost::json;
using xcore::sdk::Context;
using xcore::sdk::ToolOutput;

namespace {

json::value schema(std::initializer_list<std::pair<std::string_view, json::value>> props,
                   std::initializer_list<std::string_view> required) {
  json::object p;
  for (const auto& [k, v] : props) p[k] = v;
  json::array r;
  for (auto k : required) r.push_back(json::string(k));
  return json::object{{"type", "object"}, {"properties", std::move(p)}, {"required", std::move(r)}, {"additionalProperties", false}};
}

json::value str_prop(std::string_view desc) { return json::object{{"type", "string"}, {"description", desc}}; }

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

class CorePlugin : public xcore::sdk::Plugin {
 public:
  CorePlugin() {
    tool("echo")
        .title("Echo")
        .description("Returns its arguments unchanged; useful to test a connection.")
        .input(json::object{{"type", "object"}})
        .category("utility")
        .read_only()
        .idempotent()
        .handler([](const json::object& args, const Context&) { return ToolOutput(json::value(args)); });

    tool("calculate")
        .title("Calculator")
        .description("Evaluates an arithmetic expression: + - * / % ^, parentheses, pi, e, and sqrt abs sin cos tan asin acos "
                     "atan exp ln log10 log2 floor ceil round pow hypot min max.")
        .input(schema({{"expression", str_prop("e.g. '2 * (3 + 4) ^ 2'")}}, {"expression"}))
        .output(json::object{{"type", "object"},
                             {"properties", {{"result", {{"type", "number"}}}, {"expression", {{"type", "string"}}}}},
                             {"required", {"result"}}})
        .category("math")
        .competency("arithmetic")
        .read_only()
        .idempotent()
        .handler([](const json::object& args, const Context&) {
          auto expr = std::string(args.at("expression").as_string());
          auto r = core_plugin::evaluate(expr);
          if (!r.ok) return ToolOutput::error("cannot evaluate '" + expr + "': " + r.error);
          // Whole results read better as integers (Boost.JSON would print 98 as 9.8E1).
          json::value result = r.value;
          if (std::nearbyint(r.value) == r.value && std::fabs(r.value) < 9007199254740992.0)
            result = static_cast<std::int64_t>(r.value);
          return ToolOutput(json::object{{"result", result}, {"expression", expr}});
        });

    tool("read_file")
        .title("Read a file")
        .description("Reads a UTF-8 text file under the configured root folder.")
        .input(schema({{"path", str_prop("relative to the root folder")}}, {"path"}))
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
        .input(schema({{"path", str_prop("relative to the root folder")},
                       {"content", str_prop("the text to write")},
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
        .input(schema({{"path", json::object{{"type", "string"}, {"default", "."}}}}, {}))
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

    tool("system_stats")
        .title("System statistics")
        .description("Load average, memory, uptime and CPU count of the machine, and this process's memory.")
        .input(json::object{{"type", "object"}})
        .category("system")
        .competency("monitoring")
        .read_only()
        .handler([](const json::object&, const Context&) { return ToolOutput(system_stats()); });
  }

  void on_load(const json::object& config) override { configure(config); }
  void on_config(const json::object& config) override { configure(config); }

  json::value handle(std::string_view action, const json::value& params, const Context&) override {
    if (action == "echo") return params;
    if (action == "info") {
      std::lock_guard lock(mutex_);
      return json::object{{"plugin", "core"}, {"root", root_ ? root_->path().string() : ""}, {"max_file_bytes", max_bytes_}};
    }
    return Plugin::handle(action, params, Context());
  }

 private:
  void configure(const json::object& config) {
    std::unique_ptr<core_plugin::ConfinedRoot> root;
    if (auto it = config.find("root"); it != config.end() && it->value().is_string() && !it->value().as_string().empty())
      root = std::make_unique<core_plugin::ConfinedRoot>(std::string(it->value().as_string()));
    std::size_t max = 1 << 20;
    if (auto it = config.find("max_file_bytes"); it != config.end() && it->value().is_int64()) max = it->value().as_int64();
    std::lock_guard lock(mutex_);
    root_ = std::shared_ptr<core_plugin::ConfinedRoot>(std::move(root));
    max_bytes_ = max;
  }

  // A shared_ptr copy, so a config change never closes the fd under a running call.
  std::shared_ptr<core_plugin::ConfinedRoot> root() {
    std::lock_guard lock(mutex_);
    if (!root_) throw xcore::sdk::failed_precondition("file access is not configured: set 'root' in the plugin's config");
    return root_;
  }
  std::size_t max_bytes() {
    std::lock_guard lock(mutex_);
    return max_bytes_;
  }

  static json::object system_stats() {
    json::object out;
    double l1 = 0, l5 = 0, l15 = 0;
    if (std::ifstream f("/proc/loadavg"); f >> l1 >> l5 >> l15) out["load_average"] = json::array{l1, l5, l15};
    std::uint64_t total = 0, available = 0;
    std::ifstream mem("/proc/meminfo");
    for (std::string key; mem >> key;) {
      std::uint64_t v = 0;
      mem >> v;
      if (key == "MemTotal:") total = v;
      if (key == "MemAvailable:") available = v;
      mem.ignore(256, '\n');
    }
    out["memory"] = json::object{{"total_kb", total}, {"available_kb", available}};
    double up = 0;
    if (std::ifstream f("/proc/uptime"); f >> up) out["uptime_seconds"] = up;
    out["cpus"] = std::thread::hardware_concurrency();
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) out["process_rss_kb"] = std::strtoull(line.c_str() + 6, nullptr, 10);
    return out;
  }

  std::mutex mutex_;
  std::shared_ptr<core_plugin::ConfinedRoot> root_;
  std::size_t max_bytes_ = 1 << 20;
};

XCORE_PLUGIN(CorePlugin, "core", "1.0.0")
