#include "api/query_string.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace stowage::api {
namespace {

TEST(QueryStringTest, DecodesPlusAndPercentEscapes) {
  auto values = ParseQueryString("q=hello+w%C3%B6rld%21&k=5");
  ASSERT_TRUE(values);
  EXPECT_EQ(values->at("q"), "hello w\xC3\xB6rld!");
  EXPECT_EQ(values->at("k"), "5");
}

TEST(QueryStringTest, KeepsTheFirstOfRepeatedNamesAndAllowsEmptyValues) {
  auto values = ParseQueryString("q=a&q=b&empty=&flag");
  ASSERT_TRUE(values);
  EXPECT_EQ(values->at("q"), "a");
  EXPECT_EQ(values->at("empty"), "");
  EXPECT_EQ(values->at("flag"), "");
}

TEST(QueryStringTest, RefusesMalformedEscapes) {
  EXPECT_FALSE(ParseQueryString("q=%zz"));
  EXPECT_FALSE(ParseQueryString("q=%4"));
  EXPECT_FALSE(ParseQueryString("q=abc%"));
}

TEST(QueryStringTest, AWholeNumberIsAllOfTheTextAndFitsItsType) {
  std::uint64_t n = 0;
  EXPECT_TRUE(ParseWholeNumber("120", &n));
  EXPECT_EQ(n, 120u);
  EXPECT_TRUE(ParseWholeNumber("18446744073709551615", &n));
  for (const char* bad : {"", "+1", "-1", " 1", "1 ", "1.0", "1e3", "0x10", "18446744073709551616"})
    EXPECT_FALSE(ParseWholeNumber(bad, &n)) << bad;
  std::int64_t signed_n = 0;
  EXPECT_TRUE(ParseWholeNumber("-3", &signed_n));
  EXPECT_EQ(signed_n, -3);
}

TEST(QueryStringTest, AParameterIsQuotedUpTo64Bytes) {
  EXPECT_EQ(ShownParameter("abc"), "abc");
  EXPECT_EQ(ShownParameter(std::string(64, 'x')), std::string(64, 'x'));
  EXPECT_EQ(ShownParameter(std::string(65, 'x')), std::string(64, 'x') + "...");
}

}  // namespace
}  // namespace stowage::api
