#include "engine/circuit_breaker.h"

#include <utility>

namespace stowage::engine {

CircuitBreaker::CircuitBreaker(Options options, std::function<Clock::time_point()> now)
    : options_(options), now_(std::move(now)) {}

bool CircuitBreaker::Allow() {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now_() - opened_at_ < options_.cooldown) return false;
      state_ = State::kHalfOpen;
      probe_running_ = true;
      return true;
    case State::kHalfOpen:
      if (probe_running_) return false;
      probe_running_ = true;
      return true;
  }
  return true;
}

void CircuitBreaker::RecordSuccess() {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
    case State::kHalfOpen:
      state_ = State::kClosed;
      consecutive_failures_ = 0;
      probe_running_ = false;
      break;
    case State::kOpen:
      // A call let through before the breaker opened: it changes nothing.
      break;
  }
}

void CircuitBreaker::RecordFailure() {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
      ++consecutive_failures_;
      if (options_.threshold > 0 && consecutive_failures_ >= options_.threshold) {
        state_ = State::kOpen;
        opened_at_ = now_();
      }
      break;
    case State::kHalfOpen:
      state_ = State::kOpen;
      opened_at_ = now_();
      probe_running_ = false;
      break;
    case State::kOpen:
      // A call let through before the breaker opened: the cool-down stands.
      break;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

const char* CircuitStateName(CircuitBreaker::State state) noexcept {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace stowage::engine
