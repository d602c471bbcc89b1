// The engine's transaction rules against a real PostgreSQL: stages sharing a
// [[database]] write in one transaction per message; a best_effort stage's
// failure rolls back its own statements only; a required failure leaves no
// row of any stage.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "engine/pipeline_sql_fixture.h"
#include "engine/transaction.h"

namespace stowage::engine {
namespace {

using config::Policy;
using namespace std::chrono_literals;

TEST_F(PipelineSqlTest, StagesSharingADatabaseCommitTogether) {
  auto p = Build({{"a", Policy::kRequired, Insert("a")}, {"b", Policy::kBestEffort, Insert("b")}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(Rows(), (std::vector<std::string>{"a:hello", "b:hello"}));
  EXPECT_EQ(out.stored_in, (std::vector<std::string>{"postgresql"}));
}

TEST_F(PipelineSqlTest, ABestEffortFailureRollsBackOnlyItsOwnStatements) {
  auto p = Build({{"a", Policy::kRequired, Insert("a")},
                  {"b", Policy::kBestEffort, Insert("b", {{"write", "fail"}})},
                  {"c", Policy::kRequired, Insert("c")}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (std::vector<std::string>{"b"}));
  EXPECT_EQ(Rows(), (std::vector<std::string>{"a:hello", "c:hello"}));
}

TEST_F(PipelineSqlTest, ABestEffortStatementErrorDoesNotSpoilTheTransaction) {
  auto p = Build({{"a", Policy::kRequired, Insert("a")},
                  {"broken", Policy::kBestEffort, {{"write_sql", std::string("INSERT INTO no_such_table VALUES ($1, $2)")}}},
                  {"c", Policy::kRequired, Insert("c")}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (std::vector<std::string>{"broken"}));
  EXPECT_EQ(Rows(), (std::vector<std::string>{"a:hello", "c:hello"}));
}

TEST_F(PipelineSqlTest, ARequiredFailureAfterBestEffortStagesLeavesNoneOfTheirRows) {
  auto p = Build({{"cache", Policy::kRequired, {}, /*with_database=*/false},
                  {"a", Policy::kRequired, Insert("a")},
                  {"b", Policy::kBestEffort, Insert("b")},
                  {"c", Policy::kRequired, Insert("c", {{"write", "fail"}})}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.failed_stage, "c");
  EXPECT_TRUE(Rows().empty());
  // The stage outside the database was compensated.
  EXPECT_TRUE(p->Read(guest_).messages.empty());
  EXPECT_EQ(p->stages()[0]->counters->compensated.load(), 1u);
}

TEST_F(PipelineSqlTest, AFailedCommitFailsTheRequestAndCompensatesTheOtherStages) {
  ASSERT_TRUE(Sql("INSERT INTO engine_sql_commit_check VALUES ($1)", {guest_}).ok());
  auto p = Build({{"cache", Policy::kRequired, {}, false},
                  {"a", Policy::kRequired, Insert("a")},
                  {"dup", Policy::kRequired,
                   {{"write_sql", std::string("INSERT INTO engine_sql_commit_check SELECT $1 WHERE $2 <> ''")},
                    {"read", std::string("miss")}}}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  EXPECT_FALSE(out.status.ok());
  EXPECT_NE(out.status.message().find("did not commit"), std::string::npos) << out.status.ToString();
  EXPECT_TRUE(Rows().empty());
  EXPECT_TRUE(p->Read(guest_).messages.empty());
}

TEST_F(PipelineSqlTest, EraseRunsInOneTransactionAndAFailingStageKeepsWhatTheOthersErased) {
  auto p = Build({{"a", Policy::kRequired,
                   Insert("a", {{"erase_sql", std::string("DELETE FROM engine_sql_rows WHERE guest = $1 AND stage = 'a'")}})},
                  {"b", Policy::kBestEffort,
                   Insert("b", {{"erase_sql", std::string("DELETE FROM engine_sql_rows WHERE guest = $1 AND stage = 'b'")},
                                {"erase", "fail"}})}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write(guest_, Msg("hello")).status.ok());
  auto erased = p->Erase(guest_);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_EQ(erased.degraded, (std::vector<std::string>{"b"}));
  EXPECT_EQ(erased.erased_from, (std::vector<std::string>{"postgresql"}));
  // b's erase was rolled back with its failure; a's committed.
  EXPECT_EQ(Rows(), (std::vector<std::string>{"b:hello"}));
}

TEST_F(PipelineSqlTest, AWriteSendsBeginAndSavepointsWithTheStatementsThatFollowThem) {
  auto p = Build({{"a", Policy::kRequired, Insert("a")},
                  {"b", Policy::kBestEffort, Insert("b")},
                  {"quiet", Policy::kBestEffort, {}},
                  {"c", Policy::kBestEffort, Insert("c")}});
  ASSERT_TRUE(p);
  database::PostgresDatabase& db = *p->stages()[0]->database;
  ASSERT_TRUE(p->Write(guest_, Msg("first")).status.ok());  // prepares the statements
  const std::uint64_t before = db.round_trips();
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  // (BEGIN, a), (SAVEPOINT b, b), (SAVEPOINT c, c), COMMIT; the stage without
  // statements costs nothing.
  EXPECT_EQ(db.round_trips() - before, 4u);
  EXPECT_EQ(Rows(),
            (std::vector<std::string>{"a:first", "b:first", "c:first", "a:hello", "b:hello", "c:hello"}));
}

// Transactions and LazySession on their own, as the engine drives them.
class TransactionTest : public PipelineSqlTest {
 protected:
  void SetUp() override {
    PipelineSqlTest::SetUp();
    if (IsSkipped()) return;
    config::DatabaseSettings settings;
    settings.name = "main";
    settings.url = url_;
    settings.pool_size = 1;  // the same connection every time: its statements stay prepared
    db_ = std::make_unique<database::PostgresDatabase>(settings, std::make_shared<NullLog>());
    // Prepares the statement once, so that round trips count the pipelines only.
    Transactions warm;
    LazySession session(*db_, &warm, "", Deadline::After(5s));
    ASSERT_TRUE(session.execute(kInsert, {guest_, std::string("warm")}, nullptr).ok());
    warm.RollbackAll(Deadline::After(5s));
  }

  Status Insert(LazySession& session, const std::string& content) {
    return session.execute(kInsert, {guest_, content}, nullptr);
  }

  static constexpr const char* kInsert = "INSERT INTO engine_sql_rows VALUES ($1, 'tx', $2)";
  std::unique_ptr<database::PostgresDatabase> db_;
};

TEST_F(TransactionTest, BeginSavepointStatementSavepointStatementCommitTakeThreeRoundTrips) {
  const std::uint64_t before = db_->round_trips();
  Transactions transactions;
  {
    LazySession first(*db_, &transactions, "stowage_stage_1", Deadline::After(5s));
    ASSERT_TRUE(Insert(first, "one").ok());
  }
  {
    LazySession second(*db_, &transactions, "stowage_stage_2", Deadline::After(5s));
    ASSERT_TRUE(Insert(second, "two").ok());
  }
  ASSERT_TRUE(transactions.CommitAll(Deadline::After(5s)).status.ok());
  EXPECT_EQ(db_->round_trips() - before, 3u);
  EXPECT_EQ(Rows(), (std::vector<std::string>{"tx:one", "tx:two"}));
}

TEST_F(TransactionTest, ABestEffortStatementFailingInAPipelineIsRolledBackToItsSavepoint) {
  const std::uint64_t before = db_->round_trips();
  Transactions transactions;
  {
    LazySession required(*db_, &transactions, "", Deadline::After(5s));
    ASSERT_TRUE(Insert(required, "kept").ok());
  }
  {
    LazySession failing(*db_, &transactions, "stowage_stage_2", Deadline::After(5s));
    ASSERT_TRUE(Insert(failing, "rolled_back").ok());
    Status failed = failing.execute("INSERT INTO no_such_engine_table VALUES ($1)", {guest_}, nullptr);
    EXPECT_EQ(failed.code(), StatusCode::kInternal) << failed.ToString();
    Status rolled_back = failing.RollbackToSavepoint();
    ASSERT_TRUE(rolled_back.ok()) << rolled_back.ToString();
  }
  {
    LazySession after(*db_, &transactions, "stowage_stage_3", Deadline::After(5s));
    ASSERT_TRUE(Insert(after, "after").ok());
  }
  Status committed = transactions.CommitAll(Deadline::After(5s)).status;
  ASSERT_TRUE(committed.ok()) << committed.ToString();
  // (BEGIN, kept), (SAVEPOINT, rolled_back), (PREPARE, failing INSERT: the table is
  // missing), ROLLBACK TO SAVEPOINT, (SAVEPOINT, after), COMMIT.
  EXPECT_EQ(db_->round_trips() - before, 6u);
  EXPECT_EQ(Rows(), (std::vector<std::string>{"tx:kept", "tx:after"}));
}

TEST_F(TransactionTest, WhatWasNeverSentCostsNothing) {
  const std::uint64_t before = db_->round_trips();
  Transactions transactions;
  {
    // A stage whose only statement is refused before it is sent.
    LazySession refused(*db_, &transactions, "stowage_stage_1", Deadline::After(5s));
    EXPECT_EQ(Insert(refused, std::string("a\0b", 3)).code(), StatusCode::kInvalidArgument);
    ASSERT_TRUE(refused.RollbackToSavepoint().ok());
  }
  {
    LazySession quiet(*db_, &transactions, "stowage_stage_2", Deadline::After(5s));
    ASSERT_TRUE(quiet.RollbackToSavepoint().ok());
  }
  ASSERT_TRUE(transactions.CommitAll(Deadline::After(5s)).status.ok());
  EXPECT_EQ(db_->round_trips(), before);

  // The withdrawn savepoint is not sent with the next statement: BEGIN alone is.
  {
    LazySession refused(*db_, &transactions, "stowage_stage_1", Deadline::After(5s));
    EXPECT_EQ(Insert(refused, std::string("a\0b", 3)).code(), StatusCode::kInvalidArgument);
    ASSERT_TRUE(refused.RollbackToSavepoint().ok());
  }
  {
    LazySession required(*db_, &transactions, "", Deadline::After(5s));
    ASSERT_TRUE(Insert(required, "kept").ok());
    // Had SAVEPOINT stowage_stage_1 been sent, this would find it (sent on
    // the connection: a stage's session refuses it).
    database::Connection* connection = nullptr;
    ASSERT_TRUE(transactions.Connection(*db_, Deadline::After(5s), &connection).ok());
    Status none = connection->execute("ROLLBACK TO SAVEPOINT stowage_stage_1", {}, nullptr);
    EXPECT_FALSE(none.ok());
  }
  transactions.RollbackAll(Deadline::After(5s));
  EXPECT_EQ(db_->round_trips() - before, 3u);  // (BEGIN, kept), the failed ROLLBACK TO, ROLLBACK
  EXPECT_TRUE(Rows().empty());
}

TEST_F(TransactionTest, ASavepointThatFailedLosesTheTransaction) {
  Transactions transactions;
  {
    // A stage that goes on after a failed statement, leaving the transaction aborted.
    LazySession careless(*db_, &transactions, "", Deadline::After(5s));
    ASSERT_TRUE(Insert(careless, "lost").ok());
    EXPECT_FALSE(careless.execute("INSERT INTO no_such_engine_table VALUES ($1)", {guest_}, nullptr).ok());
  }
  LazySession next(*db_, &transactions, "stowage_stage_2", Deadline::After(5s));
  Status refused = Insert(next, "never");
  EXPECT_EQ(refused.code(), StatusCode::kInternal) << refused.ToString();
  EXPECT_NE(refused.message().find("'SAVEPOINT stowage_stage_2'"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("'main'"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("25P02"), std::string::npos) << refused.message();
  Status rolled_back = next.RollbackToSavepoint();
  EXPECT_EQ(rolled_back.code(), StatusCode::kUnavailable) << rolled_back.ToString();
  EXPECT_NE(rolled_back.message().find("stowage_stage_2"), std::string::npos) << rolled_back.message();
  transactions.RollbackAll(Deadline::After(5s));
  EXPECT_TRUE(Rows().empty());
  // The connection went back to the pool clean, and serves the next transaction.
  Transactions again;
  {
    LazySession session(*db_, &again, "stowage_stage_1", Deadline::After(5s));
    ASSERT_TRUE(Insert(session, "later").ok());
  }
  ASSERT_TRUE(again.CommitAll(Deadline::After(5s)).status.ok());
  EXPECT_EQ(Rows(), (std::vector<std::string>{"tx:later"}));
}

TEST_F(TransactionTest, AStatementCancelledAtItsDeadlineInAPipelineIsRolledBackToItsSavepoint) {
  Transactions transactions;
  {
    LazySession required(*db_, &transactions, "", Deadline::After(5s));
    ASSERT_TRUE(Insert(required, "kept").ok());
  }
  {
    LazySession slow(*db_, &transactions, "stowage_stage_2", Deadline::After(200ms));
    Status late = slow.execute("SELECT pg_sleep($1::float8)", {std::string("5")}, nullptr);
    EXPECT_EQ(late.code(), StatusCode::kDeadlineExceeded) << late.ToString();
    ASSERT_TRUE(slow.RollbackToSavepoint().ok());
  }
  ASSERT_TRUE(transactions.CommitAll(Deadline::After(5s)).status.ok());
  EXPECT_EQ(Rows(), (std::vector<std::string>{"tx:kept"}));
}

// A health check the host stopped waiting for runs on to its end on the call
// runner (Pipeline::Health), after its pipeline is gone (a reload that
// dropped the generation, or as here its last holder). The stage still uses
// the [[database]] it was given: it must last until the check ends, and go
// with it (under ASan, a use after free if it went with the pipeline).
TEST_F(PipelineSqlTest, AHealthCheckThatOutlivesItsPipelineKeepsItsStagesDatabaseUntilItEnds) {
  auto p = Build({{"a", Policy::kRequired,
                   {{"health", "hang"}, {"hang_ms", std::int64_t{400}}, {"health_sql", "SELECT 1"}}}});
  ASSERT_TRUE(p);
  std::weak_ptr<database::PostgresDatabase> db = p->stage("a")->database;
  std::weak_ptr<stowage::Stage> stage = p->stage("a")->stage;
  auto health = p->Health(50ms);
  ASSERT_EQ(health.size(), 1u);
  EXPECT_EQ(health[0].status.code(), StatusCode::kDeadlineExceeded) << health[0].status.ToString();
  p.reset();
  EXPECT_FALSE(db.expired()) << "the health check in flight should hold its stage's database";

  const auto until = std::chrono::steady_clock::now() + 10s;
  // The stage's weak_ptr expires as its destruction begins, what it was
  // given is destroyed after it.
  while (!(stage.expired() && db.expired()) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(stage.expired()) << "the stage should go when its health check ends";
  EXPECT_TRUE(db.expired()) << "the database should go with the stage";
  EXPECT_EQ(Journal(), (std::vector<std::string>{"postgresql health", "postgresql health_sql ok"}));
}

TEST_F(PipelineSqlTest, AStageNamingAnUndeclaredDatabaseIsAConfigError) {
  auto errors = BuildErrors("orphan", kTestStage, "nope", 7);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("pipeline.toml:7: stage[orphan].database: no [[database]] is named 'nope'"),
            std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace stowage::engine
