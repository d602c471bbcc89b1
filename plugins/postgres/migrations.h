// The PostgreSQL stage's schema, as versioned migrations the host applies
// (stowage::Database::apply_migrations, stowage/sql.h).
#pragma once

#include <string_view>
#include <vector>

#include "stowage/sql.h"

namespace stowage::postgres {

// The component name under which this stage's migrations are recorded in
// stowage_schema_migrations. Never changes: databases migrated by earlier
// releases are recorded under it.
inline constexpr std::string_view kMigrationComponent = "postgres";

// The chat tables (conversation_cache, message_cache), oldest first. A
// released migration is never edited; a change is a new one appended.
const std::vector<stowage::Migration>& ChatMigrations();

}  // namespace stowage::postgres
