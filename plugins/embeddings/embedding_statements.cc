#include "embedding_statements.h"

#include <charconv>

namespace stowage::embeddings {
namespace {

constexpr const char* kInsert =
    "INSERT INTO cache_embeddings"
    " (conversation_id, message_id, embedding, embedding_model, embedding_dim, text_chunk, chunk_index)"
    " VALUES ($1::bigint, $2::bigint, $3::jsonb, $4::text, $5::integer, $6::text, $7::integer)"
    " ON CONFLICT (message_id, chunk_index) DO NOTHING";

// For a replay: whether the message is still there, and whether it has rows.
constexpr const char* kReplayState =
    "SELECT EXISTS (SELECT 1 FROM message_cache WHERE id = $1::bigint),"
    " EXISTS (SELECT 1 FROM cache_embeddings WHERE message_id = $1::bigint)";

constexpr const char* kDeleteGuest =
    "DELETE FROM cache_embeddings WHERE conversation_id IN"
    " (SELECT id FROM conversation_cache WHERE platform = 'guest' AND user_id = $1::text)";

// The message must belong to the guest's conversation, and the embedding
// must say so too: a row can never leak into another guest's search.
constexpr const char* kSelectGuest =
    "SELECT e.message_id, e.embedding_model, e.embedding_dim, e.embedding::text, m.role, m.content,"
    " to_char(m.\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM conversation_cache c"
    " JOIN message_cache m ON m.conversation_id = c.id"
    " JOIN cache_embeddings e ON e.message_id = m.id AND e.conversation_id = c.id"
    " WHERE c.platform = 'guest' AND c.user_id = $1::text"
    " ORDER BY e.message_id, e.chunk_index";

constexpr const char* kTableExists = "SELECT to_regclass('cache_embeddings') IS NOT NULL";

template <typename T>
bool ParseNumber(const SqlValue& value, T* out) {
  if (!value) return false;
  auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), *out);
  return error == std::errc() && end == value->data() + value->size();
}

}  // namespace

Status InsertEmbedding(SqlSession& sql, const EmbeddingRecord& record, bool* inserted) {
  SqlResult result;
  Status status =
      sql.execute(kInsert,
                  {record.conversation_id, record.message_id, record.embedding_json, record.model,
                   std::to_string(record.dimensions), record.text_chunk, std::to_string(record.chunk_index)},
                  &result);
  if (inserted != nullptr) *inserted = status.ok() && result.affected > 0;
  return status;
}

Status SelectReplayState(SqlSession& sql, const std::string& message_id, ReplayState* out) {
  SqlResult result;
  Status status = sql.execute(kReplayState, {message_id}, &result);
  if (!status.ok()) return status;
  out->message_exists = result.value(0, 0).value_or("f") == "t";
  out->embedded = result.value(0, 1).value_or("f") == "t";
  return Status::Ok();
}

Status DeleteGuestEmbeddings(SqlSession& sql, const std::string& guest_id, std::uint64_t* deleted) {
  SqlResult result;
  Status status = sql.execute(kDeleteGuest, {guest_id}, &result);
  *deleted = status.ok() ? result.affected : 0;
  return status;
}

Status SelectGuestEmbeddings(SqlSession& sql, const std::string& guest_id, std::vector<GuestEmbedding>* out) {
  out->clear();
  SqlResult result;
  Status status = sql.execute(kSelectGuest, {guest_id}, &result);
  if (!status.ok()) return status;
  out->reserve(result.rows.size());
  for (std::size_t row = 0; row < result.rows.size(); ++row) {
    GuestEmbedding item;
    if (!ParseNumber(result.value(row, 0), &item.message_id) ||
        !ParseNumber(result.value(row, 2), &item.dimensions)) {
      return Status::Internal("cache_embeddings in database '" + sql.database() +
                              "' returned a row without a numeric message_id or embedding_dim");
    }
    item.model = result.value(row, 1).value_or("");
    item.embedding_json = result.value(row, 3).value_or("[]");
    item.message.role = result.value(row, 4).value_or("");
    item.message.content = result.value(row, 5).value_or("");
    item.message.timestamp = result.value(row, 6).value_or("");
    out->push_back(std::move(item));
  }
  return Status::Ok();
}

Status EmbeddingsTableExists(SqlSession& sql, bool* exists) {
  SqlResult result;
  Status status = sql.execute(kTableExists, {}, &result);
  *exists = status.ok() && result.value(0, 0).value_or("f") == "t";
  return status;
}

}  // namespace stowage::embeddings
