// ChatStatements: the SQL of the PostgreSQL stage, run on a SqlSession the
// host lends. The statement texts are constant, so the host prepares each
// one once per connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/message.h"
#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage::postgres {

// Where InsertMessage() put a message.
struct StoredMessage {
  long long message_id = 0;
  long long conversation_id = 0;
  int sequence = 0;
};

// The chat tables of one platform ('guest'). Holds no connection and no
// state besides the platform, so one object serves every thread. Each method
// runs one statement on `sql` and returns the session's Status unchanged
// (kUnavailable, kDeadlineExceeded, kInvalidArgument, ...), or kInternal when
// PostgreSQL answers something the statement cannot produce.
class ChatStatements {
 public:
  explicit ChatStatements(std::string platform) : platform_(std::move(platform)) {}

  // Appends a message to the guest's conversation (created on first use) in
  // one statement: an upsert of conversation_cache that increments
  // message_count, and the insert of the message with sequence =
  // message_count - 1. The upsert locks the conversation row until the
  // transaction ends, so concurrent writers of one guest get sequences 0, 1,
  // 2, ... without gaps or duplicates, and a rolled-back transaction leaves
  // neither the message nor the increment.
  stowage::Status InsertMessage(stowage::SqlSession& sql, const std::string& guest_id,
                                const stowage::Message& message, const std::string& hash,
                                StoredMessage* stored) const;

  // The guest's messages ordered by sequence, timestamps in the canonical
  // form "YYYY-MM-DDTHH:MM:SS.ffffffZ" whatever the session's time zone;
  // empty when the guest has none.
  stowage::Status SelectMessages(stowage::SqlSession& sql, const std::string& guest_id,
                                 std::vector<stowage::Message>* messages) const;

  // The newest `limit` (none: all) of the guest's messages whose sequence is
  // below `before` (none: up to the newest), ordered by sequence, and
  // *total, how many messages the guest has (its message_count); empty and
  // 0 when the guest has none. Reads only the page: the (conversation_id,
  // sequence) key is walked backwards from `before`.
  stowage::Status SelectPage(stowage::SqlSession& sql, const std::string& guest_id,
                             std::optional<std::uint64_t> before, std::optional<std::uint64_t> limit,
                             std::vector<stowage::Message>* messages, std::uint64_t* total) const;

  // Deletes the guest's conversation and, by cascade, its messages. `held`
  // says whether there was one.
  stowage::Status DeleteConversation(stowage::SqlSession& sql, const std::string& guest_id, bool* held) const;

  // SELECT 1.
  static stowage::Status Ping(stowage::SqlSession& sql);

  // The text of SelectPage's statement ($1 platform, $2 guest id, $3
  // before, $4 limit), for checking its plan with EXPLAIN.
  static std::string_view PageStatement();

 private:
  std::string platform_;
};

}  // namespace stowage::postgres
