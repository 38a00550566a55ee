// Semantic versions (semver.org 2.0.0) and npm-style ranges, for plugin versions and dependencies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xcore/error.hpp>

namespace xcore::inline v1 {

struct Version {
  std::uint64_t major = 0, minor = 0, patch = 0;
  std::vector<std::string> prerelease;  // dot-separated identifiers after '-'
  std::string build;                    // after '+'; ignored for precedence

  // Strict semver: "1.2.3", "1.0.0-rc.1+build.5". No leading 'v', no leading zeros.
  static Result<Version> parse(std::string_view text);

  std::string to_string() const;
  // Precedence per semver 2.0.0 section 11; build metadata ignored.
  friend int compare(const Version& a, const Version& b) noexcept;
  friend bool operator==(const Version& a, const Version& b) noexcept { return compare(a, b) == 0; }
  friend auto operator<=>(const Version& a, const Version& b) noexcept { return compare(a, b) <=> 0; }
};

// A set of versions: npm syntax. Alternatives joined by "||", each a space-separated conjunction of
// comparators (=, <, <=, >, >=), caret (^1.2), tilde (~1.2.3), wildcards (1.x, 1.2.*, *) and hyphen
// ranges (1.2 - 2.0). As in npm, a prerelease only matches a comparator on the same major.minor.patch.
class VersionRange {
 public:
  static Result<VersionRange> parse(std::string_view text);
  bool contains(const Version& v) const noexcept;
  const std::string& text() const noexcept { return text_; }

 private:
  enum class Op : std::uint8_t { eq, lt, le, gt, ge };
  struct Comparator {
    Op op;
    Version version;
  };
  using Conjunction = std::vector<Comparator>;
  std::vector<Conjunction> alternatives_;
  std::string text_;

  static bool satisfies(const Comparator& c, const Version& v) noexcept;
  friend struct RangeParser;
};

}  // namespace xcore::inline v1
