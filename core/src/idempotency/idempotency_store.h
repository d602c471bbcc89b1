// IdempotencyStore: the Idempotency-Keys of POSTs, kept in a [[database]]
// (table stowage_idempotency) so that every stowaged on that database, and
// every stowaged started later, sees them.
//
// A key is recorded in the same transaction as the message it protects
// (the engine queues Record's statement with the COMMIT), so after any crash
// the key and the message are both there or both absent. A retry whose
// transaction records the same (guest, key) fails on the table's primary key
// once the first transaction committed, and waits for it while it is still
// in flight, even one whose COMMIT is in doubt: PostgreSQL settles it.
// Keys are kept `ttl` (24 h) and then deleted in small batches by a
// background sweep, which takes no lock a write waits for.
//
// Thread-safe. The database must outlive the store.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "database/postgres_database.h"
#include "idempotency/fingerprint.h"
#include "stowage/logger.h"
#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage::idempotency {

class IdempotencyStore {
 public:
  // The statement Record queues and its parameters.
  struct Statement {
    std::string text;
    std::vector<stowage::SqlValue> params;
  };
  // What was recorded for a key.
  struct Recorded {
    std::string fingerprint;
    int status = 0;
    std::string answer;
  };

  // Starts the background sweep (every `sweep_every`). `log` outlives the store.
  IdempotencyStore(std::shared_ptr<database::PostgresDatabase> database, std::shared_ptr<stowage::Logger> log,
                   std::chrono::seconds ttl = std::chrono::hours(24),
                   std::chrono::seconds sweep_every = std::chrono::seconds(60));
  // Stops the sweep.
  ~IdempotencyStore();
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  database::PostgresDatabase& database() const noexcept { return *database_; }

  // Creates the table when it does not exist yet; afterwards returns at once.
  stowage::Status EnsureSchema(stowage::Deadline deadline);

  // The INSERT that records (guest_id, key) with `fingerprint` and the answer
  // given (`status`, `answer`). Fails with kConflict when the guest already
  // used the key.
  static Statement Record(const std::string& guest_id, const std::string& key, const std::string& fingerprint,
                          int status, const std::string& answer);

  // What was recorded for (guest_id, key), or nullopt.
  stowage::Status Find(const std::string& guest_id, const std::string& key, stowage::Deadline deadline,
                       std::optional<Recorded>* found);

  // Deletes the keys older than ttl, 1000 at a time; *deleted counts them.
  stowage::Status Sweep(stowage::Deadline deadline, std::uint64_t* deleted);

 private:
  void SweepLoop();

  std::shared_ptr<database::PostgresDatabase> database_;
  std::shared_ptr<stowage::Logger> log_;
  const std::chrono::seconds ttl_;
  const std::chrono::seconds sweep_every_;
  stowage::SchemaGate schema_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace stowage::idempotency
