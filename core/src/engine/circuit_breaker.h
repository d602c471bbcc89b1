// CircuitBreaker: stops calling a failing best_effort stage for a while.
//
// Closed: calls go through; `threshold` consecutive failures open it.
// Open: calls are skipped until `cooldown` has passed since it opened.
// Half-open: exactly one call (the probe) goes through; its success closes
// the breaker, its failure opens it again for another cool-down; other calls
// are skipped while the probe runs. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>

namespace stowage::engine {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    int threshold = 5;                             // consecutive failures that open it; 0: never opens
    std::chrono::milliseconds cooldown{30000};     // how long it stays open
  };
  enum class State { kClosed, kOpen, kHalfOpen };

  // `now` is injectable for tests.
  explicit CircuitBreaker(Options options, std::function<Clock::time_point()> now = Clock::now);

  // Whether a call may go to the stage now. A caller told yes must report
  // the call's outcome with RecordSuccess or RecordFailure.
  bool Allow();
  void RecordSuccess();
  void RecordFailure();

  State state() const;
  const Options& options() const noexcept { return options_; }

 private:
  const Options options_;
  const std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;
  int consecutive_failures_ = 0;
  Clock::time_point opened_at_{};
  bool probe_running_ = false;
};

// "closed", "open" or "half_open".
const char* CircuitStateName(CircuitBreaker::State state) noexcept;

}  // namespace stowage::engine
