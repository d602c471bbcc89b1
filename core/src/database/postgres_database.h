// PostgresDatabase: a [[database]] of pipeline.toml, its connections, and
// the SqlSession that stages use.
//
// Connections are made by soci (PostgreSQL backend), opened lazily up to
// pool_size, and replaced when broken (never reused after an I/O error). A
// statement runs through libpq's extended protocol on the session's own
// connection, with text parameters and text results, prepared once per
// connection (by its text) and kept as long as the connection, or, with
// prepared_statements = false (behind pgbouncer's transaction pooling), sent
// as the unnamed statement every time. Commands
// deferred on a connection (the engine's BEGIN and SAVEPOINTs) are sent with
// the next statement in one libpq pipeline: one round trip for all of them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "stowage/logger.h"
#include "stowage/sql.h"

namespace stowage::database {

class ConnectionPool;

// A command deferred on a Connection (see Connection::Defer).
using DeferredId = std::uint64_t;

enum class DeferredState {
  kWaiting,  // not sent yet: no statement has run since it was deferred
  kRan,      // ran on the server, before the statement it was sent with
  kFailed,   // sent, but failed, or was skipped because a command before it failed
  kUnknown,  // not deferred on this connection, or forgotten by ClearDeferred
};

// Where a connection stands, as libpq last saw it.
enum class TransactionState {
  kIdle,           // outside a transaction (autocommit)
  kInTransaction,  // inside a transaction block
  kFailed,         // inside a transaction block aborted by a failed statement
  kUnknown,        // the connection is bad, or a command is in flight
};

// A connection lent for one request or one piece of work. Not thread-safe.
class Connection : public stowage::SqlSession {
 public:
  // Defers `command`, one statement whose rows are not needed (BEGIN,
  // SAVEPOINT name, an INSERT with $1..$n bound to `params`): it is sent with
  // the next statement run through execute(), ahead of it and after the
  // commands deferred before it, in the same round trip. When one of them
  // fails, the statement and the commands after it do not run, and execute()
  // returns that command's error, which quotes its text (so the text must
  // hold no value that may not be shown; values go in `params`). A BEGIN
  // that fails leaves no transaction behind: it and the commands after it
  // stay deferred, for the next statement.
  virtual DeferredId Defer(std::string command, std::vector<stowage::SqlValue> params = {}) = 0;
  virtual DeferredState deferred_state(DeferredId id) const noexcept = 0;
  // Forgets `id` if it is still waiting, so that it is never sent; returns
  // whether it was waiting.
  virtual bool Withdraw(DeferredId id) noexcept = 0;
  // Forgets every waiting command and what became of those sent.
  virtual void ClearDeferred() noexcept = 0;
  // Network round trips to the server so far (each statement alone, each
  // PREPARE alone, and each group of deferred commands with the statement
  // sent after them, count one).
  virtual std::uint64_t round_trips() const noexcept = 0;

  // Statements run through execute() after this are cancelled when
  // `deadline` passes (kDeadlineExceeded), by a cancel request sent to the
  // server. The host sets it before each stage call.
  virtual void set_deadline(stowage::Deadline deadline) noexcept = 0;
  // True once the connection failed (I/O error, lost server): it will be
  // closed rather than returned to the pool.
  virtual bool broken() const noexcept = 0;
  // Where the connection stands between statements, without a round trip
  // (libpq tracks it from the server's answers).
  virtual TransactionState transaction_state() const noexcept = 0;
};

// A Connection on loan; returns it to its pool when destroyed (closes it if
// broken or left inside a transaction).
class Lease {
 public:
  Lease() = default;
  Lease(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Connection> connection);
  ~Lease();
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;

  Connection* operator->() const noexcept { return connection_.get(); }
  Connection& operator*() const noexcept { return *connection_; }
  explicit operator bool() const noexcept { return connection_ != nullptr; }

 private:
  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Connection> connection_;
};

class PostgresDatabase final : public stowage::Database {
 public:
  // Connects nothing yet. `log` outlives the database.
  PostgresDatabase(config::DatabaseSettings settings, std::shared_ptr<stowage::Logger> log);
  ~PostgresDatabase() override;

  const std::string& name() const noexcept override { return settings_.name; }
  // host:port/dbname, without user or password, for messages.
  const std::string& address() const noexcept;

  struct Acquired {
    stowage::Status status;  // kUnavailable (naming the database and address) when none by the deadline
    Lease lease;
  };
  // A connection from the pool, opened if none is idle and the pool is not
  // full; waits for one until `deadline` otherwise.
  Acquired Acquire(stowage::Deadline deadline);

  stowage::Status with_session(
      stowage::Deadline deadline,
      const std::function<stowage::Status(stowage::SqlSession&)>& work) noexcept override;

  // ApplyMigrations (database/migrations.h) on a session of its own.
  stowage::Status apply_migrations(std::string_view component,
                                   const std::vector<stowage::Migration>& migrations,
                                   stowage::Deadline deadline,
                                   std::vector<int>* applied = nullptr) noexcept override;

  // SELECT 1 on a pooled connection.
  stowage::Status Health(stowage::Deadline deadline);

  // Network round trips made by all of this database's connections so far
  // (see Connection::round_trips).
  std::uint64_t round_trips() const noexcept;

 private:
  config::DatabaseSettings settings_;
  std::shared_ptr<stowage::Logger> log_;
  std::shared_ptr<ConnectionPool> pool_;
};

}  // namespace stowage::database
