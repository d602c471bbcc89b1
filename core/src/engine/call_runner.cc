#include "engine/call_runner.h"

#include <deque>
#include <thread>

namespace stowage::engine {

struct CallRunner::Shared {
  const std::size_t max_threads;
  const std::chrono::milliseconds idle_timeout;

  mutable std::mutex mu;
  std::condition_variable work;
  std::deque<std::function<void()>> queue;
  std::size_t threads = 0;
  std::size_t idle = 0;
  bool stopping = false;

  Shared(std::size_t max, std::chrono::milliseconds idle_for) : max_threads(max), idle_timeout(idle_for) {}

  // The body of every thread. Holds `self` so the state outlives the runner
  // while a call is still running.
  static void Work(std::shared_ptr<Shared> self) {
    std::unique_lock lock(self->mu);
    while (true) {
      ++self->idle;
      bool woke = self->work.wait_for(lock, self->idle_timeout,
                                      [&] { return self->stopping || !self->queue.empty(); });
      --self->idle;
      if (self->queue.empty() && (self->stopping || !woke)) break;
      auto task = std::move(self->queue.front());
      self->queue.pop_front();
      lock.unlock();
      task();  // tasks never throw: CallWithDeadline calls noexcept stage methods
      task = nullptr;
      lock.lock();
    }
    --self->threads;
  }
};

CallRunner::CallRunner(std::size_t max_threads, std::chrono::milliseconds idle_timeout)
    : shared_(std::make_shared<Shared>(max_threads, idle_timeout)) {}

CallRunner::~CallRunner() {
  std::lock_guard lock(shared_->mu);
  shared_->stopping = true;
  shared_->work.notify_all();
}

void CallRunner::Submit(std::function<void()> task) {
  std::lock_guard lock(shared_->mu);
  shared_->queue.push_back(std::move(task));
  if (shared_->idle >= shared_->queue.size() || shared_->threads >= shared_->max_threads) {
    shared_->work.notify_one();
    return;
  }
  ++shared_->threads;
  std::thread(&Shared::Work, shared_).detach();
}

std::size_t CallRunner::threads() const {
  std::lock_guard lock(shared_->mu);
  return shared_->threads;
}

}  // namespace stowage::engine
