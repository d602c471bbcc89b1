#include "engine/circuit_breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace stowage::engine {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;

// A breaker whose clock the test moves by hand.
class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreaker Make(int threshold, std::chrono::milliseconds cooldown = 1000ms) {
    return CircuitBreaker({threshold, cooldown}, [this] { return now_; });
  }
  void Advance(std::chrono::milliseconds by) { now_ += by; }

  // Fails `n` allowed calls.
  static void Fail(CircuitBreaker& breaker, int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(breaker.Allow());
      breaker.RecordFailure();
    }
  }

 private:
  CircuitBreaker::Clock::time_point now_ = CircuitBreaker::Clock::time_point() + 1h;
};

TEST_F(CircuitBreakerTest, StartsClosedAndAllowsCalls) {
  CircuitBreaker breaker = Make(3);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_STREQ(CircuitStateName(breaker.state()), "closed");
}

TEST_F(CircuitBreakerTest, OpensAtTheThresholdOfConsecutiveFailures) {
  CircuitBreaker breaker = Make(3);
  Fail(breaker, 2);
  EXPECT_EQ(breaker.state(), State::kClosed);
  Fail(breaker, 1);
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_STREQ(CircuitStateName(breaker.state()), "open");
}

TEST_F(CircuitBreakerTest, SkipsEveryCallDuringTheCooldown) {
  CircuitBreaker breaker = Make(2, 1000ms);
  Fail(breaker, 2);
  EXPECT_FALSE(breaker.Allow());
  Advance(999ms);
  EXPECT_FALSE(breaker.Allow());
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, LetsOneProbeThroughAfterTheCooldownAndSkipsOthersWhileItRuns) {
  CircuitBreaker breaker = Make(2, 1000ms);
  Fail(breaker, 2);
  Advance(1000ms);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_STREQ(CircuitStateName(breaker.state()), "half_open");
  EXPECT_FALSE(breaker.Allow());
  EXPECT_FALSE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, ProbeSuccessClosesAndResetsTheFailureCount) {
  CircuitBreaker breaker = Make(2, 1000ms);
  Fail(breaker, 2);
  Advance(1000ms);
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordSuccess();
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_TRUE(breaker.Allow());
  // The count starts again from zero: one failure does not re-open it.
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), State::kClosed);
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, ProbeFailureReopensForANewCooldown) {
  CircuitBreaker breaker = Make(2, 1000ms);
  Fail(breaker, 2);
  Advance(1500ms);
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), State::kOpen);
  // The new cool-down runs from the probe's failure, not from the first opening.
  Advance(999ms);
  EXPECT_FALSE(breaker.Allow());
  Advance(1ms);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

TEST_F(CircuitBreakerTest, SuccessInClosedStateResetsTheCount) {
  CircuitBreaker breaker = Make(3);
  Fail(breaker, 2);
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordSuccess();
  Fail(breaker, 2);
  EXPECT_EQ(breaker.state(), State::kClosed);
  Fail(breaker, 1);
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, ThresholdZeroNeverOpens) {
  CircuitBreaker breaker = Make(0);
  Fail(breaker, 1000);
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, LateOutcomesWhileOpenLeaveTheCooldownAlone) {
  CircuitBreaker breaker = Make(1, 1000ms);
  ASSERT_TRUE(breaker.Allow());  // a slow call
  ASSERT_TRUE(breaker.Allow());  // another, which fails first
  breaker.RecordFailure();
  ASSERT_EQ(breaker.state(), State::kOpen);
  Advance(600ms);
  breaker.RecordFailure();  // the slow call fails late
  Advance(400ms);
  EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, OnlyOneOfManyConcurrentCallersGetsTheProbe) {
  CircuitBreaker breaker = Make(1, 10ms);
  Fail(breaker, 1);
  Advance(10ms);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 100; ++j)
        if (breaker.Allow()) ++allowed;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1);
}

TEST(CircuitBreakerClockTest, UsesTheSteadyClockByDefault) {
  CircuitBreaker breaker({1, std::chrono::milliseconds(20)});
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordFailure();
  EXPECT_FALSE(breaker.Allow());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE(breaker.Allow());
}

}  // namespace
}  // namespace stowage::engine
