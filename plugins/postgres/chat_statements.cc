#include "chat_statements.h"

namespace stowage::postgres {

StoredMessage ChatStatements::Insert(const std::string& guest_id, const stowage::Message& message,
                                     const std::string& hash) {
  if (!insert_) {
    insert_.emplace(
        (sql_.prepare << "WITH conversation AS ("
                         " INSERT INTO conversation_cache (platform, user_id, message_count)"
                         " VALUES ('guest', :guest_id, 1)"
                         " ON CONFLICT (platform, user_id) DO UPDATE"
                         " SET message_count = conversation_cache.message_count + 1,"
                         " updated_at = now()"
                         " RETURNING id, message_count - 1 AS seq)"
                         " INSERT INTO message_cache"
                         " (conversation_id, sequence, role, content, message_hash, \"timestamp\")"
                         " SELECT id, seq, :role, :content, :hash, CAST(:ts AS timestamptz)"
                         " FROM conversation"
                         " RETURNING id, conversation_id, sequence",
         soci::use(guest_id_, "guest_id"), soci::use(role_, "role"), soci::use(content_, "content"),
         soci::use(hash_, "hash"), soci::use(timestamp_, "ts"), soci::into(message_id_),
         soci::into(conversation_id_), soci::into(sequence_)));
  }
  guest_id_ = guest_id;
  role_ = message.role;
  content_ = message.content;
  hash_ = hash;
  timestamp_ = message.timestamp;
  insert_->execute(true);
  if (!insert_->got_data()) throw soci::soci_error("the insert returned no row");
  return {message_id_, conversation_id_, sequence_};
}

std::vector<stowage::Message> ChatStatements::Select(const std::string& guest_id) {
  if (!select_) {
    select_.emplace((sql_.prepare << "SELECT m.role, m.content,"
                                     " to_char(m.\"timestamp\" AT TIME ZONE 'UTC',"
                                     " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                                     " FROM conversation_cache c"
                                     " JOIN message_cache m ON m.conversation_id = c.id"
                                     " WHERE c.platform = 'guest' AND c.user_id = :guest_id"
                                     " ORDER BY m.sequence",
                     soci::use(guest_id_, "guest_id"), soci::into(role_), soci::into(content_),
                     soci::into(timestamp_)));
  }
  guest_id_ = guest_id;
  std::vector<stowage::Message> messages;
  select_->execute(false);
  while (select_->fetch()) messages.push_back({role_, content_, timestamp_});
  return messages;
}

bool ChatStatements::Delete(const std::string& guest_id) {
  if (!delete_) {
    delete_.emplace((sql_.prepare << "DELETE FROM conversation_cache"
                                     " WHERE platform = 'guest' AND user_id = :guest_id RETURNING id",
                     soci::use(guest_id_, "guest_id"), soci::into(conversation_id_)));
  }
  guest_id_ = guest_id;
  delete_->execute(true);
  return delete_->got_data();
}

bool ChatStatements::Remove(long long message_id, long long conversation_id) {
  if (!lock_) {
    lock_.emplace((sql_.prepare << "SELECT message_count FROM conversation_cache WHERE id = :conversation_id"
                                   " FOR UPDATE",
                   soci::use(conversation_id_, "conversation_id"), soci::into(message_count_)));
  }
  if (!remove_) {
    remove_.emplace((sql_.prepare << "DELETE FROM message_cache"
                                     " WHERE id = :message_id AND conversation_id = :conversation_id"
                                     " RETURNING sequence",
                     soci::use(message_id_, "message_id"), soci::use(conversation_id_, "conversation_id"),
                     soci::into(sequence_)));
  }
  if (!shift_) {
    shift_.emplace((sql_.prepare << "UPDATE message_cache SET sequence = sequence - 1"
                                    " WHERE conversation_id = :conversation_id AND sequence > :sequence",
                    soci::use(conversation_id_, "conversation_id"), soci::use(sequence_, "sequence")));
  }
  if (!decrement_) {
    decrement_.emplace((sql_.prepare << "UPDATE conversation_cache"
                                        " SET message_count = message_count - 1, updated_at = now()"
                                        " WHERE id = :conversation_id RETURNING message_count",
                        soci::use(conversation_id_, "conversation_id"), soci::into(message_count_)));
  }
  if (!drop_) {
    drop_.emplace((sql_.prepare << "DELETE FROM conversation_cache WHERE id = :conversation_id",
                   soci::use(conversation_id_, "conversation_id")));
  }

  message_id_ = message_id;
  conversation_id_ = conversation_id;
  soci::transaction tx(sql_);
  // Lock the conversation first, as writers do, so no write runs in between.
  lock_->execute(true);
  if (!lock_->got_data()) return false;  // the rollback of `tx` ends the transaction
  remove_->execute(true);
  if (!remove_->got_data()) return false;
  shift_->execute(true);
  decrement_->execute(true);
  if (message_count_ <= 0) drop_->execute(true);
  tx.commit();
  return true;
}

void ChatStatements::Ping() {
  if (!ping_) ping_.emplace((sql_.prepare << "SELECT 1", soci::into(one_)));
  ping_->execute(true);
}

}  // namespace stowage::postgres
