// Idempotency-Keys recorded with the message they protect, against a real
// PostgreSQL: a retry on the same or another pipeline (another stowaged)
// gets the recorded answer and stores nothing; the row costs no round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "engine/pipeline_sql_fixture.h"
#include "idempotency/fingerprint.h"
#include "idempotency/idempotency_store.h"
#include "stowage/chat/attributes.h"

namespace stowage::engine {
namespace {

using config::Policy;
using namespace std::chrono_literals;

using Lines = std::vector<std::string>;

class IdempotencyTest : public PipelineSqlTest {
 protected:
  std::shared_ptr<Pipeline> BuildStore() {
    return Build({{"cache", Policy::kRequired, {}, /*with_database=*/false, kAfterCommitStage},
                  {"store", Policy::kRequired, Insert("store", {{"set_attribute", "message_id=41"}})}});
  }

  // A claim whose recorded answer names the message id the write got.
  IdempotencyClaim Claim(const std::string& key, const std::string& request) {
    return {key, idempotency::Fingerprint(request), [](const WriteOutcome& expected) {
              return "stored " + expected.attributes.get(stowage::chat::kMessageId).value_or("?") + " in " +
                     std::to_string(expected.stored_in.size()) + " targets";
            }};
  }

  std::size_t Count(const Lines& lines, const std::string& line) {
    return static_cast<std::size_t>(std::count(lines.begin(), lines.end(), line));
  }
};

TEST_F(IdempotencyTest, AKeyIsRecordedWithTheMessageAndARetryGetsTheRecordedAnswerAndStoresNothing) {
  auto p = BuildStore();
  ASSERT_TRUE(p);
  const auto claim = Claim("key-1", "body");
  auto first = p->Write(guest_, Msg("hello"), &claim);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_EQ(first.claim, WriteOutcome::Claim::kRecorded);

  auto retry = p->Write(guest_, Msg("hello"), &claim);
  ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
  EXPECT_EQ(retry.claim, WriteOutcome::Claim::kReplay);
  EXPECT_EQ(retry.replay, "stored 41 in 2 targets");
  EXPECT_EQ(Rows(), (Lines{"store:hello"}));
  // The retry's change of the cache was abandoned, never written.
  const Lines journal = Journal();
  EXPECT_EQ(Count(journal, "memory write g hello"), 1u) << ::testing::PrintToString(journal);
  EXPECT_EQ(Count(journal, "memory abandon rolled_back g hello"), 1u) << ::testing::PrintToString(journal);
}

TEST_F(IdempotencyTest, ARetryOnAnotherInstanceSharingTheDatabaseGetsTheRecordedAnswer) {
  auto one = BuildStore();
  auto other = BuildStore();  // its own connections, caches and keys in memory: another stowaged
  ASSERT_TRUE(one && other);
  const auto claim = Claim("key-2", "body");
  ASSERT_TRUE(one->Write(guest_, Msg("hello"), &claim).status.ok());
  auto retry = other->Write(guest_, Msg("hello"), &claim);
  ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
  EXPECT_EQ(retry.claim, WriteOutcome::Claim::kReplay);
  EXPECT_EQ(retry.replay, "stored 41 in 2 targets");
  EXPECT_EQ(Rows(), (Lines{"store:hello"}));
}

TEST_F(IdempotencyTest, TheSameKeyWithAnotherRequestIsAConflictAndStoresNothing) {
  auto p = BuildStore();
  ASSERT_TRUE(p);
  const auto claim = Claim("key-3", "body");
  ASSERT_TRUE(p->Write(guest_, Msg("hello"), &claim).status.ok());
  const auto other_body = Claim("key-3", "another body");
  auto out = p->Write(guest_, Msg("something else"), &other_body);
  EXPECT_EQ(out.claim, WriteOutcome::Claim::kConflict);
  EXPECT_EQ(out.status.code(), StatusCode::kConflict);
  EXPECT_NE(out.status.message().find("key-3"), std::string::npos) << out.status.ToString();
  EXPECT_EQ(Rows(), (Lines{"store:hello"}));
}

TEST_F(IdempotencyTest, KeysAreScopedByGuest) {
  auto p = BuildStore();
  ASSERT_TRUE(p);
  const auto claim = Claim("shared-key", "body");
  ASSERT_TRUE(p->Write(guest_, Msg("hello"), &claim).status.ok());
  const std::string other_guest = guest_ + "-other";
  auto out = p->Write(other_guest, Msg("hello"), &claim);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.claim, WriteOutcome::Claim::kRecorded);
}

TEST_F(IdempotencyTest, TheKeysRowTravelsWithTheCommitAndCostsNoRoundTrip) {
  auto p = BuildStore();
  ASSERT_TRUE(p);
  database::PostgresDatabase& db = *p->stages()[1]->database;
  const auto warm = Claim("warm", "body");
  ASSERT_TRUE(p->Write(guest_, Msg("warm"), &warm).status.ok());  // migrates, prepares the statements

  std::uint64_t before = db.round_trips();
  ASSERT_TRUE(p->Write(guest_, Msg("without a key")).status.ok());
  const std::uint64_t without = db.round_trips() - before;
  before = db.round_trips();
  const auto claim = Claim("key-4", "body");
  ASSERT_TRUE(p->Write(guest_, Msg("with a key"), &claim).status.ok());
  EXPECT_EQ(db.round_trips() - before, without);
}

TEST_F(IdempotencyTest, KeysOlderThanTheirLifetimeAreSweptAndThenForgotten) {
  auto p = BuildStore();
  ASSERT_TRUE(p);
  const auto claim = Claim("key-5", "body");
  ASSERT_TRUE(p->Write(guest_, Msg("hello"), &claim).status.ok());
  idempotency::IdempotencyStore* store = p->idempotency_store();
  ASSERT_NE(store, nullptr);
  std::optional<idempotency::IdempotencyStore::Recorded> found;
  ASSERT_TRUE(store->Find(guest_, "key-5", Deadline::After(5s), &found).ok());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->answer, "stored 41 in 2 targets");

  // A store that keeps keys 0 s sweeps every key recorded before now.
  auto log = std::make_shared<NullLog>();
  idempotency::IdempotencyStore impatient(p->stages()[1]->database, log, 0s, 3600s);
  std::this_thread::sleep_for(10ms);
  std::uint64_t deleted = 0;
  ASSERT_TRUE(impatient.Sweep(Deadline::After(10s), &deleted).ok());
  EXPECT_GE(deleted, 1u);
  ASSERT_TRUE(store->Find(guest_, "key-5", Deadline::After(5s), &found).ok());
  EXPECT_FALSE(found.has_value());
}

TEST_F(IdempotencyTest, TheFirstKeyedWritesCreateTheTableEvenWhenTheyHoldEveryConnection) {
  // As on a new database: the table is created by the first keyed write.
  ASSERT_TRUE(Sql("DROP TABLE IF EXISTS stowage_idempotency").ok());
  ASSERT_TRUE(Sql("DELETE FROM stowage_schema_migrations WHERE component = 'stowage.idempotency'").ok());
  constexpr int kWriters = 4;
  auto p = Build({{"store", Policy::kRequired, Insert("store")}}, /*pool_size=*/kWriters);
  ASSERT_TRUE(p);
  std::vector<WriteOutcome> outcomes(kWriters);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      const auto claim = Claim("first-" + std::to_string(i), "body");
      outcomes[i] = p->Write(guest_ + "-" + std::to_string(i), Msg("hello"), &claim);
    });
  }
  for (auto& writer : writers) writer.join();
  for (const auto& out : outcomes) {
    EXPECT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.claim, WriteOutcome::Claim::kRecorded);
  }
}

TEST_F(IdempotencyTest, APipelineWithoutADatabaseKeepsNoKeys) {
  auto p = Build({{"memory", Policy::kRequired, {}, /*with_database=*/false}});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->idempotency_store(), nullptr);
  const auto claim = Claim("key-6", "body");
  auto out = p->Write(guest_, Msg("hello"), &claim);
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.claim, WriteOutcome::Claim::kNone);
}

}  // namespace
}  // namespace stowage::engine
