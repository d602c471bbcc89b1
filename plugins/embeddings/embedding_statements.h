// The SQL the embeddings stage runs on cache_embeddings. Every statement's
// text is constant (the host prepares it once per connection); values go as
// parameters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stowage/message.h"
#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage::embeddings {

struct EmbeddingRecord {
  std::string conversation_id;  // decimal, as the postgres stage's attributes carry it
  std::string message_id;
  std::string embedding_json;  // a JSON array of numbers
  std::string model;
  std::size_t dimensions = 0;
  std::string text_chunk;
  int chunk_index = 0;
};

// One stored embedding of a guest, with the message it embeds.
struct GuestEmbedding {
  std::int64_t message_id = 0;
  std::string model;
  std::size_t dimensions = 0;
  std::string embedding_json;
  Message message;  // timestamp in the canonical form
};

// Inserts one row, unless the message already has one at that chunk_index
// (unique (message_id, chunk_index)): then it stores nothing and succeeds.
// `*inserted`, when given, says which.
Status InsertEmbedding(SqlSession& sql, const EmbeddingRecord& record, bool* inserted = nullptr);

// What a replay finds for its message.
struct ReplayState {
  bool message_exists = false;  // still in message_cache (not erased since)
  bool embedded = false;        // has rows in cache_embeddings already
};

// One statement: the ReplayState of `message_id` (decimal).
Status SelectReplayState(SqlSession& sql, const std::string& message_id, ReplayState* out);

// Deletes every row of the guest's conversation; `*deleted` is how many.
Status DeleteGuestEmbeddings(SqlSession& sql, const std::string& guest_id, std::uint64_t* deleted);

// The guest's rows, joined with their messages, by message then chunk. Only
// rows of messages in the guest's own conversation are returned.
Status SelectGuestEmbeddings(SqlSession& sql, const std::string& guest_id, std::vector<GuestEmbedding>* out);

// Whether cache_embeddings exists in the session's search path.
Status EmbeddingsTableExists(SqlSession& sql, bool* exists);

}  // namespace stowage::embeddings
