// Versioned schema migrations, shared by every stage that keeps tables in
// PostgreSQL.
//
// Each component (a stage's plugin name) owns an ordered list of migrations.
// Applied versions are recorded in stowage_schema_migrations, so applying the
// list again does nothing; a migration, once released, is never edited: a
// change is a new migration appended to the list.
#pragma once

#include <span>
#include <string_view>
#include <vector>

namespace soci {
class session;
}

namespace stowage::postgres {

struct Migration {
  int version;                   // 1, 2, 3, ... in order
  std::string_view description;  // for logs
  // One or more SQL statements separated by ';'. soci treats ":name" as a
  // parameter, so a migration uses "::" casts only and no other ':' outside
  // quotes.
  std::string_view sql;
};

// The component name under which this stage's migrations are recorded.
inline constexpr std::string_view kMigrationComponent = "postgres";

// The chat tables of the PostgreSQL stage (conversation_cache, message_cache),
// oldest first.
std::span<const Migration> ChatMigrations();

// Applies the migrations of `component` that stowage_schema_migrations does
// not record yet, in one transaction that first takes
// pg_advisory_xact_lock(kMigrationLockKey): servers starting at the same time
// apply them once, one after the other. Creates stowage_schema_migrations when
// missing. Returns the versions applied now (empty when the schema was
// current). Throws soci::soci_error; the transaction is then rolled back.
std::vector<int> ApplyMigrations(soci::session& sql, std::string_view component,
                                 std::span<const Migration> migrations);

// The advisory lock key every stowage component takes while migrating.
inline constexpr long long kMigrationLockKey = 0x73746f7761676500LL;  // "stowage\0"

}  // namespace stowage::postgres
