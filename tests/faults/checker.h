// The fault suite's checks, as pure logic: no I/O, no clock. Given the
// ledger of a case, the rows PostgreSQL holds and what GET showed, they say
// what broke the promise of docs/faults.md, with examples to debug from.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "ledger.h"

namespace stowage::faults {

// One message_cache row of a guest's conversation.
struct StoredMessage {
  std::int64_t conversation_id = 0;
  std::int64_t id = 0;
  std::int64_t sequence = 0;
  std::string content;
};

// What one final GET of a guest showed, on one stowaged.
struct ShownHistory {
  std::string instance;               // e.g. "stowaged 0", for the examples
  bool answered = false;              // a 200 with a JSON array came
  std::string failure;                // when not answered: why
  std::vector<std::string> contents;  // the messages' contents, in the order shown
};

// A fault injected during a case.
struct FaultEvent {
  std::string name;     // what was done, e.g. "redis kill -9, started again empty"
  Seconds started = 0;  // when the fault began
  Seconds cleared = 0;  // when the server it hit was back
};

// Everything a case left to check. `stored` and `shown` hold every guest
// the case used (a guest PostgreSQL knows nothing of maps to no rows).
struct CaseEvidence {
  std::vector<MessageRecord> messages;
  // guest -> its conversation's rows in (sequence, id) order
  std::map<std::string, std::vector<StoredMessage>> stored;
  // guest -> the first GET after the faults cleared, one per stowaged
  std::map<std::string, std::vector<ShownHistory>> shown;
  int online_checks = 0;
  int online_violations = 0;
  std::vector<Example> online_examples;
  std::vector<FaultEvent> faults;
};

// The counts of a case. Those marked * must be 0 for the case to pass.
struct Counts {
  int acknowledged = 0;       // messages answered 200
  int abandoned = 0;          // messages never answered 200 before the client gave up
  int attempts = 0;           // POSTs sent, retries and deliberate repeats included
  int retries = 0;            // attempts after a failed one, for the same message
  int repeats = 0;            // deliberate repeats of an acknowledged POST
  int replays_seen = 0;       // 200 answers with Idempotent-Replayed: true
  int lost = 0;               // * acknowledged, not in PostgreSQL
  int stored_twice = 0;       // * messages stored more than once, or whose repeat was answered as new
  int orphaned = 0;           // * (final GET, message) pairs: shown, not in PostgreSQL
  int hidden = 0;             // * (final GET, message) pairs: in PostgreSQL, not shown
  int out_of_order = 0;       // * messages shown out of sequence order, or shown twice
  int online_violations = 0;  // * GETs during the run that broke the online check
  int online_checks = 0;
  int sequence_gaps = 0;  // * conversations whose sequences are not 0..n-1
};

// A span in which POSTs failed: from a failed attempt to the next 200 of
// any client (or to the last failure, when no 200 came after it).
struct FailureWindow {
  Seconds from = 0;
  Seconds to = 0;
  int failed_attempts = 0;
  Seconds length() const { return to - from; }
};

// How long POSTs failed around one fault: the windows that ended after it
// began and before the next fault began. A stall is no failure, so it also
// gives the slowest POST attempt answered in that time.
struct FaultOutage {
  FaultEvent fault;
  Seconds failing = 0;  // the windows' total length
  Seconds longest = 0;
  int failed_attempts = 0;
  Seconds slowest_attempt = 0;  // answered - sent, failed or not
};

struct CaseReport {
  Counts counts;
  // By count name ("lost", "stored twice", ...): the first few problems.
  std::map<std::string, std::vector<Example>> examples;
  std::optional<FailureWindow> longest_window;
  std::vector<FaultOutage> outages;
  // Windows that ended before the first fault: POSTs failed without one.
  FaultOutage before_faults;

  // The names of the counts marked * that are not 0.
  std::vector<std::string> Failures() const;
  bool passed() const { return Failures().empty(); }
};

// The online check of a GET sent during the run: every message in
// `acked_before` (acknowledged for `guest` before the GET was sent) must be
// in `shown` exactly once, and in the order of their sequences. Messages
// shown but not in `acked_before` are ignored (they may be stored without
// an acknowledgement yet). Returns the first problem, or nullopt.
std::optional<Example> CheckOnlineGet(const std::string& guest, const std::vector<AckedMessage>& acked_before,
                                      const std::vector<std::string>& shown);

// The windows in which POSTs failed, in time order.
std::vector<FailureWindow> PostFailureWindows(const std::vector<MessageRecord>& messages);

// Every check of a case.
CaseReport CheckCase(const CaseEvidence& evidence);

// The report as a table, the fault timeline and the examples.
void PrintReport(const std::string& title, const CaseReport& report, std::ostream& out);

}  // namespace stowage::faults
