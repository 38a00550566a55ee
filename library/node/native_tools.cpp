#include "node/native_tools.hpp"

#include <xcore/run_program.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>


extern char** environ;

namespace xcore::node {

namespace fs = std::filesystem;

namespace {

json::object schema(std::string_view text) { return json::parse(text).as_object(); }

const json::object* args_of(const json::value& v) { return v.is_object() ? &v.get_object() : nullptr; }

Result<std::string> string_arg(const json::value& args, std::string_view name) {
  const auto* o = args_of(args);
  const auto* v = o ? o->if_contains(name) : nullptr;
  if (!v || !v->is_string()) return Error{ErrorCode::invalid_argument, fmt::format("{}: expected a string", name)};
  return std::string(v->get_string());
}

// A path a caller names, resolved (symlinks and "..") and kept under one of the roots. Relative paths are
// taken from the first root. For a file to be written, its folder must exist under a root.
Result<fs::path> confined(const std::vector<fs::path>& roots, const std::string& requested, bool for_writing) {
  if (roots.empty()) return Error{ErrorCode::permission_denied, "this node serves no folders (start it with --root)"};
  fs::path p = fs::path(requested).is_absolute() ? fs::path(requested) : roots.front() / requested;
  std::error_code ec;
  fs::path real;
  if (for_writing) {
    auto parent = fs::canonical(p.parent_path(), ec);
    if (ec) return Error{ErrorCode::not_found, fmt::format("'{}': its folder does not exist", requested)};
    if (p.filename().empty() || p.filename() == "." || p.filename() == "..") return Error{ErrorCode::invalid_argument, fmt::format("'{}' names no file", requested)};
    real = parent / p.filename();
    // A symlink as the file itself would write elsewhere: follow it and check where it leads.
    if (fs::is_symlink(real, ec)) {
      auto target = fs::weakly_canonical(real, ec);
      if (ec) return Error{ErrorCode::not_found, fmt::format("'{}': {}", requested, ec.message())};
      real = target;
    }
  } else {
    real = fs::canonical(p, ec);
    if (ec) return Error{ErrorCode::not_found, fmt::format("'{}': {}", requested, ec.message())};
  }
  for (const auto& root : roots) {
    auto rel = real.lexically_relative(root);
    if (!rel.empty() && *rel.begin() != "..") return real;
  }
  return Error{ErrorCode::permission_denied, fmt::format("'{}' is outside the folders this node serves", requested)};
}

Result<ToolResult> read_file(const NativeToolsOptions& o, const json::value& args) {
  XCORE_ASSIGN_OR_RETURN(auto requested, string_arg(args, "path"));
  XCORE_ASSIGN_OR_RETURN(auto path, confined(o.roots, requested, false));
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return Error{ErrorCode::invalid_argument, fmt::format("'{}' is not a file", requested)};
  const auto size = fs::file_size(path, ec);
  if (size > o.max_file) return Error{ErrorCode::resource_exhausted, fmt::format("'{}' is {} bytes; this node returns at most {}", requested, size, o.max_file)};
  std::ifstream in(path, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ToolResult::structured_value(json::object{{"path", path.string()}, {"size", content.size()}, {"content", content}});
}

Result<ToolResult> write_file(const NativeToolsOptions& o, const json::value& args) {
  XCORE_ASSIGN_OR_RETURN(auto requested, string_arg(args, "path"));
  XCORE_ASSIGN_OR_RETURN(auto content, string_arg(args, "content"));
  XCORE_ASSIGN_OR_RETURN(auto path, confined(o.roots, requested, true));
  const auto* a = args_of(args);
  const bool append = a && a->if_contains("append") && a->at("append").is_bool() && a->at("append").get_bool();
  std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  if (!out) return Error{ErrorCode::permission_denied, fmt::format("'{}' cannot be written", requested)};
  out << content;
  if (!out.flush()) return Error{ErrorCode::unavailable, fmt::format("writing '{}' failed", requested)};
  return ToolResult::structured_value(json::object{{"path", path.string()}, {"written", content.size()}});
}

Result<ToolResult> list_directory(const NativeToolsOptions& o, const json::value& args) {
  XCORE_ASSIGN_OR_RETURN(auto requested, string_arg(args, "path"));
  XCORE_ASSIGN_OR_RETURN(auto path, confined(o.roots, requested, false));
  std::error_code ec;
  json::array entries;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    std::error_code fec;
    auto st = e.symlink_status(fec);
    const char* type = fs::is_directory(st) ? "directory" : fs::is_symlink(st) ? "symlink" : fs::is_regular_file(st) ? "file" : "other";
    json::object entry{{"name", e.path().filename().string()}, {"type", type}};
    if (fs::is_regular_file(st)) entry["size"] = e.file_size(fec);
    entries.push_back(std::move(entry));
    if (entries.size() >= 10000) break;
  }
  if (ec) return Error{ErrorCode::invalid_argument, fmt::format("'{}': {}", requested, ec.message())};
  return ToolResult::structured_value(json::object{{"path", path.string()}, {"entries", std::move(entries)}});
}

Result<ToolResult> system_stats(const NativeToolsOptions& o) {
  struct sysinfo si {};
  ::sysinfo(&si);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  json::object out{{"hostname", host},
                   {"cpus", std::thread::hardware_concurrency()},
                   {"uptime_seconds", si.uptime},
                   {"load", json::array{si.loads[0] / 65536.0, si.loads[1] / 65536.0, si.loads[2] / 65536.0}},
                   {"memory_total_bytes", static_cast<std::uint64_t>(si.totalram) * si.mem_unit},
                   {"memory_free_bytes", static_cast<std::uint64_t>(si.freeram) * si.mem_unit},
                   {"processes", si.procs}};
  json::array disks;
  for (const auto& root : o.roots) {
    struct statvfs v {};
    if (::statvfs(root.c_str(), &v) == 0)
      disks.push_back(json::object{{"path", root.string()},
                                   {"total_bytes", static_cast<std::uint64_t>(v.f_blocks) * v.f_frsize},
                                   {"available_bytes", static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize}});
  }
  out["disks"] = std::move(disks);
  return ToolResult::structured_value(std::move(out));
}

// Runs argv (no shell) in `cwd` with a bare environment; its output is kept up to the cap, and the
// whole process group is killed at the deadline.
Result<ToolResult> exec_command(const NativeToolsOptions& o, const json::value& args, const CallContext& ctx) {
  const auto* a = args_of(args);
  const auto* argv_v = a ? a->if_contains("argv") : nullptr;
  if (!argv_v || !argv_v->is_array() || argv_v->get_array().empty()) return Error{ErrorCode::invalid_argument, "argv: expected a non-empty list of strings"};
  std::vector<std::string> argv;
  for (const auto& x : argv_v->get_array()) {
    if (!x.is_string()) return Error{ErrorCode::invalid_argument, "argv: expected a non-empty list of strings"};
    argv.emplace_back(x.get_string());
  }
  fs::path cwd = o.roots.empty() ? fs::path("/") : o.roots.front();
  if (const auto* c = a->if_contains("cwd")) {
    if (!c->is_string()) return Error{ErrorCode::invalid_argument, "cwd: expected a string"};
    XCORE_ASSIGN_OR_RETURN(cwd, confined(o.roots, std::string(c->get_string()), false));
  }
  XCORE_ASSIGN_OR_RETURN(auto decision, nodes::decide(o.policy, argv, cwd));
  std::optional<nodes::CommandPolicy> host_policy;
  {
    std::lock_guard lock(o.host_policy->mutex);
    host_policy = o.host_policy->policy;
  }
  if (host_policy && decision.verdict != nodes::CommandDecision::Verdict::deny) {
    // Both policies must let it run; the stricter verdict stands.
    XCORE_ASSIGN_OR_RETURN(auto host, nodes::decide(*host_policy, argv, cwd));
    if (host.verdict == nodes::CommandDecision::Verdict::deny) {
      decision.verdict = host.verdict;
      decision.reason = fmt::format("the host's policy: {}", host.reason);
    } else if (host.verdict == nodes::CommandDecision::Verdict::approve) {
      decision.verdict = host.verdict;
      decision.reason = fmt::format("the host's policy: {}", host.reason);
    }
  }
  if (decision.verdict == nodes::CommandDecision::Verdict::deny) return Error{ErrorCode::permission_denied, fmt::format("refused: {}", decision.reason)};
  if (decision.verdict == nodes::CommandDecision::Verdict::approve)
    return Error{ErrorCode::permission_denied, fmt::format("{} needs a person's approval ({}), which this node cannot take; allow it, or leave it to an agent's approval policy", decision.executable.string(), decision.reason)};

  auto timeout = o.exec_timeout;
  if (const auto* t = a->if_contains("timeout_ms"); t && t->is_int64() && t->get_int64() > 0)
    timeout = std::min(timeout, std::chrono::milliseconds(t->get_int64()));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (ctx.deadline) deadline = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(*ctx.deadline - std::chrono::system_clock::now()));

  sdk::ProgramSpec spec;
  spec.executable = decision.executable;  // the resolved executable runs, not whatever argv[0] would find now
  spec.argv = argv;
  spec.env = {"PATH=" + o.policy.path, "HOME=" + cwd.string(), "LANG=C.UTF-8"};
  spec.cwd = cwd;
  spec.deadline = deadline;
  spec.cancelled = [cancel = ctx.cancel] { return cancel.stop_requested(); };
  spec.output_cap = o.output_cap;
  sdk::ProgramRun run;
  try {
    run = sdk::run_program(spec);
  } catch (const std::runtime_error& e) {
    return Error{ErrorCode::unavailable, e.what()};
  }
  const auto& [out, err, truncated, timed_out, cancelled, status] = run;
  if (cancelled) return Error{ErrorCode::cancelled, fmt::format("{} was cancelled", argv[0])};
  json::object r{{"executable", decision.executable.string()}, {"stdout", out}, {"stderr", err}, {"truncated", truncated}, {"timed_out", timed_out}};
  if (WIFEXITED(status)) r["exit_code"] = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r["signal"] = WTERMSIG(status);
  auto result = ToolResult::structured_value(std::move(r));
  result.is_error = timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  return result;
}

}  // namespace

Result<std::vector<ToolRegistration>> register_native_tools(ToolRegistry& tools, const NativeToolsOptions& options) {
  std::vector<ToolRegistration> out;
  auto add = [&](std::string name, std::string description, std::string_view input, json::object annotations, ToolHandler h) -> Result<void> {
    ToolSpec s;
    s.name = std::move(name);
    s.description = std::move(description);
    s.input_schema = schema(input);
    s.annotations = std::move(annotations);
    s.category = "node";
    XCORE_ASSIGN_OR_RETURN(auto reg, tools.add(std::move(s), std::move(h)));
    out.push_back(std::move(reg));
    return ok();
  };
  const auto& o = options;
  const json::object read_only{{"readOnlyHint", true}};
  XCORE_TRY(add("read_file", "Read a file under the node's folders", R"({"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false})",
                read_only, [&o](const json::value& a, const CallContext&) { return read_file(o, a); }));
  XCORE_TRY(add("write_file", "Write (or append to) a file under the node's folders",
                R"({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"},"append":{"type":"boolean"}},"required":["path","content"],"additionalProperties":false})",
                json::object{{"destructiveHint", true}}, [&o](const json::value& a, const CallContext&) { return write_file(o, a); }));
  XCORE_TRY(add("list_directory", "List a folder under the node's folders", R"({"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false})",
                read_only, [&o](const json::value& a, const CallContext&) { return list_directory(o, a); }));
  XCORE_TRY(add("system_stats", "The node's load, memory, uptime and disk space", R"({"type":"object","additionalProperties":false})", read_only,
                [&o](const json::value&, const CallContext&) { return system_stats(o); }));
  if (o.exec)
    XCORE_TRY(add("exec_command", "Run a program (argv, no shell) under the node's command policy",
                  R"({"type":"object","properties":{"argv":{"type":"array","items":{"type":"string"},"minItems":1},"cwd":{"type":"string"},"timeout_ms":{"type":"integer","minimum":1}},"required":["argv"],"additionalProperties":false})",
                  json::object{{"destructiveHint", true}, {"openWorldHint", true}},
                  [&o](const json::value& a, const CallContext& ctx) { return exec_command(o, a, ctx); }));
  return out;
}

}  // namespace xcore::node
