#include "database/migrations.h"

#include <charconv>
#include <exception>
#include <set>
#include <string>

#include "database/sql_statements.h"

namespace stowage::database {
namespace {

using stowage::Migration;
using stowage::SqlResult;
using stowage::SqlSession;
using stowage::SqlValue;
using stowage::Status;
using stowage::StatusCode;

// The run itself; may throw (std::bad_alloc). Sets *in_transaction while a
// transaction it began is open, so that the caller can roll it back.
Status Apply(SqlSession& sql, const std::string& name, const std::vector<Migration>& migrations,
             std::vector<int>* applied, bool* in_transaction) {
  const std::string what = "migrating the schema of '" + name + "' in database '" + sql.database() + "'";
  int previous = 0;
  for (const Migration& migration : migrations) {
    if (migration.version <= previous) {
      return Status::Internal(what + ": migration versions must strictly increase from 1, but version " +
                              std::to_string(migration.version) + " (" + migration.description +
                              ") follows " + std::to_string(previous) +
                              "; fix the component's migration list");
    }
    previous = migration.version;
  }

  // Wraps a failure with where it happened, keeping its code.
  auto failed = [&](const Status& status, const std::string& step) {
    std::string message = what + ": " + step + " failed: " + status.message();
    switch (status.code()) {
      case StatusCode::kUnavailable:
        message += "; check that the database is reachable, then start again";
        break;
      case StatusCode::kDeadlineExceeded:
        message += "; another server may hold the migration lock, or the migration is slow: start again";
        break;
      default:
        message += "; nothing of this run was kept (its transaction was rolled back)";
        break;
    }
    switch (status.code()) {
      case StatusCode::kUnavailable:
        return Status::Unavailable(message);
      case StatusCode::kDeadlineExceeded:
        return Status::DeadlineExceeded(message);
      case StatusCode::kInvalidArgument:
        return Status::InvalidArgument(message);
      case StatusCode::kConflict:
        return Status::Conflict(message);
      case StatusCode::kRejected:
        return Status::Rejected(message);
      case StatusCode::kNotFound:
        return Status::NotFound(message);
      default:
        return Status::Internal(message);
    }
  };
  auto rollback = [&] {
    *in_transaction = false;
    sql.execute("ROLLBACK", {});
  };

  Status status = sql.execute("BEGIN", {});
  if (!status.ok()) return failed(status, "BEGIN");
  *in_transaction = true;
  status = sql.execute("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")", {});
  if (!status.ok()) {
    rollback();
    return failed(status, "taking the migration lock");
  }
  status = sql.execute(
      "CREATE TABLE IF NOT EXISTS stowage_schema_migrations ("
      " component text NOT NULL,"
      " version integer NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now(),"
      " PRIMARY KEY (component, version))",
      {});
  if (!status.ok()) {
    rollback();
    return failed(status, "creating stowage_schema_migrations");
  }
  SqlResult recorded;
  status =
      sql.execute("SELECT version FROM stowage_schema_migrations WHERE component = $1", {name}, &recorded);
  if (!status.ok()) {
    rollback();
    return failed(status, "reading stowage_schema_migrations");
  }
  std::set<int> done;
  for (std::size_t row = 0; row < recorded.rows.size(); ++row) {
    SqlValue value = recorded.value(row, 0);
    int version = 0;
    if (value && std::from_chars(value->data(), value->data() + value->size(), version).ec == std::errc()) {
      done.insert(version);
    }
  }

  std::vector<int> now_applied;
  for (const Migration& migration : migrations) {
    if (done.count(migration.version)) continue;
    const std::string step =
        "migration " + std::to_string(migration.version) + " (" + migration.description + ")";
    for (const std::string& statement : internal::SplitSqlStatements(migration.sql)) {
      status = sql.execute(statement, {});
      if (!status.ok()) {
        rollback();
        return failed(status, step);
      }
    }
    status = sql.execute("INSERT INTO stowage_schema_migrations (component, version) VALUES ($1, $2)",
                         {name, std::to_string(migration.version)});
    if (!status.ok()) {
      rollback();
      return failed(status, "recording " + step);
    }
    now_applied.push_back(migration.version);
  }
  status = sql.execute("COMMIT", {});
  *in_transaction = false;
  if (!status.ok()) {
    sql.execute("ROLLBACK", {});
    return failed(status, "COMMIT");
  }
  if (applied != nullptr) applied->insert(applied->end(), now_applied.begin(), now_applied.end());
  return Status::Ok();
}

}  // namespace

Status ApplyMigrations(SqlSession& sql, std::string_view component, const std::vector<Migration>& migrations,
                       std::vector<int>* applied) noexcept {
  bool in_transaction = false;
  try {
    return Apply(sql, std::string(component), migrations, applied, &in_transaction);
  } catch (const std::exception& e) {
    if (in_transaction) sql.execute("ROLLBACK", {});
    return Status::Internal("migrating the schema of '" + std::string(component) + "' in database '" +
                            sql.database() + "' failed: " + e.what() +
                            "; nothing of this run was kept (its transaction was rolled back): start again");
  } catch (...) {
    if (in_transaction) sql.execute("ROLLBACK", {});
    return Status::Internal("migrating the schema of '" + std::string(component) + "' in database '" +
                            sql.database() +
                            "' failed with an unknown exception; nothing of this run was kept "
                            "(its transaction was rolled back): start again");
  }
}

}  // namespace stowage::database
