// The host owns each request's transaction (docs/databases.md): a stage that
// sends a transaction-control statement through ctx.sql is refused, and one
// that leaves the transaction aborted, ended or lost fails like any other
// failure under its policy; a request never answers ok with nothing stored.
// Against a real PostgreSQL (STOWAGE_TEST_DATABASE_URL), with test_stage's
// tx_sql (a statement run without parameters) and sql_errors = "ignore" (a
// stage that goes on after a failed or refused statement).
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/pipeline_sql_fixture.h"
#include "engine/transaction.h"

namespace stowage::engine {
namespace {

using config::Policy;
using namespace std::chrono_literals;

constexpr auto npos = std::string::npos;

// Statements a stage must not send, and the command their refusal names.
const std::vector<std::pair<std::string, std::string>>& Forbidden() {
  static const std::vector<std::pair<std::string, std::string>> kForbidden = {
      {"BEGIN", "BEGIN"},
      {"begin transaction isolation level serializable", "BEGIN"},
      {"START TRANSACTION", "START TRANSACTION"},
      {"COMMIT", "COMMIT"},
      {"commit work", "COMMIT"},
      {"END", "END"},
      {"ROLLBACK", "ROLLBACK"},
      {"ABORT", "ABORT"},
      {"SAVEPOINT mine", "SAVEPOINT"},
      {"RELEASE SAVEPOINT stowage_stage_1", "RELEASE SAVEPOINT"},
      {"release stowage_stage_1", "RELEASE SAVEPOINT"},
      {"ROLLBACK TO SAVEPOINT stowage_stage_1", "ROLLBACK TO SAVEPOINT"},
      {"rollback work to stowage_stage_1", "ROLLBACK TO SAVEPOINT"},
      {"PREPARE TRANSACTION 'stowage-test'", "PREPARE TRANSACTION"},
      {"COMMIT PREPARED 'stowage-test'", "COMMIT PREPARED"},
      {"ROLLBACK PREPARED 'stowage-test'", "ROLLBACK PREPARED"},
      {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET TRANSACTION"},
      {"SET LOCAL TRANSACTION READ ONLY", "SET TRANSACTION"},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET SESSION CHARACTERISTICS"},
      {"SET LOCAL transaction_read_only = on", "SET transaction_read_only"},
      {"set \"default_transaction_isolation\" to 'serializable'", "SET default_transaction_isolation"},
      {"  -- the host's job?\n /* surely /* not */ */ Commit", "COMMIT"},
      {"SELECT 1; COMMIT", "COMMIT"},
      {"SELECT 'a;b'; /* ; */ ROLLBACK; SELECT 2", "ROLLBACK"},
      {"SELECT 1;\nbegin;", "BEGIN"},
  };
  return kForbidden;
}

TEST(TransactionControlTest, NamesEveryTransactionControlCommand) {
  for (const auto& [statement, command] : Forbidden())
    EXPECT_EQ(TransactionControlIn(statement), command) << statement;
}

TEST(TransactionControlTest, WordsThatOnlyLookLikeTransactionControlAreNotCommands) {
  for (const std::string statement : {
           "SELECT 'commit'",
           "-- rollback\nSELECT 1",
           "/* COMMIT; */ SELECT 1",
           "/* a /* nested */ ROLLBACK */ SELECT 1",
           "SELECT begin_at, \"commit\" FROM t WHERE savepoint_id = $1",
           "SELECT 1 -- ; COMMIT",
           "SELECT $$;COMMIT$$, $tag$; ROLLBACK$tag$",
           "SELECT 'a;commit', \"b;end\"",
           "SELECT E'\\';COMMIT'",
           "INSERT INTO t VALUES ($1); SELECT 'rollback'",
           "UPDATE t SET ended = true",
           "SET LOCAL lock_timeout = '1s'",
           "SET LOCAL statement_timeout TO 1000",
           "DO $$BEGIN PERFORM 1; END$$",
           "PREPARE mine AS SELECT 1",
           "SELECT 1;",
           "WITH begin AS (SELECT 1) SELECT * FROM begin",
           "",
           "  -- only a comment",
       }) {
    EXPECT_EQ(TransactionControlIn(statement), "") << statement;
  }
}

class TransactionGuardTest : public PipelineSqlTest {
 protected:
  void Clear() { ASSERT_TRUE(Sql("DELETE FROM engine_sql_rows WHERE guest = $1", {guest_}).ok()); }
};

TEST_F(TransactionGuardTest, ARequiredStageThatControlsTheTransactionFailsTheRequestAndNothingIsStored) {
  for (const auto& [statement, command] : Forbidden()) {
    for (const std::string errors : {"return", "ignore"}) {
      SCOPED_TRACE(statement + " (sql_errors = " + errors + ")");
      auto p = Build({{"a", Policy::kRequired, Insert("a")},
                      {"x", Policy::kRequired, Insert("x", {{"tx_sql", statement}, {"sql_errors", errors}})},
                      {"c", Policy::kRequired, Insert("c")}});
      ASSERT_TRUE(p);
      auto out = p->Write(guest_, Msg("hello"));
      EXPECT_EQ(out.status.code(), StatusCode::kInternal) << out.status.ToString();
      EXPECT_EQ(out.failed_stage, "x");
      EXPECT_NE(out.status.message().find("running " + command + " on PostgreSQL database 'main'"), npos)
          << out.status.message();
      EXPECT_NE(out.status.message().find("stages must not control the transaction"), npos)
          << out.status.message();
      EXPECT_TRUE(Rows().empty());
      Clear();
    }
  }
}

TEST_F(TransactionGuardTest, ABestEffortStageThatControlsTheTransactionFailsAloneAndTheOthersCommit) {
  for (const auto& [statement, command] : Forbidden()) {
    for (const std::string errors : {"return", "ignore"}) {
      SCOPED_TRACE(statement + " (sql_errors = " + errors + ")");
      auto p =
          Build({{"a", Policy::kRequired, Insert("a")},
                 {"x", Policy::kBestEffort, Insert("x", {{"tx_sql", statement}, {"sql_errors", errors}})},
                 {"c", Policy::kRequired, Insert("c")}});
      ASSERT_TRUE(p);
      auto out = p->Write(guest_, Msg("hello"));
      ASSERT_TRUE(out.status.ok()) << out.status.ToString();
      EXPECT_EQ(out.degraded, (std::vector<std::string>{"x"}));
      // x's own row went with its savepoint; the refused statement never ran.
      EXPECT_EQ(Rows(), (std::vector<std::string>{"a:hello", "c:hello"}));
      Clear();
    }
  }
}

// A stage that ignores a failed statement leaves the transaction aborted:
// its COMMIT would roll everything back quietly. A DO block that tries to
// COMMIT inside the transaction is such a failure (PostgreSQL refuses it).
TEST_F(TransactionGuardTest, AStageThatIgnoresAFailedStatementFailsUnderItsPolicy) {
  for (const std::string statement :
       {"INSERT INTO no_such_engine_table VALUES (1)", "DO $$BEGIN COMMIT; END$$"}) {
    SCOPED_TRACE(statement);
    auto careless = Insert("x", {{"tx_sql", statement}, {"sql_errors", std::string("ignore")}});
    auto required = Build({{"a", Policy::kRequired, Insert("a")}, {"x", Policy::kRequired, careless}});
    ASSERT_TRUE(required);
    auto out = required->Write(guest_, Msg("hello"));
    EXPECT_EQ(out.status.code(), StatusCode::kInternal) << out.status.ToString();
    EXPECT_EQ(out.failed_stage, "x");
    EXPECT_NE(out.status.message().find("aborted the transaction"), npos) << out.status.message();
    EXPECT_TRUE(Rows().empty());

    auto best_effort = Build({{"a", Policy::kRequired, Insert("a")}, {"x", Policy::kBestEffort, careless}});
    ASSERT_TRUE(best_effort);
    out = best_effort->Write(guest_, Msg("hello"));
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.degraded, (std::vector<std::string>{"x"}));
    EXPECT_EQ(Rows(), (std::vector<std::string>{"a:hello"}));
    Clear();
  }
}

// A stage that loses the transaction's connection and answers ok: there is
// no savepoint to go back to, so even a best_effort stage fails the request.
TEST_F(TransactionGuardTest, AStageThatLosesTheTransactionFailsTheRequestWhateverItsPolicy) {
  for (Policy policy : {Policy::kRequired, Policy::kBestEffort}) {
    SCOPED_TRACE(policy == Policy::kRequired ? "required" : "best_effort");
    auto p = Build({{"a", Policy::kRequired, Insert("a")},
                    {"x", policy,
                     Insert("x", {{"tx_sql", std::string("SELECT pg_terminate_backend(pg_backend_pid())")},
                                  {"sql_errors", std::string("ignore")}})},
                    {"c", Policy::kRequired, Insert("c")}});
    ASSERT_TRUE(p);
    auto out = p->Write(guest_, Msg("hello"));
    EXPECT_FALSE(out.status.ok());
    EXPECT_EQ(out.failed_stage, "x") << out.status.ToString();
    EXPECT_NE(out.status.message().find("was lost"), npos) << out.status.message();
    EXPECT_TRUE(Rows().empty());
    // The pool replaced the connection: the next message is stored.
    auto next = Build({{"a", Policy::kRequired, Insert("a")}});
    ASSERT_TRUE(next);
    ASSERT_TRUE(next->Write(guest_, Msg("next")).status.ok());
    EXPECT_EQ(Rows(), (std::vector<std::string>{"a:next"}));
    Clear();
  }
}

TEST_F(TransactionGuardTest, AnEraseThatTriesToCommitFailsItsStageAndWhatTheOthersErasedCommits) {
  auto p = Build(
      {{"a", Policy::kRequired,
        Insert("a",
               {{"erase_sql", std::string("DELETE FROM engine_sql_rows WHERE guest = $1 AND stage = 'a'")}})},
       {"b", Policy::kBestEffort,
        Insert("b", {{"erase_sql", std::string("COMMIT")}, {"sql_errors", std::string("ignore")}})}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write(guest_, Msg("hello")).status.ok());
  auto erased = p->Erase(guest_);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_EQ(erased.degraded, (std::vector<std::string>{"b"}));
  EXPECT_EQ(erased.erased_from, (std::vector<std::string>{"postgresql"}));
  EXPECT_EQ(Rows(), (std::vector<std::string>{"b:hello"}));
}

// Transactions and LazySession on their own, as the engine drives them.
class GuardedTransactionTest : public PipelineSqlTest {
 protected:
  void SetUp() override {
    PipelineSqlTest::SetUp();
    if (IsSkipped()) return;
    config::DatabaseSettings settings;
    settings.name = "main";
    settings.url = url_;
    settings.pool_size = 1;
    db_ = std::make_unique<database::PostgresDatabase>(settings, std::make_shared<NullLog>());
  }

  Status Insert(LazySession& session, const std::string& content) {
    return session.execute("INSERT INTO engine_sql_rows VALUES ($1, 'tx', $2)", {guest_, content}, nullptr);
  }

  std::unique_ptr<database::PostgresDatabase> db_;
};

TEST_F(GuardedTransactionTest, ARefusedStatementIsNotSentAndFailsTheCallThatIgnoredIt) {
  Transactions transactions;
  LazySession session(*db_, &transactions, "stowage_stage_1", Deadline::After(5s));
  ASSERT_TRUE(Insert(session, "kept").ok());
  const std::uint64_t before = db_->round_trips();
  Status refused = session.execute("ROLLBACK TO SAVEPOINT stowage_stage_1", {}, nullptr);
  EXPECT_EQ(refused.code(), StatusCode::kInternal);
  EXPECT_NE(refused.message().find("ROLLBACK TO SAVEPOINT"), npos) << refused.message();
  EXPECT_EQ(db_->round_trips(), before);
  EXPECT_EQ(transactions.HealthOf(*db_), Transactions::Health::kOpen);
  bool lost = false;
  Status settled = session.Settle(Status::Ok(), &lost);
  EXPECT_EQ(settled.code(), StatusCode::kInternal);
  EXPECT_NE(settled.message().find("stages must not control the transaction"), npos) << settled.message();
  EXPECT_FALSE(lost);
  // The stage's own error is what the call reports.
  EXPECT_EQ(session.Settle(Status::Unavailable("mine"), &lost).message(), "mine");
  ASSERT_TRUE(transactions.CommitAll(Deadline::After(5s)).status.ok());
  EXPECT_EQ(Rows(), (std::vector<std::string>{"tx:kept"}));

  // In autocommit (reads) too.
  LazySession autocommit(*db_, nullptr, "", Deadline::After(5s));
  EXPECT_EQ(autocommit.execute("BEGIN", {}, nullptr).code(), StatusCode::kInternal);
}

TEST_F(GuardedTransactionTest, AnAbortedTransactionIsNotCommitted) {
  Transactions transactions;
  LazySession session(*db_, &transactions, "", Deadline::After(5s));
  ASSERT_TRUE(Insert(session, "lost").ok());
  EXPECT_FALSE(session.execute("INSERT INTO no_such_engine_table VALUES (1)", {}, nullptr).ok());
  EXPECT_EQ(transactions.HealthOf(*db_), Transactions::Health::kAborted);
  CommitResult committed = transactions.CommitAll(Deadline::After(5s));
  EXPECT_EQ(committed.status.code(), StatusCode::kInternal) << committed.status.ToString();
  EXPECT_NE(committed.status.message().find("aborted"), npos) << committed.status.message();
  EXPECT_EQ(committed.failed_database, "main");
  EXPECT_FALSE(committed.outcome_unknown);
  EXPECT_TRUE(Rows().empty());
}

TEST_F(GuardedTransactionTest, AnAbortedTransactionIsNotCommittedWithTheStatementsQueuedForItsCommit) {
  Transactions transactions;
  LazySession session(*db_, &transactions, "", Deadline::After(5s));
  ASSERT_TRUE(Insert(session, "lost").ok());
  EXPECT_FALSE(session.execute("INSERT INTO no_such_engine_table VALUES (1)", {}, nullptr).ok());
  ASSERT_TRUE(transactions
                  .AddToCommit(*db_, Deadline::After(5s),
                               "INSERT INTO engine_sql_rows VALUES ($1, 'queued', 'q')", {guest_})
                  .ok());
  CommitResult committed = transactions.CommitAll(Deadline::After(5s));
  EXPECT_EQ(committed.status.code(), StatusCode::kInternal) << committed.status.ToString();
  EXPECT_NE(committed.status.message().find("aborted"), npos) << committed.status.message();
  EXPECT_FALSE(committed.queued_statement_failed);  // not the queued statement's fault
  EXPECT_FALSE(committed.outcome_unknown);
  EXPECT_TRUE(Rows().empty());
}

// Nothing a stage can send ends the transaction (the refusals above, and
// PostgreSQL refuses COMMIT inside DO or a procedure in a transaction block),
// so the host ends it here itself, on the connection, as a path around the
// refusals would.
TEST_F(GuardedTransactionTest, ATransactionEndedBehindTheHostsBackIsLostAndNotCommitted) {
  Transactions transactions;
  LazySession session(*db_, &transactions, "stowage_stage_1", Deadline::After(5s));
  ASSERT_TRUE(Insert(session, "lost").ok());
  database::Connection* connection = nullptr;
  ASSERT_TRUE(transactions.Connection(*db_, Deadline::After(5s), &connection).ok());
  ASSERT_TRUE(connection->execute("ROLLBACK", {}, nullptr).ok());
  EXPECT_EQ(transactions.HealthOf(*db_), Transactions::Health::kEnded);
  bool lost = false;
  Status settled = session.Settle(Status::Ok(), &lost);
  EXPECT_TRUE(lost);
  EXPECT_EQ(settled.code(), StatusCode::kInternal);
  EXPECT_NE(settled.message().find("was ended during the call"), npos) << settled.message();
  CommitResult committed = transactions.CommitAll(Deadline::After(5s));
  EXPECT_EQ(committed.status.code(), StatusCode::kInternal) << committed.status.ToString();
  EXPECT_NE(committed.status.message().find("ended by a statement the host did not send"), npos)
      << committed.status.message();
  EXPECT_FALSE(committed.outcome_unknown);
  EXPECT_TRUE(Rows().empty());
}

}  // namespace
}  // namespace stowage::engine
