// The one JSON serializer: numbers as people write them, strings escaped as RFC 8259 asks, and whatever it
// prints reads back to the same value.
#include <doctest/doctest.h>

#include <xcore/json_text.hpp>

#include <boost/json/parse.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <random>

namespace json = boost::json;
using xcore::json_text::serialize;

TEST_CASE("numbers: integers as integers, doubles in their shortest round-trip form, never an exponent of 0") {
  CHECK(serialize(json::value(10)) == "10");
  CHECK(serialize(json::value(-7)) == "-7");
  CHECK(serialize(json::value(std::numeric_limits<std::int64_t>::min())) == "-9223372036854775808");
  CHECK(serialize(json::value(std::numeric_limits<std::uint64_t>::max())) == "18446744073709551615");
  CHECK(serialize(json::value(3.5)) == "3.5");
  CHECK(serialize(json::value(10.0)) == "10");
  CHECK(serialize(json::value(0.1)) == "0.1");
  CHECK(serialize(json::value(-0.025)) == "-0.025");
  CHECK(serialize(json::value(2.4948e-2)) == "0.024948");
  CHECK(serialize(json::value(1e-7)) == "1e-07");
  CHECK(serialize(json::value(1e21)) == "1e+21");
  CHECK(serialize(json::value(123456789012.5)) == "123456789012.5");
  // JSON has no infinity or NaN.
  CHECK(serialize(json::value(std::numeric_limits<double>::infinity())) == "null");
  CHECK(serialize(json::value(std::nan(""))) == "null");
}

TEST_CASE("strings: quotes, backslashes and control characters escaped; UTF-8 passed through") {
  CHECK(serialize(json::string("plain")) == R"("plain")");
  CHECK(serialize(json::value("a\"b\\c")) == R"("a\"b\\c")");
  CHECK(serialize(json::value("line\nnext\ttab\r\b\f")) == R"("line\nnext\ttab\r\b\f")");
  CHECK(serialize(json::value(std::string("nul\0x\x1f", 6))) == R"("nul\u0000x\u001f")");
  CHECK(serialize(json::value("grüße ✓ /")) == "\"grüße ✓ /\"");
}

TEST_CASE("containers, in order, with nothing between tokens") {
  json::object o{{"a", 1}, {"b", json::array{1.5, "x", nullptr, true, false}}, {"c", json::object{}}, {"d", json::array{}}};
  CHECK(serialize(o) == R"({"a":1,"b":[1.5,"x",null,true,false],"c":{},"d":[]})");
  CHECK(serialize(json::value(o)) == serialize(o));
  CHECK(serialize(json::array{json::object{{"k", 2.0}}}) == R"([{"k":2}])");
}

// std::from_chars reads the text back: Boost.JSON 1.81's own parser may be a unit in the last place off.
TEST_CASE("what it prints reads back to the same value, doubles bit for bit") {
  std::mt19937_64 random(42);
  std::uniform_real_distribution<double> wide(-1e12, 1e12);
  std::uniform_int_distribution<int> exponent(-300, 300);
  json::array values;
  for (int i = 0; i < 2000; ++i) values.push_back(std::ldexp(wide(random), exponent(random) / 10) * (i % 3 ? 1 : 1e-9));
  const auto text = serialize(values);
  CHECK(text.find("E") == std::string::npos);
  REQUIRE(json::parse(text).as_array().size() == values.size());
  for (const auto& v : values) {
    const auto one = serialize(v);
    double got = 0;
    auto r = std::from_chars(one.data(), one.data() + one.size(), got);
    REQUIRE(r.ec == std::errc());
    CHECK(r.ptr == one.data() + one.size());
    CHECK(v.as_double() == got);
  }
}
