// The PostgreSQL stage's schema, as ordered migrations.
#include "migrations.h"

namespace stowage::postgres {

// Reads and erases look a guest up by (platform, user_id) through the unique
// key; reads walk a conversation's messages in sequence order (a page of
// history backwards from its `before`, stopping at its limit) and the cascade
// finds them through the (conversation_id, sequence) key. No other index is
// needed.
//
// The (conversation_id, sequence) key is DEFERRABLE INITIALLY IMMEDIATE:
// checked at the end of each statement rather than per row, so a statement
// may renumber a conversation's messages. Migration 1 is released as it
// stands; databases migrated by earlier releases hold exactly these tables.
const std::vector<stowage::Migration>& ChatMigrations() {
  static const std::vector<stowage::Migration> migrations = {
      {1, "create conversation_cache and message_cache", R"sql(
CREATE TABLE conversation_cache (
  id bigserial PRIMARY KEY,
  platform text NOT NULL,
  user_id text NOT NULL,
  message_count integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT conversation_cache_platform_user_id_key UNIQUE (platform, user_id)
);
CREATE TABLE message_cache (
  id bigserial PRIMARY KEY,
  conversation_id bigint NOT NULL REFERENCES conversation_cache (id) ON DELETE CASCADE,
  sequence integer NOT NULL,
  role text NOT NULL,
  content text NOT NULL,
  message_hash text NOT NULL,
  "timestamp" timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT message_cache_conversation_id_sequence_key UNIQUE (conversation_id, sequence)
    DEFERRABLE INITIALLY IMMEDIATE
);
)sql"},
  };
  return migrations;
}

}  // namespace stowage::postgres
