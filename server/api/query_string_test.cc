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
  EXPECT_FALSE(ParseQueryString("%g0=1"));
  EXPECT_FALSE(ParseQueryString("k=5&q=%"));
}

TEST(QueryStringTest, EveryOtherByteIsItself) {
  // A request target may hold bytes a URL's query may not (raw UTF-8, '#',
  // '[', '"', '|'); they read as themselves.
  auto values = ParseQueryString("q=w\xC3\xB6rld #1 [a]|\"b\"&%2B=%2B+&%3D=%26");
  ASSERT_TRUE(values);
  EXPECT_EQ(values->at("q"), "w\xC3\xB6rld #1 [a]|\"b\"");
  EXPECT_EQ(values->at("+"), "+ ");
  EXPECT_EQ(values->at("="), "&");
}

TEST(QueryStringTest, SkipsEmptyItemsAndKeepsEmptyNames) {
  auto values = ParseQueryString("&&k=5&&=v&");
  ASSERT_TRUE(values);
  EXPECT_EQ(values->size(), 2u);
  EXPECT_EQ(values->at("k"), "5");
  EXPECT_EQ(values->at(""), "v");
  EXPECT_TRUE(ParseQueryString("")->empty());
  // '=' after the first is the value's.
  EXPECT_EQ(ParseQueryString("a=b=c")->at("a"), "b=c");
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
