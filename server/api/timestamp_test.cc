#include "api/timestamp.h"

#include <gtest/gtest.h>

#include <regex>

namespace stowage::api {
namespace {

std::string Canonical(std::string_view text) {
  std::string why;
  auto result = CanonicalTimestamp(text, &why);
  EXPECT_TRUE(result.has_value()) << text << ": " << why;
  return result.value_or("");
}

std::string Why(std::string_view text) {
  std::string why;
  auto result = CanonicalTimestamp(text, &why);
  EXPECT_FALSE(result.has_value()) << text << " was accepted as " << *result;
  return why;
}

TEST(CanonicalTimestampTest, UtcWithZ) {
  EXPECT_EQ(Canonical("2024-05-01T12:00:00Z"), "2024-05-01T12:00:00.000000Z");
}

TEST(CanonicalTimestampTest, FractionsArePaddedOrTruncatedToMicroseconds) {
  EXPECT_EQ(Canonical("2024-05-01T12:00:00.5Z"), "2024-05-01T12:00:00.500000Z");
  EXPECT_EQ(Canonical("2024-05-01T12:00:00.123456Z"), "2024-05-01T12:00:00.123456Z");
  EXPECT_EQ(Canonical("2024-05-01T12:00:00.123456789Z"), "2024-05-01T12:00:00.123456Z");
}

TEST(CanonicalTimestampTest, OffsetsAreConvertedToUtc) {
  EXPECT_EQ(Canonical("2024-05-01T14:00:00+02:00"), "2024-05-01T12:00:00.000000Z");
  EXPECT_EQ(Canonical("2024-05-01T14:00:00+0200"), "2024-05-01T12:00:00.000000Z");
  EXPECT_EQ(Canonical("2024-12-31T20:30:00.25-05:30"), "2025-01-01T02:00:00.250000Z");
  EXPECT_EQ(Canonical("2024-03-01T00:30:00+01:00"), "2024-02-29T23:30:00.000000Z");
}

TEST(CanonicalTimestampTest, NoOffsetMeansUtc) {
  EXPECT_EQ(Canonical("2024-05-01T12:00:00"), "2024-05-01T12:00:00.000000Z");
}

TEST(CanonicalTimestampTest, LenientSpellings) {
  EXPECT_EQ(Canonical("2024-05-01t12:00:00z"), "2024-05-01T12:00:00.000000Z");
  EXPECT_EQ(Canonical("2024-05-01 12:00:00Z"), "2024-05-01T12:00:00.000000Z");
  EXPECT_EQ(Canonical("2024-05-01T12:07Z"), "2024-05-01T12:07:00.000000Z");
}

TEST(CanonicalTimestampTest, RefusesWhatIsNotADateTime) {
  EXPECT_NE(Why("yesterday").find("date"), std::string::npos);
  EXPECT_NE(Why("2024-05-01").find("no time"), std::string::npos);
  EXPECT_NE(Why("2024-13-01T00:00:00Z").find("month 13"), std::string::npos);
  EXPECT_NE(Why("2023-02-29T00:00:00Z").find("day 29"), std::string::npos);
  EXPECT_NE(Why("2024-05-01T24:00:00Z").find("hour 24"), std::string::npos);
  EXPECT_NE(Why("2024-05-01T12:60:00Z").find("minute 60"), std::string::npos);
  EXPECT_NE(Why("2024-05-01T12:00:60Z").find("second 60"), std::string::npos);
  EXPECT_NE(Why("2024-05-01T12:00:00+25:00").find("offset"), std::string::npos);
  EXPECT_NE(Why("2024-05-01T12:00:00Zjunk").find("after"), std::string::npos);
  EXPECT_NE(Why("2024-05-01T12:00:00.Z").find("decimal point"), std::string::npos);
  EXPECT_NE(Why("0000-01-01T00:30:00+01:00").find("0001-9999"), std::string::npos);
  // PostgreSQL refuses year 0: so does the API, before any stage stores it.
  EXPECT_NE(Why("0000-06-01T00:00:00Z").find("0001-9999"), std::string::npos);
  EXPECT_NE(Why("0001-01-01T00:30:00+01:00").find("0001-9999"), std::string::npos);
  EXPECT_EQ(Canonical("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00.000000Z");
  EXPECT_NE(Why("9999-12-31T23:30:00-01:00").find("0001-9999"), std::string::npos);
  Why("");
}

// Caught by fuzz/timestamp_fuzzer (a reason must be valid UTF-8): the reason
// held the first byte of a UTF-8 sequence as it was, so the JSON answer of
// the request was not valid UTF-8.
TEST(CanonicalTimestampTest, ReasonShowsAnUnexpectedNonAsciiByteInHex) {
  std::string why = Why("2024-05-01T12:00:00\xc3\xa9");
  EXPECT_NE(why.find("unexpected byte 0xc3 after the time"), std::string::npos) << why;
  for (char c : why) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << why;
  EXPECT_NE(Why("2024-05-01T12:00:00x").find("unexpected 'x' after the time"), std::string::npos);
}

TEST(FormatTimestampTest, Epoch) {
  EXPECT_EQ(FormatTimestamp(std::chrono::sys_time<std::chrono::microseconds>{}),
            "1970-01-01T00:00:00.000000Z");
}

TEST(NowTimestampTest, IsCanonicalAndStable) {
  std::string now = NowTimestamp();
  EXPECT_TRUE(std::regex_match(now, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)"))) << now;
  EXPECT_EQ(Canonical(now), now);
}

}  // namespace
}  // namespace stowage::api
