// Fuzz target: the timestamp parser, CanonicalTimestamp (server/api/timestamp.h).
// The input is the text a client sends as a message's "timestamp".
//
// Checks, beyond "no crash, no undefined behaviour":
// - it never throws; a refusal says why, in valid UTF-8 (the reason goes
//   into a JSON answer);
// - an accepted value is in the canonical form YYYY-MM-DDTHH:MM:SS.ffffffZ
//   of years 0001-9999, and parses to itself (the canonical form is a
//   fixed point, so every stage serves the same text);
// - without an offset, the canonical form keeps the date, hour and minute
//   as written; with one, it is the same text without the offset, moved by
//   the offset.
// - FormatTimestamp of any instant of years 0001-9999 (from the input's
//   first 8 bytes) parses back to itself.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "api/timestamp.h"
#include "fuzz_check.h"

namespace {

using stowage::api::CanonicalTimestamp;
using Micros = std::chrono::sys_time<std::chrono::microseconds>;

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// Whether `text` is YYYY-MM-DDTHH:MM:SS.ffffffZ, character classes only.
bool LooksCanonical(std::string_view text) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  if (text.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (kShape[i] == 'd' ? !IsDigit(text[i]) : text[i] != kShape[i]) return false;
  }
  return true;
}

// The instant of a canonical timestamp.
Micros Instant(std::string_view canonical) {
  auto number = [&](std::size_t at, std::size_t n) {
    long long value = 0;
    for (std::size_t i = 0; i < n; ++i) value = value * 10 + (canonical[at + i] - '0');
    return value;
  };
  std::chrono::year_month_day date{std::chrono::year(static_cast<int>(number(0, 4))),
                                   std::chrono::month(static_cast<unsigned>(number(5, 2))),
                                   std::chrono::day(static_cast<unsigned>(number(8, 2)))};
  return std::chrono::sys_days(date) + std::chrono::hours(number(11, 2)) +
         std::chrono::minutes(number(14, 2)) + std::chrono::seconds(number(17, 2)) +
         std::chrono::microseconds(number(20, 6));
}

// Where the UTC offset (+HH:MM, +HHMM, -...) of `text` starts, or npos; the
// time starts at 11, so a sign after that is the offset's.
std::size_t OffsetStart(std::string_view text) {
  if (text.size() <= 11) return std::string_view::npos;
  return text.find_first_of("+-", 11);
}

void CheckAccepted(std::string_view text, const std::string& canonical) {
  FUZZ_CHECK(LooksCanonical(canonical), "'%.*s' became '%s'", static_cast<int>(text.size()), text.data(),
             canonical.c_str());
  std::string why;
  auto again = CanonicalTimestamp(canonical, &why);
  FUZZ_CHECK(again.has_value(), "canonical '%s' is refused: %s", canonical.c_str(), why.c_str());
  FUZZ_CHECK(*again == canonical, "canonical '%s' became '%s'", canonical.c_str(), again->c_str());

  const std::size_t offset = OffsetStart(text);
  if (offset == std::string_view::npos) {
    // No offset: UTC as written. Date and HH:MM are kept (seconds may be absent).
    FUZZ_CHECK(canonical.compare(0, 10, text.substr(0, 10)) == 0 &&
                   canonical.compare(11, 5, text.substr(11, 5)) == 0,
               "'%.*s' became '%s'", static_cast<int>(text.size()), text.data(), canonical.c_str());
    return;
  }
  // With an offset: the same local time taken as UTC, minus the offset.
  std::string local(text.substr(0, offset));
  auto as_utc = CanonicalTimestamp(local, &why);
  if (!as_utc) return;  // e.g. out of range without the offset
  const std::string_view sign_and_digits = text.substr(offset);
  const int hours = (sign_and_digits[1] - '0') * 10 + (sign_and_digits[2] - '0');
  const std::size_t minutes_at = sign_and_digits[3] == ':' ? 4 : 3;
  const int minutes = (sign_and_digits[minutes_at] - '0') * 10 + (sign_and_digits[minutes_at + 1] - '0');
  const auto shift = std::chrono::minutes((hours * 60 + minutes) * (sign_and_digits[0] == '-' ? -1 : 1));
  FUZZ_CHECK(Instant(canonical) == Instant(*as_utc) - shift, "'%.*s' became '%s', but '%s' is '%s'",
             static_cast<int>(text.size()), text.data(), canonical.c_str(), local.c_str(), as_utc->c_str());
}

void CheckFormat(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return;
  std::int64_t raw;
  std::memcpy(&raw, data, sizeof raw);
  // Years 0001-9999: from 0001-01-01 to 9999-12-31T23:59:59.999999.
  constexpr std::int64_t kFirst = -62135596800LL * 1000000;
  constexpr std::int64_t kLast = 253402300800LL * 1000000 - 1;
  const std::uint64_t span = static_cast<std::uint64_t>(kLast - kFirst) + 1;
  const auto micros = kFirst + static_cast<std::int64_t>(static_cast<std::uint64_t>(raw) % span);
  const Micros time{std::chrono::microseconds(micros)};
  const std::string text = stowage::api::FormatTimestamp(time);
  FUZZ_CHECK(LooksCanonical(text), "FormatTimestamp(%lld) is '%s'", static_cast<long long>(micros),
             text.c_str());
  FUZZ_CHECK(Instant(text) == time, "FormatTimestamp(%lld) is '%s'", static_cast<long long>(micros),
             text.c_str());
  std::string why;
  auto parsed = CanonicalTimestamp(text, &why);
  FUZZ_CHECK(parsed && *parsed == text, "FormatTimestamp(%lld) is '%s', which parses to '%s' (%s)",
             static_cast<long long>(micros), text.c_str(), parsed ? parsed->c_str() : "nothing", why.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::string why;
    auto canonical = CanonicalTimestamp(text, &why);
    if (canonical) {
      CheckAccepted(text, *canonical);
    } else {
      FUZZ_CHECK(!why.empty(), "'%.*s' is refused without a reason", static_cast<int>(size), text.data());
      FUZZ_CHECK(stowage::fuzz::IsValidUtf8(why), "the reason is not valid UTF-8: '%s'", why.c_str());
    }
    CheckFormat(data, size);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "CanonicalTimestamp threw: %s", e.what());
  }
  return 0;
}
