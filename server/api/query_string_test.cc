#include "api/query_string.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace stowage::api
