#include "metrics_schema.h"

namespace stowage::metrics {

// usage_metrics is found by user_id (the unique key) on every POST and
// flush. cache_metrics is read newest first, hence the index on recorded_at.
const std::vector<Migration>& MetricsMigrations() {
  static const std::vector<Migration> migrations = {
      {1, "create usage_metrics and cache_metrics", R"sql(
CREATE TABLE usage_metrics (
  id bigserial PRIMARY KEY,
  user_id text NOT NULL UNIQUE,
  tier text NOT NULL,
  total_requests bigint NOT NULL DEFAULT 0,
  cache_hits bigint NOT NULL DEFAULT 0,
  cache_misses bigint NOT NULL DEFAULT 0,
  monthly_request_limit integer NOT NULL,
  month_start date NOT NULL,
  month_requests integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE cache_metrics (
  id bigserial PRIMARY KEY,
  cache_hits bigint NOT NULL DEFAULT 0,
  cache_misses bigint NOT NULL DEFAULT 0,
  total_requests bigint NOT NULL DEFAULT 0,
  avg_response_time double precision NOT NULL DEFAULT 0,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cache_metrics_recorded_at_idx ON cache_metrics (recorded_at);
)sql"},
  };
  return migrations;
}

}  // namespace stowage::metrics
