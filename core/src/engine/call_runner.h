// CallRunner: runs stage calls on threads of its own, so that the engine can
// stop waiting for a call at its deadline. A call the engine stopped waiting
// for runs on to its end on its thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace stowage::engine {

class CallRunner {
 public:
  // At most `max_threads` threads; a thread idle for `idle_timeout` exits.
  explicit CallRunner(std::size_t max_threads = 512,
                      std::chrono::milliseconds idle_timeout = std::chrono::seconds(30));
  // Does not wait for calls still running: their threads finish them and exit.
  ~CallRunner();
  CallRunner(const CallRunner&) = delete;
  CallRunner& operator=(const CallRunner&) = delete;

  // Runs `task` on an idle thread, or a new one while under max_threads;
  // beyond that it waits in a queue. The task runs with the submitting
  // thread's logging::CurrentRequest(), so its log lines name the request.
  void Submit(std::function<void()> task);

  // Threads alive now (for tests and metrics).
  std::size_t threads() const;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

// Runs `call` on `runner` and waits until it returns or until `deadline`.
// Returns its result, or nullopt at the deadline. When the call returns after
// the deadline, `late` receives its result on the call's thread (e.g. to
// compensate a write nobody waited for). Everything `call` and `late` use must be owned
// by them (captured by value or shared_ptr).
template <typename R>
std::optional<R> CallWithDeadline(CallRunner& runner, std::chrono::steady_clock::time_point deadline,
                                  std::function<R()> call, std::function<void(R&)> late = nullptr) {
  struct State {
    std::mutex mu;
    std::condition_variable done;
    std::optional<R> result;
    bool abandoned = false;
  };
  auto state = std::make_shared<State>();
  runner.Submit([state, call = std::move(call), late = std::move(late)]() mutable {
    R value = call();
    std::unique_lock lock(state->mu);
    if (state->abandoned) {
      lock.unlock();
      if (late) late(value);
      return;
    }
    state->result.emplace(std::move(value));
    state->done.notify_one();
  });
  std::unique_lock lock(state->mu);
  if (!state->done.wait_until(lock, deadline, [&] { return state->result.has_value(); })) {
    state->abandoned = true;
    return std::nullopt;
  }
  return std::move(state->result);
}

}  // namespace stowage::engine
