#include <doctest/doctest.h>
#include <xcore/semver.hpp>

using xcore::Version;
using xcore::VersionRange;

static Version v(const char* s) {
  auto r = Version::parse(s);
  REQUIRE_MESSAGE(r.ok(), s);
  return *r;
}

static bool in(const char* range, const char* version) {
  auto r = VersionRange::parse(range);
  REQUIRE_MESSAGE(r.ok(), range << ": " << (r.ok() ? "" : r.error().message));
  return r->contains(v(version));
}

TEST_CASE("versions parse strictly") {
  CHECK(v("1.2.3").to_string() == "1.2.3");
  CHECK(v("1.0.0-rc.1+build.7").to_string() == "1.0.0-rc.1+build.7");
  for (const char* bad : {"1.2", "1", "01.2.3", "1.2.3-", "1.2.3-01", "v1.2.3", "1.2.3.4", "a.b.c", "1.2.3+", "1..3", ""}) {
    auto r = Version::parse(bad);
    CHECK_MESSAGE(!r.ok(), bad);
    if (!r.ok()) CHECK(r.error().message.find("version") != std::string::npos);
  }
}

TEST_CASE("precedence follows semver 2.0.0") {
  const char* ordered[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                           "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"};
  for (std::size_t i = 0; i + 1 < std::size(ordered); ++i) CHECK_MESSAGE(v(ordered[i]) < v(ordered[i + 1]), ordered[i]);
  CHECK(v("1.0.0+a") == v("1.0.0+b"));
}

TEST_CASE("caret, tilde, wildcards, comparators, hyphens and alternatives") {
  CHECK(in("^1.2.3", "1.9.0"));
  CHECK(!in("^1.2.3", "2.0.0"));
  CHECK(!in("^1.2.3", "1.2.2"));
  CHECK(in("^0.2.3", "0.2.9"));
  CHECK(!in("^0.2.3", "0.3.0"));
  CHECK(in("^0.0.3", "0.0.3"));
  CHECK(!in("^0.0.3", "0.0.4"));
  CHECK(in("^1", "1.99.0"));
  CHECK(in("^1.0", "1.4.0"));
  CHECK(in("~1.2.3", "1.2.9"));
  CHECK(!in("~1.2.3", "1.3.0"));
  CHECK(in("~1", "1.9.9"));
  CHECK(in("1.x", "1.5.0"));
  CHECK(!in("1.x", "2.0.0"));
  CHECK(in("1.2.*", "1.2.7"));
  CHECK(in("*", "0.0.1"));
  CHECK(in("", "3.0.0"));
  CHECK(in(">=1.0.0 <2.0.0", "1.5.0"));
  CHECK(!in(">=1.0.0 <2.0.0", "2.0.0"));
  CHECK(in(">1.2", "1.3.0"));
  CHECK(!in(">1.2", "1.2.9"));
  CHECK(in("<=1.2", "1.2.9"));
  CHECK(!in("<1.2", "1.2.0"));
  CHECK(in("1.2 - 2.3.4", "2.3.4"));
  CHECK(!in("1.2 - 2.3.4", "2.3.5"));
  CHECK(in("1.2.3 - 2.3", "2.3.9"));
  CHECK(in("^1.0 || ^3.0", "3.1.0"));
  CHECK(!in("^1.0 || ^3.0", "2.1.0"));
  CHECK(in(">= 1.0.0", "1.0.0"));
  CHECK(in("=1.2.3", "1.2.3"));
}

TEST_CASE("prereleases only match ranges that name them") {
  CHECK(!in("^1.0.0", "1.1.0-beta"));
  CHECK(in(">=1.1.0-alpha <2", "1.1.0-beta"));
  CHECK(!in(">=1.1.0-alpha <2", "1.2.0-beta"));
}

TEST_CASE("malformed ranges name the problem") {
  for (const char* bad : {"^", ">=", "1.2.3.4", "1.x.3", "abc", "- 1.0", ">=<1.0", "^1.0-rc"}) {
    auto r = VersionRange::parse(bad);
    CHECK_MESSAGE(!r.ok(), bad);
    if (!r.ok()) CHECK(r.error().message.find("version range") != std::string::npos);
  }
}
