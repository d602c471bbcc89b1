#include "idempotency/idempotency_cache.h"

#include <gtest/gtest.h>

#include <thread>

namespace stowage::idempotency {
namespace {

using namespace std::chrono_literals;
using Verdict = IdempotencyCache::Verdict;
auto Soon() { return IdempotencyCache::Clock::now() + 2s; }

TEST(IdempotencyCacheTest, ARetryWithTheSameBodyReplaysTheFirstAnswer) {
  IdempotencyCache cache;
  ASSERT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
  cache.Complete("g:k1", 200, "{\"sequence\":0}");
  auto again = cache.Begin("g:k1", "body", Soon());
  EXPECT_EQ(again.verdict, Verdict::kReplay);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, "{\"sequence\":0}");
}

TEST(IdempotencyCacheTest, TheSameKeyWithAnotherBodyIsAConflict) {
  IdempotencyCache cache;
  ASSERT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
  cache.Complete("g:k1", 200, "x");
  EXPECT_EQ(cache.Begin("g:k1", "other body", Soon()).verdict, Verdict::kConflict);
}

TEST(IdempotencyCacheTest, AnAbandonedRequestCanBeRetriedForReal) {
  IdempotencyCache cache;
  ASSERT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
  cache.Abandon("g:k1");
  EXPECT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
}

TEST(IdempotencyCacheTest, AConcurrentRetryWaitsForTheFirstAndReplaysIt) {
  IdempotencyCache cache;
  ASSERT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
  std::thread first([&] {
    std::this_thread::sleep_for(50ms);
    cache.Complete("g:k1", 200, "first");
  });
  auto retry = cache.Begin("g:k1", "body", Soon());
  first.join();
  EXPECT_EQ(retry.verdict, Verdict::kReplay);
  EXPECT_EQ(retry.body, "first");
}

TEST(IdempotencyCacheTest, ARetryGivesUpWaitingAtItsDeadline) {
  IdempotencyCache cache;
  ASSERT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
  EXPECT_EQ(cache.Begin("g:k1", "body", IdempotencyCache::Clock::now() + 20ms).verdict, Verdict::kBusy);
}

TEST(IdempotencyCacheTest, EntriesExpireAfterTheirTtl) {
  IdempotencyCache cache(std::chrono::seconds(0));
  ASSERT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
  cache.Complete("g:k1", 200, "x");
  EXPECT_EQ(cache.Begin("g:k1", "body", Soon()).verdict, Verdict::kNew);
}

TEST(IdempotencyCacheTest, TheOldestFinishedEntriesGoFirstOverCapacity) {
  IdempotencyCache cache(std::chrono::hours(1), 2);
  for (std::string key : {"a", "b", "c"}) {
    ASSERT_EQ(cache.Begin(key, "body", Soon()).verdict, Verdict::kNew);
    cache.Complete(key, 200, key);
  }
  EXPECT_EQ(cache.Begin("c", "body", Soon()).verdict, Verdict::kReplay);
  EXPECT_EQ(cache.Begin("b", "body", Soon()).verdict, Verdict::kReplay);
  EXPECT_LE(cache.size(), 2u);
  EXPECT_EQ(cache.Begin("a", "body", Soon()).verdict, Verdict::kNew);
}

}  // namespace
}  // namespace stowage::idempotency
