// Cron expressions: a table of expressions with their next fire times, and every kind of invalid one.
#include <doctest/doctest.h>

#include <xcore/cron.hpp>

#include <cstdio>
#include <string>

using namespace std::chrono;
using xcore::CronExpression;

namespace {

// "2026-11-22T07:00:00Z" -> sys_seconds (the tests' own, tiny ISO reader).
sys_seconds at(const char* iso) {
  int y, mo, d, h, mi, s;
  REQUIRE(std::sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s) == 6);
  return sys_days{year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)}} + hours{h} + minutes{mi} + seconds{s};
}

std::string iso(sys_seconds t) {
  auto day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss hms{t - day};
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                static_cast<long>(hms.seconds().count()));
  return buf;
}

}  // namespace

TEST_CASE("next fire times") {
  struct Case {
    const char* expr;
    const char* after;
    const char* next;  // nullptr: never
    int offset_minutes = 0;
  };
  const Case cases[] = {
      {"0 8 * * *", "2026-11-22T07:00:00Z", "2026-11-22T08:00:00Z"},
      {"0 8 * * *", "2026-11-22T08:00:00Z", "2026-11-23T08:00:00Z"},  // strictly after
      {"*/15 * * * *", "2026-11-22T10:07:30Z", "2026-11-22T10:15:00Z"},
      {"1-10/3 * * * *", "2026-11-22T10:04:00Z", "2026-11-22T10:07:00Z"},
      {"5/20 * * * *", "2026-11-22T10:26:00Z", "2026-11-22T10:45:00Z"},
      {"0,30 9-17 * * *", "2026-11-22T17:30:00Z", "2026-11-23T09:00:00Z"},
      // Month ends and leap years.
      {"0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"},
      {"0 0 29 2 *", "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
      {"0 0 29 2 *", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
      {"0 0 28-31 2 *", "2100-02-28T00:00:00Z", "2101-02-28T00:00:00Z"},  // 2100 is not a leap year
      {"0 0 1 1 *", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
      {"0 0 30 2 *", "2026-01-01T00:00:00Z", nullptr},
      // Day-of-month and day-of-week: either, when both are restricted (2026-11-22 is a Sunday).
      {"0 12 1 * MON", "2026-11-22T13:00:00Z", "2026-11-23T12:00:00Z"},
      {"0 12 24 * MON", "2026-11-23T13:00:00Z", "2026-11-24T12:00:00Z"},
      {"0 12 15 * *", "2026-11-22T00:00:00Z", "2026-12-15T12:00:00Z"},
      {"0 12 * * FRI", "2026-11-22T00:00:00Z", "2026-11-27T12:00:00Z"},
      {"0 12 */10 * MON", "2026-11-22T13:00:00Z", "2026-11-23T12:00:00Z"},  // "*/10" counts as '*': Mondays only
      {"0 0 * * 7", "2026-11-22T00:00:00Z", "2026-11-29T00:00:00Z"},        // 7 is Sunday
      {"0 0 * * sun", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"},
      {"30 9 * JAN-MAR MON-FRI", "2026-11-22T00:00:00Z", "2027-01-01T09:30:00Z"},
      {"0 0 * * FRI-SUN", "2026-11-23T00:00:00Z", "2026-11-27T00:00:00Z"},
      // Macros and seconds.
      {"@hourly", "2026-11-22T10:30:00Z", "2026-11-22T11:00:00Z"},
      {"@daily", "2026-11-22T10:30:00Z", "2026-11-23T00:00:00Z"},
      {"@weekly", "2026-11-22T10:30:00Z", "2026-11-29T00:00:00Z"},
      {"@monthly", "2026-11-22T10:30:00Z", "2026-12-01T00:00:00Z"},
      {"@yearly", "2026-11-22T10:30:00Z", "2027-01-01T00:00:00Z"},
      {"*/10 * * * * *", "2026-11-22T10:00:05Z", "2026-11-22T10:00:10Z"},
      {"0 0 12 * * *", "2026-11-22T12:00:00Z", "2026-11-23T12:00:00Z"},
      // Fixed offsets: the fields are read in local time.
      {"0 8 * * *", "2026-11-22T05:00:00Z", "2026-11-22T06:00:00Z", 120},
      {"0 0 * * *", "2026-11-22T00:00:00Z", "2026-11-22T05:00:00Z", -300},
      {"0 0 1 * *", "2026-11-30T20:00:00Z", "2026-11-30T22:00:00Z", 120},  // already December there
  };
  for (const auto& c : cases) {
    INFO(std::string(c.expr) << " after " << std::string(c.after) << " (offset " << c.offset_minutes << " min)");
    auto e = CronExpression::parse(c.expr);
    REQUIRE_MESSAGE(e.ok(), e.error().message);
    auto next = e->next_after(at(c.after), minutes(c.offset_minutes));
    if (!c.next) {
      CHECK(!next);
    } else {
      REQUIRE(next);
      CHECK(iso(*next) == c.next);
    }
  }
}

TEST_CASE("invalid expressions say what is wrong") {
  const std::pair<const char*, const char*> cases[] = {
      {"0 24 * * *", "hour: 24 is out of range 0-23"},
      {"60 * * * *", "minute: 60 is out of range 0-59"},
      {"0 0 0 * *", "day-of-month: 0 is out of range 1-31"},
      {"0 0 * 13 *", "month: 13 is out of range 1-12"},
      {"0 0 * * 8", "day-of-week: 8 is out of range 0-7"},
      {"* * * *", "expected 5 fields"},
      {"* * * * * * *", "got 7"},
      {"", "got 0"},
      {"0 0 * * FOO", "'FOO' is not a day-of-week name"},
      {"0 0 * JANUARY *", "'JANUARY' is not a month name"},
      {"*/0 * * * *", "step '0' must be a positive number"},
      {"*/x * * * *", "step 'x'"},
      {"5-1 * * * *", "range 5-1 runs backwards"},
      {"1,,2 * * * *", "an empty list item"},
      {"a * * * *", "'a' is not a number"},
      {"@every", "unknown macro"},
  };
  for (const auto& [expr, needle] : cases) {
    INFO(std::string(expr));
    auto e = CronExpression::parse(expr);
    REQUIRE(!e.ok());
    CHECK(e.error().code == xcore::ErrorCode::invalid_argument);
    CHECK_MESSAGE(e.error().message.find(needle) != std::string::npos, e.error().message);
  }
}
