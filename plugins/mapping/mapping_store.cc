#include "mapping_store.h"

namespace stowage::mapping {
namespace {

constexpr const char* kInsert =
    "INSERT INTO cache_content_mapping"
    " (cache_type, cache_id, content_id, user_id, cache_backend, content_backend, is_synced)"
    " VALUES ($1, $2::bigint, $3::bigint, $4, $5, $6, $7::boolean)"
    " ON CONFLICT (cache_type, cache_id) DO NOTHING";

// A replay's: the same, and nothing when the message was erased since (the
// row would fail the foreign key at every retry).
constexpr const char* kInsertReplayed =
    "INSERT INTO cache_content_mapping"
    " (cache_type, cache_id, content_id, user_id, cache_backend, content_backend, is_synced)"
    " SELECT $1, $2::bigint, $3::bigint, $4, $5, $6, $7::boolean"
    " WHERE EXISTS (SELECT 1 FROM message_cache WHERE id = $2::bigint)"
    " ON CONFLICT (cache_type, cache_id) DO NOTHING";

constexpr const char* kDeleteUser = "DELETE FROM cache_content_mapping WHERE user_id = $1";

// `failed` with `context` in front, keeping its code.
Status Wrap(const Status& failed, const std::string& context) {
  std::string message = context + ": " + failed.message();
  switch (failed.code()) {
    case StatusCode::kUnavailable:
      return Status::Unavailable(std::move(message));
    case StatusCode::kDeadlineExceeded:
      return Status::DeadlineExceeded(std::move(message));
    case StatusCode::kConflict:
      return Status::Conflict(std::move(message));
    case StatusCode::kInvalidArgument:
      return Status::InvalidArgument(std::move(message));
    default:
      return Status::Internal(std::move(message) +
                              "; check that the mapping migrations are applied (stowage_schema_migrations, "
                              "component 'mapping')");
  }
}

}  // namespace

Status MappingStore::Insert(SqlSession& sql, const MappingRow& row, bool replay, bool* inserted) {
  *inserted = false;
  SqlValue content_id;
  if (row.content_id) content_id = std::to_string(*row.content_id);
  SqlResult result;
  Status status = sql.execute(replay ? kInsertReplayed : kInsert,
                              {row.cache_type, std::to_string(row.cache_id), content_id, row.user_id,
                               row.cache_backend, row.content_backend, row.is_synced ? "t" : "f"},
                              &result);
  if (status.ok()) {
    *inserted = result.affected > 0;
    return status;
  }
  return Wrap(status, "could not map " + row.cache_type + " " + std::to_string(row.cache_id) + " of " +
                          row.user_id + " in cache_content_mapping (database '" + sql.database() + "')");
}

Status MappingStore::DeleteUser(SqlSession& sql, const std::string& user_id, std::uint64_t* deleted) {
  SqlResult result;
  Status status = sql.execute(kDeleteUser, {user_id}, &result);
  if (!status.ok()) {
    return Wrap(status, "could not delete the rows of " + user_id +
                            " from cache_content_mapping (database '" + sql.database() + "')");
  }
  *deleted = result.affected;
  return Status::Ok();
}

}  // namespace stowage::mapping
