// JSON values in the public API are Boost.JSON values; plugins receive them as UTF-8 JSON text.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>

namespace xcore::inline v1 {
namespace json = boost::json;

// Boost.JSON reads a number beyond the double range (`1e999`) as infinity, which JSON cannot carry back
// out. Where `v` holds one: a JSON pointer to it ("/args/n"); nullopt when every number is finite.
// Whatever reads JSON from outside refuses such a value with this pointer.
std::optional<std::string> non_finite_number(const json::value& v);
}  // namespace xcore::inline v1
