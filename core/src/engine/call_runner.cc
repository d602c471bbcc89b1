#include "engine/call_runner.h"

#include <thread>
#include <vector>

#include "logging/logging.h"

namespace stowage::engine {

struct CallRunner::Shared {
  const std::size_t max_threads;
  const std::chrono::milliseconds idle_timeout;

  mutable std::mutex mu;
  std::condition_variable work;
  // Each task with the request its submitter worked for, so that the lines
  // the call logs name that request.
  struct Task {
    std::function<void()> run;
    logging::RequestTag request;
  };
  // Waiting tasks are queue[head..]. A vector emptied in place keeps its
  // capacity, so a steady flow of tasks allocates nothing here.
  std::vector<Task> queue;
  std::size_t head = 0;
  bool empty() const { return head == queue.size(); }
  std::size_t waiting() const { return queue.size() - head; }
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
      bool woke =
          self->work.wait_for(lock, self->idle_timeout, [&] { return self->stopping || !self->empty(); });
      --self->idle;
      if (self->empty() && (self->stopping || !woke)) break;
      Task task = std::move(self->queue[self->head++]);
      if (self->empty()) {
        self->queue.clear();
        self->head = 0;
      } else if (self->head >= 64 && self->head * 2 >= self->queue.size()) {
        self->queue.erase(self->queue.begin(), self->queue.begin() + static_cast<std::ptrdiff_t>(self->head));
        self->head = 0;
      }
      lock.unlock();
      {
        logging::RequestScope scope(task.request);
        task.run();  // tasks never throw: CallWithDeadline calls noexcept stage methods
      }
      task.run = nullptr;
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
  shared_->queue.push_back({std::move(task), logging::CurrentRequest()});
  if (shared_->idle >= shared_->waiting() || shared_->threads >= shared_->max_threads) {
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
