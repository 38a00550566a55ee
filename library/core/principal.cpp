#include <xcore/call_context.hpp>

#include <fmt/format.h>

#include <algorithm>

#include "core/glob.hpp"

namespace xcore::inline v1 {

Principal Principal::host() {
  Principal p;
  p.kind = Kind::host;
  return p;
}

Principal Principal::plugin(std::string id, std::vector<std::string> grants) {
  Principal p;
  p.kind = Kind::plugin;
  // A plugin always reaches its own tools and actions.
  grants.push_back(fmt::format("tools.call:{}.*", id));
  grants.push_back(fmt::format("actions.call:{}/*", id));
  p.id = std::move(id);
  p.permissions = std::move(grants);
  return p;
}

bool Principal::holds(std::string_view permission) const noexcept {
  if (unrestricted()) return true;
  return std::any_of(permissions.begin(), permissions.end(), [&](const std::string& p) { return glob_match(p, permission); });
}

bool Principal::allows(std::string_view permission) const noexcept {
  for (const Principal* p = this; p; p = p->on_behalf_of.get())
    if (!p->holds(permission)) return false;
  return true;
}

bool Principal::covers(std::string_view pattern) const noexcept {
  // glob_match treats the pattern's own '*' as text, which a held '*' matches: a held pattern covers
  // exactly the patterns it matches as strings.
  return holds(pattern);
}

std::string Principal::describe() const {
  if (kind == Kind::host) return "the host";
  if (id.empty()) return std::string(to_string(kind));
  return fmt::format("{} '{}'", to_string(kind), id);
}

std::string_view to_string(Principal::Kind kind) noexcept {
  switch (kind) {
    case Principal::Kind::anonymous: return "anonymous";
    case Principal::Kind::host: return "host";
    case Principal::Kind::user: return "user";
    case Principal::Kind::api_token: return "api_token";
    case Principal::Kind::plugin: return "plugin";
    case Principal::Kind::agent: return "agent";
    case Principal::Kind::node: return "node";
  }
  return "anonymous";
}

std::optional<Principal::Kind> principal_kind_from_string(std::string_view text) noexcept {
  for (auto k : {Principal::Kind::anonymous, Principal::Kind::host, Principal::Kind::user, Principal::Kind::api_token, Principal::Kind::plugin,
                 Principal::Kind::agent, Principal::Kind::node})
    if (to_string(k) == text) return k;
  return std::nullopt;
}

}  // namespace xcore::inline v1
