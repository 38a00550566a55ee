// Which commands a node may run: the SDK's command policy (<xcore/command_policy.hpp>, which a shell
// plugin compiles in too, so both decide alike), with xcore's Result for errors.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <xcore/command_policy.hpp>
#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1::nodes {

using CommandRule = sdk::CommandRule;
using CommandDecision = sdk::CommandDecision;

struct CommandPolicy : sdk::CommandPolicy {
  // {"rules": [{"allow"|"deny"|"approve": "<program glob>", "arguments": "<glob>"}], "path": "..."}.
  // Errors name the rule and the field.
  static Result<CommandPolicy> from_json(const json::value& v);
};

// Resolves argv[0] against `policy.path` and `cwd` and applies the policy's checks. An error only for a
// command that cannot be resolved at all (no such program).
Result<CommandDecision> decide(const CommandPolicy& policy, const std::vector<std::string>& argv, const std::filesystem::path& cwd);

}  // namespace xcore::inline v1::nodes
