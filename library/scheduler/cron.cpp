#include <xcore/cron.hpp>

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <vector>

#include "core/split.hpp"

namespace xcore::inline v1 {

namespace {

using namespace std::chrono;

struct Field {
  const char* name;
  int lo, hi;
  const char* const* names;  // index 0 = value lo (months: JAN = 1; days: SUN = 0)
  int name_count;
};

constexpr const char* kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDays[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
constexpr Field kSecond{"second", 0, 59, nullptr, 0};
constexpr Field kMinute{"minute", 0, 59, nullptr, 0};
constexpr Field kHour{"hour", 0, 23, nullptr, 0};
constexpr Field kDay{"day-of-month", 1, 31, nullptr, 0};
constexpr Field kMonth{"month", 1, 12, kMonths, 12};
constexpr Field kWeekday{"day-of-week", 0, 7, kDays, 7};  // 7 = Sunday, folded below


// Parses one field into bits [lo, hi]; `star` says it was unrestricted.
template <std::size_t N>
Result<void> parse_field(std::string_view text, const Field& f, std::bitset<N>& bits, bool& star, std::string_view whole) {
  auto fail = [&](std::string why) { return Error{ErrorCode::invalid_argument, fmt::format("cron '{}': {}: {}", whole, f.name, why)}; };
  auto value = [&](std::string_view v) -> Result<int> {
    if (v.empty()) return fail("a value is missing");
    if (f.names && std::isalpha(static_cast<unsigned char>(v.front()))) {
      std::string upper(v);
      for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      for (int i = 0; i < f.name_count; ++i)
        if (upper == f.names[i]) return f.lo + i;
      return fail(fmt::format("'{}' is not a {} name", v, f.name));
    }
    int n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size()) return fail(fmt::format("'{}' is not a number", v));
    if (n < f.lo || n > f.hi) return fail(fmt::format("{} is out of range {}-{}", n, f.lo, f.hi));
    return n;
  };
  // As Vixie cron: a field that starts with '*' counts as unrestricted for the day-of-month/day-of-week rule.
  if (text.empty()) return fail("empty");
  star = text.front() == '*' || text.front() == '?';
  for (auto part : split(text, ',')) {
    if (part.empty()) return fail("an empty list item");
    int step = 1;
    bool stepped = false;
    if (auto slash = part.find('/'); slash != std::string_view::npos) {
      auto s = part.substr(slash + 1);
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
      if (ec != std::errc() || p != s.data() + s.size() || step <= 0) return fail(fmt::format("step '{}' must be a positive number", s));
      part = part.substr(0, slash);
      stepped = true;
    }
    int from = 0, to = 0;
    if (part == "*" || part == "?") {
      from = f.lo;
      to = f.hi;
    } else if (auto dash = part.find('-'); dash != std::string_view::npos) {
      XCORE_ASSIGN_OR_RETURN(from, value(part.substr(0, dash)));
      XCORE_ASSIGN_OR_RETURN(to, value(part.substr(dash + 1)));
      if (to == 0 && from > 0 && f.names == kDays) to = 7;  // "FRI-SUN": Sunday closes the week
      if (to < from) return fail(fmt::format("range {} runs backwards", part));
    } else {
      XCORE_ASSIGN_OR_RETURN(from, value(part));
      to = stepped ? f.hi : from;  // "5/10": from 5 to the end, every 10
    }
    for (int v = from; v <= to; v += step) bits.set(static_cast<std::size_t>(v == 7 && f.names == kDays ? 0 : v));
  }
  return ok();
}

std::string_view expand_macro(std::string_view t) {
  if (t == "@yearly" || t == "@annually") return "0 0 1 1 *";
  if (t == "@monthly") return "0 0 1 * *";
  if (t == "@weekly") return "0 0 * * 0";
  if (t == "@daily" || t == "@midnight") return "0 0 * * *";
  if (t == "@hourly") return "0 * * * *";
  return {};
}

}  // namespace

Result<CronExpression> CronExpression::parse(std::string_view text) {
  CronExpression e;
  e.text_ = std::string(text);
  std::string_view body = text;
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.front()))) body.remove_prefix(1);
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.remove_suffix(1);
  if (body.starts_with("@")) {
    auto m = expand_macro(body);
    if (m.empty())
      return Error{ErrorCode::invalid_argument, fmt::format("cron '{}': unknown macro (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", text)};
    body = m;
  }
  std::vector<std::string_view> fields;
  for (std::size_t i = 0; i < body.size();) {
    while (i < body.size() && std::isspace(static_cast<unsigned char>(body[i]))) ++i;
    auto start = i;
    while (i < body.size() && !std::isspace(static_cast<unsigned char>(body[i]))) ++i;
    if (i > start) fields.push_back(body.substr(start, i - start));
  }
  if (fields.size() != 5 && fields.size() != 6)
    return Error{ErrorCode::invalid_argument,
                 fmt::format("cron '{}': expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got {}", text, fields.size())};
  std::size_t i = 0;
  bool unused = false;
  e.with_seconds_ = fields.size() == 6;
  if (e.with_seconds_) XCORE_TRY(parse_field(fields[i++], kSecond, e.seconds_, unused, text));
  else e.seconds_.set(0);
  XCORE_TRY(parse_field(fields[i++], kMinute, e.minutes_, unused, text));
  XCORE_TRY(parse_field(fields[i++], kHour, e.hours_, unused, text));
  XCORE_TRY(parse_field(fields[i++], kDay, e.days_, e.any_day_, text));
  XCORE_TRY(parse_field(fields[i++], kMonth, e.months_, unused, text));
  std::bitset<8> weekdays;
  XCORE_TRY(parse_field(fields[i++], kWeekday, weekdays, e.any_weekday_, text));
  for (std::size_t d = 0; d < 7; ++d) e.weekdays_[d] = weekdays[d];
  return e;
}

std::optional<sys_seconds> CronExpression::next_after(sys_seconds after, minutes utc_offset) const {
  // Work in local time (a fixed offset), one level at a time: skip whole months, days, hours, minutes.
  const auto local_after = after + utc_offset;
  auto day = floor<days>(local_after);
  auto tod = local_after - day;  // seconds into the day
  // Candidate: the next second after `after`.
  long long second_of_day = duration_cast<seconds>(tod).count() + 1;
  const auto limit = day + days(366 * 8);
  while (day < limit) {
    year_month_day ymd{day};
    const unsigned m = static_cast<unsigned>(ymd.month());
    if (!months_[m]) {  // to the first day of the next month
      auto next = year_month{ymd.year(), ymd.month()} + months(1);
      day = sys_days{next / 1};
      second_of_day = 0;
      continue;
    }
    const unsigned dom = static_cast<unsigned>(ymd.day());
    const unsigned dow = weekday{day}.c_encoding();
    // Vixie cron: with both restricted, either matching is enough; with one '*', only the other counts.
    const bool day_ok = any_day_ && any_weekday_ ? true
                        : any_day_              ? weekdays_[dow]
                        : any_weekday_          ? days_[dom]
                                                : days_[dom] || weekdays_[dow];
    if (!day_ok || second_of_day >= 86400) {
      day += days(1);
      second_of_day = 0;
      continue;
    }
    for (long long s = second_of_day; s < 86400;) {
      const auto h = static_cast<std::size_t>(s / 3600), mi = static_cast<std::size_t>(s / 60 % 60), se = static_cast<std::size_t>(s % 60);
      if (!hours_[h]) {
        s = (static_cast<long long>(h) + 1) * 3600;
        continue;
      }
      if (!minutes_[mi]) {
        s = (s / 60 + 1) * 60;
        continue;
      }
      if (!seconds_[se]) {
        ++s;
        continue;
      }
      return sys_seconds{day} + seconds(s) - utc_offset;
    }
    day += days(1);
    second_of_day = 0;
  }
  return std::nullopt;
}

}  // namespace xcore::inline v1
