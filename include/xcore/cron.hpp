// Cron expressions: 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first); lists,
// ranges, steps (`*/15`, `1-30/2`, `5/10`), month and day names (JAN-DEC, SUN-SAT; 7 is Sunday too),
// macros (@yearly @annually @monthly @weekly @daily @midnight @hourly), and Vixie cron's rule: when both
// day-of-month and day-of-week are restricted, a day matching either fires. Times are UTC or a fixed offset.
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <xcore/error.hpp>

namespace xcore::inline v1 {

class CronExpression {
 public:
  // Errors name the field and what was wrong, e.g. "cron '0 25 * * *': hour: 25 is out of range 0-23".
  static Result<CronExpression> parse(std::string_view text);

  // The first fire time strictly after `after`, with the fields read in local time at `utc_offset`.
  // nullopt when there is none within the next eight years (e.g. "0 0 30 2 *").
  std::optional<std::chrono::sys_seconds> next_after(std::chrono::sys_seconds after,
                                                     std::chrono::minutes utc_offset = std::chrono::minutes(0)) const;

  const std::string& text() const noexcept { return text_; }
  bool has_seconds() const noexcept { return with_seconds_; }

 private:
  std::string text_;
  bool with_seconds_ = false;
  std::bitset<60> seconds_, minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1-31
  std::bitset<13> months_;  // 1-12
  std::bitset<7> weekdays_; // 0 = Sunday
  bool any_day_ = true, any_weekday_ = true;  // the field was '*' (or '?')
};

}  // namespace xcore::inline v1
