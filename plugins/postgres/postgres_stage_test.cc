// PostgresStage against real PostgreSQL servers, through the host's
// PostgresDatabase (its migration runner is tested in
// core/src/database/migrations_test.cc): the server named by STOWAGE_TEST_DATABASE_URL
// (each suite works in fresh databases it creates there) and private
// instances the tests stop and start.
#include "postgres_stage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "chat_statements.h"
#include "database/postgres_database.h"
#include "database/sql_statements.h"
#include "message_hash.h"
#include "migrations.h"
#include "scratch_database.h"
#include "stowage/chat/attributes.h"
#include "support/services.h"

namespace stowage::postgres {
namespace {

using std::chrono::seconds;
using stowage::Attributes;
using stowage::Deadline;
using stowage::Message;
using stowage::SqlResult;
using stowage::SqlSession;
using stowage::SqlValue;
using stowage::Status;
using stowage::StatusCode;
using stowage::database::PostgresDatabase;
using stowage::testing::CapturingLogger;
using stowage::testing::ScratchDatabase;
using ::testing::HasSubstr;
using ::testing::Not;

// A [[database]] named "main" on `url`, as the host builds it.
std::unique_ptr<PostgresDatabase> OpenDatabase(const std::string& url, int pool_size = 16) {
  stowage::config::DatabaseSettings settings;
  settings.name = "main";
  settings.url = url;
  settings.pool_size = pool_size;
  return std::make_unique<PostgresDatabase>(settings, std::make_shared<CapturingLogger>());
}

// Runs one statement in autocommit on a session of `db`.
Status Exec(stowage::Database& db, const std::string& statement, const std::vector<SqlValue>& params = {},
            SqlResult* result = nullptr) {
  return db.with_session(Deadline::After(seconds(10)),
                         [&](SqlSession& sql) { return sql.execute(statement, params, result); });
}

// The single value `statement` answers, or "<error: ...>".
std::string Scalar(stowage::Database& db, const std::string& statement,
                   const std::vector<SqlValue>& params = {}) {
  SqlResult result;
  Status status = Exec(db, statement, params, &result);
  if (!status.ok()) return "<error: " + status.ToString() + ">";
  SqlValue value = result.value(0, 0);
  return value ? *value : "<null>";
}

Message Msg(const std::string& role, const std::string& content,
            const std::string& timestamp = "2025-01-02T03:04:05.123456Z") {
  return {role, content, timestamp};
}

stowage::StageConfig DefaultConfig() {
  return stowage::StageConfig({{"platform", std::string("guest")}});
}

// Calls of the stage with the contexts the host builds: a write and an erase
// in a transaction of their own on a leased connection, a read in autocommit.
struct Caller {
  PostgresStage& stage;
  PostgresDatabase& db;
  CapturingLogger& log;

  // BEGIN, write, then COMMIT if the write succeeded (else ROLLBACK), or
  // ROLLBACK anyway when `commit` is false.
  Status Write(const std::string& guest, const Message& message, Attributes* out = nullptr,
               bool commit = true) {
    Deadline deadline = Deadline::After(seconds(10));
    auto acquired = db.Acquire(deadline);
    if (!acquired.status.ok()) return acquired.status;
    stowage::database::Connection& sql = *acquired.lease;
    sql.set_deadline(deadline);
    Status status = sql.execute("BEGIN", {});
    if (!status.ok()) return status;
    status = WriteOn(sql, guest, message, out);
    if (status.ok() && commit) return sql.execute("COMMIT", {});
    Status rolled_back = sql.execute("ROLLBACK", {});
    return status.ok() ? rolled_back : status;
  }
  // A write on `sql` as it is (no BEGIN or COMMIT here).
  Status WriteOn(SqlSession& sql, const std::string& guest, const Message& message,
                 Attributes* out = nullptr) {
    Attributes attributes;
    stowage::WriteContext ctx{guest, message, Deadline::After(seconds(10)), log, attributes, &sql};
    Status status = stage.write(ctx);
    if (out) *out = attributes;
    return status;
  }
  // A read of the whole history, or of the page `range` asks for (SDK 1.5).
  stowage::ReadResult Read(const std::string& guest, stowage::ReadRange* range = nullptr) {
    Deadline deadline = Deadline::After(seconds(10));
    auto acquired = db.Acquire(deadline);
    if (!acquired.status.ok()) return {acquired.status, false, {}};
    acquired.lease->set_deadline(deadline);
    stowage::GuestContext ctx{guest, deadline, log, &*acquired.lease, nullptr, range};
    return stage.read(ctx);
  }
  stowage::EraseResult Erase(const std::string& guest) {
    Deadline deadline = Deadline::After(seconds(10));
    auto acquired = db.Acquire(deadline);
    if (!acquired.status.ok()) return {acquired.status, false};
    stowage::database::Connection& sql = *acquired.lease;
    sql.set_deadline(deadline);
    Status begun = sql.execute("BEGIN", {});
    if (!begun.ok()) return {begun, false};
    stowage::GuestContext ctx{guest, deadline, log, &sql};
    stowage::EraseResult result = stage.erase(ctx);
    Status ended = sql.execute(result.status.ok() ? "COMMIT" : "ROLLBACK", {});
    if (result.status.ok() && !ended.ok()) return {ended, false};
    return result;
  }
};

// One suite-wide database, so that most tests skip creating their own.
class PostgresStageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { scratch_ = new ScratchDatabase("stage"); }
  static void TearDownTestSuite() {
    delete scratch_;
    scratch_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(scratch_->url().empty());
    db_ = OpenDatabase(scratch_->url());
    stowage::StageEnvironment env{log_, db_.get()};
    stage_ = std::make_unique<PostgresStage>(DefaultConfig(), env);
  }

  // A guest id no other test uses.
  std::string Guest(const std::string& name) {
    return name + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  Caller Call() { return {*stage_, *db_, log_}; }

  // The (sequence, content) rows of the guest, by sequence.
  std::vector<std::pair<int, std::string>> Rows(const std::string& guest) {
    SqlResult result;
    Status status = Exec(*db_,
                         "SELECT m.sequence, m.content FROM message_cache m"
                         " JOIN conversation_cache c ON c.id = m.conversation_id"
                         " WHERE c.platform = 'guest' AND c.user_id = $1 ORDER BY m.sequence",
                         {guest}, &result);
    EXPECT_TRUE(status.ok()) << status.ToString();
    std::vector<std::pair<int, std::string>> rows;
    for (const auto& row : result.rows) rows.emplace_back(std::stoi(*row[0]), *row[1]);
    return rows;
  }
  // message_count of the guest's conversation, or -1 when there is none.
  int MessageCount(const std::string& guest) {
    SqlResult result;
    Status status =
        Exec(*db_, "SELECT message_count FROM conversation_cache WHERE platform = 'guest' AND user_id = $1",
             {guest}, &result);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return result.rows.empty() ? -1 : std::stoi(*result.value(0, 0));
  }

  static ScratchDatabase* scratch_;
  CapturingLogger log_;
  std::unique_ptr<PostgresDatabase> db_;
  std::unique_ptr<PostgresStage> stage_;
};

ScratchDatabase* PostgresStageTest::scratch_ = nullptr;

// --- schema -----------------------------------------------------------------

TEST(PostgresSchemaTest, AStageWithoutADatabaseIsRefused) {
  CapturingLogger log;
  stowage::StageEnvironment env{log, nullptr};
  try {
    PostgresStage stage(DefaultConfig(), env);
    ADD_FAILURE() << "constructed without a database";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("needs `database = \"<name>\"` in its [[stage]] entry"));
  }
}

TEST(PostgresSchemaTest, ConstructionCreatesTablesAndRecordsMigrations) {
  ScratchDatabase scratch("schema");
  ASSERT_FALSE(scratch.url().empty());
  auto db = OpenDatabase(scratch.url());
  CapturingLogger log;
  stowage::StageEnvironment env{log, db.get()};
  PostgresStage stage(DefaultConfig(), env);
  EXPECT_TRUE(stage.schema_ready());

  auto columns = [&](const std::string& table) {
    return Scalar(
        *db,
        "SELECT string_agg(column_name::text, ',' ORDER BY column_name) FROM information_schema.columns"
        " WHERE table_name = $1",
        {table});
  };
  EXPECT_EQ(columns("conversation_cache"), "created_at,id,message_count,platform,updated_at,user_id");
  EXPECT_EQ(columns("message_cache"),
            "content,conversation_id,created_at,id,message_hash,role,sequence,timestamp");
  EXPECT_EQ(columns("stowage_schema_migrations"), "applied_at,component,version");
  EXPECT_EQ(Scalar(*db,
                   "SELECT string_agg(version::text, ',') FROM stowage_schema_migrations"
                   " WHERE component = 'postgres'"),
            "1");
  // The keys the spec names.
  EXPECT_EQ(Scalar(*db,
                   "SELECT count(*) FROM pg_constraint WHERE conname IN"
                   " ('conversation_cache_platform_user_id_key',"
                   " 'message_cache_conversation_id_sequence_key') AND contype = 'u'"),
            "2");
  EXPECT_EQ(Scalar(*db,
                   "SELECT count(*) FROM pg_constraint WHERE conrelid = 'message_cache'::regclass"
                   " AND contype = 'f' AND confdeltype = 'c'"),
            "1");
  EXPECT_THAT(log.All(), HasSubstr("applied migration(s) 1"));
}

TEST(PostgresSchemaTest, ConstructingTwiceAppliesMigrationsOnce) {
  ScratchDatabase scratch("twice");
  ASSERT_FALSE(scratch.url().empty());
  auto db = OpenDatabase(scratch.url());
  CapturingLogger first_log, second_log;
  stowage::StageEnvironment first_env{first_log, db.get()}, second_env{second_log, db.get()};
  { PostgresStage first(DefaultConfig(), first_env); }
  PostgresStage second(DefaultConfig(), second_env);
  EXPECT_TRUE(second.schema_ready());
  EXPECT_THAT(second_log.All(), HasSubstr("is current"));
  EXPECT_THAT(second_log.All(), Not(HasSubstr("applied migration")));
  EXPECT_EQ(Scalar(*db, "SELECT count(*) FROM stowage_schema_migrations"),
            std::to_string(ChatMigrations().size()));
}

// A database migrated by the release that kept its own connections: the same
// tables, and version 1 of component "postgres" recorded.
TEST(PostgresSchemaTest, ADatabaseMigratedByTheEarlierReleaseIsCurrent) {
  ScratchDatabase scratch("earlier");
  ASSERT_FALSE(scratch.url().empty());
  auto db = OpenDatabase(scratch.url());
  const char* kEarlierHistory =
      "CREATE TABLE stowage_schema_migrations (component text NOT NULL, version integer NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))";
  ASSERT_TRUE(Exec(*db, kEarlierHistory).ok());
  for (const std::string& statement : stowage::internal::SplitSqlStatements(ChatMigrations()[0].sql)) {
    ASSERT_TRUE(Exec(*db, statement).ok()) << statement;
  }
  ASSERT_TRUE(
      Exec(*db, "INSERT INTO stowage_schema_migrations (component, version) VALUES ('postgres', 1)").ok());
  ASSERT_TRUE(
      Exec(*db,
           "INSERT INTO conversation_cache (platform, user_id, message_count) VALUES ('guest', 'old', 1)")
          .ok());
  ASSERT_TRUE(
      Exec(*db,
           "INSERT INTO message_cache (conversation_id, sequence, role, content, message_hash, \"timestamp\")"
           " SELECT id, 0, 'user', 'kept', 'h', '2024-01-01T00:00:00.000001Z' FROM conversation_cache")
          .ok());

  CapturingLogger log;
  stowage::StageEnvironment env{log, db.get()};
  PostgresStage stage(DefaultConfig(), env);
  EXPECT_THAT(log.All(), HasSubstr("is current"));
  EXPECT_THAT(log.All(), Not(HasSubstr("applied migration")));
  Caller call{stage, *db, log};
  Attributes attributes;
  ASSERT_TRUE(call.Write("old", Msg("user", "new"), &attributes).ok()) << log.All();
  EXPECT_EQ(attributes.get(chat::kSequence), "1");
  auto read = call.Read("old");
  ASSERT_EQ(read.messages.size(), 2u);
  EXPECT_EQ(read.messages[0], Msg("user", "kept", "2024-01-01T00:00:00.000001Z"));
}

TEST(PostgresSchemaTest, ParallelConstructionsMigrateOnce) {
  ScratchDatabase scratch("parallel");
  ASSERT_FALSE(scratch.url().empty());
  constexpr int kStages = 6;
  std::vector<std::unique_ptr<PostgresDatabase>> dbs;  // one per server starting at the same time
  for (int i = 0; i < kStages; ++i) dbs.push_back(OpenDatabase(scratch.url(), 2));
  std::vector<std::string> errors(kStages);
  std::vector<CapturingLogger> logs(kStages);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStages; ++i) {
    threads.emplace_back([&, i] {
      try {
        stowage::StageEnvironment env{logs[i], dbs[i].get()};
        PostgresStage stage(DefaultConfig(), env);
        if (!stage.schema_ready()) errors[i] = "schema not ready: " + logs[i].All();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  int applied = 0;
  for (int i = 0; i < kStages; ++i) {
    EXPECT_EQ(errors[i], "") << "stage " << i;
    if (logs[i].All().find("applied migration(s) 1") != std::string::npos) ++applied;
  }
  EXPECT_EQ(applied, 1);
  EXPECT_EQ(Scalar(*dbs[0], "SELECT count(*) FROM stowage_schema_migrations"),
            std::to_string(ChatMigrations().size()));
}

TEST(PostgresSchemaTest, ConstructionFailsClearlyWhenTheSchemaCannotBeCreated) {
  ScratchDatabase scratch("noddl");
  ASSERT_FALSE(scratch.url().empty());
  const std::string role = scratch.name() + "_user";
  auto owner = OpenDatabase(scratch.url(), 1);
  ASSERT_TRUE(Exec(*owner, "CREATE ROLE " + role + " LOGIN").ok());  // PostgreSQL 15: no CREATE on public
  // postgresql://<role>@host:port/db
  std::string url = scratch.url();
  std::size_t start = url.find("://") + 3;
  std::size_t at = url.find('@', start);
  url = url.substr(0, start) + role + "@" + url.substr(at == std::string::npos ? start : at + 1);
  {
    auto db = OpenDatabase(url, 1);
    CapturingLogger log;
    stowage::StageEnvironment env{log, db.get()};
    try {
      PostgresStage stage(DefaultConfig(), env);
      ADD_FAILURE() << "construction succeeded without the right to create tables";
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr("cannot create the PostgreSQL schema"));
      EXPECT_THAT(e.what(), HasSubstr("migrating the schema of 'postgres' in database 'main'"));
      EXPECT_THAT(e.what(), HasSubstr("permission denied"));
      EXPECT_THAT(e.what(), HasSubstr("may create tables"));
    }
  }
  Exec(*owner, "DROP OWNED BY " + role);
  Exec(*owner, "DROP ROLE " + role);
}

// --- write ------------------------------------------------------------------

TEST_F(PostgresStageTest, TargetIsPostgresqlAndHealthAnswers) {
  EXPECT_EQ(stage_->target(), "postgresql");
  Status health = stage_->health(Deadline::After(seconds(5)));
  EXPECT_TRUE(health.ok()) << health.ToString();
}

TEST_F(PostgresStageTest, WriteStoresTheRowsTheSpecDescribes) {
  const std::string guest = Guest("rows");
  const Message first = Msg("user", "héllo\nworld", "2025-03-04T05:06:07.000008Z");
  const Message second = Msg("assistant", "hi there", "2025-03-04T05:06:08.500000Z");
  Attributes a1, a2;
  ASSERT_TRUE(Call().Write(guest, first, &a1).ok()) << log_.All();
  ASSERT_TRUE(Call().Write(guest, second, &a2).ok()) << log_.All();

  SqlResult conversation;
  ASSERT_TRUE(Exec(*db_, "SELECT id, platform, message_count FROM conversation_cache WHERE user_id = $1",
                   {guest}, &conversation)
                  .ok());
  ASSERT_EQ(conversation.rows.size(), 1u);
  const std::string conversation_id = *conversation.value(0, 0);
  EXPECT_EQ(conversation.value(0, 1), "guest");
  EXPECT_EQ(conversation.value(0, 2), "2");
  EXPECT_EQ(a1.get(chat::kConversationId), conversation_id);
  EXPECT_EQ(a2.get(chat::kConversationId), conversation_id);
  EXPECT_EQ(a1.get(chat::kSequence), "0");
  EXPECT_EQ(a2.get(chat::kSequence), "1");

  int index = 0;
  for (const auto& [message, attributes] : {std::pair{first, a1}, std::pair{second, a2}}) {
    const std::string id = *attributes.get(chat::kMessageId);
    SqlResult row;
    // PostgreSQL hashes the input text itself: an independent check of MessageHash.
    ASSERT_TRUE(Exec(*db_,
                     "SELECT conversation_id, sequence, role, content, message_hash,"
                     " encode(sha256(convert_to($1 || chr(10) || $2 || chr(10) || $3, 'UTF8')), 'hex'),"
                     " to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                     " FROM message_cache WHERE id = $4",
                     {message.role, message.content, message.timestamp, id}, &row)
                    .ok());
    ASSERT_EQ(row.rows.size(), 1u) << "message " << index;
    EXPECT_EQ(row.value(0, 0), conversation_id);
    EXPECT_EQ(row.value(0, 1), std::to_string(index));
    EXPECT_EQ(row.value(0, 2), message.role);
    EXPECT_EQ(row.value(0, 3), message.content);
    EXPECT_EQ(row.value(0, 4), row.value(0, 5));
    EXPECT_EQ(row.value(0, 4), MessageHash(message));
    EXPECT_EQ(row.value(0, 4)->size(), 64u);
    EXPECT_EQ(row.value(0, 6), message.timestamp);
    EXPECT_THAT(log_.All(), HasSubstr("inserted message id=" + id + " conversation=" + conversation_id +
                                      " sequence=" + std::to_string(index) + " for guest " + guest));
    ++index;
  }
}

// The operators' checklist looks for "[PostgreSQL] Message committed!": it is
// said once the host reports the write's request done, never before.
TEST_F(PostgresStageTest, SaysMessageCommittedOnlyForAWriteReportedDone) {
  const std::string guest = "committed-words";
  Attributes attributes;
  attributes.set(chat::kMessageId, "41");
  attributes.set(chat::kConversationId, "7");
  attributes.set(chat::kSequence, "3");
  auto report = [&](stowage::RequestKind kind, bool ok, const Attributes* with) {
    stowage::RequestReport r{kind, guest, ok, false, std::chrono::microseconds(5), with};
    stage_->observe(r);
  };
  report(stowage::RequestKind::kWrite, false, &attributes);  // failed: nothing committed
  report(stowage::RequestKind::kRead, true, nullptr);
  Attributes refused;  // the request was answered before this stage wrote
  report(stowage::RequestKind::kWrite, true, &refused);
  EXPECT_THAT(log_.All(), Not(HasSubstr("Message committed!")));
  report(stowage::RequestKind::kWrite, true, &attributes);
  EXPECT_THAT(log_.All(), HasSubstr("Message committed! id=41 conversation=7 sequence=3 for guest " + guest));
}

TEST_F(PostgresStageTest, AValueRefusedByPostgresFailsWithoutEchoingTheMessage) {
  const std::string guest = Guest("refused");
  Status status = Call().Write(guest, Msg("user", "private words", "not a time"));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_THAT(status.message(),
              HasSubstr("could not store a message of guest " + guest + " in database 'main'"));
  EXPECT_THAT(status.message(), Not(HasSubstr("private words")));
  EXPECT_THAT(log_.All(), Not(HasSubstr("private words")));
  EXPECT_EQ(MessageCount(guest), -1);  // the transaction stored nothing
}

TEST_F(PostgresStageTest, AWriteRolledBackLeavesNoRowAndNoCountChange) {
  const std::string guest = Guest("rollback");
  ASSERT_TRUE(Call().Write(guest, Msg("user", "kept")).ok());
  Attributes attributes;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "rolled back"), &attributes, /*commit=*/false).ok());
  EXPECT_EQ(attributes.get(chat::kSequence), "1");  // what the write saw inside its transaction
  EXPECT_EQ(Rows(guest), (std::vector<std::pair<int, std::string>>{{0, "kept"}}));
  EXPECT_EQ(MessageCount(guest), 1);
  EXPECT_EQ(
      Scalar(*db_, "SELECT count(*) FROM message_cache WHERE id = $1", {*attributes.get(chat::kMessageId)}),
      "0");

  // The next write takes the sequence the rolled-back one had: no gap.
  Attributes next;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "next"), &next).ok());
  EXPECT_EQ(next.get(chat::kSequence), "1");

  // A first write rolled back leaves no conversation either.
  const std::string newcomer = Guest("newcomer");
  ASSERT_TRUE(Call().Write(newcomer, Msg("user", "gone"), nullptr, /*commit=*/false).ok());
  EXPECT_EQ(MessageCount(newcomer), -1);
}

TEST_F(PostgresStageTest, CompensateLeavesTheUndoToTheTransaction) {
  const std::string guest = Guest("compensate");
  Attributes written;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "committed"), &written).ok());
  const Message message = Msg("user", "committed");
  stowage::WriteContext ctx{guest, message, Deadline::After(seconds(5)), log_, written, nullptr};
  EXPECT_TRUE(stage_->compensate(ctx).ok());
  EXPECT_EQ(MessageCount(guest), 1);  // it touched nothing
}

TEST_F(PostgresStageTest, CallsWithoutASessionFailAndSayWhy) {
  const Message message = Msg("user", "x");
  Attributes attributes;
  const std::string guest = Guest("nosession");
  stowage::WriteContext write{guest, message, Deadline::After(seconds(5)), log_, attributes, nullptr};
  Status status = stage_->write(write);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("without a database session"));
  stowage::GuestContext read{guest, Deadline::After(seconds(5)), log_, nullptr};
  EXPECT_EQ(stage_->read(read).status.code(), StatusCode::kInternal);
  EXPECT_EQ(stage_->erase(read).status.code(), StatusCode::kInternal);
}

TEST_F(PostgresStageTest, ConcurrentWritesToOneGuestGetSequencesZeroToNinetyNine) {
  const std::string guest = Guest("busy");
  constexpr int kThreads = 16, kWrites = 100;
  std::atomic<int> next{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kWrites; i = next++) {
        Status status = Call().Write(guest, Msg("user", "message " + std::to_string(i)));
        if (!status.ok()) {
          ++failures;
          ADD_FAILURE() << status.ToString();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0) << log_.All();

  auto rows = Rows(guest);
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kWrites));
  std::set<std::string> contents;
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(rows[i].first, i);
    contents.insert(rows[i].second);
  }
  EXPECT_EQ(contents.size(), static_cast<std::size_t>(kWrites));  // every write stored once
  EXPECT_EQ(MessageCount(guest), kWrites);
}

// --- read -------------------------------------------------------------------

TEST_F(PostgresStageTest, ReadReturnsMessagesInSequenceOrderWithCanonicalTimestamps) {
  const std::string guest = Guest("read");
  const std::vector<Message> messages = {
      Msg("system", "be brief", "2024-02-29T23:59:59.999999Z"),
      Msg("user", "question", "2024-03-01T00:00:00.000000Z"),
      Msg("assistant", "answer", "1999-12-31T12:00:00.000001Z"),  // older timestamp, later sequence
  };
  for (const auto& message : messages) ASSERT_TRUE(Call().Write(guest, message).ok());

  auto result = Call().Read(guest);
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_TRUE(result.found);
  EXPECT_EQ(result.messages, messages);
}

TEST_F(PostgresStageTest, ReadOfAnUnknownGuestIsNotFound) {
  auto result = Call().Read(Guest("nobody"));
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_FALSE(result.found);
  EXPECT_TRUE(result.messages.empty());
}

TEST_F(PostgresStageTest, APageIsTheNewestMessagesBelowBeforeOldestFirstWithTheGuestsTotal) {
  const std::string guest = Guest("page");
  std::vector<Message> history;
  for (int i = 0; i < 7; ++i) {
    history.push_back(Msg(i % 2 ? "assistant" : "user", "m" + std::to_string(i)));
    ASSERT_TRUE(Call().Write(guest, history.back()).ok());
  }
  std::vector<std::optional<std::uint64_t>> befores = {std::nullopt}, limits = {std::nullopt};
  for (std::uint64_t b : {1ULL, 2ULL, 4ULL, 6ULL, 7ULL, 8ULL, 9223372036854775807ULL}) befores.push_back(b);
  for (std::uint64_t l : {1, 3, 7, 50}) limits.push_back(l);
  for (const auto& before : befores) {
    for (const auto& limit : limits) {
      stowage::ReadRange range{before, limit, std::nullopt};
      auto read = Call().Read(guest, &range);
      const std::string asked = "before=" + (before ? std::to_string(*before) : "-") +
                                " limit=" + (limit ? std::to_string(*limit) : "-");
      ASSERT_TRUE(read.status.ok()) << asked << ": " << read.status.ToString();
      EXPECT_TRUE(read.found) << asked;
      EXPECT_EQ(range.total, 7u) << asked;
      EXPECT_EQ(read.messages, std::vector<Message>(history.begin() + range.first(7), history.begin() + range.end(7)))
          << asked;
    }
  }
  stowage::ReadRange unknown{3, 2, std::nullopt};
  auto nobody = Call().Read(Guest("nobody"), &unknown);
  ASSERT_TRUE(nobody.status.ok()) << nobody.status.ToString();
  EXPECT_FALSE(nobody.found);
  EXPECT_FALSE(unknown.total.has_value());
}

TEST_F(PostgresStageTest, APageIsReadBackwardsThroughTheSequenceKeyNotSortedFromTheWholeHistory) {
  // A long history, and the planner's statistics on it.
  const std::string guest = Guest("long");
  ASSERT_TRUE(Call().Write(guest, Msg("user", "first")).ok());
  ASSERT_TRUE(Exec(*db_,
                   "WITH c AS (UPDATE conversation_cache SET message_count = 20000"
                   " WHERE platform = 'guest' AND user_id = $1 RETURNING id)"
                   " INSERT INTO message_cache (conversation_id, sequence, role, content, message_hash, \"timestamp\")"
                   " SELECT c.id, n, 'user', 'message ' || n, 'h', now() FROM c, generate_series(1, 19999) AS n",
                   {guest})
                  .ok());
  ASSERT_TRUE(Exec(*db_, "ANALYZE message_cache", {}).ok());
  ASSERT_TRUE(Exec(*db_, "ANALYZE conversation_cache", {}).ok());
  const std::string plan = Scalar(*db_, "EXPLAIN (FORMAT JSON) " + std::string(ChatStatements::PageStatement()),
                                  {"guest", guest, "15000", "50"});
  EXPECT_NE(plan.find("\"Index Name\": \"message_cache_conversation_id_sequence_key\""), std::string::npos) << plan;
  EXPECT_NE(plan.find("\"Scan Direction\": \"Backward\""), std::string::npos) << plan;
  EXPECT_EQ(plan.find("\"Node Type\": \"Sort\""), std::string::npos) << plan;

  stowage::ReadRange range{15000, 50, std::nullopt};
  auto read = Call().Read(guest, &range);
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  ASSERT_EQ(read.messages.size(), 50u);
  EXPECT_EQ(read.messages.front().content, "message 14950");
  EXPECT_EQ(read.messages.back().content, "message 14999");
  EXPECT_EQ(range.total, 20000u);
}

// --- erase ------------------------------------------------------------------
// --- erase ------------------------------------------------------------------

TEST_F(PostgresStageTest, EraseDeletesTheConversationAndItsMessages) {
  const std::string guest = Guest("erase");
  Attributes written;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "a"), &written).ok());
  ASSERT_TRUE(Call().Write(guest, Msg("user", "b")).ok());
  const std::string conversation_id = *written.get(chat::kConversationId);

  auto erased = Call().Erase(guest);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_TRUE(erased.held);
  EXPECT_EQ(MessageCount(guest), -1);
  EXPECT_EQ(Scalar(*db_, "SELECT count(*) FROM message_cache WHERE conversation_id = $1", {conversation_id}),
            "0");
  EXPECT_FALSE(Call().Read(guest).found);

  auto again = Call().Erase(guest);
  EXPECT_TRUE(again.status.ok());
  EXPECT_FALSE(again.held);
}

// --- guests -----------------------------------------------------------------

TEST_F(PostgresStageTest, TwoGuestsNeverSeeOrTouchEachOther) {
  const std::string alice = Guest("alice"), bob = Guest("bob");
  ASSERT_TRUE(Call().Write(alice, Msg("user", "from alice")).ok());
  ASSERT_TRUE(Call().Write(bob, Msg("user", "from bob")).ok());
  ASSERT_TRUE(Call().Write(bob, Msg("user", "from bob again")).ok());

  auto read = Call().Read(alice);
  ASSERT_EQ(read.messages.size(), 1u);
  EXPECT_EQ(read.messages[0].content, "from alice");
  EXPECT_EQ(Rows(bob), (std::vector<std::pair<int, std::string>>{{0, "from bob"}, {1, "from bob again"}}));

  ASSERT_TRUE(Call().Erase(alice).held);
  EXPECT_EQ(MessageCount(bob), 2);
  EXPECT_EQ(Call().Read(bob).messages.size(), 2u);
}

TEST_F(PostgresStageTest, AcceptsAnyValidGuestId) {
  std::string guest = "a.b:c-d_E";
  while (guest.size() < 128) guest += "x";
  ASSERT_EQ(guest.size(), 128u);
  ASSERT_TRUE(Call().Write(guest, Msg("user", "long id")).ok());
  EXPECT_EQ(Rows(guest), (std::vector<std::pair<int, std::string>>{{0, "long id"}}));
  auto read = Call().Read(guest);
  ASSERT_EQ(read.messages.size(), 1u);
  EXPECT_TRUE(Call().Erase(guest).held);
}

// --- outages ----------------------------------------------------------------

TEST(PostgresOutageTest, ServerDownIsUnavailableAndTheNextWriteAfterRestartSucceeds) {
  stowage::testing::ServiceInstance server(stowage::testing::Service::kPostgres);
  ASSERT_TRUE(server.running());
  auto db = OpenDatabase(server.url(), 4);
  CapturingLogger log;
  stowage::StageEnvironment env{log, db.get()};
  PostgresStage stage(DefaultConfig(), env);
  Caller call{stage, *db, log};
  const std::string guest = "outage-guest";
  ASSERT_TRUE(call.Write(guest, Msg("user", "before")).ok()) << log.All();
  ASSERT_TRUE(call.Write(guest, Msg("user", "before 2")).ok()) << log.All();

  // A connection lent before the server went away.
  auto held = db->Acquire(Deadline::After(seconds(5)));
  ASSERT_TRUE(held.status.ok()) << held.status.ToString();
  ASSERT_TRUE(server.Stop());
  Status down = call.WriteOn(*held.lease, guest, Msg("user", "while down"));
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_THAT(down.message(),
              HasSubstr("could not store a message of guest outage-guest in database 'main'"));
  EXPECT_THAT(log.All(),
              Not(HasSubstr("could not store a message of guest outage-guest")));  // the host logs it
  Status health = stage.health(Deadline::After(seconds(5)));
  EXPECT_EQ(health.code(), StatusCode::kUnavailable) << health.ToString();
  EXPECT_THAT(health.message(), HasSubstr("could not answer SELECT 1 in database 'main'"));
  held = {};

  ASSERT_TRUE(server.Start());
  Attributes after;
  Status back = call.Write(guest, Msg("user", "after"), &after);
  ASSERT_TRUE(back.ok()) << back.ToString();
  EXPECT_EQ(after.get(chat::kSequence), "2");
  auto read = call.Read(guest);
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  ASSERT_EQ(read.messages.size(), 3u);
  EXPECT_EQ(read.messages[2].content, "after");
}

TEST(PostgresOutageTest, ServerDownAtConstructionMigratesOnFirstUse) {
  stowage::testing::ServiceInstance server(stowage::testing::Service::kPostgres);
  ASSERT_TRUE(server.running());
  ASSERT_TRUE(server.Stop());

  auto db = OpenDatabase(server.url(), 4);
  CapturingLogger log;
  stowage::StageEnvironment env{log, db.get()};
  PostgresStage stage(DefaultConfig(), env);
  EXPECT_FALSE(stage.schema_ready());
  EXPECT_THAT(log.All(),
              HasSubstr("the schema will be migrated by the first call that reaches database 'main'"));
  EXPECT_EQ(stage.health(Deadline::After(seconds(5))).code(), StatusCode::kUnavailable);

  ASSERT_TRUE(server.Start());
  Caller call{stage, *db, log};
  Status status = call.Write("late", Msg("user", "on time"));
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(stage.schema_ready());
  EXPECT_THAT(log.All(), HasSubstr("applied migration(s) 1"));
  EXPECT_EQ(call.Read("late").messages.size(), 1u);
}

}  // namespace
}  // namespace stowage::postgres
