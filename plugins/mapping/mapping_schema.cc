#include "mapping_schema.h"

namespace stowage::mapping {

// Erase finds a guest's rows by user_id; the cascade from message_cache finds
// a message's rows by cache_id (the unique key leads with cache_type, so it
// cannot serve that lookup).
const std::vector<Migration>& MappingMigrations() {
  static const std::vector<Migration> migrations = {
      {1, "create cache_content_mapping", R"sql(
CREATE TABLE cache_content_mapping (
  id bigserial PRIMARY KEY,
  cache_type text NOT NULL,
  cache_id bigint NOT NULL REFERENCES message_cache (id) ON DELETE CASCADE,
  content_id bigint,
  user_id text NOT NULL,
  cache_backend text NOT NULL,
  content_backend text NOT NULL,
  is_synced boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT cache_content_mapping_cache_type_cache_id_key UNIQUE (cache_type, cache_id)
);
CREATE INDEX cache_content_mapping_user_id_idx ON cache_content_mapping (user_id);
CREATE INDEX cache_content_mapping_cache_id_idx ON cache_content_mapping (cache_id);
)sql"},
  };
  return migrations;
}

}  // namespace stowage::mapping
