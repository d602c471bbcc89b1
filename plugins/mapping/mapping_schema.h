// The table of the mapping stage, as migrations recorded under the component
// "mapping". cache_content_mapping references message_cache, which the
// postgres stage creates: the mapping stage joins the same database after it.
#pragma once

#include <string_view>
#include <vector>

#include "stowage/sql.h"

namespace stowage::mapping {

inline constexpr std::string_view kMigrationComponent = "mapping";

// cache_content_mapping, oldest first.
const std::vector<Migration>& MappingMigrations();

}  // namespace stowage::mapping
