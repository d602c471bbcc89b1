#include "chat_statements.h"

#include <algorithm>
#include <charconv>

namespace stowage::postgres {
namespace {

using stowage::SqlResult;
using stowage::SqlValue;
using stowage::Status;

constexpr std::string_view kInsert =
    "WITH conversation AS ("
    " INSERT INTO conversation_cache (platform, user_id, message_count)"
    " VALUES ($1, $2, 1)"
    " ON CONFLICT (platform, user_id) DO UPDATE"
    " SET message_count = conversation_cache.message_count + 1, updated_at = now()"
    " RETURNING id, message_count - 1 AS seq)"
    " INSERT INTO message_cache (conversation_id, sequence, role, content, message_hash, \"timestamp\")"
    " SELECT id, seq, $3, $4, $5, CAST($6 AS timestamptz) FROM conversation"
    " RETURNING id, conversation_id, sequence";

constexpr std::string_view kSelect =
    "SELECT m.role, m.content,"
    " to_char(m.\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM conversation_cache c JOIN message_cache m ON m.conversation_id = c.id"
    " WHERE c.platform = $1 AND c.user_id = $2"
    " ORDER BY m.sequence";

// The page, newest first (LIMIT takes the newest); SelectPage turns it
// around. The conversation is looked up first (an InitPlan), so that
// `conversation_id = <its id> AND sequence < $3 ORDER BY sequence DESC`
// is one backward walk of the (conversation_id, sequence) key that stops
// after LIMIT rows; as a join, the rows would come unordered and all of the
// conversation's would be read and sorted. `before` and the limit are
// bigint: any value the API takes fits, and int4 < int8 is an operator of
// the key's btree family. A NULL limit is no limit. One statement: the
// page and message_count are of one snapshot.
constexpr std::string_view kSelectPage =
    "WITH c AS (SELECT id, message_count FROM conversation_cache WHERE platform = $1 AND user_id = $2)"
    " SELECT m.role, m.content,"
    " to_char(m.\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " (SELECT message_count FROM c)"
    " FROM message_cache m"
    " WHERE m.conversation_id = (SELECT id FROM c) AND m.sequence < CAST($3 AS bigint)"
    " ORDER BY m.sequence DESC LIMIT CAST($4 AS bigint)";

constexpr std::string_view kDelete =
    "DELETE FROM conversation_cache WHERE platform = $1 AND user_id = $2 RETURNING id";

template <typename Int>
bool ParseInt(const SqlValue& text, Int& out) {
  if (!text || text->empty()) return false;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), out);
  return error == std::errc() && end == text->data() + text->size();
}

// The message of `row` of a select whose first columns are role, content
// and timestamp.
Status MessageOf(const SqlResult& result, std::size_t row, const std::string& database, stowage::Message* out) {
  SqlValue role = result.value(row, 0), content = result.value(row, 1), timestamp = result.value(row, 2);
  if (!role || !content || !timestamp) {
    return Status::Internal("message_cache of database '" + database +
                            "' holds a NULL role, content "
                            "or timestamp for a guest; its columns must be NOT NULL: check the schema");
  }
  *out = {std::move(*role), std::move(*content), std::move(*timestamp)};
  return Status::Ok();
}

}  // namespace

Status ChatStatements::InsertMessage(stowage::SqlSession& sql, const std::string& guest_id,
                                     const stowage::Message& message, const std::string& hash,
                                     StoredMessage* stored) const {
  SqlResult result;
  Status status = sql.execute(
      kInsert, {platform_, guest_id, message.role, message.content, hash, message.timestamp}, &result);
  if (!status.ok()) return status;
  if (result.rows.size() != 1 || !ParseInt(result.value(0, 0), stored->message_id) ||
      !ParseInt(result.value(0, 1), stored->conversation_id) ||
      !ParseInt(result.value(0, 2), stored->sequence)) {
    return Status::Internal(
        "the insert into message_cache of database '" + sql.database() + "' returned " +
        std::to_string(result.rows.size()) +
        " row(s) instead of one (id, conversation_id, sequence); check the table's schema");
  }
  return Status::Ok();
}

Status ChatStatements::SelectPage(stowage::SqlSession& sql, const std::string& guest_id,
                                  std::optional<std::uint64_t> before, std::optional<std::uint64_t> limit,
                                  std::vector<stowage::Message>* messages, std::uint64_t* total) const {
  // A sequence is an integer: every one is below 2^63 - 1.
  constexpr std::uint64_t kNoBound = 9223372036854775807ULL;
  SqlResult result;
  Status status = sql.execute(kSelectPage,
                              {platform_, guest_id, std::to_string(std::min(before.value_or(kNoBound), kNoBound)),
                               limit ? SqlValue(std::to_string(std::min(*limit, kNoBound))) : SqlValue()},
                              &result);
  if (!status.ok()) return status;
  messages->assign(result.rows.size(), {});
  *total = 0;
  for (std::size_t row = 0; row < result.rows.size(); ++row) {
    // Newest first: fill from the back.
    if (Status s = MessageOf(result, row, sql.database(), &(*messages)[result.rows.size() - 1 - row]); !s.ok())
      return s;
  }
  if (!result.rows.empty() && !ParseInt(result.value(0, 3), *total)) {
    return Status::Internal("conversation_cache of database '" + sql.database() +
                            "' answered a message_count that is not a whole number; check the table's schema");
  }
  return Status::Ok();
}

Status ChatStatements::SelectMessages(stowage::SqlSession& sql, const std::string& guest_id,
                                      std::vector<stowage::Message>* messages) const {
  SqlResult result;
  Status status = sql.execute(kSelect, {platform_, guest_id}, &result);
  if (!status.ok()) return status;
  messages->clear();
  messages->reserve(result.rows.size());
  for (std::size_t row = 0; row < result.rows.size(); ++row) {
    messages->emplace_back();
    if (Status s = MessageOf(result, row, sql.database(), &messages->back()); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ChatStatements::DeleteConversation(stowage::SqlSession& sql, const std::string& guest_id,
                                          bool* held) const {
  SqlResult result;
  Status status = sql.execute(kDelete, {platform_, guest_id}, &result);
  if (!status.ok()) return status;
  *held = !result.rows.empty();
  return Status::Ok();
}

Status ChatStatements::Ping(stowage::SqlSession& sql) {
  return sql.execute("SELECT 1", {});
}

std::string_view ChatStatements::PageStatement() {
  return kSelectPage;
}

}  // namespace stowage::postgres
