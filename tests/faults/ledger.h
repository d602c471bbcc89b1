// The fault suite's ledger: every message the clients sent, every attempt to
// store it and its answer, and what they saw acknowledged, on one clock.
// After a case it is checked against PostgreSQL and GET (checker.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace stowage::faults {

// Seconds since the case started: every time in a ledger is on this clock.
using Seconds = double;

// The case's clock: Now() is the time since the case started.
class CaseClock {
 public:
  CaseClock() : start_(std::chrono::steady_clock::now()) {}
  Seconds Now() const {
    return std::chrono::duration<Seconds>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// One POST of a message to one stowaged, and how it ended.
struct Attempt {
  Seconds sent = 0;
  Seconds answered = 0;   // when the answer, or the failure, came
  int instance = 0;       // which stowaged (0, 1, ...)
  int status = 0;         // the HTTP status; 0 when no answer came
  std::string error;      // no answer: why; an error answer: its error code
  bool replayed = false;  // the answer carried `Idempotent-Replayed: true`
  // From a 200 answer's body; -1 otherwise.
  std::int64_t message_id = -1;
  std::int64_t sequence = -1;

  bool ok() const { return status == 200; }
};

// One message: the client posted it until it got 200 or gave up.
struct MessageRecord {
  std::string guest;
  std::string key;                // its Idempotency-Key, the same on every attempt
  std::string content;            // unique in the whole run
  std::vector<Attempt> attempts;  // in order; the last one is the 200 if any
  // The deliberate repeat sent after the 200 (same key, same body), posted
  // until it got 200 or gave up; empty when none was sent.
  std::vector<Attempt> repeat_attempts;

  // The 200 attempt, or nullptr when the message was abandoned.
  const Attempt* Acknowledgement() const;
  // The 200 of the deliberate repeat, or nullptr.
  const Attempt* RepeatAnswer() const;
};

// A message acknowledged for a guest, as the online GET check needs it.
struct AckedMessage {
  std::string content;
  std::int64_t sequence = -1;  // as the 200 answer gave it
};

// A problem found, for a developer to start from.
struct Example {
  std::string guest;
  std::string content;
  std::string detail;  // what was expected and what was seen
};

// What the clients share while they run: the messages acknowledged so far
// per guest (so a GET can be checked against everything acknowledged before
// it was sent), and the outcome of those online checks. Thread-safe.
class Ledger {
 public:
  // Records that `message` was acknowledged for `guest`. Every GET of the
  // guest sent after this call returns must show it.
  void Acknowledge(const std::string& guest, AckedMessage message);
  // The messages acknowledged for `guest` so far, in acknowledgement order.
  std::vector<AckedMessage> AcknowledgedFor(const std::string& guest) const;
  // How many messages were acknowledged so far, over all guests.
  int acknowledged() const;

  // Counts one online GET check; `problem` is nullopt when the GET passed
  // (CheckOnlineGet in checker.h decides).
  void CountOnlineCheck(const std::optional<Example>& problem);
  int online_checks() const;
  int online_violations() const;
  std::vector<Example> online_examples() const;

  // A client hands its records over when it has stopped.
  void AddRecords(std::vector<MessageRecord> records);
  // Every message of the case; call once the clients have stopped.
  const std::vector<MessageRecord>& records() const { return records_; }

 private:
  static constexpr std::size_t kMaxExamples = 5;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<AckedMessage>> acked_;
  int acknowledged_ = 0;
  int online_checks_ = 0;
  int online_violations_ = 0;
  std::vector<Example> online_examples_;
  std::vector<MessageRecord> records_;
};

}  // namespace stowage::faults
