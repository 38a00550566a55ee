// JSON text as people write it: the one serializer that libxcore, the SDK and the reference server use for
// everything they send (tool results, HTTP answers, hook payloads, wire messages, logs).
//
// Boost.JSON 1.81 prints every double in exponent form (3.5 as "3.5E0", 10.0 as "1E1"): valid JSON that
// no person expects. Here integers print as integers and doubles in the shortest form that reads back to
// the same double (std::to_chars): 3.5, 10, 0.1, 1e-07, 1e+21. JSON has no infinity or NaN: they print
// as null (callers refuse them at the door; see xcore::non_finite_number).
// Header-only, so plugins get it with the SDK and need nothing of libxcore.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <type_traits>
#include <cmath>
#include <string>
#include <string_view>

namespace xcore::json_text {

// A JSON string literal, quotes included. UTF-8 passes through; '"', '\\' and control characters are escaped.
inline void append_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t plain = 0;  // start of the run not yet copied
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
    }
  }
  out.append(s.data() + plain, s.size() - plain);
  out.push_back('"');
}

inline void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip form
  out.append(buf, r.ptr);
}

inline void append(std::string& out, const boost::json::value& v);

inline void append(std::string& out, const boost::json::array& a) {
  out.push_back('[');
  bool first = true;
  for (const auto& e : a) {
    if (!first) out.push_back(',');
    first = false;
    append(out, e);
  }
  out.push_back(']');
}

inline void append(std::string& out, const boost::json::object& o) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, e] : o) {
    if (!first) out.push_back(',');
    first = false;
    append_string(out, k);
    out.push_back(':');
    append(out, e);
  }
  out.push_back('}');
}

inline void append(std::string& out, const boost::json::value& v) {
  namespace json = boost::json;
  switch (v.kind()) {
    case json::kind::null: out += "null"; return;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
    case json::kind::int64:
    case json::kind::uint64: {
      char buf[24];
      auto r = v.is_int64() ? std::to_chars(buf, buf + sizeof buf, v.get_int64()) : std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      out.append(buf, r.ptr);
      return;
    }
    case json::kind::double_: append_number(out, v.get_double()); return;
    case json::kind::string: append_string(out, v.get_string()); return;
    case json::kind::array: append(out, v.get_array()); return;
    case json::kind::object: append(out, v.get_object()); return;
  }
}

// C++17 (the SDK's level): enable_if, not a requires clause.
template <class Json, std::enable_if_t<std::is_same_v<Json, boost::json::value> || std::is_same_v<Json, boost::json::object> ||
                                           std::is_same_v<Json, boost::json::array>,
                                       int> = 0>
inline std::string serialize(const Json& v) {
  std::string out;
  append(out, v);
  return out;
}
inline std::string serialize(const boost::json::string& s) {
  std::string out;
  append_string(out, s);
  return out;
}

}  // namespace xcore::json_text
