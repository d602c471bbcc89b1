// JournalStore: what best_effort stages failed to store, kept in a
// [[database]] (table stowage_journal) until the host replays it.
//
// An entry is one message one stage did not store: the stage's name, the
// guest, the message and the attributes the write had (message_id,
// conversation_id, sequence...). The engine queues Record's INSERT with the
// COMMIT of the message's transaction, so after any crash the message and
// its entries are both there or both absent. The replayer (engine/
// journal_replayer.h) claims due entries with FOR UPDATE SKIP LOCKED, so
// several stowaged on one database share the work and never replay one
// entry at the same time; an entry is deleted in the transaction of its
// successful replay. A failed replay is retried with backoff; after the
// stage's replay_max_attempts, or once older than its replay_max_age, the
// entry is parked: kept, reported, replayed only when an operator asks
// (Requeue) and deleted only when one drops it.
//
// The statements that run inside the replayer's transaction are static and
// take its session; the rest open a session of their own. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "database/postgres_database.h"
#include "stowage/context.h"
#include "stowage/logger.h"
#include "stowage/message.h"
#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage::journal {

// One journaled message of one stage.
struct Entry {
  std::int64_t id = 0;
  std::string stage;
  std::string guest_id;
  stowage::Message message;
  stowage::Attributes attributes;
  std::string reason;      // why the stage did not store it at first
  int attempts = 0;        // replays tried so far
  std::string last_error;  // of the last replay tried; empty before the first
  bool parked = false;
  std::string created_at;       // ISO 8601, UTC
  std::string next_attempt_at;  // ISO 8601, UTC
};

// The entries of one stage.
struct Backlog {
  std::string stage;
  std::int64_t pending = 0;         // waiting for a replay
  std::int64_t parked = 0;          // parked: waiting for an operator
  double oldest_pending_age_s = 0;  // age of the oldest pending entry; 0 without one
};

// Which entries List, Requeue and Drop act on.
struct Selection {
  std::string stage;                // empty: every stage
  std::optional<std::int64_t> id;   // one entry
  bool parked_only = false;
  std::size_t limit = 100;          // List only
};

class JournalStore {
 public:
  // The INSERT Record builds and its parameters.
  struct Statement {
    std::string text;
    std::vector<stowage::SqlValue> params;
  };

  // `log` outlives the store; so does `database`'s owner.
  JournalStore(std::shared_ptr<database::PostgresDatabase> database, std::shared_ptr<stowage::Logger> log);

  database::PostgresDatabase& database() const noexcept { return *database_; }

  // Whether EnsureSchema succeeded once: the table exists.
  bool ready() const noexcept { return schema_.ready(); }

  // Creates the table when it does not exist yet; afterwards returns at once.
  stowage::Status EnsureSchema(stowage::Deadline deadline);

  // The INSERT that journals `message` of `guest_id` for `stage`.
  static Statement Record(const std::string& stage, const std::string& guest_id, const stowage::Message& message,
                          const stowage::Attributes& attributes, const std::string& reason);

  // The DELETE of every entry of `guest_id` (parked ones too): an erased
  // guest's messages leave the journal in the erase's transaction.
  static Statement EraseGuest(const std::string& guest_id);

  // In the caller's transaction on `sql`: locks and returns up to `limit`
  // pending entries of `stage` that are due, oldest first, skipping those
  // another transaction holds, and those with an older pending entry of
  // their guest that is not due yet. Only the guests of lane `lane` of `lanes`
  // (by a hash of the guest id): replays running side by side in lanes of
  // their own never take entries of one guest out of order.
  static stowage::Status ClaimDue(stowage::SqlSession& sql, const std::string& stage, std::size_t limit,
                                  std::size_t lane, std::size_t lanes, std::vector<Entry>* out);
  // In the caller's transaction: deletes the entries (replayed).
  static stowage::Status Done(stowage::SqlSession& sql, const std::vector<std::int64_t>& ids);
  // In the caller's transaction: counts a failed replay of the entry, due
  // again after a backoff (1 s doubling per attempt, at most 5 min); parked
  // once it reached `max_attempts` attempts. Sets *parked accordingly.
  static stowage::Status Failed(stowage::SqlSession& sql, std::int64_t id, const std::string& error, int max_attempts,
                                bool* parked);
  // Parks the pending entries of `stage` older than `max_age`; *parked counts them.
  stowage::Status ParkExpired(const std::string& stage, std::chrono::seconds max_age, stowage::Deadline deadline,
                              std::uint64_t* parked);

  // The pending and parked entries per stage, every stage that has some.
  stowage::Status Backlogs(stowage::Deadline deadline, std::vector<Backlog>* out);
  // Entries, oldest first.
  stowage::Status List(const Selection& selection, stowage::Deadline deadline, std::vector<Entry>* out);
  // Makes the selected entries due now: parked ones pending again with their
  // attempts reset. *count counts them.
  stowage::Status Requeue(const Selection& selection, stowage::Deadline deadline, std::uint64_t* count);
  // Deletes the selected entries; *count counts them.
  stowage::Status Drop(const Selection& selection, stowage::Deadline deadline, std::uint64_t* count);

 private:
  std::shared_ptr<database::PostgresDatabase> database_;
  std::shared_ptr<stowage::Logger> log_;
  stowage::SchemaGate schema_;
};

}  // namespace stowage::journal
