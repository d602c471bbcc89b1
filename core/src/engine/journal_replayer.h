// JournalReplayer: replays, in the background, what best_effort stages of a
// Pipeline failed to store (journal/journal_store.h).
//
// Every `interval` it counts the journal's entries per stage (for
// /metrics and /v1/admin/pipeline), parks the entries older than their
// stage's replay_max_age, and replays the due entries of each enabled,
// journaled stage whose circuit is not open: oldest first, `batch` entries
// per transaction, at most `concurrency` (2) transactions at once, so that
// replay holds at most two connections of a database's pool and live
// requests keep the rest. For each entry it calls the stage's admit() and write() with
// WriteContext::replay set, the original message and attributes:
// - a stage with a database runs them in a SAVEPOINT of the transaction
//   that removes the entry, so its work and the entry's removal commit
//   together: an entry is replayed into the database once;
// - a stage without one is called as in a write, and the entry removed
//   afterwards: a crash in between replays it again, which the stage
//   tolerates (WriteContext::replay).
// A failed replay is counted on the entry (parked after replay_max_attempts)
// and due again after a backoff; three failures in a row stop the stage's
// replay for a pause that doubles up to 5 s while the failures go on, and
// after a pause the replay resumes only once the stage's health() is ok.
// The lanes that run side by side each take the entries of their own
// guests (a hash of the guest id), so one guest's entries are replayed
// oldest first.
// Replay calls count in the stage's metrics and circuit breaker like any
// other call.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/pipeline.h"
#include "journal/journal_store.h"

namespace stowage::engine {

class JournalReplayer {
 public:
  struct Options {
    std::chrono::milliseconds interval{1000};
    std::size_t batch = 32;
    // Batches of one stage replayed at once, each in a transaction (and on
    // a connection) of its own.
    std::size_t concurrency = 2;
  };

  // Starts the thread. `pipeline` and `metrics` (may be null) outlive the replayer.
  JournalReplayer(const Pipeline& pipeline, observability::Registry* metrics, Options options);
  JournalReplayer(const Pipeline& pipeline, observability::Registry* metrics)
      : JournalReplayer(pipeline, metrics, Options{}) {}
  // Stops the thread.
  ~JournalReplayer();
  JournalReplayer(const JournalReplayer&) = delete;
  JournalReplayer& operator=(const JournalReplayer&) = delete;

  // Stops the thread once the entry being replayed is done. Idempotent.
  void Stop();
  // The entries per stage at the last count.
  std::vector<journal::Backlog> backlogs() const;

 private:
  // Where one stage's replay stands between rounds.
  struct StageState {
    Clock::time_point paused_until{};
    std::chrono::milliseconds pause{0};
    Clock::time_point parked_check{};  // when expired entries were last parked
  };

  void Loop();
  void CountEntries();
  void Replay(std::size_t index);
  // One transaction: up to `batch` entries of the stage at `index`, of the
  // guests of lane `lane` of `lanes`. Returns the entries claimed;
  // *failures counts the replays that failed in a row at the end of the batch.
  std::size_t ReplayBatch(std::size_t index, std::size_t lane, std::size_t lanes, int* failures);
  bool stopping() const;

  const Pipeline& pipeline_;
  observability::Registry* metrics_;
  const Options options_;
  std::map<std::string, StageState> states_;  // by stage name; the replay thread's own
  std::map<std::string, bool> gauged_;        // stages whose gauges were set; the replay thread's own

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<journal::Backlog> backlogs_;
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace stowage::engine
