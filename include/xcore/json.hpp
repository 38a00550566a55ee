// JSON values in the public API are Boost.JSON values; plugins receive them as UTF-8 JSON text.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <boost/version.hpp>
#include <xcore/json_text.hpp>

#include <optional>
#include <string>

// Boost.JSON values cross libxcore's C++ API, so a program must build against the Boost that libxcore was
// built with. Every file that includes this header refers to a symbol named after its Boost version, which
// libxcore defines for its own version only: a mismatch fails at link time ("undefined reference to
// xcore_built_with_boost_<version>") instead of corrupting memory at run time.
#define XCORE_BOOST_CHECK_NAME_(v) xcore_built_with_boost_##v
#define XCORE_BOOST_CHECK_NAME(v) XCORE_BOOST_CHECK_NAME_(v)
extern "C" const int XCORE_BOOST_CHECK_NAME(BOOST_VERSION);
namespace xcore::inline v1::detail {
[[maybe_unused]] __attribute__((used)) static const int* const boost_version_check = &XCORE_BOOST_CHECK_NAME(BOOST_VERSION);
}  // namespace xcore::inline v1::detail

namespace xcore::inline v1 {
namespace json = boost::json;

// Boost.JSON reads a number beyond the double range (`1e999`) as infinity, which JSON cannot carry back
// out. Where `v` holds one: a JSON pointer to it ("/args/n"); nullopt when every number is finite.
// Whatever reads JSON from outside refuses such a value with this pointer.
std::optional<std::string> non_finite_number(const json::value& v);
}  // namespace xcore::inline v1
