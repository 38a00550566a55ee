// A compiled JSON Schema (valijson over Boost.JSON), shared by tool arguments and plugin configs; a host
// may use it for its own documents (the reference server checks request bodies with it).
#pragma once

#include <memory>
#include <string_view>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1 {

class JsonSchema {
 public:
  // invalid_argument naming what is wrong when `schema` is not a usable JSON Schema. The same schema (by its
  // JSON text) compiled again while the first is held is the same object: compiled schemas are immutable
  // and shared across Managers and threads.
  static Result<std::shared_ptr<const JsonSchema>> compile(const json::value& schema);
  ~JsonSchema();

  // ok, or invalid_argument whose message names the failing path, e.g. "/items/2: expected integer".
  // `what` prefixes the message ("argument", "config").
  Result<void> validate(const json::value& value, std::string_view what) const;

  // Fills in "default" values of object properties (recursively), without overwriting what is set.
  void apply_defaults(json::value& value) const;

 private:
  JsonSchema();
  static Result<std::shared_ptr<const JsonSchema>> compile_uncached(const json::value& schema);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xcore::inline v1
