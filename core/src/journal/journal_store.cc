#include "journal/journal_store.h"

#include <charconv>
#include <map>

#include "stowage/chat/message_json.h"

namespace stowage::journal {
namespace {

using stowage::Status;

// The host's own table. Migration 1 is released as it stands.
const std::vector<stowage::Migration>& JournalMigrations() {
  static const std::vector<stowage::Migration> migrations = {
      {1, "create stowage_journal", R"sql(
CREATE TABLE stowage_journal (
  id bigserial PRIMARY KEY,
  stage text NOT NULL,
  guest_id text NOT NULL,
  role text NOT NULL,
  content text NOT NULL,
  message_timestamp text NOT NULL,
  attributes jsonb NOT NULL,
  reason text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  parked_at timestamptz
);
CREATE INDEX stowage_journal_pending ON stowage_journal (stage, id) WHERE parked_at IS NULL;
)sql"},
      {2, "index stowage_journal by guest, for erasing a guest", R"sql(
CREATE INDEX stowage_journal_guest ON stowage_journal (guest_id);
)sql"},
  };
  return migrations;
}

constexpr const char* kComponent = "stowage.journal";

constexpr const char* kInsert =
    "INSERT INTO stowage_journal (stage, guest_id, role, content, message_timestamp, attributes, reason)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)";

#define STOWAGE_JOURNAL_ISO(column) "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define STOWAGE_JOURNAL_COLUMNS                                                                               \
  "id, stage, guest_id, role, content, message_timestamp, reason, attempts, coalesce(last_error, ''),"        \
  " parked_at IS NOT NULL, " STOWAGE_JOURNAL_ISO("created_at") ", " STOWAGE_JOURNAL_ISO("next_attempt_at")

constexpr const char* kClaimDue =
    "SELECT " STOWAGE_JOURNAL_COLUMNS
    " FROM stowage_journal j WHERE stage = $1 AND parked_at IS NULL AND next_attempt_at <= now()"
    " AND abs(hashtext(guest_id)::bigint) % $3::integer = $4::integer"
    // Not before an older entry of the guest that waits for its backoff.
    " AND NOT EXISTS (SELECT 1 FROM stowage_journal o WHERE o.guest_id = j.guest_id AND o.stage = j.stage"
    " AND o.id < j.id AND o.parked_at IS NULL AND o.next_attempt_at > now())"
    " ORDER BY id LIMIT $2::integer FOR UPDATE SKIP LOCKED";

// $1 stage ('' for all), $2 id (NULL for all), $3 parked only.
#define STOWAGE_JOURNAL_SELECTION \
  " ($1 = '' OR stage = $1) AND ($2::bigint IS NULL OR id = $2::bigint) AND (NOT $3::boolean OR parked_at IS NOT NULL)"

constexpr const char* kList = "SELECT " STOWAGE_JOURNAL_COLUMNS
                              " FROM stowage_journal WHERE" STOWAGE_JOURNAL_SELECTION " ORDER BY id LIMIT $4::integer";

constexpr const char* kAttributes =
    "SELECT j.id, a.key, a.value FROM stowage_journal j, jsonb_each_text(j.attributes) a"
    " WHERE j.id = ANY($1::bigint[])";

constexpr const char* kDone = "DELETE FROM stowage_journal WHERE id = ANY($1::bigint[])";

constexpr const char* kFailed =
    "UPDATE stowage_journal SET attempts = attempts + 1, last_error = $2,"
    " next_attempt_at = now() + make_interval(secs => least(300, power(2, attempts))),"
    " parked_at = CASE WHEN attempts + 1 >= $3::integer THEN now() END"
    " WHERE id = $1::bigint RETURNING parked_at IS NOT NULL";

constexpr const char* kParkExpired =
    "UPDATE stowage_journal SET parked_at = now(),"
    " last_error = coalesce(last_error || '; ', '') || 'parked: older than replay_max_age'"
    " WHERE stage = $1 AND parked_at IS NULL AND created_at < now() - make_interval(secs => $2::double precision)";

constexpr const char* kBacklogs =
    "SELECT stage, count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL),"
    " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)"
    " FROM stowage_journal GROUP BY stage ORDER BY stage";

constexpr const char* kRequeue = "UPDATE stowage_journal SET parked_at = NULL, attempts = 0, next_attempt_at = now()"
                                 " WHERE" STOWAGE_JOURNAL_SELECTION;

constexpr const char* kDrop = "DELETE FROM stowage_journal WHERE" STOWAGE_JOURNAL_SELECTION;

#undef STOWAGE_JOURNAL_SELECTION
#undef STOWAGE_JOURNAL_COLUMNS
#undef STOWAGE_JOURNAL_ISO

template <typename T>
bool ParseNumber(const stowage::SqlValue& value, T* out) {
  if (!value) return false;
  auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), *out);
  return error == std::errc() && end == value->data() + value->size();
}

std::string AttributesJson(const stowage::Attributes& attributes) {
  std::string out = "{";
  for (const auto& [key, value] : attributes.all()) {
    if (out.size() > 1) out += ',';
    stowage::chat::AppendJsonString(out, key);
    out += ':';
    stowage::chat::AppendJsonString(out, value);
  }
  return out + "}";
}

std::vector<stowage::SqlValue> SelectionParams(const Selection& selection) {
  return {selection.stage, selection.id ? stowage::SqlValue(std::to_string(*selection.id)) : std::nullopt,
          selection.parked_only ? "true" : "false"};
}

// The entries of `result` (STOWAGE_JOURNAL_COLUMNS), with their attributes
// read on `sql`.
Status ReadEntries(stowage::SqlSession& sql, const stowage::SqlResult& result, std::vector<Entry>* out) {
  out->clear();
  std::map<std::int64_t, std::size_t> index;
  std::string ids = "{";
  for (std::size_t row = 0; row < result.rows.size(); ++row) {
    Entry entry;
    if (!ParseNumber(result.value(row, 0), &entry.id) || !ParseNumber(result.value(row, 7), &entry.attempts)) {
      return Status::Internal("stowage_journal of database '" + sql.database() +
                              "' returned an id or attempts that is not a number: check the table");
    }
    entry.stage = result.value(row, 1).value_or("");
    entry.guest_id = result.value(row, 2).value_or("");
    entry.message.role = result.value(row, 3).value_or("");
    entry.message.content = result.value(row, 4).value_or("");
    entry.message.timestamp = result.value(row, 5).value_or("");
    entry.reason = result.value(row, 6).value_or("");
    entry.last_error = result.value(row, 8).value_or("");
    entry.parked = result.value(row, 9).value_or("f") == "t";
    entry.created_at = result.value(row, 10).value_or("");
    entry.next_attempt_at = result.value(row, 11).value_or("");
    ids += (ids.size() > 1 ? "," : "") + std::to_string(entry.id);
    index[entry.id] = out->size();
    out->push_back(std::move(entry));
  }
  if (out->empty()) return Status::Ok();
  stowage::SqlResult attributes;
  if (Status s = sql.execute(kAttributes, {ids + "}"}, &attributes); !s.ok()) return s;
  for (std::size_t row = 0; row < attributes.rows.size(); ++row) {
    std::int64_t id = 0;
    auto key = attributes.value(row, 1), value = attributes.value(row, 2);
    if (!ParseNumber(attributes.value(row, 0), &id) || !key || !value) continue;
    if (auto it = index.find(id); it != index.end()) (*out)[it->second].attributes.set(*key, std::move(*value));
  }
  return Status::Ok();
}

}  // namespace

JournalStore::JournalStore(std::shared_ptr<database::PostgresDatabase> database,
                           std::shared_ptr<stowage::Logger> log)
    : database_(std::move(database)), log_(std::move(log)), schema_(*database_, kComponent, JournalMigrations(), *log_) {}

Status JournalStore::EnsureSchema(stowage::Deadline deadline) { return schema_.ensure(deadline); }

JournalStore::Statement JournalStore::Record(const std::string& stage, const std::string& guest_id,
                                             const stowage::Message& message, const stowage::Attributes& attributes,
                                             const std::string& reason) {
  return {kInsert,
          {stage, guest_id, message.role, message.content, message.timestamp, AttributesJson(attributes), reason}};
}

JournalStore::Statement JournalStore::EraseGuest(const std::string& guest_id) {
  return {"DELETE FROM stowage_journal WHERE guest_id = $1", {guest_id}};
}

Status JournalStore::ClaimDue(stowage::SqlSession& sql, const std::string& stage, std::size_t limit,
                              std::size_t lane, std::size_t lanes, std::vector<Entry>* out) {
  stowage::SqlResult result;
  if (Status s = sql.execute(kClaimDue, {stage, std::to_string(limit), std::to_string(lanes), std::to_string(lane)},
                             &result);
      !s.ok())
    return s;
  return ReadEntries(sql, result, out);
}

Status JournalStore::Done(stowage::SqlSession& sql, const std::vector<std::int64_t>& ids) {
  std::string list = "{";
  for (std::int64_t id : ids) list += (list.size() > 1 ? "," : "") + std::to_string(id);
  return sql.execute(kDone, {list + "}"}, nullptr);
}

Status JournalStore::Failed(stowage::SqlSession& sql, std::int64_t id, const std::string& error, int max_attempts,
                            bool* parked) {
  stowage::SqlResult result;
  Status s = sql.execute(kFailed, {std::to_string(id), error, std::to_string(max_attempts)}, &result);
  *parked = s.ok() && result.value(0, 0).value_or("f") == "t";
  return s;
}

Status JournalStore::ParkExpired(const std::string& stage, std::chrono::seconds max_age, stowage::Deadline deadline,
                                 std::uint64_t* parked) {
  *parked = 0;
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    stowage::SqlResult result;
    Status s = sql.execute(kParkExpired, {stage, std::to_string(max_age.count())}, &result);
    *parked = result.affected;
    return s;
  });
}

Status JournalStore::Backlogs(stowage::Deadline deadline, std::vector<Backlog>* out) {
  out->clear();
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    stowage::SqlResult result;
    if (Status s = sql.execute(kBacklogs, {}, &result); !s.ok()) return s;
    for (std::size_t row = 0; row < result.rows.size(); ++row) {
      Backlog backlog;
      backlog.stage = result.value(row, 0).value_or("");
      ParseNumber(result.value(row, 1), &backlog.pending);
      ParseNumber(result.value(row, 2), &backlog.parked);
      if (auto age = result.value(row, 3)) backlog.oldest_pending_age_s = std::strtod(age->c_str(), nullptr);
      out->push_back(std::move(backlog));
    }
    return Status::Ok();
  });
}

Status JournalStore::List(const Selection& selection, stowage::Deadline deadline, std::vector<Entry>* out) {
  out->clear();
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    std::vector<stowage::SqlValue> params = SelectionParams(selection);
    params.push_back(std::to_string(selection.limit));
    stowage::SqlResult result;
    if (Status s = sql.execute(kList, params, &result); !s.ok()) return s;
    return ReadEntries(sql, result, out);
  });
}

Status JournalStore::Requeue(const Selection& selection, stowage::Deadline deadline, std::uint64_t* count) {
  *count = 0;
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    stowage::SqlResult result;
    Status s = sql.execute(kRequeue, SelectionParams(selection), &result);
    *count = result.affected;
    return s;
  });
}

Status JournalStore::Drop(const Selection& selection, stowage::Deadline deadline, std::uint64_t* count) {
  *count = 0;
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    stowage::SqlResult result;
    Status s = sql.execute(kDrop, SelectionParams(selection), &result);
    *count = result.affected;
    return s;
  });
}

}  // namespace stowage::journal
