// The tables of the metrics stage, as migrations recorded under the
// component "metrics".
#pragma once

#include <string_view>
#include <vector>

#include "stowage/sql.h"

namespace stowage::metrics {

inline constexpr std::string_view kMigrationComponent = "metrics";

// usage_metrics (one row per user) and cache_metrics (one row per flush),
// oldest first.
const std::vector<Migration>& MetricsMigrations();

}  // namespace stowage::metrics
