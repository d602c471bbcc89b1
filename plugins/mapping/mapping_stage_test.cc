// MappingStage against real PostgreSQL: each test in a fresh database on the
// server of STOWAGE_TEST_DATABASE_URL holding the postgres stage's
// conversation_cache and message_cache, each write inside BEGIN..COMMIT on a
// leased connection, as the host runs it.
#include "mapping_stage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <stdexcept>

#include "mapping_schema.h"
#include "scratch_database.h"
#include "stowage/chat/attributes.h"
#include "stowage/testkit/fake_database.h"

namespace stowage::mapping {
namespace {

using stowage::testing::CapturingLogger;
using stowage::testing::ScratchDatabase;
using stowage::testing::WriteTransaction;
using ::testing::HasSubstr;
using ::testing::Not;

// The postgres stage's chat tables, as its first migration creates them.
constexpr const char* kChatTables[] = {
    "CREATE TABLE conversation_cache (id bigserial PRIMARY KEY, platform text NOT NULL, user_id text NOT "
    "NULL,"
    " message_count integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now(), UNIQUE (platform, user_id))",
    "CREATE TABLE message_cache (id bigserial PRIMARY KEY,"
    " conversation_id bigint NOT NULL REFERENCES conversation_cache (id) ON DELETE CASCADE,"
    " sequence integer NOT NULL, role text NOT NULL, content text NOT NULL, message_hash text NOT NULL,"
    " \"timestamp\" timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
    " UNIQUE (conversation_id, sequence))",
};

StageConfig Config(std::map<std::string, ConfigValue> overrides = {}) {
  return ConfigWithDefaults(MappingStage::config_schema(), std::move(overrides));
}

class MappingStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>("mapping");
    ASSERT_TRUE(db_->ok());
    for (const char* statement : kChatTables) db_->Query(statement);
  }

  std::unique_ptr<MappingStage> Make(std::map<std::string, ConfigValue> overrides = {}) {
    StageEnvironment env{log_, &db_->database()};
    return std::make_unique<MappingStage>(Config(std::move(overrides)), env);
  }

  // A guest id no other test uses.
  std::string Guest(const std::string& name) {
    return name + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  // Stores a message of `guest` in message_cache, as the postgres stage
  // would; returns its id.
  std::string StoreMessage(const std::string& guest) {
    db_->Query(
        "INSERT INTO conversation_cache (platform, user_id) VALUES ('guest', $1)"
        " ON CONFLICT (platform, user_id) DO UPDATE SET message_count = conversation_cache.message_count + 1",
        {guest});
    return db_->Scalar(
        "INSERT INTO message_cache (conversation_id, sequence, role, content, message_hash, \"timestamp\")"
        " SELECT id, message_count, 'user', 'Hello!', 'h', now() FROM conversation_cache"
        " WHERE platform = 'guest' AND user_id = $1 RETURNING id::text",
        {guest});
  }

  // The write as the host runs it, in a transaction committed on success;
  // with `replay`, the host's replay of it from its journal.
  Status Write(MappingStage& stage, const std::string& guest, const std::optional<std::string>& message_id,
               bool replay = false) {
    WriteTransaction tx(db_->database());
    if (!tx.ok()) return Status::Unavailable("no connection");
    Attributes attributes;
    if (message_id) attributes.set(chat::kMessageId, *message_id);
    WriteContext ctx{guest, message_,   Deadline::After(std::chrono::seconds(10)),
                     log_,  attributes, tx.session()};
    ctx.replay = replay;
    Status status = stage.write(ctx);
    if (status.ok()) {
      Status committed = tx.commit();
      EXPECT_TRUE(committed.ok()) << committed.ToString();
    }
    return status;
  }

  EraseResult Erase(MappingStage& stage, const std::string& guest) {
    WriteTransaction tx(db_->database());
    GuestContext ctx{guest, Deadline::After(std::chrono::seconds(10)), log_, tx.session()};
    EraseResult result = stage.erase(ctx);
    if (result.status.ok()) EXPECT_TRUE(tx.commit().ok());
    return result;
  }

  std::string Rows(const std::string& guest) {
    return db_->Scalar("SELECT count(*) FROM cache_content_mapping WHERE user_id = $1", {guest});
  }

  CapturingLogger log_;
  std::unique_ptr<ScratchDatabase> db_;
  const Message message_{"user", "Hello!", "2026-11-05T10:00:00.000000Z"};
};

TEST_F(MappingStageTest, ConstructionCreatesTheTableAndRecordsTheMigration) {
  auto stage = Make();
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM stowage_schema_migrations WHERE component = 'mapping'"), "1");
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM cache_content_mapping"), "0");
  EXPECT_EQ(
      db_->Scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'cache_content_mapping_user_id_idx'"),
      "1");
}

TEST_F(MappingStageTest, WriteMapsTheMessageWithExactlyTheseValues) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  const std::string id = StoreMessage(guest);

  ASSERT_TRUE(Write(*stage, guest, id).ok()) << log_.All();

  SqlResult row = db_->Query(
      "SELECT cache_type, cache_id::text, content_id::text, user_id, cache_backend, content_backend,"
      " is_synced::text, (created_at IS NOT NULL)::text FROM cache_content_mapping WHERE user_id = $1",
      {guest});
  ASSERT_EQ(row.rows.size(), 1u);
  EXPECT_EQ(row.rows[0], (std::vector<SqlValue>{"message", id, std::nullopt, guest, "redis", "postgresql",
                                                "true", "true"}));
  EXPECT_THAT(log_.All(), HasSubstr("info: ✓ Created cache_content_mapping entry: message " + id +
                                    " (redis -> postgresql) for guest " + guest));
}

TEST_F(MappingStageTest, OneRowPerMessage) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  const std::string first = StoreMessage(guest), second = StoreMessage(guest);
  ASSERT_TRUE(Write(*stage, guest, first).ok());
  ASSERT_TRUE(Write(*stage, guest, second).ok());
  EXPECT_EQ(Rows(guest), "2");
  EXPECT_EQ(
      db_->Scalar("SELECT string_agg(cache_id::text, ',' ORDER BY cache_id) FROM cache_content_mapping"),
      first + "," + second);
}

TEST_F(MappingStageTest, BackendsComeFromTheConfig) {
  auto stage = Make({{"cache_backend", std::string("memcached")}, {"content_backend", std::string("s3")}});
  const std::string guest = Guest("guest");
  ASSERT_TRUE(Write(*stage, guest, StoreMessage(guest)).ok());
  EXPECT_EQ(db_->Scalar("SELECT cache_backend || ' ' || content_backend FROM cache_content_mapping"),
            "memcached s3");
}

TEST_F(MappingStageTest, MappingTheSameMessageTwiceStoresOneRow) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  const std::string id = StoreMessage(guest);
  ASSERT_TRUE(Write(*stage, guest, id).ok());
  Status again = Write(*stage, guest, id);
  EXPECT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(Rows(guest), "1");
  EXPECT_THAT(log_.All(), HasSubstr("info: message " + id + " of guest " + guest +
                                    " is mapped already: stored nothing new"));
}

// SDK 1.3: the host replays a message whose mapping stage failed or was
// skipped, with the postgres stage's message_id.
TEST_F(MappingStageTest, AReplayMapsAMessageTheStageMissed) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  const std::string id = StoreMessage(guest);

  ASSERT_TRUE(Write(*stage, guest, id, /*replay=*/true).ok()) << log_.All();

  SqlResult row = db_->Query(
      "SELECT cache_type, cache_id::text, user_id, cache_backend, content_backend FROM cache_content_mapping"
      " WHERE user_id = $1",
      {guest});
  ASSERT_EQ(row.rows.size(), 1u);
  EXPECT_EQ(row.rows[0], (std::vector<SqlValue>{"message", id, guest, "redis", "postgresql"}));
  EXPECT_THAT(log_.All(), HasSubstr("info: ✓ Created cache_content_mapping entry: replay: message " + id +
                                    " (redis -> postgresql) for guest " + guest));
}

TEST_F(MappingStageTest, AReplayOfAMappedMessageStoresNothingNew) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  const std::string id = StoreMessage(guest);
  ASSERT_TRUE(Write(*stage, guest, id).ok());
  const std::string before =
      db_->Scalar("SELECT id::text FROM cache_content_mapping WHERE user_id = $1", {guest});

  ASSERT_TRUE(Write(*stage, guest, id, /*replay=*/true).ok()) << log_.All();
  ASSERT_TRUE(Write(*stage, guest, id, /*replay=*/true).ok()) << log_.All();

  EXPECT_EQ(Rows(guest), "1");
  EXPECT_EQ(db_->Scalar("SELECT id::text FROM cache_content_mapping WHERE user_id = $1", {guest}), before)
      << "the row written first is kept";
  EXPECT_THAT(log_.All(), HasSubstr("info: replay: message " + id + " of guest " + guest +
                                    " is mapped already, or was erased since: stored nothing new"));
}

TEST_F(MappingStageTest, AReplayOfAMessageErasedSinceStoresNothingAndSucceeds) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  const std::string id = StoreMessage(guest);
  db_->Query("DELETE FROM conversation_cache WHERE user_id = $1", {guest});  // the postgres stage's erase

  Status replayed = Write(*stage, guest, id, /*replay=*/true);

  EXPECT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(Rows(guest), "0");
}

TEST_F(MappingStageTest, EraseDeletesTheGuestsRows) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  ASSERT_TRUE(Write(*stage, guest, StoreMessage(guest)).ok());
  ASSERT_TRUE(Write(*stage, guest, StoreMessage(guest)).ok());

  EraseResult erased = Erase(*stage, guest);
  EXPECT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_TRUE(erased.held);
  EXPECT_EQ(Rows(guest), "0");

  EraseResult again = Erase(*stage, guest);
  EXPECT_TRUE(again.status.ok());
  EXPECT_FALSE(again.held);
}

TEST_F(MappingStageTest, TwoGuestsAreIsolated) {
  auto stage = Make();
  const std::string a = Guest("a"), b = Guest("b");
  ASSERT_TRUE(Write(*stage, a, StoreMessage(a)).ok());
  ASSERT_TRUE(Write(*stage, b, StoreMessage(b)).ok());
  ASSERT_TRUE(Write(*stage, b, StoreMessage(b)).ok());

  EXPECT_TRUE(Erase(*stage, a).held);

  EXPECT_EQ(Rows(a), "0");
  EXPECT_EQ(Rows(b), "2");
}

TEST_F(MappingStageTest, DeletingTheMessageDeletesItsMapping) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  ASSERT_TRUE(Write(*stage, guest, StoreMessage(guest)).ok());
  db_->Query("DELETE FROM conversation_cache WHERE user_id = $1", {guest});  // the postgres stage's erase
  EXPECT_EQ(Rows(guest), "0");
}

TEST_F(MappingStageTest, AMissingMessageIdIsAnErrorNamingTheFix) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  Status status = Write(*stage, guest, std::nullopt);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("put the mapping stage after the postgres stage"));
  EXPECT_THAT(status.message(), HasSubstr("no message_id for the message of guest " + guest));
  EXPECT_THAT(log_.All(), Not(HasSubstr("no message_id")));  // the host logs what it is given
  EXPECT_EQ(Rows(guest), "0");
}

TEST_F(MappingStageTest, AnUnknownMessageIdIsRefusedByTheDatabase) {
  auto stage = Make();
  const std::string guest = Guest("guest");
  Status status = Write(*stage, guest, "999999");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("cache_content_mapping"));
}

TEST_F(MappingStageTest, TargetIsPostgresql) {
  EXPECT_EQ(Make()->target(), "postgresql");
}

TEST(MappingStageConstructionTest, RefusesAStageWithoutADatabase) {
  CapturingLogger log;
  StageEnvironment env{log, nullptr};
  try {
    MappingStage stage(Config(), env);
    FAIL() << "a mapping stage without a database was built";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("add database = \"<name>\""));
  }
}

TEST(MappingStageConstructionTest, WithoutMessageCacheItWarnsAndCreatesTheTableLater) {
  ScratchDatabase db("mapping_order");
  ASSERT_TRUE(db.ok());
  CapturingLogger log;
  StageEnvironment env{log, &db.database()};
  MappingStage stage(Config(), env);
  EXPECT_THAT(log.All(), HasSubstr("warn: cache_content_mapping references message_cache"));
  EXPECT_THAT(log.All(), HasSubstr("put the mapping stage after the postgres stage"));
  EXPECT_EQ(db.Scalar("SELECT to_regclass('cache_content_mapping')::text"), "<null>");

  for (const char* statement : kChatTables) db.Query(statement);
  EXPECT_TRUE(stage.health(Deadline::After(std::chrono::seconds(10))).ok());
  EXPECT_EQ(db.Scalar("SELECT to_regclass('cache_content_mapping')::text"), "cache_content_mapping");
}

// The stage's own logic against a scripted session (the test kit's
// FakeSqlSession): no server, any failure on demand.
class MappingStageLogicTest : public ::testing::Test {
 protected:
  MappingStageLogicTest() : env_{log_, &database_} {}

  std::unique_ptr<MappingStage> Make() { return std::make_unique<MappingStage>(Config(), env_); }

  Status Write(MappingStage& stage, stowage::testkit::FakeSqlSession& sql, const char* message_id) {
    Attributes attributes;
    if (message_id != nullptr) attributes.set(chat::kMessageId, message_id);
    WriteContext ctx{guest_, message_, Deadline::After(std::chrono::seconds(5)), log_, attributes, &sql};
    return stage.write(ctx);
  }

  CapturingLogger log_;
  stowage::testkit::FakeDatabase database_;
  StageEnvironment env_;
  const std::string guest_ = "logic-guest";
  const Message message_{"user", "hello", "2026-01-01T00:00:00.000000Z"};
};

TEST_F(MappingStageLogicTest, AnInsertedRowIsLoggedInTheOperatorsWordsWithTheRowsValues) {
  auto stage = Make();
  stowage::testkit::FakeSqlSession sql;
  sql.Answer("INSERT INTO cache_content_mapping", {{}, {}, 1});
  ASSERT_TRUE(Write(*stage, sql, "41").ok());
  ASSERT_EQ(sql.Count("INSERT INTO cache_content_mapping"), 1u);
  EXPECT_EQ(sql.statements().back().params,
            (std::vector<SqlValue>{"message", "41", std::nullopt, guest_, "redis", "postgresql", "t"}));
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "✓ Created cache_content_mapping entry: message 41"), 1u) << log_.All();
}

TEST_F(MappingStageLogicTest, ARowMappedAlreadyStoresNothingNewAndSaysSo) {
  auto stage = Make();
  stowage::testkit::FakeSqlSession sql;
  sql.Answer("INSERT INTO cache_content_mapping", {{}, {}, 0});  // ON CONFLICT DO NOTHING
  ASSERT_TRUE(Write(*stage, sql, "41").ok());
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "is mapped already: stored nothing new"), 1u) << log_.All();
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "✓ Created"), 0u) << log_.All();
}

TEST_F(MappingStageLogicTest, AFailedInsertIsTheWritesFailureNamingTheRowAndItsDatabase) {
  auto stage = Make();
  stowage::testkit::FakeSqlSession sql;
  sql.Fail("INSERT INTO cache_content_mapping", Status::Unavailable("the connection was lost"));
  Status written = Write(*stage, sql, "41");
  EXPECT_EQ(written.code(), StatusCode::kUnavailable) << written.ToString();
  EXPECT_THAT(written.message(), HasSubstr("could not map message 41 of " + guest_));
  EXPECT_THAT(written.message(), HasSubstr("database 'main'"));
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "✓ Created"), 0u) << log_.All();
}

TEST_F(MappingStageLogicTest, WithoutAMessageIdNothingIsSentAndTheFixIsNamed) {
  auto stage = Make();
  stowage::testkit::FakeSqlSession sql;
  Status written = Write(*stage, sql, nullptr);
  EXPECT_EQ(written.code(), StatusCode::kInternal);
  EXPECT_THAT(written.message(), HasSubstr("put the mapping stage after the postgres stage"));
  EXPECT_TRUE(sql.statements().empty());
}

TEST_F(MappingStageLogicTest, ADatabaseUnreachableAtStartIsLoggedAndTheTableMadeAtFirstUse) {
  database_.FailSessions(Status::Unavailable("cannot reach PostgreSQL database 'main'"));
  auto stage = Make();
  EXPECT_EQ(log_.Count(LogLevel::kWarn, "the table will be created before the first use"), 1u) << log_.All();
  ASSERT_EQ(database_.migration_calls().size(), 1u);
  EXPECT_EQ(database_.migration_calls()[0].status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(database_.applied_versions("mapping").empty());
  stowage::testkit::FakeSqlSession sql;
  sql.Answer("INSERT INTO cache_content_mapping", {{}, {}, 1});
  ASSERT_TRUE(Write(*stage, sql, "41").ok());
  EXPECT_EQ(database_.applied_versions("mapping"), std::vector<int>{1})
      << "the first write should have applied the migrations";
}

TEST_F(MappingStageLogicTest, ConstructionAsksTheHostToApplyTheMappingMigrations) {
  auto stage = Make();
  ASSERT_EQ(database_.migration_calls().size(), 1u);
  const auto& call = database_.migration_calls()[0];
  EXPECT_EQ(call.component, "mapping");
  ASSERT_EQ(call.migrations.size(), MappingMigrations().size());
  EXPECT_EQ(call.migrations[0].version, 1);
  EXPECT_THAT(call.migrations[0].sql, HasSubstr("CREATE TABLE cache_content_mapping"));
  EXPECT_TRUE(call.status.ok()) << call.status.ToString();
  EXPECT_EQ(log_.Count(LogLevel::kInfo,
                       "schema of 'mapping' in database 'main' is current (applied migration(s) 1)"),
            1u)
      << log_.All();
  // Later calls find the schema current: the host is not asked again.
  stowage::testkit::FakeSqlSession sql;
  ASSERT_TRUE(Write(*stage, sql, "41").ok());
  EXPECT_EQ(database_.migration_calls().size(), 1u);
}

TEST_F(MappingStageLogicTest, AMigrationThatFailsFailsConstructionWithTheHostsReason) {
  database_.FailMigrations(
      Status::Internal("migration 1 (create cache_content_mapping) failed: permission denied"));
  database_.session().Answer("to_regclass", {{"to_regclass"}, {{std::string("message_cache")}}, 1});
  try {
    Make();
    ADD_FAILURE() << "constructed although its migrations failed";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("permission denied"));
  }
}

}  // namespace
}  // namespace stowage::mapping
