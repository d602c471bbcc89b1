// The SQL side of one request: one transaction per database, and the
// sessions lent to stage calls.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "database/postgres_database.h"
#include "stowage/sql.h"

namespace stowage::engine {

// The transactions of one request, at most one per database, begun on first
// use. Not thread-safe: belongs to the request's thread.
class Transactions {
 public:
  // The connection of `db` in this request's transaction: acquired the first
  // time, with BEGIN deferred to its first statement (sent in the same round
  // trip). Sets `*out`, or returns why it could not.
  stowage::Status Connection(database::PostgresDatabase& db, stowage::Deadline deadline,
                             database::Connection** out);

  // COMMIT on every open transaction, in the order they were begun. On a
  // failure, rolls back the ones not yet committed and names the database.
  // (Databases commit one by one: there is no two-phase commit across them.)
  // A transaction whose BEGIN was never sent (no statement ran) costs nothing.
  stowage::Status CommitAll(stowage::Deadline deadline, std::string* failed_database);
  // ROLLBACK on every open transaction whose BEGIN was sent; errors are
  // ignored (the connection is closed instead of reused).
  void RollbackAll(stowage::Deadline deadline) noexcept;

  bool empty() const noexcept { return open_.empty(); }

 private:
  struct Open {
    database::PostgresDatabase* db;
    database::Lease lease;
    database::DeferredId begin;
  };
  // Whether the server began `open`'s transaction: false while its BEGIN
  // waits for a statement. Forgets the commands still waiting either way.
  static bool Begun(Open& open) noexcept;
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
