#include "engine/call_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>

#include "logging/logging.h"

namespace stowage::engine {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(CallRunnerTest, ReturnsTheResultOfACallThatFinishesInTime) {
  CallRunner runner;
  auto result = CallWithDeadline<int>(runner, Clock::now() + 5s, [] { return 42; });
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 42);
}

TEST(CallRunnerTest, ACallRunsWithTheRequestOfItsSubmitter) {
  CallRunner runner;
  auto seen = [&] {
    return CallWithDeadline<std::string>(runner, Clock::now() + 5s, [] {
      const auto& tag = logging::CurrentRequest();
      return std::string(tag.request_id()) + "/" + std::string(tag.trace_id());
    });
  };
  {
    logging::RequestScope scope(logging::RequestTag("req-1", "4bf92f3577b34da6a3ce929d0e0e4736"));
    EXPECT_EQ(seen().value_or("none"), "req-1/4bf92f3577b34da6a3ce929d0e0e4736");
  }
  // The thread that ran it does not keep it; a call outside any request has none.
  EXPECT_EQ(seen().value_or("none"), "/");
  EXPECT_TRUE(logging::CurrentRequest().empty());
}

TEST(CallRunnerTest, StopsWaitingAtTheDeadlineAndHandsTheLateResultOver) {
  CallRunner runner;
  std::latch release(1);
  std::atomic<int> late_value{0};
  std::latch late_seen(1);
  auto result = CallWithDeadline<int>(
      runner, Clock::now() + 50ms,
      [&] {
        release.wait();
        return 7;
      },
      [&](int& v) {
        late_value = v;
        late_seen.count_down();
      });
  EXPECT_FALSE(result.has_value());
  release.count_down();
  late_seen.wait();
  EXPECT_EQ(late_value.load(), 7);
}

TEST(CallRunnerTest, RunsCallsInParallelSoOneHangingCallBlocksNoOther) {
  CallRunner runner;
  constexpr int kCalls = 16;
  // Every call waits until all of them are running: this only finishes if
  // the runner gives each its own thread.
  std::latch all_running(kCalls);
  std::atomic<int> finished{0};
  std::latch done(kCalls);
  for (int i = 0; i < kCalls; ++i)
    runner.Submit([&] {
      all_running.arrive_and_wait();
      ++finished;
      done.count_down();
    });
  done.wait();
  EXPECT_EQ(finished.load(), kCalls);
  EXPECT_GE(runner.threads(), static_cast<std::size_t>(kCalls));
}

TEST(CallRunnerTest, IdleThreadsAreReused) {
  CallRunner runner;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(CallWithDeadline<int>(runner, Clock::now() + 5s, [] { return 1; }));
    // The answer reaches the caller before its thread counts itself idle:
    // leave it a moment (on a loaded machine, submitting at once again made
    // a new thread a third of the time).
    std::this_thread::sleep_for(5ms);
  }
  // Without reuse this would be 50; a few extra threads are allowed for a
  // thread that was slow to count itself idle all the same.
  EXPECT_LT(runner.threads(), 10u);
}

}  // namespace
}  // namespace stowage::engine
