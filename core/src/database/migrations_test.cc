// The host's migration runner (Database::apply_migrations, ApplyMigrations):
// how it splits SQL text, what it sends, and what it does against a real
// PostgreSQL (STOWAGE_TEST_DATABASE_URL; each test works in a fresh database
// it creates there).
#include "database/migrations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "database/postgres_database.h"
#include "database/sql_statements.h"
#include "scratch_database.h"
#include "stowage/testkit/fake_database.h"
#include "stowage/testkit/loggers.h"

namespace stowage::database {
namespace {

using std::chrono::seconds;
using stowage::testing::ScratchDatabase;
using stowage::testkit::CapturingLogger;
using stowage::testkit::FakeSqlSession;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SplitSqlStatementsTest, SplitsAtSemicolonsOutsideQuotesAndComments) {
  const std::string sql =
      "CREATE TABLE \"semi;colon\" (v text DEFAULT 'a;''b');\n"
      "-- a comment; still a comment\n"
      "/* block; /* nested; */ still block; */ INSERT INTO t VALUES (E'x\\';y');\n"
      "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;;\n"
      "SELECT $$;$$, $1;\n"
      "  -- only a comment here\n";
  EXPECT_THAT(stowage::internal::SplitSqlStatements(sql),
              ElementsAre("CREATE TABLE \"semi;colon\" (v text DEFAULT 'a;''b')",
                          "\n-- a comment; still a comment\n"
                          "/* block; /* nested; */ still block; */ INSERT INTO t VALUES (E'x\\';y')",
                          "\nCREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql",
                          "\nSELECT $$;$$, $1"));
  EXPECT_TRUE(stowage::internal::SplitSqlStatements(" ; -- nothing\n ;").empty());
}

// What the runner sends, on a scripted session (no server).
TEST(ApplyMigrationsStatementsTest, RunsEachStatementInOneTransactionUnderTheLock) {
  FakeSqlSession sql("main", /*in_request=*/false);
  sql.Answer("SELECT version FROM stowage_schema_migrations", {{"version"}, {{std::string("1")}}, 1});
  std::vector<int> applied;
  Status status =
      ApplyMigrations(sql, "widgets",
                      {{1, "create widgets", "CREATE TABLE widgets (n int)"},
                       {2, "two widgets", "INSERT INTO widgets VALUES (1); INSERT INTO widgets VALUES (2)"}},
                      &applied);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_THAT(applied, ElementsAre(2));
  std::vector<std::string> sent;
  for (const auto& statement : sql.statements()) sent.push_back(statement.text);
  ASSERT_EQ(sent.size(), 8u);
  EXPECT_EQ(sent[0], "BEGIN");
  EXPECT_EQ(sent[1], "SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
  EXPECT_THAT(sent[2], HasSubstr("CREATE TABLE IF NOT EXISTS stowage_schema_migrations"));
  EXPECT_THAT(sent[3], HasSubstr("SELECT version FROM stowage_schema_migrations"));
  EXPECT_EQ(sent[4], "INSERT INTO widgets VALUES (1)");
  EXPECT_EQ(sent[5], " INSERT INTO widgets VALUES (2)");
  EXPECT_THAT(sent[6], HasSubstr("INSERT INTO stowage_schema_migrations"));
  EXPECT_EQ(sent[7], "COMMIT");
  EXPECT_EQ(sql.statements()[6].params, (std::vector<SqlValue>{std::string("widgets"), std::string("2")}));
}

TEST(ApplyMigrationsStatementsTest, AFailureRollsBackAndKeepsItsCode) {
  FakeSqlSession sql("main", /*in_request=*/false);
  sql.Fail("CREATE TABLE widgets", Status::Unavailable("server closed the connection"));
  std::vector<int> applied;
  Status status =
      ApplyMigrations(sql, "widgets", {{1, "create widgets", "CREATE TABLE widgets (n int)"}}, &applied);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("migrating the schema of 'widgets' in database 'main'"));
  EXPECT_THAT(status.message(),
              HasSubstr("migration 1 (create widgets) failed: server closed the connection"));
  EXPECT_THAT(status.message(), HasSubstr("check that the database is reachable"));
  EXPECT_TRUE(applied.empty());
  EXPECT_EQ(sql.statements().back().text, "ROLLBACK");
  EXPECT_EQ(sql.Count("COMMIT"), 0u);
}

class ApplyMigrationsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(scratch_.ok()); }

  Status Apply(const std::vector<Migration>& migrations, std::vector<int>* applied = nullptr,
               const std::string& component = "widgets") {
    return scratch_.database().apply_migrations(component, migrations, Deadline::After(seconds(10)), applied);
  }
  std::string Recorded(const std::string& component = "widgets") {
    return scratch_.Scalar(
        "SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '') "
        "FROM stowage_schema_migrations WHERE component = $1",
        {component});
  }
  std::string Scalar(const std::string& statement) { return scratch_.Scalar(statement); }

  ScratchDatabase scratch_{"migrations"};
};

const std::vector<Migration> kWidgetMigrations = {
    {1, "create widgets", "CREATE TABLE widgets (n int NOT NULL, label text)"},
    {2, "first widgets",
     "INSERT INTO widgets VALUES (1, 'one; with a semicolon'); INSERT INTO widgets VALUES (2)"},
    {5, "label the second", "UPDATE widgets SET label = 'two' WHERE n = 2"},
};

TEST_F(ApplyMigrationsTest, AppliesEachVersionInOrderAndRecordsIt) {
  std::vector<int> applied;
  Status status = Apply(kWidgetMigrations, &applied);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_THAT(applied, ElementsAre(1, 2, 5));
  EXPECT_EQ(Recorded(), "1,2,5");
  // Version 5 ran after 2 had inserted the row it updates.
  EXPECT_EQ(Scalar("SELECT string_agg(n || '=' || label, ' | ' ORDER BY n) FROM widgets"),
            "1=one; with a semicolon | 2=two");
  EXPECT_EQ(Scalar("SELECT count(*) FROM stowage_schema_migrations WHERE applied_at IS NULL"), "0");
}

TEST_F(ApplyMigrationsTest, ApplyingAgainDoesNothingAndANewVersionAppliesAlone) {
  ASSERT_TRUE(Apply(kWidgetMigrations).ok());
  std::vector<int> again;
  Status status = Apply(kWidgetMigrations, &again);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(Scalar("SELECT count(*) FROM widgets"), "2");  // the inserts did not run twice

  std::vector<Migration> more = kWidgetMigrations;
  more.push_back({6, "a third widget", "INSERT INTO widgets VALUES (3, 'three')"});
  std::vector<int> applied;
  ASSERT_TRUE(Apply(more, &applied).ok());
  EXPECT_THAT(applied, ElementsAre(6));
  EXPECT_EQ(Recorded(), "1,2,5,6");
  EXPECT_EQ(Scalar("SELECT count(*) FROM widgets"), "3");
}

TEST_F(ApplyMigrationsTest, ComponentsAreRecordedApart) {
  ASSERT_TRUE(Apply(kWidgetMigrations).ok());
  std::vector<int> applied;
  ASSERT_TRUE(Apply({{1, "create gadgets", "CREATE TABLE gadgets (n int)"}}, &applied, "gadgets").ok());
  EXPECT_THAT(applied, ElementsAre(1));
  EXPECT_EQ(Recorded("gadgets"), "1");
  EXPECT_EQ(Recorded("widgets"), "1,2,5");
}

TEST_F(ApplyMigrationsTest, AFailingMigrationRollsBackAndNamesItsVersion) {
  ASSERT_TRUE(Apply({kWidgetMigrations[0]}).ok());
  const std::vector<Migration> broken = {
      kWidgetMigrations[0],
      {2, "create sprockets", "CREATE TABLE sprockets (n int)"},
      {3, "fill a missing table", "INSERT INTO widgets VALUES (9); INSERT INTO no_such_table VALUES (1)"},
  };
  std::vector<int> applied;
  Status status = Apply(broken, &applied);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("'widgets'"));
  EXPECT_THAT(status.message(), HasSubstr("migration 3 (fill a missing table) failed"));
  EXPECT_THAT(status.message(), HasSubstr("no_such_table"));
  EXPECT_THAT(status.message(), HasSubstr("nothing of this run was kept"));
  EXPECT_TRUE(applied.empty());
  // Nothing of versions 2 and 3 stays: not the table, not the row, not the record.
  EXPECT_EQ(Recorded(), "1");
  EXPECT_EQ(Scalar("SELECT to_regclass('sprockets') IS NULL"), "t");
  EXPECT_EQ(Scalar("SELECT count(*) FROM widgets"), "0");
  // The database's connections went back to autocommit: it can be used again.
  std::vector<Migration> fixed = broken;
  fixed[2].sql = "INSERT INTO widgets VALUES (9)";
  ASSERT_TRUE(Apply(fixed, &applied).ok());
  EXPECT_THAT(applied, ElementsAre(2, 3));
}

TEST_F(ApplyMigrationsTest, RefusesAListOutOfOrderBeforeTouchingTheDatabase) {
  Status status =
      Apply({{2, "second", "CREATE TABLE second_t (n int)"}, {1, "first", "CREATE TABLE first_t (n int)"}});
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("version 1 (first) follows 2"));
  EXPECT_EQ(
      Scalar("SELECT to_regclass('second_t') IS NULL AND to_regclass('stowage_schema_migrations') IS NULL"),
      "t");
  EXPECT_EQ(Apply({{0, "zero", "SELECT 1"}}).code(), StatusCode::kInternal);
}

TEST_F(ApplyMigrationsTest, AnUnreachableDatabaseIsUnavailable) {
  config::DatabaseSettings settings;
  settings.name = "gone";
  settings.url = "postgresql://stowage@127.0.0.1:1/stowage";
  settings.pool_size = 1;
  settings.connect_timeout = std::chrono::milliseconds(1000);
  PostgresDatabase gone(settings, std::make_shared<CapturingLogger>());
  Status status = gone.apply_migrations("widgets", kWidgetMigrations, Deadline::After(seconds(5)));
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
}

TEST_F(ApplyMigrationsTest, ConcurrentCallersApplyEachVersionOnce) {
  constexpr int kCallers = 8;
  std::vector<std::unique_ptr<PostgresDatabase>> servers;  // one pool each, as separate servers would have
  for (int i = 0; i < kCallers; ++i) {
    config::DatabaseSettings settings;
    settings.name = "main";
    settings.url = scratch_.url();
    settings.pool_size = 1;
    servers.push_back(std::make_unique<PostgresDatabase>(settings, std::make_shared<CapturingLogger>()));
  }
  std::vector<std::vector<int>> applied(kCallers);
  std::vector<Status> results(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      results[i] = servers[i]->apply_migrations("widgets", kWidgetMigrations, Deadline::After(seconds(20)),
                                                &applied[i]);
    });
  }
  for (auto& thread : threads) thread.join();
  std::vector<int> all;
  for (int i = 0; i < kCallers; ++i) {
    EXPECT_TRUE(results[i].ok()) << "caller " << i << ": " << results[i].ToString();
    all.insert(all.end(), applied[i].begin(), applied[i].end());
  }
  EXPECT_THAT(all, ElementsAre(1, 2, 5));
  EXPECT_EQ(Scalar("SELECT count(*) FROM widgets"), "2");
}

}  // namespace
}  // namespace stowage::database
