// JSON values in the public API are Boost.JSON values; plugins receive them as UTF-8 JSON text.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

namespace xcore::inline v1 {
namespace json = boost::json;
}  // namespace xcore::inline v1
