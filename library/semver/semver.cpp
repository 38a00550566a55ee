#include <xcore/semver.hpp>

#include "core/split.hpp"

#include <charconv>
#include <fmt/format.h>

namespace xcore::inline v1 {
namespace {

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool is_ident_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

Result<std::uint64_t> parse_number(std::string_view s, std::string_view whole, std::string_view what) {
  if (!is_digits(s))
    return Error{ErrorCode::invalid_argument, fmt::format("version '{}': {} '{}' is not a number", whole, what, s)};
  if (s.size() > 1 && s[0] == '0')
    return Error{ErrorCode::invalid_argument, fmt::format("version '{}': {} '{}' has a leading zero", whole, what, s)};
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size())
    return Error{ErrorCode::invalid_argument, fmt::format("version '{}': {} '{}' is too large", whole, what, s)};
  return v;
}


Result<std::vector<std::string>> parse_prerelease(std::string_view s, std::string_view whole) {
  std::vector<std::string> ids;
  for (auto id : split(s, '.')) {
    if (id.empty())
      return Error{ErrorCode::invalid_argument, fmt::format("version '{}': empty prerelease identifier", whole)};
    for (char c : id)
      if (!is_ident_char(c))
        return Error{ErrorCode::invalid_argument,
                     fmt::format("version '{}': invalid character '{}' in prerelease", whole, c)};
    if (is_digits(id) && id.size() > 1 && id[0] == '0')
      return Error{ErrorCode::invalid_argument,
                   fmt::format("version '{}': numeric prerelease identifier '{}' has a leading zero", whole, id)};
    ids.emplace_back(id);
  }
  return ids;
}

int compare_identifiers(const std::string& a, const std::string& b) {
  bool an = is_digits(a), bn = is_digits(b);
  if (an && bn) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
  }
  if (an != bn) return an ? -1 : 1;  // numeric identifiers have lower precedence
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

Result<Version> Version::parse(std::string_view text) {
  std::string_view rest = text;
  Version v;
  if (auto plus = rest.find('+'); plus != std::string_view::npos) {
    v.build = std::string(rest.substr(plus + 1));
    if (v.build.empty())
      return Error{ErrorCode::invalid_argument, fmt::format("version '{}': empty build metadata", text)};
    for (char c : v.build)
      if (!is_ident_char(c) && c != '.')
        return Error{ErrorCode::invalid_argument,
                     fmt::format("version '{}': invalid character '{}' in build metadata", text, c)};
    rest = rest.substr(0, plus);
  }
  if (auto dash = rest.find('-'); dash != std::string_view::npos) {
    XCORE_ASSIGN_OR_RETURN(v.prerelease, parse_prerelease(rest.substr(dash + 1), text));
    rest = rest.substr(0, dash);
  }
  auto parts = split(rest, '.');
  if (parts.size() != 3)
    return Error{ErrorCode::invalid_argument,
                 fmt::format("version '{}': expected MAJOR.MINOR.PATCH, e.g. 1.4.0", text)};
  XCORE_ASSIGN_OR_RETURN(v.major, parse_number(parts[0], text, "major"));
  XCORE_ASSIGN_OR_RETURN(v.minor, parse_number(parts[1], text, "minor"));
  XCORE_ASSIGN_OR_RETURN(v.patch, parse_number(parts[2], text, "patch"));
  return v;
}

std::string Version::to_string() const {
  std::string s = fmt::format("{}.{}.{}", major, minor, patch);
  for (std::size_t i = 0; i < prerelease.size(); ++i) {
    s += i == 0 ? '-' : '.';
    s += prerelease[i];
  }
  if (!build.empty()) s += '+' + build;
  return s;
}

int compare(const Version& a, const Version& b) noexcept {
  if (a.major != b.major) return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
  // A version without prerelease outranks one with.
  if (a.prerelease.empty() != b.prerelease.empty()) return a.prerelease.empty() ? 1 : -1;
  std::size_t n = std::min(a.prerelease.size(), b.prerelease.size());
  for (std::size_t i = 0; i < n; ++i)
    if (int c = compare_identifiers(a.prerelease[i], b.prerelease[i])) return c;
  if (a.prerelease.size() != b.prerelease.size()) return a.prerelease.size() < b.prerelease.size() ? -1 : 1;
  return 0;
}

// ---- ranges ----------------------------------------------------------------------------------------

struct RangeParser {
  using Op = VersionRange::Op;
  using Comparator = VersionRange::Comparator;

  // "1", "1.2", "1.x", "1.2.3-rc.1": how many numeric parts were given (wildcards stop the count).
  struct Partial {
    std::uint64_t n[3] = {0, 0, 0};
    int given = 0;
    std::vector<std::string> pre;
  };

  std::string_view whole;

  Error bad(std::string_view what) const {
    return Error{ErrorCode::invalid_argument, fmt::format("version range '{}': {}", whole, what)};
  }

  Result<Partial> partial(std::string_view s) const {
    if (!s.empty() && (s[0] == 'v' || s[0] == 'V')) s.remove_prefix(1);
    Partial p;
    if (auto plus = s.find('+'); plus != std::string_view::npos) s = s.substr(0, plus);
    std::string_view pre;
    if (auto dash = s.find('-'); dash != std::string_view::npos) {
      pre = s.substr(dash + 1);
      s = s.substr(0, dash);
    }
    if (s.empty() || s == "*" || s == "x" || s == "X") {
      if (!pre.empty()) return bad("a prerelease needs a full version");
      return p;
    }
    auto parts = split(s, '.');
    if (parts.size() > 3) return bad(fmt::format("'{}' has more than three parts", s));
    bool wild = false;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      auto part = parts[i];
      if (part == "x" || part == "X" || part == "*") {
        wild = true;
        continue;
      }
      if (wild) return bad(fmt::format("'{}' has a number after a wildcard", s));
      auto num = parse_number(part, whole, "part");
      if (!num) return bad(fmt::format("'{}' is not a version", s));
      p.n[i] = *num;
      ++p.given;
    }
    if (!pre.empty()) {
      if (p.given != 3) return bad("a prerelease needs a full version");
      auto ids = parse_prerelease(pre, whole);
      if (!ids) return std::move(ids).error();
      p.pre = std::move(*ids);
    }
    return p;
  }

  static Version ver(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::vector<std::string> pre = {}) {
    Version v;
    v.major = a;
    v.minor = b;
    v.patch = c;
    v.prerelease = std::move(pre);
    return v;
  }
  static Version low(const Partial& p) { return ver(p.n[0], p.n[1], p.n[2], p.pre); }
  // The first version past a partial: 1.2 -> 1.3.0, 1 -> 2.0.0.
  static Version past(const Partial& p) {
    if (p.given == 1) return ver(p.n[0] + 1, 0, 0);
    return ver(p.n[0], p.n[1] + 1, 0);
  }

  void add_wild(const Partial& p, VersionRange::Conjunction& out) const {
    if (p.given == 0) {
      out.push_back({Op::ge, ver(0, 0, 0)});
    } else if (p.given == 3) {
      out.push_back({Op::eq, low(p)});
    } else {
      out.push_back({Op::ge, low(p)});
      out.push_back({Op::lt, past(p)});
    }
  }

  void add_caret(const Partial& p, VersionRange::Conjunction& out) const {
    out.push_back({Op::ge, low(p)});
    if (p.given == 0) return;
    Version hi;
    if (p.n[0] > 0 || p.given == 1)
      hi = ver(p.n[0] + 1, 0, 0);
    else if (p.n[1] > 0 || p.given == 2)
      hi = ver(0, p.n[1] + 1, 0);
    else
      hi = ver(0, 0, p.n[2] + 1);
    out.push_back({Op::lt, hi});
  }

  void add_tilde(const Partial& p, VersionRange::Conjunction& out) const {
    out.push_back({Op::ge, low(p)});
    if (p.given == 0) return;
    out.push_back({Op::lt, p.given == 1 ? ver(p.n[0] + 1, 0, 0) : ver(p.n[0], p.n[1] + 1, 0)});
  }

  Result<void> add_comparator(Op op, const Partial& p, VersionRange::Conjunction& out) const {
    if (p.given == 3 || (p.given == 0 && (op == Op::ge || op == Op::le || op == Op::eq))) {
      if (p.given == 0) {
        out.push_back({Op::ge, ver(0, 0, 0)});  // ">=*" and "<=*" mean any version
      } else {
        out.push_back({op, low(p)});
      }
      return ok();
    }
    if (p.given == 0) {  // ">*" or "<*": nothing can match
      out.push_back({Op::lt, ver(0, 0, 0)});
      return ok();
    }
    switch (op) {
      case Op::eq: add_wild(p, out); break;
      case Op::ge: out.push_back({Op::ge, low(p)}); break;
      case Op::gt: out.push_back({Op::ge, past(p)}); break;
      case Op::lt: out.push_back({Op::lt, low(p)}); break;
      case Op::le: out.push_back({Op::lt, past(p)}); break;
    }
    return ok();
  }

  Result<void> conjunction(std::string_view s, VersionRange::Conjunction& out) const {
    // Tokens separated by spaces; an operator may be followed by spaces before its version.
    std::vector<std::string> tokens;
    std::size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && s[i] == ' ') ++i;
      if (i >= s.size()) break;
      std::size_t j = i;
      while (j < s.size() && (s[j] == '<' || s[j] == '>' || s[j] == '=' || s[j] == '^' || s[j] == '~')) ++j;
      std::size_t ops_end = j;
      if (ops_end > i) while (j < s.size() && s[j] == ' ') ++j;
      std::size_t k = j;
      while (k < s.size() && s[k] != ' ') ++k;
      tokens.push_back(std::string(s.substr(i, ops_end - i)) + std::string(s.substr(j, k - j)));
      i = k;
    }
    if (tokens.empty()) {
      out.push_back({Op::ge, ver(0, 0, 0)});
      return ok();
    }
    // Hyphen range: "A - B".
    if (tokens.size() == 3 && tokens[1] == "-") {
      auto a = partial(tokens[0]);
      if (!a) return std::move(a).error();
      auto b = partial(tokens[2]);
      if (!b) return std::move(b).error();
      out.push_back({Op::ge, low(*a)});
      if (b->given == 3)
        out.push_back({Op::le, low(*b)});
      else if (b->given > 0)
        out.push_back({Op::lt, past(*b)});
      return ok();
    }
    for (const auto& tok : tokens) {
      std::string_view t = tok;
      if (t == "-") return bad("'-' must stand between two versions, as in '1.2 - 2.0'");
      if (t.starts_with("^") || t.starts_with("~")) {
        bool caret = t[0] == '^';
        t.remove_prefix(t.starts_with("~>") ? 2 : 1);
        if (t.empty()) return bad(fmt::format("'{}' needs a version", tok));
        auto p = partial(t);
        if (!p) return std::move(p).error();
        caret ? add_caret(*p, out) : add_tilde(*p, out);
        continue;
      }
      Op op = Op::eq;
      if (t.starts_with(">=")) op = Op::ge, t.remove_prefix(2);
      else if (t.starts_with("<=")) op = Op::le, t.remove_prefix(2);
      else if (t.starts_with(">")) op = Op::gt, t.remove_prefix(1);
      else if (t.starts_with("<")) op = Op::lt, t.remove_prefix(1);
      else if (t.starts_with("=")) op = Op::eq, t.remove_prefix(1);
      if (t.empty()) return bad(fmt::format("'{}' needs a version", tok));
      if (t.find_first_of("<>=^~") != std::string_view::npos)
        return bad(fmt::format("'{}' has an operator in the wrong place", tok));
      auto p = partial(t);
      if (!p) return std::move(p).error();
      XCORE_TRY(add_comparator(op, *p, out));
    }
    return ok();
  }
};

Result<VersionRange> VersionRange::parse(std::string_view text) {
  VersionRange r;
  r.text_ = std::string(text);
  RangeParser parser{text};
  std::size_t start = 0;
  for (;;) {
    auto pos = text.find("||", start);
    auto part = text.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
    Conjunction c;
    XCORE_TRY(parser.conjunction(part, c));
    r.alternatives_.push_back(std::move(c));
    if (pos == std::string_view::npos) break;
    start = pos + 2;
  }
  return r;
}

bool VersionRange::satisfies(const Comparator& c, const Version& v) noexcept {
  int cmp = compare(v, c.version);
  switch (c.op) {
    case Op::eq: return cmp == 0;
    case Op::lt: return cmp < 0;
    case Op::le: return cmp <= 0;
    case Op::gt: return cmp > 0;
    case Op::ge: return cmp >= 0;
  }
  return false;
}

bool VersionRange::contains(const Version& v) const noexcept {
  for (const auto& conj : alternatives_) {
    bool all = true;
    for (const auto& c : conj)
      if (!satisfies(c, v)) {
        all = false;
        break;
      }
    if (!all) continue;
    if (v.prerelease.empty()) return true;
    // npm's rule: a prerelease matches only when a comparator names the same major.minor.patch with one.
    for (const auto& c : conj)
      if (!c.version.prerelease.empty() && c.version.major == v.major && c.version.minor == v.minor &&
          c.version.patch == v.patch)
        return true;
  }
  return false;
}

}  // namespace xcore::inline v1
