// The journal against a real PostgreSQL: what a best_effort stage fails to
// store is journaled with the message (and only when the message commits),
// replayed once its target is back, stored once, and parked when it keeps
// failing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/pipeline_sql_fixture.h"
#include "journal/journal_store.h"

namespace stowage::engine {
namespace {

using config::Policy;
using namespace std::chrono_literals;

class JournalTest : public PipelineSqlTest {
 protected:
  void SetUp() override {
    PipelineSqlTest::SetUp();
    if (IsSkipped()) return;
    // A name of its own: replayers of other tests never take these entries.
    stage_ = "extra-" + guest_.substr(guest_.size() - 8);
    table_ = "journal_rows_" + guest_.substr(guest_.size() - 8);
  }
  void TearDown() override {
    if (!table_.empty()) {
      (void)Sql("DROP TABLE IF EXISTS " + table_);
      (void)Sql("DELETE FROM stowage_journal WHERE stage = $1", {stage_});
    }
    PipelineSqlTest::TearDown();
  }

  // A best_effort stage that inserts into table_, which does not exist until
  // CreateTable(): its target is "down" until then.
  SqlStage Extra(int replay_max_attempts = 10, int circuit_threshold = 5) {
    SqlStage s{stage_, Policy::kBestEffort,
               {{"write_sql", "INSERT INTO " + table_ + " VALUES ($1, $2)"}, {"read", std::string("miss")}}};
    s.replay_max_attempts = replay_max_attempts;
    s.circuit_threshold = circuit_threshold;
    return s;
  }
  SqlStage Store() { return {"store", Policy::kRequired, Insert("store", {{"set_attribute", "sequence=7"}})}; }
  void CreateTable() { ASSERT_TRUE(Sql("CREATE TABLE " + table_ + " (guest text, content text)").ok()); }

  struct Row {
    std::string reason;
    int attempts;
    bool parked;
    std::string sequence;
    std::string content;
    std::string last_error;
  };
  std::vector<Row> Entries() {
    SqlResult r;
    Status s = Sql(
        "SELECT reason, attempts, parked_at IS NOT NULL, coalesce(attributes->>'sequence', ''), content,"
        " coalesce(last_error, '') FROM stowage_journal WHERE stage = $1 AND guest_id = $2 ORDER BY id",
        {stage_, guest_}, &r);
    if (!s.ok()) return {};  // no table yet: no entries
    std::vector<Row> rows;
    for (const auto& row : r.rows) {
      rows.push_back({row[0].value_or(""), std::stoi(row[1].value_or("0")), row[2].value_or("f") == "t",
                      row[3].value_or(""), row[4].value_or(""), row[5].value_or("")});
    }
    return rows;
  }
  int Stored() {
    SqlResult r;
    EXPECT_TRUE(Sql("SELECT count(*) FROM " + table_ + " WHERE guest = $1", {guest_}, &r).ok());
    return std::stoi(r.value(0, 0).value_or("-1"));
  }
  // Waits up to `limit` for `done`.
  template <typename F>
  bool Eventually(F done, std::chrono::milliseconds limit = 15s) {
    for (auto until = Clock::now() + limit; Clock::now() < until; std::this_thread::sleep_for(100ms))
      if (done()) return true;
    return done();
  }

  std::string stage_, table_;
};

TEST_F(JournalTest, AFailedBestEffortWriteIsJournaledWithTheMessageAndItsAttributes) {
  auto p = Build({Store(), Extra()});
  ASSERT_TRUE(p);
  p->StartReplay();  // creates the table; nothing is replayed while the target is down
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (std::vector<std::string>{stage_}));
  auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].content, "hello");
  EXPECT_EQ(entries[0].sequence, "7");  // the write's attributes, set by the store before
  EXPECT_NE(entries[0].reason.find("write failed"), std::string::npos) << entries[0].reason;
  EXPECT_NE(entries[0].reason.find(table_), std::string::npos) << entries[0].reason;
}

TEST_F(JournalTest, AJournaledMessageIsReplayedOnceItsTargetIsBackAndStoredOnce) {
  // No circuit: a replay that comes before the table would open it for its
  // cool-down (30 s) and hold the replay back that long.
  auto p = Build({Store(), Extra(10, /*circuit_threshold=*/0)});
  ASSERT_TRUE(p);
  p->StartReplay();
  for (const char* content : {"one", "two", "three"}) ASSERT_TRUE(p->Write(guest_, Msg(content)).status.ok());
  ASSERT_EQ(Entries().size(), 3u);
  CreateTable();
  ASSERT_TRUE(Eventually([&] { return Entries().empty(); })) << "the backlog was not replayed";
  EXPECT_EQ(Stored(), 3);
  SqlResult r;
  ASSERT_TRUE(Sql("SELECT string_agg(content, ',' ORDER BY ctid) FROM " + table_ + " WHERE guest = $1", {guest_}, &r)
                  .ok());
  EXPECT_EQ(r.value(0, 0).value_or(""), "one,two,three");  // oldest first
  // Later rounds find nothing more to do: nothing is stored twice.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(Stored(), 3);
  // The replayer's count shows the backlog gone.
  EXPECT_TRUE(Eventually([&] {
    for (const auto& b : p->JournalBacklogs())
      if (b.stage == stage_ && b.pending > 0) return false;
    return true;
  }));
}

TEST_F(JournalTest, NothingIsJournaledWhenTheRequestFails) {
  auto p = Build({Extra(), Store(), {"breaks", Policy::kRequired, {{"write", std::string("fail")}}}});
  ASSERT_TRUE(p);
  p->StartReplay();
  auto out = p->Write(guest_, Msg("hello"));
  EXPECT_FALSE(out.status.ok());
  EXPECT_TRUE(Entries().empty());
  EXPECT_TRUE(Rows().empty());
}

TEST_F(JournalTest, AnEntryCommitsOnlyWithItsMessage) {
  // The store's COMMIT fails (a deferred constraint): the message and its
  // journal entry are both absent.
  ASSERT_TRUE(Sql("INSERT INTO engine_sql_commit_check VALUES ($1)", {guest_}).ok());
  auto p = Build({Store(), Extra(),
                  {"dup", Policy::kRequired,
                   {{"write_sql", std::string("INSERT INTO engine_sql_commit_check SELECT $1 WHERE $2 <> ''")},
                    {"read", std::string("miss")}}}});
  ASSERT_TRUE(p);
  p->StartReplay();
  auto out = p->Write(guest_, Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Entries().empty());
  EXPECT_TRUE(Rows().empty());
}

TEST_F(JournalTest, AStageSkippedByItsOpenCircuitIsJournaledToo) {
  auto p = Build({Store(), Extra(10, /*circuit_threshold=*/1)});
  ASSERT_TRUE(p);
  p->StartReplay();
  ASSERT_TRUE(p->Write(guest_, Msg("one")).status.ok());  // fails, opens the circuit
  ASSERT_TRUE(p->Write(guest_, Msg("two")).status.ok());  // skipped
  auto entries = Entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_NE(entries[0].reason.find("write failed"), std::string::npos) << entries[0].reason;
  EXPECT_NE(entries[1].reason.find("circuit"), std::string::npos) << entries[1].reason;
}

TEST_F(JournalTest, JournalFalseJournalsNothing) {
  SqlStage extra = Extra();
  extra.journal = false;
  auto p = Build({Store(), extra});
  ASSERT_TRUE(p);
  p->StartReplay();
  ASSERT_TRUE(p->Write(guest_, Msg("hello")).status.ok());
  EXPECT_TRUE(Entries().empty());
}

TEST_F(JournalTest, AnEntryThatKeepsFailingIsParkedAfterItsAttemptsAndNotReplayedAgain) {
  auto p = Build({Store(), Extra(/*replay_max_attempts=*/2, /*circuit_threshold=*/0)});
  ASSERT_TRUE(p);
  p->StartReplay();
  ASSERT_TRUE(p->Write(guest_, Msg("hello")).status.ok());
  ASSERT_TRUE(Eventually([&] {
    auto e = Entries();
    return e.size() == 1 && e[0].parked;
  })) << "not parked";
  auto entries = Entries();
  EXPECT_EQ(entries[0].attempts, 2);
  EXPECT_NE(entries[0].last_error.find(table_), std::string::npos) << entries[0].last_error;
  // Parked: kept, and not replayed even once the target is back.
  CreateTable();
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(Entries().size(), 1u);
  EXPECT_EQ(Stored(), 0);
  // Until an operator requeues it.
  journal::JournalStore& store = *p->journals().front();
  std::uint64_t requeued = 0;
  ASSERT_TRUE(store.Requeue({stage_, std::nullopt, true}, Deadline::After(5s), &requeued).ok());
  EXPECT_EQ(requeued, 1u);
  ASSERT_TRUE(Eventually([&] { return Entries().empty(); }));
  EXPECT_EQ(Stored(), 1);
}

TEST_F(JournalTest, ErasingAGuestErasesItsJournalEntries) {
  auto p = Build({{"store", Policy::kRequired, Insert("store", {{"erase_sql", std::string(
                                                                   "DELETE FROM engine_sql_rows WHERE guest = $1")}})},
                  Extra(10, /*circuit_threshold=*/0)});
  ASSERT_TRUE(p);
  p->StartReplay();
  ASSERT_TRUE(p->Write(guest_, Msg("secret")).status.ok());
  ASSERT_EQ(Entries().size(), 1u);
  auto erased = p->Erase(guest_);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_TRUE(Entries().empty()) << "the erased guest's message stays in the journal";
  EXPECT_TRUE(Rows().empty());
}

TEST_F(JournalTest, AStageWithoutADatabaseIsJournaledInTheStoresDatabaseAndReplayedOnce) {
  const auto down = std::filesystem::temp_directory_path() / (guest_ + ".down");
  std::ofstream(down) << "down";
  SqlStage remote{stage_, Policy::kBestEffort, {{"fail_while", down.string()}}, /*with_database=*/false};
  auto p = Build({Store(), remote});
  ASSERT_TRUE(p);
  p->StartReplay();
  auto out = p->Write(guest_, Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (std::vector<std::string>{stage_}));
  ASSERT_EQ(Entries().size(), 1u);
  EXPECT_EQ(Entries()[0].sequence, "7");
  std::filesystem::remove(down);  // the target is back
  ASSERT_TRUE(Eventually([&] { return Entries().empty(); }));
  std::this_thread::sleep_for(1500ms);
  const auto calls = Journal();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "memory write g hello replay"), 1)
      << ::testing::PrintToString(calls);
}

}  // namespace
}  // namespace stowage::engine
