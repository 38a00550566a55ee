// The "shell" example plugin: commands, git and Python in one workspace folder. It runs sandboxed (the
// workspace is its only writable folder besides its data folder, and it has no network), and every program
// it starts passes the same command policy as xcore-node's exec_command: rules on the resolved executable,
// launchers and #! interpreters looked through, inline code and shell syntax refused, deny by default.
#include <xcore/command_policy.hpp>
#include <xcore/run_program.hpp>
#include <xcore/sdk.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

namespace json = boost::json;
namespace fs = std::filesystem;
using xcore::sdk::CommandDecision;
using xcore::sdk::CommandPolicy;
using xcore::sdk::Context;
using xcore::sdk::object_schema;
using xcore::sdk::string_property;
using xcore::sdk::ToolOutput;

namespace {

struct Settings {
  fs::path workspace;
  CommandPolicy policy;
  std::chrono::milliseconds timeout{30000};
  std::size_t output_bytes = 1u << 20;
  std::size_t python_memory = 256u << 20;
};

json::value integer_property(std::string_view description, std::int64_t minimum) {
  return json::object{{"type", "integer"}, {"minimum", minimum}, {"description", description}};
}

std::string data_folder() {
  const char* data = std::getenv("XCORE_PLUGIN_DATA");
  return data && *data ? data : "/tmp";
}

// A folder a caller names, resolved (symlinks, "..") and kept inside the workspace.
fs::path inside(const fs::path& workspace, const std::string& requested) {
  std::error_code ec;
  auto real = fs::canonical(fs::path(requested).is_absolute() ? fs::path(requested) : workspace / requested, ec);
  if (ec) throw xcore::sdk::invalid_argument("'" + requested + "': " + ec.message());
  auto rel = real.lexically_relative(workspace);
  if (rel.empty() || *rel.begin() == "..") throw xcore::sdk::permission_denied("'" + requested + "' is outside the workspace");
  return real;
}

}  // namespace

class ShellPlugin : public xcore::sdk::Plugin {
 public:
  ShellPlugin() {
    tool("run_command")
        .title("Run a command")
        .description("Runs a program (argv, no shell) in the workspace under the command policy; returns its exit code and output.")
        .input(object_schema({{"argv", json::object{{"type", "array"}, {"items", {{"type", "string"}}}, {"minItems", 1}, {"description", "the program and its arguments"}}},
                              {"cwd", string_property("a folder inside the workspace (default: the workspace)")},
                              {"timeout_ms", integer_property("at most the plugin's timeout", 1)}},
                             {"argv"}))
        .category("shell")
        .competency("shell")
        .destructive()
        .handler([this](const json::object& args, const Context& ctx) {
          std::vector<std::string> argv;
          for (const auto& a : args.at("argv").as_array()) argv.emplace_back(a.as_string());
          auto s = settings();
          const auto cwd = args.contains("cwd") ? inside(s->workspace, std::string(args.at("cwd").as_string())) : s->workspace;
          return result(run(*s, argv, cwd, ctx, timeout_of(*s, args), 0));
        });

    tool("git_status")
        .title("Git status")
        .description("The repository's branch, its upstream, how far ahead and behind, and each changed file (git status --porcelain, parsed).")
        .input(object_schema({{"path", string_property("a folder inside the workspace, in the repository (default: the workspace)")}}, {}))
        .category("shell")
        .competency("git")
        .read_only()
        .handler([this](const json::object& args, const Context& ctx) {
          auto s = settings();
          const auto dir = args.contains("path") ? inside(s->workspace, std::string(args.at("path").as_string())) : s->workspace;
          auto r = run(*s, {"git", "status", "--porcelain=v1", "--branch", "-z"}, dir, ctx, s->timeout, 0);
          if (!r.succeeded()) return failed("git status", r);
          return ToolOutput(parse_status(r.out));
        });

    tool("git_diff")
        .title("Git diff")
        .description("The diff of the working tree (or, with staged, of the index) against HEAD, for one file or all.")
        .input(object_schema({{"file", string_property("a file inside the workspace (default: every file)")},
                              {"staged", json::object{{"type", "boolean"}, {"default", false}}}},
                             {}))
        .category("shell")
        .competency("git")
        .read_only()
        .handler([this](const json::object& args, const Context& ctx) {
          auto s = settings();
          std::vector<std::string> argv{"git", "diff", "--no-color", "--no-ext-diff"};
          const bool staged = args.contains("staged") && args.at("staged").as_bool();
          if (staged) argv.push_back("--staged");
          std::string file;
          if (args.contains("file")) {
            // Its folder must be inside the workspace; the file itself may have been deleted.
            file = std::string(args.at("file").as_string());
            const auto parent = fs::path(file).parent_path();
            (void)inside(s->workspace, parent.empty() ? "." : parent.string());
            argv.push_back("--");
            argv.push_back(file);
          }
          auto r = run(*s, argv, s->workspace, ctx, s->timeout, 0);
          if (!r.succeeded()) return failed("git diff", r);
          return ToolOutput(json::object{{"diff", r.out}, {"staged", staged}, {"file", file}, {"truncated", r.truncated}});
        });

    tool("python_eval")
        .title("Run Python")
        .description("Runs a Python 3 program (isolated mode) in the workspace, limited in time and memory; returns what it printed.")
        .input(object_schema({{"code", string_property("the program")}, {"timeout_ms", integer_property("at most the plugin's timeout", 1)}}, {"code"}))
        .category("shell")
        .competency("python")
        .destructive()
        .handler([this](const json::object& args, const Context& ctx) {
          auto s = settings();
          // A file, not `python3 -c`: the policy refuses inline code it cannot read, and a file is what it
          // checks (the interpreter must be allowed).
          const auto file = fs::path(data_folder()) / ("eval-" + std::to_string(::getpid()) + "-" + std::to_string(++evals_) + ".py");
          {
            std::ofstream out(file, std::ios::trunc);
            const auto& code = args.at("code").as_string();
            out.write(code.data(), static_cast<std::streamsize>(code.size()));
            if (!out.flush()) throw xcore::sdk::Error(XCORE_E_INTERNAL, "cannot write the program to " + file.string());
          }
          struct Remove {
            fs::path p;
            ~Remove() {
              std::error_code ec;
              fs::remove(p, ec);
            }
          } remove{file};
          return result(run(*s, {"python3", "-I", file.string()}, s->workspace, ctx, timeout_of(*s, args), s->python_memory));
        });
  }

  void on_load(const json::object& config) override { configure(config); }
  void on_config(const json::object& config) override { configure(config); }

 private:
  void configure(const json::object& config) {
    auto s = std::make_shared<Settings>();
    std::string folder;
    if (auto it = config.find("workspace"); it != config.end() && it->value().is_string()) folder = std::string(it->value().as_string());
    if (folder.empty()) {
      folder = data_folder() + "/workspace";
      ::mkdir(folder.c_str(), 0700);  // ours to make; EEXIST after the first start
    }
    std::error_code ec;
    s->workspace = fs::canonical(folder, ec);
    if (ec) throw xcore::sdk::invalid_argument("workspace '" + folder + "': " + ec.message());
    try {
      if (auto it = config.find("policy"); it != config.end()) s->policy = CommandPolicy::parse(it->value());
    } catch (const xcore::sdk::CommandPolicyError& e) {
      throw xcore::sdk::invalid_argument(std::string("policy: ") + e.what());
    }
    if (auto it = config.find("timeout_ms"); it != config.end() && it->value().is_int64()) s->timeout = std::chrono::milliseconds(it->value().as_int64());
    if (auto it = config.find("output_bytes"); it != config.end() && it->value().is_int64()) s->output_bytes = static_cast<std::size_t>(it->value().as_int64());
    if (auto it = config.find("python_memory_mb"); it != config.end() && it->value().is_int64())
      s->python_memory = static_cast<std::size_t>(it->value().as_int64()) << 20;
    std::lock_guard lock(mutex_);
    settings_ = std::move(s);
  }

  std::shared_ptr<const Settings> settings() {
    std::lock_guard lock(mutex_);
    if (!settings_) throw xcore::sdk::failed_precondition("the shell plugin is not configured");
    return settings_;
  }

  static std::chrono::milliseconds timeout_of(const Settings& s, const json::object& args) {
    auto t = s.timeout;
    if (auto it = args.find("timeout_ms"); it != args.end() && it->value().is_int64())
      t = std::min(t, std::chrono::milliseconds(it->value().as_int64()));
    return t;
  }

  // Decides, then runs: a command the policy denies (or wants a person to approve) never starts.
  xcore::sdk::ProgramRun run(const Settings& s, const std::vector<std::string>& argv, const fs::path& cwd, const Context& ctx,
                             std::chrono::milliseconds timeout, std::size_t memory) {
    CommandDecision d;
    try {
      d = xcore::sdk::decide_command(s.policy, argv, cwd);
    } catch (const xcore::sdk::CommandPolicyError& e) {
      throw xcore::sdk::invalid_argument(e.what());
    }
    if (d.verdict == CommandDecision::Verdict::deny) throw xcore::sdk::permission_denied("refused: " + d.reason);
    if (d.verdict == CommandDecision::Verdict::approve)
      throw xcore::sdk::permission_denied(d.executable.string() + " needs a person's approval (" + d.reason + "), which this plugin cannot take");
    xcore::sdk::ProgramSpec spec;
    spec.executable = d.executable;
    spec.argv = argv;
    spec.env = {"PATH=" + s.policy.path, "HOME=" + data_folder(), "TMPDIR=" + data_folder(), "LANG=C.UTF-8",
                // The workspace belongs to another user than the sandbox's: git would refuse it as "dubious".
                "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*"};
    spec.cwd = cwd;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (auto ms = ctx.deadline_unix_ms()) {
      const auto left = std::chrono::milliseconds(*ms) - std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
      deadline = std::min(deadline, std::chrono::steady_clock::now() + left);
    }
    spec.deadline = deadline;
    spec.cancelled = [&ctx] { return ctx.cancelled(); };
    spec.output_cap = s.output_bytes;
    spec.memory_bytes = memory;
    if (memory) spec.cpu_seconds = static_cast<unsigned>(std::chrono::duration_cast<std::chrono::seconds>(timeout).count() + 1);
    try {
      return xcore::sdk::run_program(spec);
    } catch (const std::runtime_error& e) {
      throw xcore::sdk::Error(XCORE_E_UNAVAILABLE, e.what());
    }
  }

  static ToolOutput result(const xcore::sdk::ProgramRun& r) {
    json::object o{{"stdout", r.out}, {"stderr", r.err}, {"truncated", r.truncated}, {"timed_out", r.timed_out}};
    if (WIFEXITED(r.status)) o["exit_code"] = WEXITSTATUS(r.status);
    if (WIFSIGNALED(r.status)) o["signal"] = WTERMSIG(r.status);
    ToolOutput out(std::move(o));
    out.is_error = !r.succeeded();
    return out;
  }

  static ToolOutput failed(const std::string& what, const xcore::sdk::ProgramRun& r) {
    std::string why = r.timed_out ? "it took too long" : r.err.empty() ? "exit status " + std::to_string(WEXITSTATUS(r.status)) : r.err;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return ToolOutput::error(what + " failed: " + why);
  }

  // git status --porcelain=v1 --branch -z: "## branch...upstream [ahead 1, behind 2]", then "XY path"
  // entries, a rename's or copy's source path following it as an entry of its own.
  static json::object parse_status(const std::string& text) {
    json::object out{{"branch", nullptr}, {"upstream", nullptr}, {"ahead", 0}, {"behind", 0}};
    json::array files;
    std::vector<std::string> fields;
    for (std::size_t start = 0; start < text.size();) {
      auto end = text.find('\0', start);
      if (end == std::string::npos) end = text.size();
      fields.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const auto& f = fields[i];
      if (f.rfind("## ", 0) == 0) {
        std::string head = f.substr(3);
        if (auto b = head.find(" ["); b != std::string::npos) {
          const auto counts = head.substr(b + 2, head.size() - b - 3);
          head.resize(b);
          for (const char* key : {"ahead ", "behind "})
            if (auto at = counts.find(key); at != std::string::npos) out[std::string(key, std::strlen(key) - 1)] = std::atoi(counts.c_str() + at + std::strlen(key));
          if (counts == "gone") out["upstream_gone"] = true;
        }
        if (head.rfind("No commits yet on ", 0) == 0) {
          out["branch"] = head.substr(18);
          out["no_commits"] = true;
        } else if (head == "HEAD (no branch)") {
          out["detached"] = true;
        } else if (auto dots = head.find("..."); dots != std::string::npos) {
          out["branch"] = head.substr(0, dots);
          out["upstream"] = head.substr(dots + 3);
        } else {
          out["branch"] = head;
        }
        continue;
      }
      if (f.size() < 4) continue;
      json::object entry{{"index", std::string(1, f[0])}, {"worktree", std::string(1, f[1])}, {"path", f.substr(3)}};
      entry["status"] = f[0] == '?' ? "untracked" : f[0] == '!' ? "ignored" : (f[0] == 'U' || f[1] == 'U' || (f[0] == 'A' && f[1] == 'A') || (f[0] == 'D' && f[1] == 'D')) ? "conflicted"
                      : f[0] == 'R' ? "renamed" : f[0] == 'C' ? "copied" : (f[0] == 'A') ? "added" : (f[0] == 'D' || f[1] == 'D') ? "deleted" : "modified";
      entry["staged"] = f[0] != ' ' && f[0] != '?' && f[0] != '!';
      if ((f[0] == 'R' || f[0] == 'C') && i + 1 < fields.size()) entry["from"] = fields[++i];
      files.push_back(std::move(entry));
    }
    out["clean"] = files.empty();
    out["files"] = std::move(files);
    return out;
  }

  std::mutex mutex_;
  std::shared_ptr<const Settings> settings_;
  std::atomic<std::uint64_t> evals_{0};
};

XCORE_PLUGIN(ShellPlugin, "shell", "1.0.0")
