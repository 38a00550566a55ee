#include "nodes/command_policy.hpp"

namespace xcore::inline v1::nodes {

Result<CommandPolicy> CommandPolicy::from_json(const json::value& v) {
  try {
    return CommandPolicy{sdk::CommandPolicy::parse(v)};
  } catch (const sdk::CommandPolicyError& e) {
    return Error{ErrorCode::invalid_argument, e.what()};
  }
}

Result<CommandDecision> decide(const CommandPolicy& policy, const std::vector<std::string>& argv, const std::filesystem::path& cwd) {
  try {
    return sdk::decide_command(policy, argv, cwd);
  } catch (const sdk::CommandPolicyError& e) {
    using Kind = sdk::CommandPolicyError::Kind;
    return Error{e.kind() == Kind::not_found ? ErrorCode::not_found : e.kind() == Kind::not_executable ? ErrorCode::permission_denied : ErrorCode::invalid_argument,
                 e.what()};
  }
}

}  // namespace xcore::inline v1::nodes
