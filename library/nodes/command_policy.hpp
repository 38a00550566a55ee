// Which commands a node (or a shell plugin) may run: rules on the executable as the kernel would run it,
// never on the text a caller typed. Before any rule is asked:
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

#include <filesystem>
#include <string>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1::nodes {

struct CommandRule {
  enum class Action { allow, deny, approve };
  Action action = Action::deny;
  std::string program;     // glob ('*' any run) on the resolved absolute path: "/usr/bin/git", "/usr/bin/*"
  std::string arguments = "*";  // glob on the arguments joined by single spaces
};

struct CommandPolicy {
  std::vector<CommandRule> rules;
  std::string path = "/usr/local/bin:/usr/bin:/bin";  // where bare names are looked up
  // {"rules": [{"allow"|"deny"|"approve": "<program glob>", "arguments": "<glob>"}], "path": "..."}.
  // Errors name the rule and the field.
  static Result<CommandPolicy> from_json(const json::value& v);
};

struct CommandDecision {
  enum class Verdict { allow, deny, approve };
  Verdict verdict = Verdict::deny;
  std::filesystem::path executable;  // resolved
  std::string reason;                // why, naming the rule or the check
};

// Resolves argv[0] against `policy.path` and `cwd` and applies the checks above. An error only for a
// command that cannot be resolved at all (no such program).
Result<CommandDecision> decide(const CommandPolicy& policy, const std::vector<std::string>& argv, const std::filesystem::path& cwd);

}  // namespace xcore::inline v1::nodes
