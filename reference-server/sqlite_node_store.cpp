// The nodes table: one row per remote node of a tenant, its token kept as a SHA-256 (a node token is 256
// random bits: a slow hash would add nothing), its spec (labels, the server's command policy), and what it
// last said of itself. Every statement names its tenant, but the lookup by token, which finds it.
#include "database_impl.hpp"

#include <boost/json/parse.hpp>
#include <xcore/json_text.hpp>

namespace xcore::server {

namespace {
constexpr const char* kColumns = "tenant, name, spec, created_at, last_seen, version";

Result<NodeRow> node_row(SQLite::Statement& s) {
  NodeRow n;
  n.tenant = s.getColumn(0).getString();
  n.name = s.getColumn(1).getString();
  boost::system::error_code ec;
  auto spec = json::parse(s.getColumn(2).getString(), ec);
  if (ec || !spec.is_object()) return Error{ErrorCode::internal, fmt::format("node '{}': its stored spec is not a JSON object", n.name)};
  n.spec = std::move(spec.as_object());
  n.created_at = s.getColumn(3).getInt64();
  n.last_seen = s.getColumn(4).getInt64();
  n.version = s.getColumn(5).getString();
  return n;
}
}  // namespace

Result<void> Database::create_node(const NodeRow& n, const std::string& token_hash) {
  XCORE_DB({
    SQLite::Statement s(db, "INSERT INTO nodes(tenant, name, token_hash, spec, created_at) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, n.tenant);
    s.bind(2, n.name);
    s.bind(3, token_hash);
    s.bind(4, xcore::json_text::serialize(n.spec));
    s.bind(5, n.created_at);
    try {
      s.exec();
    } catch (const SQLite::Exception& e) {
      if (is_constraint(e)) return Error{ErrorCode::already_exists, fmt::format("a node named '{}' exists already", n.name)};
      throw;
    }
    return ok();
  })
}

Result<std::optional<NodeRow>> Database::node(const std::string& tenant, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, fmt::format("SELECT {} FROM nodes WHERE tenant = ? AND name = ?", kColumns));
    s.bind(1, tenant);
    s.bind(2, name);
    if (!s.executeStep()) return std::optional<NodeRow>();
    XCORE_ASSIGN_OR_RETURN(auto n, node_row(s));
    return std::optional<NodeRow>(std::move(n));
  })
}

Result<std::vector<NodeRow>> Database::nodes(const std::string& tenant) {
  XCORE_DB({
    std::vector<NodeRow> out;
    SQLite::Statement s(db, fmt::format("SELECT {} FROM nodes WHERE tenant = ? ORDER BY name", kColumns));
    s.bind(1, tenant);
    while (s.executeStep()) {
      XCORE_ASSIGN_OR_RETURN(auto n, node_row(s));
      out.push_back(std::move(n));
    }
    return out;
  })
}

Result<std::optional<NodeRow>> Database::node_by_token(const std::string& token_hash) {
  XCORE_DB({
    SQLite::Statement s(db, fmt::format("SELECT {} FROM nodes WHERE token_hash = ?", kColumns));
    s.bind(1, token_hash);
    if (!s.executeStep()) return std::optional<NodeRow>();
    XCORE_ASSIGN_OR_RETURN(auto n, node_row(s));
    return std::optional<NodeRow>(std::move(n));
  })
}

Result<void> Database::set_node_token(const std::string& tenant, const std::string& name, const std::string& token_hash) {
  XCORE_DB({
    SQLite::Statement s(db, "UPDATE nodes SET token_hash = ? WHERE tenant = ? AND name = ?");
    s.bind(1, token_hash);
    s.bind(2, tenant);
    s.bind(3, name);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no node '{}'", name)};
    return ok();
  })
}

Result<void> Database::set_node_spec(const std::string& tenant, const std::string& name, const json::object& spec) {
  XCORE_DB({
    SQLite::Statement s(db, "UPDATE nodes SET spec = ? WHERE tenant = ? AND name = ?");
    s.bind(1, xcore::json_text::serialize(spec));
    s.bind(2, tenant);
    s.bind(3, name);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no node '{}'", name)};
    return ok();
  })
}

Result<void> Database::node_seen(const std::string& tenant, const std::string& name, std::int64_t at, const std::string& version) {
  XCORE_DB({
    SQLite::Statement s(db, "UPDATE nodes SET last_seen = ?, version = ? WHERE tenant = ? AND name = ?");
    s.bind(1, at);
    s.bind(2, version);
    s.bind(3, tenant);
    s.bind(4, name);
    s.exec();
    return ok();
  })
}

Result<void> Database::delete_node(const std::string& tenant, const std::string& name) {
  XCORE_DB({
    SQLite::Statement s(db, "DELETE FROM nodes WHERE tenant = ? AND name = ?");
    s.bind(1, tenant);
    s.bind(2, name);
    if (s.exec() == 0) return Error{ErrorCode::not_found, fmt::format("no node '{}'", name)};
    return ok();
  })
}

}  // namespace xcore::server
