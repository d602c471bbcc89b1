// The embeddings stage's schema, as ordered migrations the host applies
// (Database::apply_migrations, stowage/sql.h).
#pragma once

#include <string_view>
#include <vector>

#include "stowage/sql.h"

namespace stowage::embeddings {

// The component under which stowage_schema_migrations records them.
inline constexpr std::string_view kMigrationComponent = "embeddings";

// cache_embeddings, oldest migration first. It references message_cache,
// which the postgres stage creates: that stage must have migrated the same
// database first (it comes earlier in the pipeline).
const std::vector<Migration>& EmbeddingMigrations();

}  // namespace stowage::embeddings
