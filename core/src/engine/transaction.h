// The SQL side of one request: one transaction per database, and the
// sessions lent to stage calls.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "database/postgres_database.h"
#include "stowage/sql.h"

namespace stowage::engine {

// How long the engine gives itself to settle a request once its stages are
// done or one failed: to COMMIT, to roll back to a savepoint or entirely.
inline constexpr std::chrono::seconds kSettleTimeout{5};

// What became of CommitAll.
struct CommitResult {
  stowage::Status status;           // ok when every transaction committed
  std::string failed_database;      // the database whose COMMIT failed
  // The COMMIT was sent but its answer never came (the connection was lost):
  // that database's transaction may have committed, or may still commit.
  // Otherwise a failure means it did not commit.
  bool outcome_unknown = false;
  // A statement queued with AddToCommit failed (e.g. kConflict for a
  // unique key): the COMMIT did not run and nothing of that transaction
  // committed.
  bool queued_statement_failed = false;
};

// The transactions of one request, at most one per database, begun on first
// use. Not thread-safe: belongs to the request's thread.
class Transactions {
 public:
  // The connection of `db` in this request's transaction: acquired the first
  // time, with BEGIN deferred to its first statement (sent in the same round
  // trip). Sets `*out`, or returns why it could not.
  stowage::Status Connection(database::PostgresDatabase& db, stowage::Deadline deadline,
                             database::Connection** out);

  // Queues `statement` (with $1..$n bound to `params`, no rows wanted) in
  // `db`'s transaction, to be sent with its COMMIT in the same round trip:
  // the COMMIT runs only if the statement succeeds. Several may be queued
  // (the Idempotency-Key's row, journal entries); they run in the order
  // queued. The statement's text is quoted in errors; values go in params.
  stowage::Status AddToCommit(database::PostgresDatabase& db, stowage::Deadline deadline, std::string statement,
                              std::vector<stowage::SqlValue> params);

  // COMMIT on every open transaction, in the order they were begun. On a
  // failure, rolls back the ones not yet committed and names the database.
  // (Databases commit one by one: there is no two-phase commit across them.)
  // A transaction in which nothing was sent costs nothing.
  CommitResult CommitAll(stowage::Deadline deadline);
  // ROLLBACK on every open transaction whose BEGIN was sent; errors are
  // ignored (the connection is closed instead of reused).
  void RollbackAll(stowage::Deadline deadline) noexcept;

  bool empty() const noexcept { return open_.empty(); }

 private:
  struct Open {
    database::PostgresDatabase* db;
    database::Lease lease;
    database::DeferredId begin;
    std::vector<database::DeferredId> with_commit;  // the statements AddToCommit queued
  };
  // Whether the transaction has something for the server: its BEGIN was
  // sent, or a statement waits to go with the COMMIT.
  static bool HasWork(const Open& open) noexcept;
  std::vector<Open> open_;
};

// The SqlSession a stage call receives. Takes its connection on the first
// statement (in the request's transaction when `transactions` is given,
// otherwise a connection of its own in autocommit), and, when `savepoint` is
// not empty, opens that SAVEPOINT with the first statement (deferred on the
// connection: sent ahead of it, in the same round trip), so a stage that
// runs no SQL costs no round trip, and one that does costs none more.
class LazySession final : public stowage::SqlSession {
 public:
  LazySession(database::PostgresDatabase& db, Transactions* transactions, std::string savepoint,
              stowage::Deadline deadline);

  stowage::Status execute(std::string_view statement, const std::vector<stowage::SqlValue>& params,
                          stowage::SqlResult* result) noexcept override;
  const std::string& database() const noexcept override { return db_.name(); }

  // Undoes this call's statements: ROLLBACK TO its savepoint when the
  // savepoint was opened; nothing when it was never sent (no statement ran).
  // A failure here (the savepoint or the rollback failed) means the whole
  // transaction is lost.
  stowage::Status RollbackToSavepoint() noexcept;
  // True once a statement was sent.
  bool used() const noexcept { return connection_ != nullptr; }

 private:
  database::PostgresDatabase& db_;
  Transactions* transactions_;
  std::string savepoint_;
  stowage::Deadline deadline_;
  database::Lease own_;  // autocommit only
  database::Connection* connection_ = nullptr;
  std::optional<database::DeferredId> savepoint_id_;  // set once the SAVEPOINT is deferred
};

}  // namespace stowage::engine
