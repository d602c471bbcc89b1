// PostgresStage against real PostgreSQL servers: the one named by
// STOWAGE_TEST_DATABASE_URL (each suite works in fresh databases it creates
// there) and private instances the tests stop and start.
#include "postgres_stage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "endpoint.h"
#include "message_hash.h"
#include "migrations.h"
#include "test_server.h"

namespace stowage::postgres {
namespace {

using stowage::Attributes;
using stowage::Message;
using stowage::StatusCode;
using testing::DatabaseUrlFromEnv;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::PrivateServer;
using testing::WithDatabase;

// Keeps every line the stage logs.
class CapturingLogger final : public stowage::Logger {
 public:
  void log(stowage::LogLevel, std::string_view text) noexcept override {
    std::lock_guard lock(mu_);
    lines_.emplace_back(text);
  }
  bool enabled(stowage::LogLevel) const noexcept override { return true; }

  std::string All() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const auto& line : lines_) all += line + "\n";
    return all;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

stowage::StageConfig Config(const std::string& url, std::int64_t pool_size = 8) {
  return stowage::StageConfig({{"url", url},
                               {"pool_size", pool_size},
                               {"connect_timeout_ms", std::int64_t{2000}},
                               {"statement_timeout_ms", std::int64_t{2000}}});
}

std::string Conninfo(const std::string& url) {
  return ParseEndpoint(url, std::chrono::seconds(2), std::chrono::seconds(10)).conninfo;
}

// A database name no other run uses.
std::string FreshName(const std::string& what) {
  static std::atomic<int> counter{0};
  return "stowage_test_" + what + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
}

// A database created for one test on the server of STOWAGE_TEST_DATABASE_URL
// and dropped afterwards, with a session time zone far from UTC so that a
// timestamp handled in local time shows.
class ScratchDatabase {
 public:
  explicit ScratchDatabase(const std::string& what)
      : admin_url_(DatabaseUrlFromEnv()), name_(FreshName(what)) {
    if (admin_url_.empty()) return;
    soci::session admin(soci::postgresql, Conninfo(admin_url_));
    admin << "CREATE DATABASE " + name_;
    admin << "ALTER DATABASE " + name_ + " SET timezone TO 'America/St_Johns'";
    url_ = WithDatabase(admin_url_, name_);
  }
  ~ScratchDatabase() {
    if (url_.empty()) return;
    try {
      soci::session admin(soci::postgresql, Conninfo(admin_url_));
      admin << "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)";
    } catch (const std::exception&) {
      // A leftover database is harmless: names never repeat.
    }
  }
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  std::string admin_url_, name_, url_;
};

Message Msg(const std::string& role, const std::string& content,
            const std::string& timestamp = "2025-01-02T03:04:05.123456Z") {
  return {role, content, timestamp};
}

// Calls of the stage with the contexts the host would build.
struct Caller {
  PostgresStage& stage;
  CapturingLogger& log;

  stowage::Status Write(const std::string& guest, const Message& message, Attributes* out = nullptr) {
    Attributes attributes;
    stowage::WriteContext ctx{guest, message, stowage::Deadline::After(std::chrono::seconds(10)), log,
                              attributes};
    stowage::Status status = stage.write(ctx);
    if (out) *out = attributes;
    return status;
  }
  stowage::Status Compensate(const std::string& guest, const Message& message, Attributes attributes) {
    stowage::WriteContext ctx{guest, message, stowage::Deadline::After(std::chrono::seconds(10)), log,
                              attributes};
    return stage.compensate(ctx);
  }
  stowage::ReadResult Read(const std::string& guest) {
    stowage::GuestContext ctx{guest, stowage::Deadline::After(std::chrono::seconds(10)), log};
    return stage.read(ctx);
  }
  stowage::EraseResult Erase(const std::string& guest) {
    stowage::GuestContext ctx{guest, stowage::Deadline::After(std::chrono::seconds(10)), log};
    return stage.erase(ctx);
  }
};

// One suite-wide database, so that most tests skip creating their own.
class PostgresStageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { db_ = new ScratchDatabase("stage"); }
  static void TearDownTestSuite() {
    delete db_;
    db_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(db_->url().empty());
    stage_ = std::make_unique<PostgresStage>(Config(db_->url()), log_);
    sql_ = std::make_unique<soci::session>(soci::postgresql, Conninfo(db_->url()));
  }

  // A guest id no other test uses.
  std::string Guest(const std::string& name) {
    return name + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  Caller Call() { return {*stage_, log_}; }

  // The (sequence, content) rows of the guest, by sequence.
  std::vector<std::pair<int, std::string>> Rows(const std::string& guest) {
    std::vector<std::pair<int, std::string>> rows;
    soci::rowset<soci::row> result =
        (sql_->prepare << "SELECT m.sequence, m.content FROM message_cache m"
                          " JOIN conversation_cache c ON c.id = m.conversation_id"
                          " WHERE c.platform = 'guest' AND c.user_id = :g ORDER BY m.sequence",
         soci::use(guest, "g"));
    for (const auto& row : result) rows.emplace_back(row.get<int>(0), row.get<std::string>(1));
    return rows;
  }
  // message_count of the guest's conversation, or -1 when there is none.
  int MessageCount(const std::string& guest) {
    int count = -1;
    soci::indicator ind = soci::i_null;
    *sql_ << "SELECT message_count FROM conversation_cache WHERE platform = 'guest' AND user_id = :g",
        soci::use(guest, "g"), soci::into(count, ind);
    return sql_->got_data() ? count : -1;
  }

  static ScratchDatabase* db_;
  CapturingLogger log_;
  std::unique_ptr<PostgresStage> stage_;
  std::unique_ptr<soci::session> sql_;
};

ScratchDatabase* PostgresStageTest::db_ = nullptr;

int CountRows(soci::session& sql, const std::string& query) {
  int count = 0;
  sql << query, soci::into(count);
  return count;
}

// --- schema -----------------------------------------------------------------

TEST(PostgresSchemaTest, ConstructionCreatesTablesAndRecordsMigrations) {
  ScratchDatabase db("schema");
  ASSERT_FALSE(db.url().empty());
  CapturingLogger log;
  PostgresStage stage(Config(db.url()), log);
  EXPECT_TRUE(stage.schema_ready());

  soci::session sql(soci::postgresql, Conninfo(db.url()));
  auto columns = [&](const std::string& table) {
    std::set<std::string> names;
    soci::rowset<std::string> rows =
        (sql.prepare << "SELECT column_name FROM information_schema.columns WHERE table_name = :t",
         soci::use(table, "t"));
    for (const auto& name : rows) names.insert(name);
    return names;
  };
  EXPECT_EQ(
      columns("conversation_cache"),
      (std::set<std::string>{"id", "platform", "user_id", "message_count", "created_at", "updated_at"}));
  EXPECT_EQ(columns("message_cache"),
            (std::set<std::string>{"id", "conversation_id", "sequence", "role", "content", "message_hash",
                                   "timestamp", "created_at"}));
  EXPECT_EQ(columns("stowage_schema_migrations"),
            (std::set<std::string>{"component", "version", "applied_at"}));
  EXPECT_EQ(CountRows(sql, "SELECT count(*) FROM stowage_schema_migrations WHERE component = 'postgres'"),
            static_cast<int>(ChatMigrations().size()));
  // The keys the spec names.
  EXPECT_EQ(CountRows(sql,
                      "SELECT count(*) FROM pg_constraint WHERE conname IN"
                      " ('conversation_cache_platform_user_id_key',"
                      " 'message_cache_conversation_id_sequence_key') AND contype = 'u'"),
            2);
  EXPECT_EQ(CountRows(sql,
                      "SELECT count(*) FROM pg_constraint WHERE conrelid = 'message_cache'::regclass"
                      " AND contype = 'f' AND confdeltype = 'c'"),
            1);
  EXPECT_THAT(log.All(), HasSubstr("applied migration(s) 1"));
}

TEST(PostgresSchemaTest, ConstructingTwiceAppliesMigrationsOnce) {
  ScratchDatabase db("twice");
  ASSERT_FALSE(db.url().empty());
  CapturingLogger first_log, second_log;
  { PostgresStage first(Config(db.url()), first_log); }
  PostgresStage second(Config(db.url()), second_log);
  EXPECT_TRUE(second.schema_ready());
  EXPECT_THAT(second_log.All(), HasSubstr("is current"));
  EXPECT_THAT(second_log.All(), Not(HasSubstr("applied migration")));

  soci::session sql(soci::postgresql, Conninfo(db.url()));
  EXPECT_EQ(CountRows(sql, "SELECT count(*) FROM stowage_schema_migrations"),
            static_cast<int>(ChatMigrations().size()));
}

TEST(PostgresSchemaTest, ParallelConstructionsMigrateOnce) {
  ScratchDatabase db("parallel");
  ASSERT_FALSE(db.url().empty());
  constexpr int kStages = 6;
  std::vector<std::string> errors(kStages);
  std::vector<CapturingLogger> logs(kStages);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStages; ++i) {
    threads.emplace_back([&, i] {
      try {
        PostgresStage stage(Config(db.url()), logs[i]);
        if (!stage.schema_ready()) errors[i] = "schema not ready";
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
  soci::session sql(soci::postgresql, Conninfo(db.url()));
  EXPECT_EQ(CountRows(sql, "SELECT count(*) FROM stowage_schema_migrations"),
            static_cast<int>(ChatMigrations().size()));
}

TEST(PostgresSchemaTest, ConstructionFailsClearlyWhenTheSchemaCannotBeCreated) {
  ScratchDatabase db("noddl");
  ASSERT_FALSE(db.url().empty());
  const std::string role = db.name() + "_user";
  {
    soci::session sql(soci::postgresql, Conninfo(db.url()));
    sql << "CREATE ROLE " + role + " LOGIN";  // PostgreSQL 15: no CREATE on schema public
  }
  // postgresql://<role>@host:port/db
  std::string url = db.url();
  auto start = url.find("://") + 3;
  auto at = url.find('@', start);
  url = url.substr(0, start) + role + url.substr(at == std::string::npos ? start - 1 : at);
  if (at == std::string::npos) url.insert(start + role.size(), "@");

  CapturingLogger log;
  try {
    PostgresStage stage(Config(url), log);
    ADD_FAILURE() << "construction succeeded without the right to create tables";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot create the PostgreSQL schema at"));
    EXPECT_THAT(e.what(), HasSubstr("permission denied"));
    EXPECT_THAT(e.what(), HasSubstr("stage[postgres].config.url"));
  }
  soci::session sql(soci::postgresql, Conninfo(db.url()));
  sql << "DROP OWNED BY " + role;
  sql << "DROP ROLE " + role;
}

// --- config -----------------------------------------------------------------

TEST(PostgresConfigTest, RejectsAUrlThatIsNotPostgres) {
  CapturingLogger log;
  try {
    PostgresStage stage(Config("redis://127.0.0.1:6379/0"), log);
    ADD_FAILURE() << "accepted a redis url";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("stage[postgres].config.url"));
  }
}

TEST(PostgresConfigTest, EndpointKeepsThePasswordOutOfAddressAndLogs) {
  Endpoint e = ParseEndpoint("postgresql://app:pa%27ss@db.example:6543/chat?sslmode=disable",
                             std::chrono::milliseconds(1500), std::chrono::milliseconds(2500));
  EXPECT_EQ(e.address, "db.example:6543/chat");
  EXPECT_EQ(e.redacted_url, "postgresql://app:***@db.example:6543/chat?sslmode=disable");
  EXPECT_THAT(e.conninfo, HasSubstr("password='pa\\'ss'"));
  EXPECT_THAT(e.conninfo, HasSubstr("connect_timeout='2'"));
  EXPECT_THAT(e.conninfo, HasSubstr("statement_timeout=2500"));
  EXPECT_THAT(e.conninfo, HasSubstr("sslmode='disable'"));

  Endpoint defaults =
      ParseEndpoint("postgres://u@h/d", std::chrono::milliseconds(2000), std::chrono::milliseconds(2000));
  EXPECT_EQ(defaults.address, "h:5432/d");
  EXPECT_EQ(defaults.redacted_url, "postgres://u@h/d");
}

// --- write ------------------------------------------------------------------

TEST_F(PostgresStageTest, TargetIsPostgresqlAndHealthAnswers) {
  EXPECT_EQ(stage_->target(), "postgresql");
  EXPECT_TRUE(stage_->health(stowage::Deadline::After(std::chrono::seconds(5))).ok());
}

TEST_F(PostgresStageTest, WriteStoresTheRowsTheSpecDescribes) {
  const std::string guest = Guest("rows");
  const Message first = Msg("user", "héllo\nworld", "2025-03-04T05:06:07.000008Z");
  const Message second = Msg("assistant", "hi there", "2025-03-04T05:06:08.500000Z");
  Attributes a1, a2;
  ASSERT_TRUE(Call().Write(guest, first, &a1).ok());
  ASSERT_TRUE(Call().Write(guest, second, &a2).ok());

  long long conversation_id = 0;
  int message_count = 0;
  std::string platform;
  *sql_ << "SELECT id, platform, message_count FROM conversation_cache WHERE user_id = :g",
      soci::use(guest, "g"), soci::into(conversation_id), soci::into(platform), soci::into(message_count);
  ASSERT_TRUE(sql_->got_data());
  EXPECT_EQ(platform, "guest");
  EXPECT_EQ(message_count, 2);
  EXPECT_EQ(a1.get(Attributes::kConversationId), std::to_string(conversation_id));
  EXPECT_EQ(a2.get(Attributes::kConversationId), std::to_string(conversation_id));
  EXPECT_EQ(a1.get(Attributes::kSequence), "0");
  EXPECT_EQ(a2.get(Attributes::kSequence), "1");

  int index = 0;
  for (const auto& [message, attributes] : {std::pair{first, a1}, std::pair{second, a2}}) {
    long long id = 0, conv = 0;
    int sequence = -1;
    std::string role, content, hash, sql_hash, timestamp;
    long long wanted_id = std::stoll(*attributes.get(Attributes::kMessageId));
    // PostgreSQL hashes the input text itself: an independent check of MessageHash.
    *sql_ << "SELECT id, conversation_id, sequence, role, content, message_hash,"
             " encode(sha256(convert_to(:r || chr(10) || :c || chr(10) || :t, 'UTF8')), 'hex'),"
             " to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
             " FROM message_cache WHERE id = :id",
        soci::use(message.role, "r"), soci::use(message.content, "c"), soci::use(message.timestamp, "t"),
        soci::use(wanted_id, "id"), soci::into(id), soci::into(conv), soci::into(sequence), soci::into(role),
        soci::into(content), soci::into(hash), soci::into(sql_hash), soci::into(timestamp);
    ASSERT_TRUE(sql_->got_data()) << "message " << index;
    EXPECT_EQ(conv, conversation_id);
    EXPECT_EQ(sequence, index);
    EXPECT_EQ(role, message.role);
    EXPECT_EQ(content, message.content);
    EXPECT_EQ(hash, sql_hash);
    EXPECT_EQ(hash, MessageHash(message));
    EXPECT_EQ(hash.size(), 64u);
    EXPECT_EQ(timestamp, message.timestamp);
    EXPECT_THAT(log_.All(), HasSubstr("stored message id=" + std::to_string(id) +
                                      " conversation=" + std::to_string(conversation_id) +
                                      " sequence=" + std::to_string(index) + " for guest " + guest));
    ++index;
  }
}

TEST_F(PostgresStageTest, AValueRefusedByPostgresFailsWithoutEchoingTheMessage) {
  const std::string guest = Guest("refused");
  stowage::Status status = Call().Write(guest, Msg("user", "private words", "not a time"));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("could not store a message of guest " + guest));
  EXPECT_THAT(status.message(), Not(HasSubstr("private words")));
  EXPECT_THAT(log_.All(), Not(HasSubstr("private words")));
  EXPECT_EQ(MessageCount(guest), -1);  // the statement stored nothing
}

TEST_F(PostgresStageTest, ConcurrentWritesToOneGuestGetSequencesZeroToNinetyNine) {
  const std::string guest = Guest("busy");
  constexpr int kThreads = 16, kWrites = 100;
  std::atomic<int> next{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kWrites; i = next++) {
        if (!Call().Write(guest, Msg("user", "message " + std::to_string(i))).ok()) ++failures;
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

// --- compensate -------------------------------------------------------------

TEST_F(PostgresStageTest, CompensateRemovesTheMessageAndKeepsSequencesGapless) {
  const std::string guest = Guest("undo");
  std::vector<Attributes> written(5);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(Call().Write(guest, Msg("user", "m" + std::to_string(i)), &written[i]).ok());

  ASSERT_TRUE(Call().Compensate(guest, Msg("user", "m2"), written[2]).ok());
  EXPECT_EQ(Rows(guest),
            (std::vector<std::pair<int, std::string>>{{0, "m0"}, {1, "m1"}, {2, "m3"}, {3, "m4"}}));
  EXPECT_EQ(MessageCount(guest), 4);

  // Undoing the same write again changes nothing.
  ASSERT_TRUE(Call().Compensate(guest, Msg("user", "m2"), written[2]).ok());
  EXPECT_EQ(Rows(guest).size(), 4u);
  EXPECT_EQ(MessageCount(guest), 4);

  // The next write follows without a gap.
  Attributes next;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "m5"), &next).ok());
  EXPECT_EQ(next.get(Attributes::kSequence), "4");

  // A write that stored nothing leaves nothing to undo.
  ASSERT_TRUE(Call().Compensate(guest, Msg("user", "m6"), Attributes()).ok());
  EXPECT_EQ(MessageCount(guest), 5);
}

TEST_F(PostgresStageTest, CompensatingTheOnlyMessageDeletesTheConversation) {
  const std::string guest = Guest("single");
  Attributes written;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "only"), &written).ok());
  ASSERT_TRUE(Call().Compensate(guest, Msg("user", "only"), written).ok());
  EXPECT_EQ(MessageCount(guest), -1);
  EXPECT_FALSE(Call().Read(guest).found);
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
  EXPECT_TRUE(result.status.ok());
  EXPECT_FALSE(result.found);
  EXPECT_TRUE(result.messages.empty());
}

// --- erase ------------------------------------------------------------------

TEST_F(PostgresStageTest, EraseDeletesTheConversationAndItsMessages) {
  const std::string guest = Guest("erase");
  Attributes written;
  ASSERT_TRUE(Call().Write(guest, Msg("user", "a"), &written).ok());
  ASSERT_TRUE(Call().Write(guest, Msg("user", "b")).ok());
  const std::string conversation_id = *written.get(Attributes::kConversationId);

  auto erased = Call().Erase(guest);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_TRUE(erased.held);
  EXPECT_EQ(MessageCount(guest), -1);
  EXPECT_EQ(CountRows(*sql_, "SELECT count(*) FROM message_cache WHERE conversation_id = " + conversation_id),
            0);
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
  PrivateServer server;
  ASSERT_TRUE(server.Init()) << server.error();
  // A password in the url (ignored by trust auth) must appear in no log and no status.
  std::string url = server.url();
  url.replace(url.find("stowage@"), 8, "stowage:never-shown-pw@");
  CapturingLogger log;
  PostgresStage stage(Config(url, 4), log);
  Caller call{stage, log};
  const std::string guest = "outage-guest";
  ASSERT_TRUE(call.Write(guest, Msg("user", "before")).ok());
  ASSERT_TRUE(call.Write(guest, Msg("user", "before 2")).ok());

  ASSERT_TRUE(server.Stop()) << server.error();
  const std::string address = "127.0.0.1:" + std::to_string(server.port()) + "/stowage";
  stowage::Status down = call.Write(guest, Msg("user", "while down"));
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_THAT(down.message(), HasSubstr("cannot reach PostgreSQL at " + address + ": "));
  EXPECT_THAT(down.message(), HasSubstr("check that it runs and that stage[postgres].config.url is right"));
  EXPECT_EQ(call.Read(guest).status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(stage.health(stowage::Deadline::After(std::chrono::seconds(5))).code(), StatusCode::kUnavailable);

  ASSERT_TRUE(server.Start()) << server.error();
  Attributes after;
  stowage::Status back = call.Write(guest, Msg("user", "after"), &after);
  ASSERT_TRUE(back.ok()) << back.ToString();
  EXPECT_EQ(after.get(Attributes::kSequence), "2");
  auto read = call.Read(guest);
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  ASSERT_EQ(read.messages.size(), 3u);
  EXPECT_EQ(read.messages[2].content, "after");

  EXPECT_THAT(log.All(), Not(HasSubstr("never-shown-pw")));
  EXPECT_THAT(down.message(), Not(HasSubstr("never-shown-pw")));
}

TEST(PostgresOutageTest, ARestartBetweenCallsIsInvisibleToTheNextCalls) {
  PrivateServer server;
  ASSERT_TRUE(server.Init()) << server.error();
  CapturingLogger log;
  PostgresStage stage(Config(server.url()), log);
  Caller call{stage, log};
  // Concurrent writes leave several connections idle in the pool.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (!call.Write("restart-" + std::to_string(t), Msg("user", "before")).ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0) << log.All();

  // The server closes every pooled connection; no call sees it happen.
  ASSERT_TRUE(server.Stop()) << server.error();
  ASSERT_TRUE(server.Start()) << server.error();
  for (int t = 0; t < 8; ++t) {
    stowage::Status status = call.Write("restart-" + std::to_string(t), Msg("user", "after"));
    ASSERT_TRUE(status.ok()) << "write " << t << ": " << status.ToString();
  }
  EXPECT_THAT(log.All(), HasSubstr("replacing a connection to 127.0.0.1:" + std::to_string(server.port()) +
                                   "/stowage that the server closed"));
}

TEST(PostgresOutageTest, ServerDownAtConstructionCreatesTheSchemaOnFirstUse) {
  PrivateServer server;
  ASSERT_TRUE(server.Init()) << server.error();
  ASSERT_TRUE(server.Stop()) << server.error();

  CapturingLogger log;
  PostgresStage stage(Config(server.url()), log);
  EXPECT_FALSE(stage.schema_ready());
  EXPECT_THAT(log.All(), HasSubstr("the schema will be created by the first call that reaches it"));
  Caller call{stage, log};
  EXPECT_EQ(call.Write("late", Msg("user", "too early")).code(), StatusCode::kUnavailable);

  ASSERT_TRUE(server.Start()) << server.error();
  stowage::Status status = call.Write("late", Msg("user", "on time"));
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(stage.schema_ready());
  EXPECT_EQ(call.Read("late").messages.size(), 1u);
}

}  // namespace
}  // namespace stowage::postgres
