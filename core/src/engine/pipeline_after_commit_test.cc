// After-commit stages (kAfterCommit, SDK 1.2) against a real PostgreSQL:
// a copy of the store is prepared before the COMMIT, written only after it
// succeeded, told when it did not, and hides the guest before an erase.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "engine/pipeline_sql_fixture.h"

namespace stowage::engine {
namespace {

using config::Policy;
using namespace std::chrono_literals;

using Lines = std::vector<std::string>;

// A cache in front of the store, as the Redis stage is.
SqlStage Cache(Policy policy = Policy::kRequired, std::map<std::string, ConfigValue> config = {}) {
  return {"cache", policy, std::move(config), /*with_database=*/false, kAfterCommitStage};
}

bool Has(const Lines& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

class AfterCommitTest : public PipelineSqlTest {};

TEST_F(AfterCommitTest, ACacheIsPreparedWithTheStoresAttributesAndWrittenAfterTheCommit) {
  // The cache comes first in the file, as it does in pipeline.toml: it is
  // read first, but written last.
  auto p = Build({Cache(), {"store", Policy::kRequired, Insert("store", {{"set_attribute", "sequence=7"}})}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(Journal(), (Lines{"postgresql write g hello", "memory prepare g hello sequence=7", "memory write g hello"}));
  EXPECT_EQ(out.stored_in, (Lines{"memory", "postgresql"}));
  EXPECT_EQ(Rows(), (Lines{"store:hello"}));
}

TEST_F(AfterCommitTest, ACommitThatFailsIsNeverWrittenToTheCacheWhichIsToldItRolledBack) {
  ASSERT_TRUE(Sql("INSERT INTO engine_sql_commit_check VALUES ($1)", {guest_}).ok());
  auto p = Build({Cache(),
                  {"store", Policy::kRequired, Insert("store")},
                  {"dup", Policy::kRequired,
                   {{"write_sql", std::string("INSERT INTO engine_sql_commit_check SELECT $1 WHERE $2 <> ''")},
                    {"read", std::string("miss")}}}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(out.outcome_unknown);
  EXPECT_NE(out.status.message().find("did not commit"), std::string::npos) << out.status.ToString();
  const Lines journal = Journal();
  EXPECT_TRUE(Has(journal, "memory abandon rolled_back g hello")) << ::testing::PrintToString(journal);
  EXPECT_FALSE(Has(journal, "memory write g hello")) << ::testing::PrintToString(journal);
  EXPECT_TRUE(Rows().empty());
}

TEST_F(AfterCommitTest, ARequiredCacheThatCannotPrepareFailsTheWriteAndNothingCommits) {
  auto p = Build({Cache(Policy::kRequired, {{"prepare", "fail"}}), {"store", Policy::kRequired, Insert("store")}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.failed_stage, "cache");
  EXPECT_TRUE(out.stored_in.empty());
  EXPECT_TRUE(Rows().empty());
  // Its prepare may have half happened: it is told the change was abandoned.
  EXPECT_TRUE(Has(Journal(), "memory abandon rolled_back g hello"));
}

TEST_F(AfterCommitTest, ABestEffortCacheThatCannotPrepareIsToldTheMessageMayLandAndTheWriteGoesOn) {
  auto p = Build({Cache(Policy::kBestEffort, {{"prepare", "fail"}}), {"store", Policy::kRequired, Insert("store")}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (Lines{"cache"}));
  EXPECT_EQ(out.stored_in, (Lines{"postgresql"}));
  EXPECT_EQ(Rows(), (Lines{"store:hello"}));
  const Lines journal = Journal();
  EXPECT_TRUE(Has(journal, "memory abandon unknown g hello")) << ::testing::PrintToString(journal);
  EXPECT_FALSE(Has(journal, "memory write g hello"));
}

TEST_F(AfterCommitTest, ACacheWriteThatFailsAfterTheCommitLeavesTheMessageStoredAndIsDegraded) {
  auto p = Build({Cache(Policy::kRequired, {{"write", "fail"}}), {"store", Policy::kRequired, Insert("store")}});
  ASSERT_TRUE(p);
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (Lines{"cache"}));
  EXPECT_EQ(out.stored_in, (Lines{"postgresql"}));
  EXPECT_EQ(Rows(), (Lines{"store:hello"}));
}

TEST_F(AfterCommitTest, ACommitWhoseAnswerIsLostIsReportedUnknownAndTheCacheIsToldSo) {
  // A COMMIT that runs a deferred trigger sleeping 3 s, and its backend
  // terminated while it sleeps: the client never hears how it ended.
  ASSERT_TRUE(Sql("CREATE TABLE IF NOT EXISTS engine_sql_slow_commit (guest text)").ok());
  ASSERT_TRUE(Sql("CREATE OR REPLACE FUNCTION engine_sql_sleep() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$")
                  .ok());
  ASSERT_TRUE(Sql("DROP TRIGGER IF EXISTS engine_sql_sleep_at_commit ON engine_sql_slow_commit").ok());
  ASSERT_TRUE(Sql("CREATE CONSTRAINT TRIGGER engine_sql_sleep_at_commit AFTER INSERT ON engine_sql_slow_commit "
                  "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION engine_sql_sleep()")
                  .ok());
  auto p = Build({Cache(),
                  {"store", Policy::kRequired,
                   {{"write_sql", std::string("INSERT INTO engine_sql_slow_commit SELECT $1 WHERE $2 <> ''")},
                    {"read", std::string("miss")}}}});
  ASSERT_TRUE(p);
  std::atomic<bool> terminated{false};
  std::thread killer([&] {
    for (int attempt = 0; attempt < 60 && !terminated; ++attempt) {
      std::this_thread::sleep_for(50ms);
      SqlResult result;
      Status s = Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE query = 'COMMIT' AND state = 'active' AND pid <> pg_backend_pid()",
                     {}, &result);
      if (s.ok() && !result.rows.empty()) terminated = true;
    }
  });
  auto out = p->Write(guest_, Msg("hello"));
  killer.join();
  ASSERT_TRUE(terminated) << "no COMMIT was seen running";
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(out.outcome_unknown) << out.status.ToString();
  EXPECT_NE(out.status.message().find("got no answer"), std::string::npos) << out.status.ToString();
  const Lines journal = Journal();
  EXPECT_TRUE(Has(journal, "memory abandon unknown g hello")) << ::testing::PrintToString(journal);
  EXPECT_FALSE(Has(journal, "memory write g hello"));
}

TEST_F(AfterCommitTest, AnEraseHidesTheCacheFirstAndSettlesItAfterTheCommit) {
  auto p = Build({Cache(),
                  {"store", Policy::kRequired,
                   Insert("store", {{"erase_sql", std::string("DELETE FROM engine_sql_rows WHERE guest = $1")}})}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write(guest_, Msg("hello")).status.ok());
  auto erased = p->Erase(guest_);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_EQ(erased.erased_from, (Lines{"memory", "postgresql"}));
  const Lines journal = Journal();
  const Lines tail(journal.end() - 3, journal.end());
  EXPECT_EQ(tail, (Lines{"memory prepare_erase g", "postgresql erase g", "memory erase g"}));
  EXPECT_TRUE(Rows().empty());
}

TEST_F(AfterCommitTest, ARequiredCacheThatCannotBeginAnEraseStopsItBeforeAnythingIsErased) {
  auto p = Build({Cache(Policy::kRequired, {{"prepare", "fail"}}),
                  {"store", Policy::kRequired,
                   Insert("store", {{"erase_sql", std::string("DELETE FROM engine_sql_rows WHERE guest = $1")}})}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(Sql("INSERT INTO engine_sql_rows VALUES ($1, 'store', 'kept')", {guest_}).ok());
  auto erased = p->Erase(guest_);
  EXPECT_EQ(erased.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(erased.failed_stage, "cache");
  EXPECT_EQ(Rows(), (Lines{"store:kept"}));
  EXPECT_FALSE(Has(Journal(), "postgresql erase g"));
}

TEST_F(AfterCommitTest, WithoutADatabaseACacheIsAnOrdinaryStageWrittenInFileOrder) {
  auto p = Build({Cache(Policy::kRequired), {"after", Policy::kRequired, {}, /*with_database=*/false}});
  ASSERT_TRUE(p);
  ASSERT_FALSE(p->defers_after_commit());
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(Journal(), (Lines{"memory write g hello", "memory write g hello"}));
}

TEST_F(AfterCommitTest, AnAfterCommitStageCannotJoinADatabase) {
  auto errors = BuildErrors("cache", kAfterCommitStage, "main", 9);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("pipeline.toml:9: stage[cache].database: the stage runs after the COMMIT"),
            std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace stowage::engine
