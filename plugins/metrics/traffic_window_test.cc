// TrafficWindow and UsagePolicy: the in-memory parts of the metrics stage.
#include "traffic_window.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "usage_ledger.h"
#include "usage_policy.h"

namespace stowage::metrics {
namespace {

using std::chrono::microseconds;

TEST(TrafficWindowTest, CountsReadsPerUserAndAllTrafficTogether) {
  TrafficWindow window;
  window.add_read("a", true, microseconds(1000));
  window.add_read("a", false, microseconds(3000));
  window.add_read("b", true, microseconds(2000));
  window.add_write(microseconds(6000));

  TrafficCounts counts = window.take();
  EXPECT_EQ(counts.reads.size(), 2u);
  EXPECT_EQ(counts.reads["a"], (UserReads{1, 1}));
  EXPECT_EQ(counts.reads["b"], (UserReads{1, 0}));
  EXPECT_EQ(counts.cache_hits, 2);
  EXPECT_EQ(counts.cache_misses, 2);  // one read, one write
  EXPECT_EQ(counts.total_requests, 4);
  EXPECT_DOUBLE_EQ(counts.average_response_ms(), 3.0);
}

TEST(TrafficWindowTest, TakeStartsANewWindow) {
  TrafficWindow window;
  window.add_write(microseconds(10));
  EXPECT_FALSE(window.take().empty());
  TrafficCounts next = window.take();
  EXPECT_TRUE(next.empty());
  EXPECT_DOUBLE_EQ(next.average_response_ms(), 0.0);
}

TEST(TrafficWindowTest, RestoredCountsAddToNewOnes) {
  TrafficWindow window;
  window.add_read("a", true, microseconds(1000));
  TrafficCounts failed = window.take();
  window.add_read("a", false, microseconds(1000));
  window.restore(failed);

  TrafficCounts counts = window.take();
  EXPECT_EQ(counts.reads["a"], (UserReads{1, 1}));
  EXPECT_EQ(counts.total_requests, 2);
  EXPECT_EQ(counts.total_elapsed, microseconds(2000));
}

TEST(TrafficWindowTest, KeepsTheReadsOfAtMostItsMostUsers) {
  TrafficWindow window(2);
  window.add_read("a", true, microseconds(1000));
  window.add_read("b", false, microseconds(1000));
  window.add_read("c", true, microseconds(1000));  // a third user: counted, not kept by name
  window.add_read("a", false, microseconds(1000));
  TrafficCounts counts = window.take();
  EXPECT_EQ(counts.reads.size(), 2u);
  EXPECT_EQ(counts.reads["a"], (UserReads{1, 1}));
  EXPECT_EQ(counts.unattributed_reads, 1);
  EXPECT_EQ(counts.total_requests, 4);
  EXPECT_EQ(counts.cache_hits, 2);

  // Counts put back after a failed flush respect the bound too.
  window.add_read("d", true, microseconds(1000));
  window.add_read("e", true, microseconds(1000));
  window.restore(counts);
  TrafficCounts merged = window.take();
  EXPECT_EQ(merged.reads.size(), 2u);
  EXPECT_EQ(merged.unattributed_reads, 1 + 3);  // c's read, and a's two and b's one that no longer fit
  EXPECT_EQ(merged.total_requests, 6);
}

TEST(TextArrayLiteralTest, QuotesEveryElementAndEscapesQuotesAndBackslashes) {
  EXPECT_EQ(TextArrayLiteral({}), "{}");
  EXPECT_EQ(TextArrayLiteral({"a", "b\"c", "d\\e", "NULL"}), R"({"a","b\"c","d\\e","NULL"})");
}

StageConfig PolicyConfig(std::map<std::string, ConfigValue> overrides) {
  ConfigSchema schema;
  UsagePolicy::Declare(schema);
  return ConfigWithDefaults(schema, std::move(overrides));
}

TEST(UsagePolicyTest, DefaultsToGuestsWithAnEnforcedLimitOf1000) {
  UsagePolicy policy = UsagePolicy::FromConfig(PolicyConfig({}));
  EXPECT_EQ(policy.tier, "guest");
  EXPECT_EQ(policy.monthly_limit, 1000);
  EXPECT_TRUE(policy.enforce_limit);
}

TEST(UsagePolicyTest, TakesTheLimitOfTheChosenTier) {
  UsagePolicy policy = UsagePolicy::FromConfig(
      PolicyConfig({{"tier", std::string("premium")}, {"premium_monthly_limit", std::int64_t{7}}}));
  EXPECT_EQ(policy.tier, "premium");
  EXPECT_EQ(policy.monthly_limit, 7);
}

// The host refuses, naming the key, a tier or a limit the schema does not allow.
TEST(UsagePolicyTest, TheSchemaAllowsTheKnownTiersAndPositiveLimits) {
  ConfigSchema schema;
  UsagePolicy::Declare(schema);
  EXPECT_EQ(schema.find("tier")->allowed, (std::vector<std::string>{"guest", "free", "premium"}));
  for (const char* key : {"guest_monthly_limit", "free_monthly_limit", "premium_monthly_limit"}) {
    EXPECT_EQ(schema.find(key)->min, ConfigValue(std::int64_t{1})) << key;
    EXPECT_EQ(schema.find(key)->max, ConfigValue(std::int64_t{2147483647})) << key;
  }
}

}  // namespace
}  // namespace stowage::metrics
