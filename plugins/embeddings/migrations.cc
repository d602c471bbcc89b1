#include "migrations.h"

namespace stowage::embeddings {

// Writes insert by message; erase and search find a guest's rows through
// conversation_id; the cascade from message_cache finds them through the
// (message_id, chunk_index) key.
const std::vector<Migration>& EmbeddingMigrations() {
  static const std::vector<Migration> migrations = {
      {1, "create cache_embeddings", R"sql(
CREATE TABLE cache_embeddings (
  id bigserial PRIMARY KEY,
  conversation_id bigint NOT NULL,
  message_id bigint NOT NULL REFERENCES message_cache (id) ON DELETE CASCADE,
  embedding jsonb NOT NULL,
  embedding_model text NOT NULL,
  embedding_dim integer NOT NULL,
  text_chunk text NOT NULL,
  chunk_index integer NOT NULL DEFAULT 0,
  created_at timestamptz DEFAULT now(),
  CONSTRAINT cache_embeddings_message_id_chunk_index_key UNIQUE (message_id, chunk_index)
);
CREATE INDEX cache_embeddings_conversation_id_idx ON cache_embeddings (conversation_id);
)sql"},
      // An embedding's jsonb (about 3.5 KB at 256 dimensions) is compressed
      // on every insert: lz4 costs a fraction of the default pglz. A server
      // built without lz4 keeps pglz.
      {2, "compress embeddings with lz4", R"sql(
DO $$
BEGIN
  ALTER TABLE cache_embeddings ALTER COLUMN embedding SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'this PostgreSQL has no lz4: cache_embeddings.embedding stays compressed with pglz';
END
$$;
)sql"},
  };
  return migrations;
}

}  // namespace stowage::embeddings
