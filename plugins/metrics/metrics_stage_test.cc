// MetricsStage against real PostgreSQL: each test in a fresh database on the
// server of STOWAGE_TEST_DATABASE_URL, each POST's admit() and write() inside
// BEGIN..COMMIT on a leased connection, as the host runs them.
#include "metrics_stage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include "scratch_database.h"
#include "support/services.h"

namespace stowage::metrics {
namespace {

using std::chrono::microseconds;
using stowage::testing::CapturingLogger;
using stowage::testing::ScratchDatabase;
using stowage::testing::WriteTransaction;
using ::testing::HasSubstr;
using ::testing::Not;

StageConfig Config(std::map<std::string, ConfigValue> overrides = {}) {
  // Tests flush explicitly unless they say otherwise.
  overrides.emplace("flush_interval_ms", std::int64_t{3'600'000});
  return ConfigWithDefaults(MetricsStage::config_schema(), std::move(overrides));
}

class MetricsStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>("metrics");
    ASSERT_TRUE(db_->ok());
  }

  std::unique_ptr<MetricsStage> Make(std::map<std::string, ConfigValue> overrides = {}) {
    StageEnvironment env{log_, &db_->database()};
    return std::make_unique<MetricsStage>(Config(std::move(overrides)), env);
  }

  // A user id no other test uses.
  std::string User(const std::string& name) {
    return name + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  // One POST as the host runs it: admit, then write, in one transaction that
  // commits when both succeed and rolls back otherwise. Returns the first
  // failure. With `replay`, the host's replay of it from its journal.
  Status Post(MetricsStage& stage, const std::string& user, bool replay = false) {
    WriteTransaction tx(db_->database());
    if (!tx.ok()) return Status::Unavailable("no connection");
    Attributes attributes;
    WriteContext ctx{user, message_,   Deadline::After(std::chrono::seconds(10)),
                     log_, attributes, tx.session()};
    ctx.replay = replay;
    Status status = stage.admit(ctx);
    if (status.ok()) status = stage.write(ctx);
    if (!status.ok()) {
      EXPECT_TRUE(tx.rollback().ok());
      return status;
    }
    Status committed = tx.commit();
    EXPECT_TRUE(committed.ok()) << committed.ToString();
    return status;
  }

  // Columns of the user's usage_metrics row, "<null>" when there is none.
  std::string Usage(const std::string& user, const std::string& column) {
    return db_->Scalar("SELECT (" + column + ")::text FROM usage_metrics WHERE user_id = $1", {user});
  }

  // The newest cache_metrics row as "hits misses total avg".
  std::string NewestCacheMetrics() {
    return db_->Scalar(
        "SELECT cache_hits || ' ' || cache_misses || ' ' || total_requests || ' ' || avg_response_time"
        " FROM cache_metrics ORDER BY id DESC LIMIT 1");
  }

  std::string NextMonth() {
    return db_->Scalar(
        "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY-MM-DD')");
  }

  CapturingLogger log_;
  std::unique_ptr<ScratchDatabase> db_;
  const Message message_{"user", "Hello!", "2026-11-05T10:00:00.000000Z"};
};

TEST_F(MetricsStageTest, ConstructionCreatesTheTablesAndRecordsTheMigration) {
  auto stage = Make();
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM stowage_schema_migrations WHERE component = 'metrics'"), "1");
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM usage_metrics"), "0");
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM cache_metrics"), "0");
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'cache_metrics_recorded_at_idx'"),
            "1");
  auto again = Make();  // a second stage finds the schema current
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM stowage_schema_migrations WHERE component = 'metrics'"), "1");
}

TEST_F(MetricsStageTest, FirstPostCreatesTheUsersRow) {
  auto stage = Make();
  const std::string user = User("guest");
  ASSERT_EQ(Usage(user, "id"), "<null>");

  ASSERT_TRUE(Post(*stage, user).ok()) << log_.All();

  EXPECT_EQ(Usage(user, "tier"), "guest");
  EXPECT_EQ(Usage(user, "total_requests"), "1");
  EXPECT_EQ(Usage(user, "cache_hits"), "0");
  EXPECT_EQ(Usage(user, "cache_misses"), "1");
  EXPECT_EQ(Usage(user, "monthly_request_limit"), "1000");
  EXPECT_EQ(Usage(user, "month_requests"), "1");
  EXPECT_EQ(Usage(user, "month_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date"), "true");
  EXPECT_THAT(log_.All(),
              HasSubstr("info: ✓ Created new usage metrics record: counted request 1 of 1000 this "
                        "month for guest " +
                        user));
}

TEST_F(MetricsStageTest, EveryPostAddsOneRequestAndOneMiss) {
  auto stage = Make();
  const std::string user = User("guest");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Post(*stage, user).ok()) << log_.All();

  EXPECT_EQ(Usage(user, "total_requests"), "3");
  EXPECT_EQ(Usage(user, "cache_misses"), "3");
  EXPECT_EQ(Usage(user, "cache_hits"), "0");
  EXPECT_EQ(Usage(user, "month_requests"), "3");
  EXPECT_THAT(log_.All(),
              HasSubstr("✓ Updated usage metrics: counted request 3 of 1000 this month for guest " + user));
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM usage_metrics WHERE user_id = $1", {user}), "1");
}

TEST_F(MetricsStageTest, TwoUsersAreCountedApart) {
  auto stage = Make();
  const std::string a = User("a"), b = User("b");
  ASSERT_TRUE(Post(*stage, a).ok());
  ASSERT_TRUE(Post(*stage, a).ok());
  ASSERT_TRUE(Post(*stage, b).ok());
  EXPECT_EQ(Usage(a, "total_requests"), "2");
  EXPECT_EQ(Usage(b, "total_requests"), "1");
}

TEST_F(MetricsStageTest, ANewMonthRestartsTheMonthlyCount) {
  auto stage = Make();
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  ASSERT_TRUE(Post(*stage, user).ok());
  db_->Query(
      "UPDATE usage_metrics SET month_start = (month_start - interval '1 month')::date WHERE user_id = $1",
      {user});

  ASSERT_TRUE(Post(*stage, user).ok());

  EXPECT_EQ(Usage(user, "month_requests"), "1");
  EXPECT_EQ(Usage(user, "total_requests"), "3");
  EXPECT_EQ(Usage(user, "month_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date"), "true");
}

TEST_F(MetricsStageTest, APostBeyondTheMonthlyLimitIsRejectedAndNotCounted) {
  auto stage = Make({{"guest_monthly_limit", std::int64_t{2}}});
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  ASSERT_TRUE(Post(*stage, user).ok());

  Status refused = Post(*stage, user);

  EXPECT_EQ(refused.code(), StatusCode::kRejected);
  EXPECT_EQ(refused.message(),
            "guest " + user + " reached its monthly request limit of 2; it resets on " + NextMonth());
  // The transaction was rolled back: the refused request left no count.
  EXPECT_EQ(Usage(user, "total_requests"), "2");
  EXPECT_EQ(Usage(user, "month_requests"), "2");
}

// SDK 1.3: the host replays a request whose metrics stage failed; the
// failed count was rolled back with its SAVEPOINT, so the replay counts it.
TEST_F(MetricsStageTest, AReplayIsCountedOnceLikeAPost) {
  auto stage = Make();
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());

  ASSERT_TRUE(Post(*stage, user, /*replay=*/true).ok()) << log_.All();

  EXPECT_EQ(Usage(user, "total_requests"), "2");
  EXPECT_EQ(Usage(user, "cache_misses"), "2");
  EXPECT_EQ(Usage(user, "month_requests"), "2");
  EXPECT_THAT(
      log_.All(),
      HasSubstr("info: ✓ Updated usage metrics: counted replayed request 2 of 1000 this month for guest " +
                user));
}

TEST_F(MetricsStageTest, AReplayBeyondTheMonthlyLimitIsCountedButNotRefused) {
  auto stage = Make({{"guest_monthly_limit", std::int64_t{2}}});
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  ASSERT_TRUE(Post(*stage, user).ok());

  Status replayed = Post(*stage, user, /*replay=*/true);

  EXPECT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(Usage(user, "total_requests"), "3");
  EXPECT_EQ(Usage(user, "month_requests"), "3");
  EXPECT_THAT(log_.All(), HasSubstr("info: replayed request of guest " + user +
                                    " is beyond its monthly limit of 2: counted, not refused"));
  EXPECT_THAT(
      log_.All(),
      HasSubstr("info: ✓ Updated usage metrics: counted replayed request 3 of 2 this month for guest " +
                user));

  // A new POST is still refused, and not counted.
  EXPECT_EQ(Post(*stage, user).code(), StatusCode::kRejected);
  EXPECT_EQ(Usage(user, "total_requests"), "3");
}

TEST_F(MetricsStageTest, TheLimitIsTheOneStoredWithTheUser) {
  auto stage = Make({{"guest_monthly_limit", std::int64_t{1}}});
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  db_->Query("UPDATE usage_metrics SET monthly_request_limit = 5 WHERE user_id = $1", {user});
  EXPECT_TRUE(Post(*stage, user).ok());
  EXPECT_THAT(log_.All(), HasSubstr("counted request 2 of 5 this month"));
}

TEST_F(MetricsStageTest, WithoutEnforcementThePostGoesThroughAndIsCounted) {
  auto stage = Make({{"guest_monthly_limit", std::int64_t{1}}, {"enforce_limit", false}});
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  EXPECT_TRUE(Post(*stage, user).ok());
  EXPECT_EQ(Usage(user, "month_requests"), "2");
  EXPECT_THAT(log_.All(), HasSubstr("counted request 2 of 1 this month"));
}

TEST_F(MetricsStageTest, ObservedTrafficIsFlushedToBothTables) {
  auto stage = Make();
  const std::string a = User("a"), b = User("b");
  ASSERT_TRUE(Post(*stage, a).ok());
  stage->observe({RequestKind::kWrite, a, true, false, microseconds(8000)});
  stage->observe({RequestKind::kRead, a, true, true, microseconds(1000)});
  stage->observe({RequestKind::kRead, a, true, true, microseconds(2000)});
  stage->observe({RequestKind::kRead, a, true, false, microseconds(4000)});
  stage->observe({RequestKind::kRead, b, true, false, microseconds(5000)});
  stage->observe({RequestKind::kErase, b, true, false, microseconds(9000)});  // not traffic of the cache

  ASSERT_TRUE(stage->flush(Deadline::After(std::chrono::seconds(10))).ok()) << log_.All();

  // a: one POST (counted by admit) and three reads, two of them hits.
  EXPECT_EQ(Usage(a, "total_requests"), "4");
  EXPECT_EQ(Usage(a, "cache_hits"), "2");
  EXPECT_EQ(Usage(a, "cache_misses"), "2");
  EXPECT_EQ(Usage(a, "month_requests"), "1");
  // b never wrote: its read makes no row (an unknown guest's GET creates
  // nothing), and is counted in cache_metrics only.
  EXPECT_EQ(Usage(b, "id"), "<null>");
  // Five requests: 2 hits, 3 misses (two reads, one write), 20 ms in all.
  EXPECT_EQ(NewestCacheMetrics(), "2 3 5 4");
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM cache_metrics"), "1");

  // A window without traffic adds no row.
  ASSERT_TRUE(stage->flush(Deadline::After(std::chrono::seconds(10))).ok());
  EXPECT_EQ(db_->Scalar("SELECT count(*) FROM cache_metrics"), "1");
}

TEST_F(MetricsStageTest, TheFlushThreadWritesEveryInterval) {
  auto stage = Make({{"flush_interval_ms", std::int64_t{50}}});
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  stage->observe({RequestKind::kRead, user, true, true, microseconds(3000)});
  std::string hits;
  for (int i = 0; i < 100 && (hits = Usage(user, "cache_hits")) != "1"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(hits, "1");
  EXPECT_EQ(NewestCacheMetrics(), "1 0 1 3");
}

TEST_F(MetricsStageTest, DestructionFlushesWhatIsLeft) {
  const std::string user = User("guest");
  {
    auto stage = Make();
    ASSERT_TRUE(Post(*stage, user).ok());
    stage->observe({RequestKind::kRead, user, true, false, microseconds(1500)});
  }
  EXPECT_EQ(Usage(user, "cache_misses"), "2");  // the POST's and the read's
  EXPECT_EQ(NewestCacheMetrics(), "0 1 1 1.5");
}

TEST_F(MetricsStageTest, AFailedFlushKeepsItsCountsForTheNextOne) {
  auto stage = Make();
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());  // its row: 1 request, 1 miss
  stage->observe({RequestKind::kRead, user, true, true, microseconds(1000)});
  db_->Query("ALTER TABLE cache_metrics RENAME TO cache_metrics_away");

  Status failed = stage->flush(Deadline::After(std::chrono::seconds(10)));
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(failed.message(), HasSubstr("cache_metrics"));
  // The whole flush was rolled back, the user's reads included.
  EXPECT_EQ(Usage(user, "cache_hits"), "0");

  db_->Query("ALTER TABLE cache_metrics_away RENAME TO cache_metrics");
  stage->observe({RequestKind::kRead, user, true, false, microseconds(3000)});
  ASSERT_TRUE(stage->flush(Deadline::After(std::chrono::seconds(10))).ok()) << log_.All();
  EXPECT_EQ(Usage(user, "cache_hits"), "1");
  EXPECT_EQ(Usage(user, "cache_misses"), "2");
  EXPECT_EQ(NewestCacheMetrics(), "1 1 2 2");
}

TEST_F(MetricsStageTest, ADroppedUsageTableFailsAdmissionNamingTheTable) {
  auto stage = Make();
  db_->Query("DROP TABLE usage_metrics");

  Status status = Post(*stage, User("guest"));

  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.code(), StatusCode::kRejected);  // not the user's fault: the request may go on
  EXPECT_THAT(status.message(), HasSubstr("usage_metrics"));
  EXPECT_THAT(status.message(), HasSubstr("could not count the request of guest " + User("guest")));
  EXPECT_THAT(log_.All(), Not(HasSubstr("could not count")));  // the host logs what it is given
}

TEST_F(MetricsStageTest, EraseKeepsTheAccounting) {
  auto stage = Make();
  const std::string user = User("guest");
  ASSERT_TRUE(Post(*stage, user).ok());
  GuestContext ctx{user, Deadline::After(std::chrono::seconds(10)), log_, nullptr};
  EraseResult erased = stage->erase(ctx);
  EXPECT_TRUE(erased.status.ok());
  EXPECT_FALSE(erased.held);
  EXPECT_EQ(Usage(user, "total_requests"), "1");
}

TEST_F(MetricsStageTest, StoresNoContent) {
  EXPECT_EQ(Make()->target(), "");
}

TEST(MetricsStageConstructionTest, RefusesAStageWithoutADatabase) {
  CapturingLogger log;
  StageEnvironment env{log, nullptr};
  try {
    MetricsStage stage(Config(), env);
    FAIL() << "a metrics stage without a database was built";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("add database = \"<name>\""));
  }
}

TEST(MetricsStageConstructionTest, AnUnreachableDatabaseIsMigratedBeforeTheFirstUse) {
  stowage::testing::ServiceInstance server(stowage::testing::Service::kPostgres);
  ASSERT_TRUE(server.running());
  ASSERT_TRUE(server.Stop());
  CapturingLogger log;
  config::DatabaseSettings settings;
  settings.name = "main";
  settings.url = server.url();
  settings.pool_size = 2;
  database::PostgresDatabase database(settings, std::make_shared<CapturingLogger>());
  StageEnvironment env{log, &database};
  MetricsStage stage(Config(), env);
  EXPECT_THAT(log.All(), HasSubstr("warn: "));
  EXPECT_THAT(log.All(), HasSubstr("the tables will be created before the first use"));

  ASSERT_TRUE(server.Start());
  auto acquired = database.Acquire(Deadline::After(std::chrono::seconds(10)));
  ASSERT_TRUE(acquired.status.ok()) << acquired.status.ToString();
  SqlSession& sql = *acquired.lease;
  acquired.lease->set_deadline(Deadline::After(std::chrono::seconds(10)));
  ASSERT_TRUE(sql.execute("BEGIN", {}).ok());
  Attributes attributes;
  const std::string user = "late-guest";
  const Message message{"user", "Hi", "2026-11-05T10:00:00.000000Z"};
  WriteContext ctx{user, message, Deadline::After(std::chrono::seconds(10)), log, attributes, &sql};
  Status status = stage.admit(ctx);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_TRUE(sql.execute("COMMIT", {}).ok());
  SqlResult result;
  ASSERT_TRUE(
      sql.execute("SELECT total_requests::text FROM usage_metrics WHERE user_id = $1", {user}, &result).ok());
  EXPECT_EQ(result.value(0, 0).value_or("<null>"), "1");
}

}  // namespace
}  // namespace stowage::metrics
