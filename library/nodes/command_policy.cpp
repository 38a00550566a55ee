#include "nodes/command_policy.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

#include "core/glob.hpp"
#include "core/split.hpp"

namespace xcore::inline v1::nodes {

namespace {

namespace fs = std::filesystem;

// Programs that start another program named by their arguments.
bool is_launcher(std::string_view name) {
  constexpr std::string_view kLaunchers[] = {"env", "nice", "nohup", "timeout", "xargs", "stdbuf", "setsid", "chrt", "ionice", "taskset"};
  return std::find(std::begin(kLaunchers), std::end(kLaunchers), name) != std::end(kLaunchers);
}

// Interpreters and the flags that hand them code on the command line.
bool runs_inline_code(std::string_view name, const std::vector<std::string>& argv) {
  struct Flags {
    std::string_view prefix;
    std::vector<std::string_view> flags;
  };
  static const Flags kInterpreters[] = {
      {"sh", {"-c"}},      {"bash", {"-c"}},  {"dash", {"-c"}},   {"zsh", {"-c"}},       {"ksh", {"-c"}},     {"fish", {"-c"}},
      {"busybox", {"sh", "ash"}},  {"python", {"-c"}}, {"perl", {"-e", "-E"}}, {"ruby", {"-e"}}, {"node", {"-e", "--eval", "-p", "--print"}},
      {"php", {"-r"}},     {"lua", {"-e"}},   {"awk", {""}},      {"gawk", {""}},        {"mawk", {""}},      {"tclsh", {""}},
  };
  for (const auto& interp : kInterpreters) {
    if (!name.starts_with(interp.prefix)) continue;
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

std::optional<std::string> shell_syntax(const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const auto& a = argv[i];
    for (std::string_view bad : {";", "|", "&", "$(", "`", "<", ">", "\n"})
      if (a.find(bad) != std::string::npos) return fmt::format("argument {} ('{}') holds shell syntax '{}'", i, a, bad == "\n" ? "\\n" : bad);
  }
  return std::nullopt;
}

bool executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

Result<fs::path> resolve(const std::string& program, const std::string& path, const fs::path& cwd) {
  if (program.empty()) return Error{ErrorCode::invalid_argument, "the command is empty"};
  fs::path found;
  if (program.find('/') != std::string::npos) {
    found = fs::path(program).is_absolute() ? fs::path(program) : cwd / program;
  } else {
    for (auto dir : split(path, ':')) {
      if (dir.empty()) continue;
      auto candidate = fs::path(std::string(dir)) / program;
      if (executable_file(candidate)) {
        found = candidate;
        break;
      }
    }
    if (found.empty()) return Error{ErrorCode::not_found, fmt::format("'{}' is not a program on the path {}", program, path)};
  }
  std::error_code ec;
  auto real = fs::canonical(found, ec);
  if (ec) return Error{ErrorCode::not_found, fmt::format("'{}': {}", program, ec.message())};
  if (!executable_file(real)) return Error{ErrorCode::permission_denied, fmt::format("'{}' ({}) is not an executable file", program, real.string())};
  return real;
}

// The program a launcher would start: its first argument that is neither an option nor VAR=value (nor
// the duration `timeout` takes, or the priority `nice -n` takes).
std::optional<std::size_t> launched(std::string_view launcher, const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const auto& a = argv[i];
    if (a.starts_with("-")) {
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

std::optional<std::vector<std::string>> shebang(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[2] = {};
  if (!in.read(head, 2) || head[0] != '#' || head[1] != '!') return std::nullopt;
  std::string line;
  std::getline(in, line);
  std::vector<std::string> words;
  for (auto w : split(line, ' '))
    if (!w.empty() && w != "\t") words.emplace_back(w);
  if (words.empty()) return std::nullopt;
  return words;
}

const char* verb(CommandRule::Action a) {
  return a == CommandRule::Action::allow ? "allow" : a == CommandRule::Action::deny ? "deny" : "approve";
}

CommandDecision denied(fs::path exe, std::string reason) { return CommandDecision{CommandDecision::Verdict::deny, std::move(exe), std::move(reason)}; }

Result<CommandDecision> decide_at(const CommandPolicy& policy, const std::vector<std::string>& argv, const fs::path& cwd, int depth) {
  if (argv.empty()) return Error{ErrorCode::invalid_argument, "the command is empty"};
  if (depth > 4) return denied({}, "launchers nested too deep");
  XCORE_ASSIGN_OR_RETURN(auto exe, resolve(argv[0], policy.path, cwd));
  if (auto bad = shell_syntax(argv)) return denied(exe, *bad);
  const std::string name = exe.filename().string();
  if (runs_inline_code(name, argv)) return denied(exe, fmt::format("{} would run code given on its command line, which cannot be checked", exe.string()));

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
  if (!matched) return denied(exe, fmt::format("no rule allows {}", exe.string()));
  if (matched->action == CommandRule::Action::deny)
    return denied(exe, fmt::format("{} is denied by the rule deny '{}' (arguments '{}')", exe.string(), matched->program, matched->arguments));
  CommandDecision d{matched->action == CommandRule::Action::allow ? CommandDecision::Verdict::allow : CommandDecision::Verdict::approve, exe,
                    fmt::format("rule {} '{}'", verb(matched->action), matched->program)};

  // What it would start in turn must pass too; the stricter verdict wins.
  auto combine = [&](const Result<CommandDecision>& inner, std::string_view what) -> Result<CommandDecision> {
    if (!inner) return inner.error();
    if (inner->verdict == CommandDecision::Verdict::deny) return denied(exe, fmt::format("{}: {}", what, inner->reason));
    if (inner->verdict == CommandDecision::Verdict::approve) d.verdict = CommandDecision::Verdict::approve;
    return d;
  };
  if (is_launcher(name)) {
    auto at = launched(name, argv);
    if (!at) return d;  // `env` alone prints the environment
    return combine(decide_at(policy, std::vector<std::string>(argv.begin() + static_cast<std::ptrdiff_t>(*at), argv.end()), cwd, depth + 1),
                   fmt::format("{} would start {}", name, argv[*at]));
  }
  if (auto interp = shebang(exe)) {
    std::vector<std::string> run = *interp;
    run.push_back(exe.string());
    run.insert(run.end(), argv.begin() + 1, argv.end());
    return combine(decide_at(policy, run, cwd, depth + 1), fmt::format("the script's interpreter {}", (*interp)[0]));
  }
  return d;
}

}  // namespace

Result<CommandPolicy> CommandPolicy::from_json(const json::value& v) {
  if (!v.is_object()) return Error{ErrorCode::invalid_argument, "command policy: expected an object {rules: [...], path?}"};
  CommandPolicy p;
  const auto& o = v.get_object();
  for (const auto& [k, _] : o)
    if (k != "rules" && k != "path") return Error{ErrorCode::invalid_argument, fmt::format("command policy: unknown field '{}' (expected rules, path)", std::string_view(k))};
  if (const auto* path = o.if_contains("path")) {
    if (!path->is_string()) return Error{ErrorCode::invalid_argument, "command policy: path must be a string"};
    p.path = std::string(path->get_string());
  }
  if (const auto* rules = o.if_contains("rules")) {
    if (!rules->is_array()) return Error{ErrorCode::invalid_argument, "command policy: rules must be a list"};
    std::size_t i = 0;
    for (const auto& r : rules->get_array()) {
      const auto where = fmt::format("command policy: rules[{}]", i++);
      if (!r.is_object()) return Error{ErrorCode::invalid_argument, fmt::format("{}: expected {{allow|deny|approve: <program>, arguments?}}", where)};
      CommandRule rule;
      int actions = 0;
      for (const auto& [k, val] : r.get_object()) {
        std::optional<CommandRule::Action> a;
        if (k == "allow") a = CommandRule::Action::allow;
        else if (k == "deny") a = CommandRule::Action::deny;
        else if (k == "approve") a = CommandRule::Action::approve;
        else if (k != "arguments") return Error{ErrorCode::invalid_argument, fmt::format("{}: unknown field '{}'", where, std::string_view(k))};
        if (!val.is_string() || val.get_string().empty()) return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: expected a non-empty string", where, std::string_view(k))};
        if (a) {
          ++actions;
          rule.action = *a;
          rule.program = std::string(val.get_string());
          if (!rule.program.starts_with("/") && rule.program != "*")
            return Error{ErrorCode::invalid_argument, fmt::format("{}.{}: '{}' must be an absolute path (a glob over resolved paths)", where, std::string_view(k), rule.program)};
        } else {
          rule.arguments = std::string(val.get_string());
        }
      }
      if (actions != 1) return Error{ErrorCode::invalid_argument, fmt::format("{}: exactly one of allow, deny, approve", where)};
      p.rules.push_back(std::move(rule));
    }
  }
  return p;
}

Result<CommandDecision> decide(const CommandPolicy& policy, const std::vector<std::string>& argv, const std::filesystem::path& cwd) {
  return decide_at(policy, argv, cwd, 0);
}

}  // namespace xcore::inline v1::nodes
