// ChatStatements: the SQL of the PostgreSQL stage, prepared once per
// connection and kept for the connection's life.
#pragma once

#include <soci/soci.h>

#include <optional>
#include <string>
#include <vector>

#include "stowage/message.h"

namespace stowage::postgres {

// Where write() put a message.
struct StoredMessage {
  long long message_id = 0;
  long long conversation_id = 0;
  int sequence = 0;
};

// Owned by one Connection and used by one thread at a time. Each statement
// is prepared (server-side PREPARE) on its first use and binds the members
// below by reference, so the object never moves. Every method throws
// soci::soci_error on failure.
class ChatStatements {
 public:
  // `sql` must outlive this object.
  explicit ChatStatements(soci::session& sql) : sql_(sql) {}
  ChatStatements(const ChatStatements&) = delete;
  ChatStatements& operator=(const ChatStatements&) = delete;

  // Appends a message to the guest's conversation (created on first use) in
  // one statement. The upsert locks the conversation row until the statement
  // commits, so concurrent writers of one guest get sequences 0, 1, 2, ...
  // without gaps or duplicates and message_count equals the number of rows.
  StoredMessage Insert(const std::string& guest_id, const stowage::Message& message, const std::string& hash);

  // The guest's messages ordered by sequence, timestamps in the canonical
  // form "YYYY-MM-DDTHH:MM:SS.ffffffZ"; empty when the guest has none.
  std::vector<stowage::Message> Select(const std::string& guest_id);

  // Deletes the guest's conversation and, by cascade, its messages. Returns
  // whether there was one.
  bool Delete(const std::string& guest_id);

  // Undoes one Insert in a transaction: removes the message, moves the
  // conversation's later messages down one sequence, decrements
  // message_count and deletes the conversation when it becomes empty.
  // Returns false when the message is not there (nothing to undo).
  bool Remove(long long message_id, long long conversation_id);

  // SELECT 1.
  void Ping();

 private:
  soci::session& sql_;

  // Parameters and results the statements are bound to.
  std::string guest_id_, role_, content_, hash_, timestamp_;
  long long message_id_ = 0, conversation_id_ = 0;
  int sequence_ = 0, message_count_ = 0, one_ = 0;

  std::optional<soci::statement> insert_, select_, delete_, lock_, remove_, shift_, decrement_, drop_, ping_;
};

}  // namespace stowage::postgres
