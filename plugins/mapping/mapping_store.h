// MappingStore: the statements of the mapping stage on cache_content_mapping.
// Plain functions of a SqlSession: the caller's transaction is used as is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "stowage/sql.h"

namespace stowage::mapping {

// Where one cached item's content lives.
struct MappingRow {
  std::string cache_type;                  // 'message'
  std::int64_t cache_id = 0;               // message_cache.id
  std::optional<std::int64_t> content_id;  // none for guests
  std::string user_id;
  std::string cache_backend;    // e.g. "redis"
  std::string content_backend;  // e.g. "postgresql"
  bool is_synced = true;
};

class MappingStore {
 public:
  // Inserts `row`, in one statement. When (cache_type, cache_id) is mapped
  // already it stores nothing and succeeds; so does a `replay` (SDK 1.3)
  // whose message is no longer in message_cache (erased since). `*inserted`
  // says whether the row was inserted. Every failure names
  // cache_content_mapping and the database.
  static Status Insert(SqlSession& sql, const MappingRow& row, bool replay, bool* inserted);

  // Deletes every row of `user_id`; `deleted` gets how many there were.
  static Status DeleteUser(SqlSession& sql, const std::string& user_id, std::uint64_t* deleted);
};

}  // namespace stowage::mapping
