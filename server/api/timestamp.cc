#include "api/timestamp.h"

#include <cstdio>

namespace stowage::api {
namespace {

using std::chrono::microseconds;

// Reads exactly `n` digits at `pos`; advances `pos` on success.
bool Digits(std::string_view text, std::size_t& pos, int n, int* out) {
  if (pos + n > text.size()) return false;
  int value = 0;
  for (int i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  pos += n;
  return true;
}

bool Expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

std::optional<std::string> CanonicalTimestamp(std::string_view text, std::string* why) {
  std::size_t pos = 0;
  int year, month, day, hour, minute, second = 0;
  auto fail = [&](const std::string& reason) -> std::optional<std::string> {
    *why = reason;
    return std::nullopt;
  };
  if (!Digits(text, pos, 4, &year) || !Expect(text, pos, '-') || !Digits(text, pos, 2, &month) ||
      !Expect(text, pos, '-') || !Digits(text, pos, 2, &day)) {
    return fail("it does not start with a date YYYY-MM-DD");
  }
  if (pos >= text.size()) return fail("it has a date but no time; add one, e.g. T12:00:00Z");
  if (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ') {
    return fail("the date must be followed by 'T' and a time");
  }
  ++pos;
  if (!Digits(text, pos, 2, &hour) || !Expect(text, pos, ':') || !Digits(text, pos, 2, &minute)) {
    return fail("the time is not of the form HH:MM:SS");
  }
  if (pos < text.size() && text[pos] == ':') {
    ++pos;
    if (!Digits(text, pos, 2, &second)) return fail("the seconds are not two digits");
  }
  long long micros = 0;
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 6) micros = micros * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return fail("the decimal point is not followed by digits");
    for (int i = digits; i < 6; ++i) micros *= 10;
  }
  int offset_minutes = 0;
  if (pos < text.size()) {
    char c = text[pos];
    if (c == 'Z' || c == 'z') {
      ++pos;
    } else if (c == '+' || c == '-') {
      ++pos;
      int oh, om;
      if (!Digits(text, pos, 2, &oh)) return fail("the UTC offset is not of the form +HH:MM");
      if (pos < text.size() && text[pos] == ':') ++pos;
      if (!Digits(text, pos, 2, &om)) return fail("the UTC offset is not of the form +HH:MM");
      if (oh > 23 || om > 59) return fail("the UTC offset is out of range (at most +23:59)");
      offset_minutes = (oh * 60 + om) * (c == '-' ? -1 : 1);
    } else {
      // The reason goes into a JSON answer: a byte that is not printable
      // ASCII (such as the first of a UTF-8 sequence) is shown in hex.
      char shown[16];
      if (c >= 0x20 && c < 0x7f) {
        std::snprintf(shown, sizeof shown, "'%c'", c);
      } else {
        std::snprintf(shown, sizeof shown, "byte 0x%02x", static_cast<unsigned char>(c));
      }
      return fail("unexpected " + std::string(shown) +
                  " after the time; end with Z or an offset like +02:00");
    }
  }
  if (pos != text.size()) return fail("unexpected text after the UTC offset");

  if (month < 1 || month > 12) return fail("month " + std::to_string(month) + " is out of range 01-12");
  std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                   std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return fail("day " + std::to_string(day) + " does not exist in that month");
  if (hour > 23) return fail("hour " + std::to_string(hour) + " is out of range 00-23");
  if (minute > 59) return fail("minute " + std::to_string(minute) + " is out of range 00-59");
  if (second > 59) return fail("second " + std::to_string(second) + " is out of range 00-59");

  auto local = std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
               std::chrono::seconds(second) + microseconds(micros);
  auto utc = local - std::chrono::minutes(offset_minutes);
  std::chrono::year_month_day utc_date{std::chrono::floor<std::chrono::days>(utc)};
  // PostgreSQL's timestamptz has no year 0 (1 BC is written "0001 BC"),
  // and the canonical form has four digits.
  if (utc_date.year() < std::chrono::year(1) || utc_date.year() > std::chrono::year(9999)) {
    return fail("it falls outside the years 0001-9999 in UTC");
  }
  return FormatTimestamp(utc);
}

std::string FormatTimestamp(std::chrono::sys_time<microseconds> time) {
  auto days = std::chrono::floor<std::chrono::days>(time);
  std::chrono::year_month_day date{days};
  std::chrono::hh_mm_ss<microseconds> clock{time - days};
  char out[40];
  std::snprintf(out, sizeof out, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                static_cast<int>(clock.seconds().count()),
                static_cast<long long>(clock.subseconds().count()));
  return out;
}

std::string NowTimestamp() {
  return FormatTimestamp(std::chrono::floor<microseconds>(std::chrono::system_clock::now()));
}

}  // namespace stowage::api
