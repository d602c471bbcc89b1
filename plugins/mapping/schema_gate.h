// SchemaGate: brings a component's tables up to date once, and again before
// the first use when the database could not be reached at construction.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "stowage/logger.h"
#include "stowage/sql.h"
#include "stowage/sql_migrations.h"

namespace stowage::mapping {

// Thread-safe. `database`, `migrations` and `log` outlive the gate.
class SchemaGate {
 public:
  SchemaGate(Database& database, std::string component, const std::vector<SqlMigration>& migrations,
             Logger& log);

  // Ok once the migrations are applied (on a session of its own, in
  // autocommit); afterwards returns at once. A failure is returned as is
  // (kUnavailable when the database cannot be reached), and the next call
  // tries again.
  Status ensure(Deadline deadline);

  bool ready() const noexcept { return ready_.load(); }

 private:
  Database& database_;
  const std::string component_;
  const std::vector<SqlMigration>& migrations_;
  Logger& log_;
  std::mutex mu_;
  std::atomic<bool> ready_{false};
};

}  // namespace stowage::mapping
