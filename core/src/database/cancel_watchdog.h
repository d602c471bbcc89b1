// CancelWatchdog: one thread that asks the server to cancel statements still
// running when their deadline passes.
#pragma once

#include <libpq-fe.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
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
  // running the statement) if the statement is still armed at `at`. The
  // watchdog holds `cancel` while it sends through it.
  Token Arm(stowage::Clock::time_point at, std::shared_ptr<PGcancel> cancel);

  // Forgets `token`. If its cancel request is being sent, waits until it
  // is sent, so that it cannot reach the connection's next statement.
  // Returns true when a cancel request was sent for it.
  bool Disarm(const Token& token);

  // Forgets `token` without waiting for a cancel request being sent: for a
  // connection that is given up, which runs no next statement. (A server
  // that does not answer its statements may not answer the cancel request
  // either, and sending it blocks until it does.)
  void Abandon(const Token& token);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;  // the thread waits on it
  std::condition_variable sent_;  // Disarm waits on it for a request being sent
  std::map<Token, std::shared_ptr<PGcancel>> armed_;
  std::optional<Token> sending_;
  std::uint64_t next_id_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace stowage::database
