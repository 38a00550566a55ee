// MCP's resources, prompts and completions of a Manager's enabled plugins, served as one server's. A list
// joins the plugins' lists (those the principal may see); a request that names something (a resource URI,
// a prompt, a completion's ref) goes to each such plugin in turn until one has it.
#include "manager/manager_impl.hpp"

#include <algorithm>

namespace xcore::inline v1 {

namespace {

// The field of a list method's result that holds its entries.
std::string_view list_field(std::string_view method) {
  if (method == "resources/list") return "resources";
  if (method == "resources/templates/list") return "resourceTemplates";
  if (method == "prompts/list") return "prompts";
  return {};
}

// Whom a request concerns: the gate of its family ("resources.read:<plugin>", "prompts.get:<plugin>").
Result<std::string_view> family_of(std::string_view method, const json::value& params) {
  if (method.starts_with("resources/")) return std::string_view("resources.read");
  if (method.starts_with("prompts/")) return std::string_view("prompts.get");
  if (method == "completion/complete") {
    const auto* ref = params.is_object() ? params.get_object().if_contains("ref") : nullptr;
    const auto* type = ref && ref->is_object() ? ref->get_object().if_contains("type") : nullptr;
    if (type && *type == "ref/prompt") return std::string_view("prompts.get");
    if (type && *type == "ref/resource") return std::string_view("resources.read");
    return Error{ErrorCode::invalid_argument, "completion/complete: params.ref.type must be 'ref/prompt' or 'ref/resource'"};
  }
  return Error{ErrorCode::not_found, fmt::format("no MCP method '{}' is served by plugins", method)};
}

// What a request names, for the error when no plugin has it.
std::string named(std::string_view method, const json::value& params) {
  const auto& p = params.is_object() ? params.get_object() : json::object();
  auto text = [&](const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string("?");
  };
  if (method.starts_with("resources/")) return fmt::format("resource '{}'", text(p, "uri"));
  if (method.starts_with("prompts/")) return fmt::format("prompt '{}'", text(p, "name"));
  const auto* ref = p.if_contains("ref");
  if (ref && ref->is_object()) {
    const auto& r = ref->get_object();
    return r.contains("name") ? fmt::format("prompt '{}'", text(r, "name")) : fmt::format("resource '{}'", text(r, "uri"));
  }
  return "what it names";
}

}  // namespace

Result<json::value> Manager::serve_mcp(std::string_view method, const json::value& params, const CallContext& ctx) {
  XCORE_ASSIGN_OR_RETURN(auto family, family_of(method, params));
  std::vector<SlotPtr> slots;
  {
    std::shared_lock lock(impl_->catalogue_mutex);
    for (const auto& [_, s] : impl_->catalogue)
      if (s->enabled.load(std::memory_order_acquire) && ctx.principal.holds(fmt::format("{}:{}", family, s->id))) slots.push_back(s);
  }
  std::sort(slots.begin(), slots.end(), [](const SlotPtr& a, const SlotPtr& b) { return a->id < b->id; });
  auto ask = [&](PluginSlot& slot) {
    return impl_->with_plugin<json::value>(slot, ctx, true, [&](Generation& g, const CallContext& c) { return g.runner->serve_mcp(method, params, c); });
  };

  if (const auto field = list_field(method); !field.empty()) {
    json::array entries;
    for (const auto& s : slots) {
      auto r = ask(*s);
      // One plugin that fails to list leaves the others' entries in the list; its failure goes to the log.
      if (!r) {
        if (r.error().code != ErrorCode::not_found)
          impl_->log(LogLevel::warn, s->id, fmt::format("{}: {}", method, r.error().message));
        continue;
      }
      const auto* list = r->is_object() ? r->get_object().if_contains(field) : nullptr;
      if (!list || !list->is_array()) {
        impl_->log(LogLevel::warn, s->id, fmt::format("{}: the answer has no '{}' list", method, field));
        continue;
      }
      for (const auto& e : list->get_array()) entries.push_back(e);
    }
    return json::object{{field, std::move(entries)}};
  }

  for (const auto& s : slots) {
    auto r = ask(*s);
    if (r || r.error().code != ErrorCode::not_found) return r;
  }
  return Error{ErrorCode::not_found, fmt::format("{}: no plugin has {}", method, named(method, params))};
}

}  // namespace xcore::inline v1
