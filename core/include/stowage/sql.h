// SQL databases shared by stages.
//
// pipeline.toml declares databases once, by name:
//
//   [[database]]
//   name = "main"
//   url = "${DATABASE_URL}"
//
// and a stage joins one with `database = "main"` in its [[stage]] entry. The
// host owns the connections. Within one write, every stage of a database
// runs its statements in the same transaction on the same connection: the
// required stages' writes commit together, once, after the last stage, or
// not at all; each best_effort stage runs inside a SAVEPOINT, so its failure
// rolls back its own statements only. Erase runs in one transaction too.
// Reads run in autocommit.
//
// A stage creates and evolves its tables with Database::apply_migrations, a
// service of the host (SDK 2.0), usually through a SchemaGate.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/context.h"
#include "stowage/logger.h"
#include "stowage/status.h"

namespace stowage {

// A parameter or a result value in PostgreSQL's text form ("42", "t",
// "2026-01-01 00:00:00+00", a JSON document...); nullopt is SQL NULL.
using SqlValue = std::optional<std::string>;

struct SqlResult {
  std::vector<std::string> columns;
  std::vector<std::vector<SqlValue>> rows;
  std::uint64_t affected = 0;  // rows inserted, updated or deleted

  // The value at (row, column), or nullopt for NULL or out of range.
  SqlValue value(std::size_t row, std::size_t column) const {
    if (row >= rows.size() || column >= rows[row].size()) return std::nullopt;
    return rows[row][column];
  }
};

// One connection, lent to one stage call. Not thread-safe.
class SqlSession {
 public:
  virtual ~SqlSession() = default;

  // Runs one statement with $1..$n bound to `params`. The statement is
  // prepared once per connection and kept. It is cancelled by the server at
  // the call's deadline (kDeadlineExceeded). A lost connection is
  // kUnavailable; a value the database refuses (data exception, constraint)
  // is kInvalidArgument or kConflict; the message names the database.
  //
  // In ctx.sql the host owns the transaction: a statement that controls it
  // (BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT,
  // RELEASE, PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED, SET TRANSACTION,
  // ...; in text of several statements, any of them) is refused without
  // being sent (kInternal), and the call that sent it fails whatever it
  // returns. So does a call that returns ok after one of its statements
  // failed. To undo its statements a stage returns an error.
  virtual Status execute(std::string_view statement, const std::vector<SqlValue>& params,
                         SqlResult* result = nullptr) noexcept = 0;

  // The name of the database in pipeline.toml, for messages.
  virtual const std::string& database() const noexcept = 0;
};

// SDK 2.0: one versioned schema migration of a component (a stage's plugin
// name, say), for Database::apply_migrations. A component's migrations form
// an ordered list:
//
//   const std::vector<stowage::Migration>& MyMigrations() {
//     static const std::vector<stowage::Migration> migrations = {
//         {1, "create my_table", "CREATE TABLE my_table (id bigserial PRIMARY KEY, body text NOT NULL)"},
//         {2, "index my_table by body", "CREATE INDEX my_table_body ON my_table (body)"},
//     };
//     return migrations;
//   }
//
// A migration, once released, is never edited: a change is a new migration
// appended to the list with the next version.
struct Migration {
  int version;              // 1, 2, 3, ... strictly increasing along the list
  std::string description;  // what it does, for messages
  // One or more SQL statements separated by ';', without parameters. They
  // run one by one in the migration's transaction. Quotes ('...', E'...',
  // "...", $tag$...$tag$) and comments (--, /* */) may hold ';'.
  std::string sql;
};

// A database as a stage holds it for its whole life, to work outside the
// requests (schema migrations, periodic flushes). Owned by the host; lives
// longer than every stage that uses it. Thread-safe.
class Database {
 public:
  virtual ~Database() = default;

  virtual const std::string& name() const noexcept = 0;

  // Runs `work` with a session of its own, in autocommit (work may BEGIN and
  // COMMIT itself). Returns what `work` returns, or kUnavailable when no
  // connection could be had by `deadline`.
  virtual Status with_session(Deadline deadline, const std::function<Status(SqlSession&)>& work) noexcept = 0;

  // SDK 2.0: brings the tables of `component` up to date. On a session of
  // its own, in one transaction, by `deadline`: takes an advisory lock
  // (servers migrating the same database at the same time go one after the
  // other), creates stowage_schema_migrations (component, version,
  // applied_at) if absent, runs each migration of the list that the table
  // does not record for `component` yet, in list order, statement by
  // statement (split at the ';' outside quotes and comments), records its
  // version, and commits. Versions recorded but absent from the list (a
  // newer release migrated this database) are left alone; a list already
  // applied changes nothing.
  //
  // Appends the versions applied now to `applied` (nothing when the schema
  // was current). On any failure nothing of this run is kept (its
  // transaction is rolled back) and the Status keeps the failure's code
  // (kUnavailable when the database cannot be reached, kDeadlineExceeded at
  // the deadline), with a message naming the component, the database, the
  // migration and what to do. A list whose versions do not strictly increase
  // from 1 or more is refused (kInternal) before anything runs.
  virtual Status apply_migrations(std::string_view component, const std::vector<Migration>& migrations,
                                  Deadline deadline, std::vector<int>* applied = nullptr) noexcept = 0;
};

// Brings a component's tables up to date once: at construction when the
// database answers, otherwise before the first use. A stage holds one:
//
//   schema_(*env.database, "my_stage", MyMigrations(), env.log)
//   ...
//   Status ready = schema_.ensure(ctx.deadline);  // in the constructor, and at the start of admit()
//
// Thread-safe. `database`, `migrations` and `log` must outlive the gate.
class SchemaGate {
 public:
  SchemaGate(Database& database, std::string component, const std::vector<Migration>& migrations, Logger& log)
      : database_(database), component_(std::move(component)), migrations_(migrations), log_(log) {}

  // Ok once the migrations are applied (Database::apply_migrations), and
  // logs which; afterwards returns at once. A failure is returned as is
  // (kUnavailable when the database cannot be reached), and the next call
  // tries again.
  Status ensure(Deadline deadline) {
    if (ready_.load()) return Status::Ok();
    std::lock_guard lock(mu_);
    if (ready_.load()) return Status::Ok();
    std::vector<int> applied;
    Status status = database_.apply_migrations(component_, migrations_, deadline, &applied);
    if (!status.ok()) return status;
    std::string versions;
    for (int v : applied) versions += (versions.empty() ? "" : ", ") + std::to_string(v);
    log_.info("schema of '" + component_ + "' in database '" + database_.name() + "' is current" +
              (versions.empty() ? "" : " (applied migration(s) " + versions + ")"));
    ready_.store(true);
    return Status::Ok();
  }

  bool ready() const noexcept { return ready_.load(); }

 private:
  Database& database_;
  const std::string component_;
  const std::vector<Migration>& migrations_;
  Logger& log_;
  std::mutex mu_;
  std::atomic<bool> ready_{false};
};

}  // namespace stowage
