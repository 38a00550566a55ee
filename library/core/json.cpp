#include <xcore/json.hpp>

#include <cmath>

// The Boost version check of <xcore/json.hpp>: defined for the Boost this library is built with.
extern "C" const int XCORE_BOOST_CHECK_NAME(BOOST_VERSION) = BOOST_VERSION;

namespace xcore::inline v1 {

namespace {

// A JSON pointer token: '~' and '/' escaped (RFC 6901).
void append_token(std::string& pointer, std::string_view key) {
  pointer.push_back('/');
  for (char c : key) {
    if (c == '~') pointer += "~0";
    else if (c == '/') pointer += "~1";
    else pointer.push_back(c);
  }
}

bool find_non_finite(const json::value& v, std::string& pointer) {
  switch (v.kind()) {
    case json::kind::double_: return !std::isfinite(v.get_double());
    case json::kind::object:
      for (const auto& [k, child] : v.get_object()) {
        const auto size = pointer.size();
        append_token(pointer, k);
        if (find_non_finite(child, pointer)) return true;
        pointer.resize(size);
      }
      return false;
    case json::kind::array: {
      const auto& a = v.get_array();
      for (std::size_t i = 0; i < a.size(); ++i) {
        const auto size = pointer.size();
        append_token(pointer, std::to_string(i));
        if (find_non_finite(a[i], pointer)) return true;
        pointer.resize(size);
      }
      return false;
    }
    default: return false;
  }
}

}  // namespace

std::optional<std::string> non_finite_number(const json::value& v) {
  std::string pointer;
  if (find_non_finite(v, pointer)) return pointer;
  return std::nullopt;
}

}  // namespace xcore::inline v1
