#include "database/cancel_watchdog.h"

namespace stowage::database {

CancelWatchdog::CancelWatchdog() : thread_([this] { Run(); }) {}

CancelWatchdog::~CancelWatchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

CancelWatchdog::Token CancelWatchdog::Arm(stowage::Clock::time_point at, std::shared_ptr<PGcancel> cancel) {
  Token token;
  bool earliest = false;
  {
    std::lock_guard lock(mu_);
    token = Token(at, next_id_++);
    armed_.emplace(token, std::move(cancel));
    earliest = armed_.begin()->first == token;
  }
  if (earliest) wake_.notify_all();
  return token;
}

bool CancelWatchdog::Disarm(const Token& token) {
  std::unique_lock lock(mu_);
  if (armed_.erase(token) == 1) return false;
  sent_.wait(lock, [&] { return sending_ != token; });
  return true;
}

void CancelWatchdog::Abandon(const Token& token) {
  std::lock_guard lock(mu_);
  armed_.erase(token);
}

void CancelWatchdog::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (armed_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto first = armed_.begin();
    // A copy: wait_until reads its time point again after waking, and a
    // Disarm meanwhile frees the map's node.
    const stowage::Clock::time_point at = first->first.first;
    if (stowage::Clock::now() < at) {
      wake_.wait_until(lock, at);
      continue;
    }
    std::shared_ptr<PGcancel> cancel = std::move(first->second);
    sending_ = first->first;
    armed_.erase(first);
    lock.unlock();
    // The server answers a cancel request on a connection of its own; an
    // error here (server gone) leaves the statement to fail by itself.
    char error[256];
    PQcancel(cancel.get(), error, sizeof error);
    cancel.reset();  // the connection may be gone: the last owner frees it
    lock.lock();
    sending_.reset();
    sent_.notify_all();
  }
}

}  // namespace stowage::database
