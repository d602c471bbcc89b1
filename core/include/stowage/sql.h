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
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/context.h"
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
};

}  // namespace stowage
