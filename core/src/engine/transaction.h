// The SQL side of one request: one transaction per database, and the
// sessions lent to stage calls.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// The transaction-control command `statement` would run, named by its
// leading keywords ("COMMIT", "ROLLBACK TO SAVEPOINT", "SET TRANSACTION",
// ...), or empty when it runs none. Text holding several statements is
// looked at statement by statement (stowage::internal::ForEachSqlStatement),
// so "SELECT 1; COMMIT" is one. Only the leading keywords of a statement
// count: 'commit' in a string, "-- rollback" in a comment, an identifier
// begin_at are not commands. The commands are BEGIN, START TRANSACTION,
// COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, PREPARE TRANSACTION,
// COMMIT PREPARED, ROLLBACK PREPARED, SET TRANSACTION, SET SESSION
// CHARACTERISTICS, and SET of the transaction_* and default_transaction_*
// settings (what SET TRANSACTION and SET SESSION CHARACTERISTICS set).
std::string_view TransactionControlIn(std::string_view statement) noexcept;

// The transactions of one request, at most one per database, begun on first
// use. Not thread-safe: belongs to the request's thread.
class Transactions {
 public:
  // How the transaction of a database stands, from what libpq knows of its
  // connection (no round trip).
  enum class Health {
    kNotBegun,  // nothing sent yet: its BEGIN waits for the first statement
    kOpen,      // begun, and still open
    kAborted,   // begun, then aborted by a failed statement: only a rollback is left
    kEnded,     // begun, then ended (or another begun) by a statement the host did not send
    kBroken,    // its connection was lost
  };
  Health HealthOf(const database::PostgresDatabase& db) const noexcept;

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

  // COMMIT on every open transaction, in the order they were begun. Before
  // each COMMIT, checks that the transaction is still the one the host began
  // and is open (Health::kOpen): COMMIT would roll an aborted one back
  // without an error, and would commit nothing of one already ended, so
  // either is a failure (kInternal, nothing of it committed by the host). On
  // a failure, rolls back the ones not yet committed and names the database.
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
  static Health HealthOf(const Open& open) noexcept;
  std::vector<Open> open_;
};

// The SqlSession a stage call receives. Takes its connection on the first
// statement (in the request's transaction when `transactions` is given,
// otherwise a connection of its own in autocommit), and, when `savepoint` is
// not empty, opens that SAVEPOINT with the first statement (deferred on the
// connection: sent ahead of it, in the same round trip), so a stage that
// runs no SQL costs no round trip, and one that does costs none more.
//
// The host owns the transaction: a statement that controls it
// (TransactionControlIn) is refused without being sent, in autocommit too.
class LazySession final : public stowage::SqlSession {
 public:
  LazySession(database::PostgresDatabase& db, Transactions* transactions, std::string savepoint,
              stowage::Deadline deadline);

  // A statement that controls the transaction is refused (kInternal, naming
  // the command) and remembered, see Settle().
  stowage::Status execute(std::string_view statement, const std::vector<stowage::SqlValue>& params,
                          stowage::SqlResult* result) noexcept override;
  const std::string& database() const noexcept override { return db_.name(); }

  // What the call that used this session comes to, once the stage returned
  // `returned`. The stage's Status, unless it returned ok although one of
  // its statements was refused (then the refusal), or although one failed
  // and left the transaction aborted (then kInternal saying so). When the
  // transaction is no longer the host's (ended by a statement the host did
  // not send), or its connection was lost while the stage returned ok,
  // sets `*lost` (nothing can be rolled back to a savepoint: the whole
  // transaction is gone) and returns why. Costs no round trip.
  stowage::Status Settle(stowage::Status returned, bool* lost) const noexcept;

  // Rolls this call's statements back: ROLLBACK TO its savepoint when the
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
  std::optional<stowage::Status> refused_;            // the first statement refused
};

}  // namespace stowage::engine
