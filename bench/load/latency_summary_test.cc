#include "latency_summary.h"

#include <gtest/gtest.h>

namespace stowage::bench {
namespace {

TEST(LatencySummaryTest, EmptySetIsAllZero) {
  std::vector<std::uint32_t> none;
  auto summary = Summarize(&none);
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.p50_ms, 0);
  EXPECT_EQ(summary.p999_ms, 0);
}

TEST(LatencySummaryTest, PercentilesAreNearestRankInMilliseconds) {
  // 1000 latencies of 1..1000 ms, shuffled by writing them backwards.
  std::vector<std::uint32_t> latencies;
  for (std::uint32_t ms = 1000; ms >= 1; --ms) latencies.push_back(ms * 1000);
  auto summary = Summarize(&latencies);
  EXPECT_EQ(summary.count, 1000);
  EXPECT_DOUBLE_EQ(summary.p50_ms, 500);
  EXPECT_DOUBLE_EQ(summary.p99_ms, 990);
  EXPECT_DOUBLE_EQ(summary.p999_ms, 999);
  EXPECT_DOUBLE_EQ(summary.max_ms, 1000);
}

TEST(LatencySummaryTest, OneSampleIsEveryPercentile) {
  std::vector<std::uint32_t> one{2500};
  auto summary = Summarize(&one);
  EXPECT_DOUBLE_EQ(summary.p50_ms, 2.5);
  EXPECT_DOUBLE_EQ(summary.p999_ms, 2.5);
}

}  // namespace
}  // namespace stowage::bench
