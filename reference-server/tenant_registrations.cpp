// One tenant's plugin registrations, for its Manager (ManagerOptions::registrations), over the database's
// registration rows.
#include "database.hpp"
#include <xcore/json_text.hpp>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace xcore::server {

namespace {

// One tenant's registrations as the Manager keeps them; the config travels as JSON text in the row.
class TenantRegistrations final : public RegistrationStore {
 public:
  TenantRegistrations(Database& db, std::string tenant) : db_(db), tenant_(std::move(tenant)) {}

  Result<std::vector<Registration>> list() override {
    XCORE_ASSIGN_OR_RETURN(auto rows, db_.registrations(tenant_));
    std::vector<Registration> out;
    for (const auto& row : rows) {
      XCORE_ASSIGN_OR_RETURN(auto r, from_row(row));
      out.push_back(std::move(r));
    }
    return out;
  }
  Result<std::optional<Registration>> find(std::string_view plugin) override {
    XCORE_ASSIGN_OR_RETURN(auto row, db_.registration(tenant_, std::string(plugin)));
    if (!row) return std::optional<Registration>();
    XCORE_ASSIGN_OR_RETURN(auto r, from_row(*row));
    return std::optional(std::move(r));
  }
  Result<void> put(const Registration& r) override {
    return db_.put_registration(RegistrationRow{tenant_, r.plugin, r.version, r.enabled, xcore::json_text::serialize(r.config), 0, 0});
  }

 private:
  Result<Registration> from_row(const RegistrationRow& row) const {
    boost::system::error_code ec;
    auto config = json::parse(row.config, ec);
    if (ec || !config.is_object())
      return Error{ErrorCode::internal, fmt::format("tenant '{}': the stored config of plugin '{}' is not a JSON object", tenant_, row.plugin)};
    return Registration{row.plugin, row.enabled, std::move(config.get_object()), row.version};
  }
  Database& db_;
  std::string tenant_;
};

}  // namespace

std::shared_ptr<RegistrationStore> Database::registration_store(const std::string& tenant) {
  return std::make_shared<TenantRegistrations>(*this, tenant);
}

}  // namespace xcore::server
