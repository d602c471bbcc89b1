// CancelWatchdog: one thread that asks the server to cancel statements still
// running when their deadline passes.
#pragma once

#include <libpq-fe.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "stowage/context.h"

namespace stowage::database {

// Thread-safe. A statement costs one ordered insert (Arm) and one erase
// (Disarm); the thread sleeps until the earliest deadline armed.
class CancelWatchdog {
 public:
  using Token = std::pair<stowage::Clock::time_point, std::uint64_t>;

  CancelWatchdog();
  // Stops the thread. Nothing may be armed any more.
  ~CancelWatchdog();
  CancelWatchdog(const CancelWatchdog&) = delete;
  CancelWatchdog& operator=(const CancelWatchdog&) = delete;

  // Sends a cancel request through `cancel` (PQgetCancel of the connection
  // running the statement) if the statement is still armed at `at`.
  // `cancel` must stay valid until Disarm returns.
  Token Arm(stowage::Clock::time_point at, PGcancel* cancel);

  // Forgets `token`. If its cancel request is being sent, waits until it
  // is sent. Returns true when a cancel request was sent for it.
  bool Disarm(const Token& token);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;  // the thread waits on it
  std::condition_variable sent_;  // Disarm waits on it for a request being sent
  std::map<Token, PGcancel*> armed_;
  std::optional<Token> sending_;
  std::uint64_t next_id_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace stowage::database
