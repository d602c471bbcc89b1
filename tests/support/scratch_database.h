// Test support for SQL stages: a PostgreSQL database made for one test on
// the server of STOWAGE_TEST_DATABASE_URL and dropped afterwards, opened as
// the host opens a [[database]], and a transaction on it as the host runs a
// write. The logger that keeps what it is told is the test kit's
// (stowage/testkit/loggers.h), also named here.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "database/postgres_database.h"
#include "stowage/sdk.h"
#include "stowage/testkit/loggers.h"

namespace stowage::testing {

using CapturingLogger = testkit::CapturingLogger;

// `url` with its database name replaced by `name`.
std::string WithDatabaseName(const std::string& url, const std::string& name);

// A fresh database, created at construction (when STOWAGE_TEST_DATABASE_URL
// is set; otherwise a test failure is recorded and ok() is false) and
// dropped, connections and all, at destruction. Its time zone is far from
// UTC (America/St_Johns, -03:30), so that a timestamp handled in local time
// shows.
class ScratchDatabase {
 public:
  explicit ScratchDatabase(const std::string& what);
  ~ScratchDatabase();
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  bool ok() const noexcept { return database_ != nullptr; }
  const std::string& url() const noexcept { return url_; }
  const std::string& name() const noexcept { return name_; }
  // The database as a stage receives it (named "main"), and as the host
  // holds it (to lease connections).
  database::PostgresDatabase& database() { return *database_; }

  // Runs `statement` in autocommit; records a test failure when it fails.
  SqlResult Query(const std::string& statement, const std::vector<SqlValue>& params = {});
  // The value at row 0, column 0 of Query(...), or "<null>".
  std::string Scalar(const std::string& statement, const std::vector<SqlValue>& params = {});

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
  std::shared_ptr<Logger> log_;
  std::unique_ptr<database::PostgresDatabase> database_;
};

// A connection in a transaction, as the host gives it to a write: BEGIN at
// construction; commit() or rollback(), else ROLLBACK at destruction.
class WriteTransaction {
 public:
  explicit WriteTransaction(database::PostgresDatabase& database);
  ~WriteTransaction();

  bool ok() const noexcept { return static_cast<bool>(lease_); }
  SqlSession* session() { return lease_ ? &*lease_ : nullptr; }
  Status commit();
  Status rollback();

 private:
  database::Lease lease_;
  bool open_ = false;
};

}  // namespace stowage::testing
