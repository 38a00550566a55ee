// Which commands may run: rules on the executable as the kernel would run it, never on the text a caller
// typed. Header-only, so a plugin that runs commands (the shell example) decides exactly as xcore-node does.
// Before any rule is asked:
// - a bare name is looked up on the policy's PATH, a relative path is taken from the working folder, and
//   symlinks and ".." are resolved (`rm`, `../../bin/rm` and a link to /bin/rm are all /usr/bin/rm);
// - launchers (env, nice, nohup, timeout, xargs, stdbuf, setsid) are looked through: the command they would
//   start must pass as well;
// - a script's `#!` interpreter must pass as well;
// - inline code for a shell or interpreter (sh -c, python3 -c, perl -e, node -e...) is refused: it cannot
//   be checked;
// - an argument holding shell syntax (; | & $( ` < > or a newline) is refused: no shell runs it, but a
//   program that hands its arguments to one would.
// Then deny rules win, then approval rules, then allow rules; nothing matching is denied.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include <xcore/glob.hpp>

namespace xcore::sdk {

struct CommandRule {
  enum class Action { allow, deny, approve };
  Action action = Action::deny;
  std::string program;          // glob ('*' any run) on the resolved absolute path: "/usr/bin/git", "/usr/bin/*"
  std::string arguments = "*";  // glob on the arguments joined by single spaces
};

struct CommandDecision {
  enum class Verdict { allow, deny, approve };
  Verdict verdict = Verdict::deny;
  std::filesystem::path executable;  // resolved
  std::string reason;                // why, naming the rule or the check
};

// A policy that does not read, or a command that cannot be resolved at all.
class CommandPolicyError : public std::runtime_error {
 public:
  enum class Kind { invalid, not_found, not_executable };
  CommandPolicyError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

struct CommandPolicy {
  std::vector<CommandRule> rules;
  std::string path = "/usr/local/bin:/usr/bin:/bin";  // where bare names are looked up

  // {"rules": [{"allow"|"deny"|"approve": "<program glob>", "arguments": "<glob>"}], "path": "..."}.
  // Throws CommandPolicyError naming the rule and the field.
  static CommandPolicy parse(const boost::json::value& v);
};

// The first executable file named `name` on `path` (":"-separated), as execvp would pick; not resolved.
std::optional<std::filesystem::path> find_program(const std::string& name, const std::string& path);

// Resolves argv[0] against `policy.path` and `cwd` and applies the checks above. Throws
// CommandPolicyError only for a command that cannot be resolved at all (no such program).
CommandDecision decide_command(const CommandPolicy& policy, const std::vector<std::string>& argv, const std::filesystem::path& cwd);

// ---- what follows is the implementation ---------------------------------------------------------------

namespace command_detail {

namespace fs = std::filesystem;

inline std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (std::size_t start = 0;;) {
    auto end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Programs that start another program named by their arguments.
inline bool is_launcher(std::string_view name) {
  constexpr std::string_view kLaunchers[] = {"env", "nice", "nohup", "timeout", "xargs", "stdbuf", "setsid", "chrt", "ionice", "taskset"};
  return std::find(std::begin(kLaunchers), std::end(kLaunchers), name) != std::end(kLaunchers);
}

// Interpreters and the flags that hand them code on the command line.
inline bool runs_inline_code(std::string_view name, const std::vector<std::string>& argv) {
  struct Flags {
    std::string_view prefix;
    std::vector<std::string_view> flags;
  };
  static const Flags kInterpreters[] = {
      {"sh", {"-c"}},     {"bash", {"-c"}},          {"dash", {"-c"}},        {"zsh", {"-c"}},  {"ksh", {"-c"}},
      {"fish", {"-c"}},   {"busybox", {"sh", "ash"}}, {"python", {"-c"}},     {"perl", {"-e", "-E"}},
      {"ruby", {"-e"}},   {"node", {"-e", "--eval", "-p", "--print"}},        {"php", {"-r"}},  {"lua", {"-e"}},
      {"awk", {""}},      {"gawk", {""}},            {"mawk", {""}},          {"tclsh", {""}},
  };
  for (const auto& interp : kInterpreters) {
    if (!starts_with(name, interp.prefix)) continue;
    // python3, python3.11, perl5.36: a version may follow the name.
    auto rest = name.substr(interp.prefix.size());
    if (!rest.empty() && !std::all_of(rest.begin(), rest.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; })) continue;
    for (std::size_t i = 1; i < argv.size(); ++i) {
      for (auto f : interp.flags) {
        if (f.empty()) return true;  // awk's program is its first argument
        // -c, and combined short flags such as -ec or -xc.
        if (argv[i] == f) return true;
        if (f.size() == 2 && f[0] == '-' && argv[i].size() > 2 && argv[i][0] == '-' && argv[i][1] != '-' && argv[i].find(f[1]) != std::string::npos)
          return true;
      }
    }
  }
  return false;
}

inline std::optional<std::string> shell_syntax(const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const auto& a = argv[i];
    for (std::string_view bad : {";", "|", "&", "$(", "`", "<", ">", "\n"})
      if (a.find(bad) != std::string::npos)
        return "argument " + std::to_string(i) + " ('" + a + "') holds shell syntax '" + std::string(bad == "\n" ? "\\n" : bad) + "'";
  }
  return std::nullopt;
}

inline bool executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// The first executable file named `name` in the folders of `path` (":"-separated), as execvp would pick.
inline std::optional<fs::path> find_program(const std::string& name, const std::string& path) {
  for (const auto& dir : split(path, ':')) {
    if (dir.empty()) continue;
    auto candidate = fs::path(dir) / name;
    if (executable_file(candidate)) return candidate;
  }
  return std::nullopt;
}

inline fs::path resolve(const std::string& program, const std::string& path, const fs::path& cwd) {
  using Kind = CommandPolicyError::Kind;
  if (program.empty()) throw CommandPolicyError(Kind::invalid, "the command is empty");
  fs::path found;
  if (program.find('/') != std::string::npos) {
    found = fs::path(program).is_absolute() ? fs::path(program) : cwd / program;
  } else {
    found = find_program(program, path).value_or(fs::path());
    if (found.empty()) throw CommandPolicyError(Kind::not_found, "'" + program + "' is not a program on the path " + path);
  }
  std::error_code ec;
  auto real = fs::canonical(found, ec);
  if (ec) throw CommandPolicyError(Kind::not_found, "'" + program + "': " + ec.message());
  if (!executable_file(real)) throw CommandPolicyError(Kind::not_executable, "'" + program + "' (" + real.string() + ") is not an executable file");
  return real;
}

// The program a launcher would start: its first argument that is neither an option nor VAR=value (nor
// the duration `timeout` takes, or the priority `nice -n` takes).
inline std::optional<std::size_t> launched(std::string_view launcher, const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const auto& a = argv[i];
    if (starts_with(a, "-")) {
      // Options that take a value as the next argument.
      if ((launcher == "nice" && a == "-n") || (launcher == "timeout" && (a == "-s" || a == "-k" || a == "--signal" || a == "--kill-after")) ||
          (launcher == "env" && (a == "-u" || a == "-C" || a == "-S")) || (launcher == "stdbuf" && a.size() == 2) ||
          (launcher == "xargs" && (a == "-I" || a == "-n" || a == "-P" || a == "-d" || a == "-E" || a == "-L" || a == "-s")) ||
          (launcher == "chrt" || launcher == "ionice" || launcher == "taskset"))
        ++i;
      continue;
    }
    if (launcher == "env" && a.find('=') != std::string::npos) continue;
    if (launcher == "timeout" && !a.empty() && std::isdigit(static_cast<unsigned char>(a[0]))) continue;
    return i;
  }
  return std::nullopt;
}

inline std::optional<std::vector<std::string>> shebang(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[2] = {};
  if (!in.read(head, 2) || head[0] != '#' || head[1] != '!') return std::nullopt;
  std::string line;
  std::getline(in, line);
  std::vector<std::string> words;
  for (auto& w : split(line, ' '))
    if (!w.empty() && w != "\t") words.push_back(std::move(w));
  if (words.empty()) return std::nullopt;
  return words;
}

inline const char* verb(CommandRule::Action a) {
  return a == CommandRule::Action::allow ? "allow" : a == CommandRule::Action::deny ? "deny" : "approve";
}

inline CommandDecision denied(fs::path exe, std::string reason) {
  return CommandDecision{CommandDecision::Verdict::deny, std::move(exe), std::move(reason)};
}

inline CommandDecision decide_at(const CommandPolicy& policy, const std::vector<std::string>& argv, const fs::path& cwd, int depth) {
  if (argv.empty()) throw CommandPolicyError(CommandPolicyError::Kind::invalid, "the command is empty");
  if (depth > 4) return denied({}, "launchers nested too deep");
  const auto exe = resolve(argv[0], policy.path, cwd);
  if (auto bad = shell_syntax(argv)) return denied(exe, *bad);
  const std::string name = exe.filename().string();
  if (runs_inline_code(name, argv)) return denied(exe, exe.string() + " would run code given on its command line, which cannot be checked");

  // The rules, on this program and its arguments.
  std::string joined;
  for (std::size_t i = 1; i < argv.size(); ++i) joined += (i > 1 ? " " : "") + argv[i];
  const CommandRule* matched = nullptr;
  for (auto action : {CommandRule::Action::deny, CommandRule::Action::approve, CommandRule::Action::allow}) {
    for (const auto& r : policy.rules)
      if (r.action == action && glob_match(r.program, exe.string()) && glob_match(r.arguments, joined)) {
        matched = &r;
        break;
      }
    if (matched) break;
  }
  if (!matched) return denied(exe, "no rule allows " + exe.string());
  if (matched->action == CommandRule::Action::deny)
    return denied(exe, exe.string() + " is denied by the rule deny '" + matched->program + "' (arguments '" + matched->arguments + "')");
  CommandDecision d{matched->action == CommandRule::Action::allow ? CommandDecision::Verdict::allow : CommandDecision::Verdict::approve, exe,
                    std::string("rule ") + verb(matched->action) + " '" + matched->program + "'"};

  // What it would start in turn must pass too; the stricter verdict wins.
  auto combine = [&](const CommandDecision& inner, const std::string& what) {
    if (inner.verdict == CommandDecision::Verdict::deny) return denied(exe, what + ": " + inner.reason);
    if (inner.verdict == CommandDecision::Verdict::approve) d.verdict = CommandDecision::Verdict::approve;
    return d;
  };
  if (is_launcher(name)) {
    auto at = launched(name, argv);
    if (!at) return d;  // `env` alone prints the environment
    return combine(decide_at(policy, std::vector<std::string>(argv.begin() + static_cast<std::ptrdiff_t>(*at), argv.end()), cwd, depth + 1),
                   name + " would start " + argv[*at]);
  }
  if (auto interp = shebang(exe)) {
    std::vector<std::string> run = *interp;
    run.push_back(exe.string());
    run.insert(run.end(), argv.begin() + 1, argv.end());
    return combine(decide_at(policy, run, cwd, depth + 1), "the script's interpreter " + (*interp)[0]);
  }
  return d;
}

}  // namespace command_detail

inline CommandPolicy CommandPolicy::parse(const boost::json::value& v) {
  auto fail = [](const std::string& message) { return CommandPolicyError(CommandPolicyError::Kind::invalid, "command policy: " + message); };
  if (!v.is_object()) throw fail("expected an object {rules: [...], path?}");
  CommandPolicy p;
  const auto& o = v.get_object();
  for (const auto& kv : o)
    if (kv.key() != "rules" && kv.key() != "path") throw fail("unknown field '" + std::string(kv.key()) + "' (expected rules, path)");
  if (const auto* path = o.if_contains("path")) {
    if (!path->is_string()) throw fail("path must be a string");
    p.path = std::string(path->get_string());
  }
  if (const auto* rules = o.if_contains("rules")) {
    if (!rules->is_array()) throw fail("rules must be a list");
    std::size_t i = 0;
    for (const auto& r : rules->get_array()) {
      const auto where = "rules[" + std::to_string(i++) + "]";
      if (!r.is_object()) throw fail(where + ": expected {allow|deny|approve: <program>, arguments?}");
      CommandRule rule;
      int actions = 0;
      for (const auto& kv : r.get_object()) {
        const std::string k(kv.key());
        const auto& val = kv.value();
        std::optional<CommandRule::Action> a;
        if (k == "allow") a = CommandRule::Action::allow;
        else if (k == "deny") a = CommandRule::Action::deny;
        else if (k == "approve") a = CommandRule::Action::approve;
        else if (k != "arguments") throw fail(where + ": unknown field '" + k + "'");
        if (!val.is_string() || val.get_string().empty()) throw fail(where + "." + k + ": expected a non-empty string");
        if (a) {
          ++actions;
          rule.action = *a;
          rule.program = std::string(val.get_string());
          if (!command_detail::starts_with(rule.program, "/") && rule.program != "*")
            throw fail(where + "." + k + ": '" + rule.program + "' must be an absolute path (a glob over resolved paths)");
        } else {
          rule.arguments = std::string(val.get_string());
        }
      }
      if (actions != 1) throw fail(where + ": exactly one of allow, deny, approve");
      p.rules.push_back(std::move(rule));
    }
  }
  return p;
}

inline std::optional<std::filesystem::path> find_program(const std::string& name, const std::string& path) {
  return command_detail::find_program(name, path);
}

inline CommandDecision decide_command(const CommandPolicy& policy, const std::vector<std::string>& argv, const std::filesystem::path& cwd) {
  return command_detail::decide_at(policy, argv, cwd, 0);
}

}  // namespace xcore::sdk
