// The host's schema migration runner: what Database::apply_migrations
// (stowage/sql.h) does for stages, and how the host migrates its own tables
// (stowage_journal, stowage_idempotency).
//
// Applied versions are recorded in stowage_schema_migrations (component,
// version, applied_at), so applying a list again does nothing, and every
// server that starts at the same time may apply it: they take one advisory
// lock in turn.
#pragma once

#include <string_view>
#include <vector>

#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage::database {

// The pg_advisory_xact_lock key every stowage component takes while it
// migrates ("stowage\0" as a 64-bit integer). Never changes: servers of
// every release that share a database take the same lock.
inline constexpr long long kMigrationLockKey = 0x73746f7761676500LL;

// Applies the migrations of `component` that stowage_schema_migrations does
// not record yet, in list order, in one transaction: BEGIN, take
// pg_advisory_xact_lock(kMigrationLockKey) (servers migrating at the same
// time go one after the other), create stowage_schema_migrations if absent,
// run each missing migration statement by statement (split at its top-level
// ';', internal::SplitSqlStatements: a prepared statement holds one command)
// and record its version, COMMIT. Versions recorded but absent from the list
// (a newer release migrated this database) are left alone.
//
// `sql` must be in autocommit (as Database::with_session gives it). Appends
// the versions applied now to `applied` (nothing when the schema was
// current). On any failure the transaction is rolled back, so the database
// keeps the versions it had, and the Status keeps the code of the failure
// (kUnavailable when the database cannot be reached) with a message naming
// the component, the database, the migration and what to do. A list whose
// versions do not strictly increase from 1 or more is refused (kInternal)
// before anything runs. Throws nothing: an exception becomes kInternal,
// after a ROLLBACK.
stowage::Status ApplyMigrations(stowage::SqlSession& sql, std::string_view component,
                                const std::vector<stowage::Migration>& migrations,
                                std::vector<int>* applied = nullptr) noexcept;

}  // namespace stowage::database
