// The conformance suite run on a small in-memory stage that keeps the stage
// contract, and the checks the suite relies on to tell a stage that breaks it.
#include "stowage/testkit/conformance.h"

#include <gtest/gtest-spi.h>

#include "stowage/testkit/fake_database.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace stowage::testkit {
namespace {

// Keeps each guest's messages in memory, each with the id its write set.
class MemoryStage final : public Stage {
 public:
  static constexpr std::string_view kEntry = "memory.entry";

  static ConfigSchema config_schema() {
    return ConfigSchema()
        .optional("max_messages", std::int64_t{1000}, "most messages kept per guest")
        .required("label", ConfigType::kString, "a name for the store");
  }

  // `keeps_deadlines` false: a stage that breaks the contract by writing
  // whatever its deadline, for the check that must catch it.
  explicit MemoryStage(std::size_t max_messages, bool keeps_deadlines = true)
      : max_messages_(max_messages), keeps_deadlines_(keeps_deadlines) {}

  std::string target() const override { return "memory"; }

  Status write(WriteContext& ctx) override {
    if (keeps_deadlines_ && ctx.deadline.expired())
      return Status::DeadlineExceeded("no time left to store the message");
    if (ctx.message.role.empty() || ctx.message.content.empty())
      return Status::InvalidArgument("a message needs a role and content");
    std::lock_guard lock(mu_);
    auto& messages = guests_[ctx.guest_id];
    // A replay of a message already held stores nothing new.
    if (ctx.replay && std::any_of(messages.begin(), messages.end(),
                                  [&](const auto& entry) { return entry.second == ctx.message; }))
      return Status::Ok();
    if (messages.size() >= max_messages_) return Status::Rejected("the guest has too many messages");
    const std::string id = std::to_string(next_id_++);
    messages.emplace_back(id, ctx.message);
    ctx.attributes.set(kEntry, id);
    return Status::Ok();
  }

  Status compensate(WriteContext& ctx) override {
    std::optional<std::string> id = ctx.attributes.get(kEntry);
    if (!id) return Status::Ok();  // the write stored nothing
    std::lock_guard lock(mu_);
    auto it = guests_.find(ctx.guest_id);
    if (it == guests_.end()) return Status::Ok();
    std::erase_if(it->second, [&](const auto& entry) { return entry.first == *id; });
    return Status::Ok();
  }

  ReadResult read(GuestContext& ctx) override {
    if (ctx.deadline.expired()) return {Status::DeadlineExceeded("no time left to read"), false, {}};
    std::lock_guard lock(mu_);
    auto it = guests_.find(ctx.guest_id);
    if (it == guests_.end() || it->second.empty()) return {};
    ReadResult result{Status::Ok(), true, {}};
    for (const auto& entry : it->second) result.messages.push_back(entry.second);
    return result;
  }

  EraseResult erase(GuestContext& ctx) override {
    if (ctx.deadline.expired()) return {Status::DeadlineExceeded("no time left to erase"), false};
    std::lock_guard lock(mu_);
    return {Status::Ok(), guests_.erase(ctx.guest_id) > 0};
  }

 private:
  const std::size_t max_messages_;
  const bool keeps_deadlines_;
  std::mutex mu_;
  std::uint64_t next_id_ = 1;
  std::map<std::string, std::vector<std::pair<std::string, Message>>> guests_;
};

StageUnderTest MemoryUnderTest() {
  StageUnderTest stage;
  stage.name = "memory stage";
  stage.schema = MemoryStage::config_schema();
  stage.make = [](StageEnvironment&) -> std::unique_ptr<Stage> {
    StageConfig config = ConfigWithDefaults(MemoryStage::config_schema(), {{"label", std::string("notes")}});
    return std::make_unique<MemoryStage>(static_cast<std::size_t>(config.integer("max_messages")));
  };
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Memory, StageConformanceTest, ::testing::Values(MemoryUnderTest()), StageName());

// The late-write check catches a stage that stores what it was given after
// its deadline.
class LateWriteCheckTest : public StageConformanceTest {};

TEST_P(LateWriteCheckTest, FailsForAStageThatWritesWhateverItsDeadline) {
  EXPECT_NONFATAL_FAILURE(ExpectALateWriteStoresNothing(), "answered ok and stored the message");
}

StageUnderTest MemoryIgnoringDeadlines() {
  StageUnderTest stage = MemoryUnderTest();
  stage.name = "memory ignoring deadlines";
  stage.make = [](StageEnvironment&) -> std::unique_ptr<Stage> {
    return std::make_unique<MemoryStage>(100, false);
  };
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Memory, LateWriteCheckTest, ::testing::Values(MemoryIgnoringDeadlines()),
                         StageName());

TEST(StageNameTest, KeepsLettersAndDigitsAndReplacesTheRest) {
  StageUnderTest stage;
  stage.name = "my-stage 2";
  EXPECT_EQ(StageName()({stage, 0}), "my_stage_2");
  stage.name.clear();
  EXPECT_EQ(StageName()({stage, 3}), "stage_3");
}

TEST(ConfigWithDefaultsTest, FillsInDefaultsUnderTheGivenValues) {
  StageConfig config = ConfigWithDefaults(MemoryStage::config_schema(), {{"label", std::string("notes")}});
  EXPECT_EQ(config.string("label"), "notes");
  EXPECT_EQ(config.integer("max_messages"), 1000);
  config = ConfigWithDefaults(MemoryStage::config_schema(),
                              {{"label", std::string("x")}, {"max_messages", std::int64_t{5}}});
  EXPECT_EQ(config.integer("max_messages"), 5);
}

TEST(NoExceptionTest, TellsACaughtExceptionFromAnErrorResult) {
  EXPECT_TRUE(NoException(Status::Ok()));
  EXPECT_TRUE(NoException(Status::Unavailable("redis is down")));
  EXPECT_TRUE(NoException(Status::Internal("a bug")));
  EXPECT_FALSE(NoException(Status::Internal("write threw std::bad_alloc: std::bad_alloc")));
}

// A stage that throws where it should return a Status.
class ThrowingStage final : public Stage {
 public:
  std::string target() const override { return "throwing"; }
  Status write(WriteContext&) override { throw std::runtime_error("no role"); }
  Status compensate(WriteContext&) override { return Status::Ok(); }
  EraseResult erase(GuestContext&) override { throw 42; }
};

// A ThrowingStage behind the guard, and the contexts of one write and one
// erase to call it with. Neither copied nor moved: the contexts refer to the
// members before them.
struct GuardedThrowingStage {
  GuardedThrowingStage() = default;
  GuardedThrowingStage(const GuardedThrowingStage&) = delete;
  GuardedThrowingStage& operator=(const GuardedThrowingStage&) = delete;

  NullLogger log;
  stowage::internal::GuardedStage<Stage> stage{std::make_unique<ThrowingStage>()};
  const std::string guest = "g";
  const Message message{"user", "content", "2025-01-02T03:04:05.000000Z"};
  Attributes attributes;
  WriteContext write{guest, message, Deadline::After(std::chrono::seconds(1)), log, attributes};
  GuestContext erase{guest, Deadline::After(std::chrono::seconds(1)), log};
};

TEST(NoExceptionTest, FailsForAStageThatThrowsThroughTheGuard) {
  GuardedThrowingStage guarded;
  EXPECT_FALSE(NoException(guarded.stage.write(guarded.write)));
  EXPECT_FALSE(NoException(guarded.stage.erase(guarded.erase).status));
}

TEST(GuardedStageTest, NamesTheExceptionsTypeBesideItsText) {
  GuardedThrowingStage guarded;
  Status written = guarded.stage.write(guarded.write);
  EXPECT_EQ(written.code(), StatusCode::kInternal);
  EXPECT_EQ(written.message(), "write threw std::runtime_error: no role");
  EXPECT_EQ(guarded.stage.erase(guarded.erase).status.message(), "erase threw an exception of type int");
}

TEST(FakeSqlSessionTest, AnswersAsScriptedInOrderAndRefusesTransactionControlInARequest) {
  FakeSqlSession sql;
  sql.Fail("INSERT", Status::Unavailable("lost"), 1);
  sql.Answer("INSERT", {{"id"}, {{std::string("7")}}, 1});
  SqlResult result;
  EXPECT_EQ(sql.execute("INSERT INTO t VALUES ($1)", {std::string("a")}, &result).code(),
            StatusCode::kUnavailable);
  ASSERT_TRUE(sql.execute("INSERT INTO t VALUES ($1)", {std::string("b")}, &result).ok());
  EXPECT_EQ(result.value(0, 0), std::optional<std::string>("7"));
  ASSERT_TRUE(sql.execute("SELECT 1", {}, &result).ok());  // unscripted: ok, empty
  EXPECT_TRUE(result.rows.empty());
  EXPECT_EQ(sql.execute("  begin", {}).code(), StatusCode::kInternal);
  EXPECT_EQ(sql.execute("SAVEPOINT s", {}).code(), StatusCode::kInternal);
  ASSERT_EQ(sql.statements().size(), 3u);  // the refused ones did not run
  EXPECT_EQ(sql.statements()[1].params, std::vector<SqlValue>{std::string("b")});
  EXPECT_EQ(sql.Count("INSERT"), 2u);
}

TEST(FakeDatabaseTest, LendsItsSessionInAutocommitAndFailsAsScripted) {
  FakeDatabase database;
  database.FailSessions(Status::Unavailable("down"), 1);
  bool ran = false;
  auto work = [&](SqlSession& sql) {
    ran = true;
    return sql.execute("BEGIN", {});  // with_session's work may control its transaction
  };
  EXPECT_EQ(database.with_session(Deadline::After(std::chrono::seconds(1)), work).code(),
            StatusCode::kUnavailable);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(database.with_session(Deadline::After(std::chrono::seconds(1)), work).ok());
  EXPECT_TRUE(ran);
  EXPECT_EQ(database.session().Count("BEGIN"), 1u);
}

TEST(CapturingLoggerTest, KeepsEveryLineWithItsLevel) {
  CapturingLogger log;
  log.info("stored message 1");
  log.warn("slow flush");
  EXPECT_EQ(log.Count(LogLevel::kInfo, "stored"), 1u);
  EXPECT_EQ(log.Count(LogLevel::kWarn, "stored"), 0u);
  EXPECT_TRUE(log.Contains("flush"));
  EXPECT_EQ(log.All(), "info: stored message 1\nwarn: slow flush\n");
  log.Clear();
  EXPECT_TRUE(log.lines().empty());
}

}  // namespace
}  // namespace stowage::testkit
