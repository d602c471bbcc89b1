// The fault suite's checker must be able to fail: small hand-made ledgers,
// PostgreSQL rows and GET answers, each with one kind of damage, and the
// count that must see it.
#include <gtest/gtest.h>

#include "checker.h"
#include "ledger.h"

namespace stowage::faults {
namespace {

Attempt Ok(Seconds sent, std::int64_t message_id, std::int64_t sequence, bool replayed = false,
           int instance = 0) {
  Attempt attempt;
  attempt.sent = sent;
  attempt.answered = sent + 0.01;
  attempt.instance = instance;
  attempt.status = 200;
  attempt.replayed = replayed;
  attempt.message_id = message_id;
  attempt.sequence = sequence;
  return attempt;
}

Attempt Failed(Seconds sent, Seconds answered, int status = 503) {
  Attempt attempt;
  attempt.sent = sent;
  attempt.answered = answered;
  attempt.status = status;
  attempt.error = status == 0 ? "connecting failed" : "stage_failed";
  return attempt;
}

MessageRecord Message(const std::string& guest, const std::string& content, std::vector<Attempt> attempts) {
  MessageRecord record;
  record.guest = guest;
  record.key = "k-" + content;
  record.content = content;
  record.attempts = std::move(attempts);
  return record;
}

ShownHistory Shown(std::vector<std::string> contents) {
  ShownHistory shown;
  shown.instance = "stowaged 0";
  shown.answered = true;
  shown.contents = std::move(contents);
  return shown;
}

// Guest g holds a, b, c at sequences 0..2 (ids 10..12), acknowledged,
// stored and shown as they should be: every * count is 0.
CaseEvidence Healthy() {
  CaseEvidence evidence;
  evidence.messages = {Message("g", "a", {Ok(1, 10, 0)}), Message("g", "b", {Ok(2, 11, 1)}),
                       Message("g", "c", {Ok(3, 12, 2)})};
  evidence.stored["g"] = {{1, 10, 0, "a"}, {1, 11, 1, "b"}, {1, 12, 2, "c"}};
  evidence.shown["g"] = {Shown({"a", "b", "c"})};
  return evidence;
}

TEST(CheckCase, AHealthyCasePasses) {
  auto report = CheckCase(Healthy());
  EXPECT_TRUE(report.passed()) << testing::PrintToString(report.Failures());
  EXPECT_EQ(report.counts.acknowledged, 3);
  EXPECT_EQ(report.counts.abandoned, 0);
  EXPECT_EQ(report.counts.attempts, 3);
  EXPECT_EQ(report.counts.retries, 0);
  EXPECT_TRUE(report.examples.empty());
}

TEST(CheckCase, CountsRetriesRepeatsAndReplays) {
  auto evidence = Healthy();
  evidence.messages[1].attempts = {Failed(2, 2.5, 0), Failed(2.6, 2.7, 409),
                                   Ok(2.8, 11, 1, /*replayed=*/true)};
  evidence.messages[2].repeat_attempts = {Ok(4, 12, 2, /*replayed=*/true)};
  auto report = CheckCase(evidence);
  EXPECT_TRUE(report.passed()) << testing::PrintToString(report.Failures());
  EXPECT_EQ(report.counts.attempts, 6);
  EXPECT_EQ(report.counts.retries, 2);
  EXPECT_EQ(report.counts.repeats, 1);
  EXPECT_EQ(report.counts.replays_seen, 2);
}

TEST(CheckCase, AnAcknowledgedMessageMissingFromPostgresIsLost) {
  auto evidence = Healthy();
  evidence.stored["g"] = {{1, 10, 0, "a"}, {1, 12, 1, "c"}};
  evidence.shown["g"] = {Shown({"a", "c"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.lost, 1);
  ASSERT_EQ(report.examples["lost"].size(), 1u);
  EXPECT_EQ(report.examples["lost"][0].content, "b");
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"lost"});
}

TEST(CheckCase, AnAbandonedMessageMissingFromPostgresIsNotLost) {
  auto evidence = Healthy();
  evidence.messages.push_back(Message("g", "d", {Failed(4, 9, 0)}));
  auto report = CheckCase(evidence);
  EXPECT_TRUE(report.passed()) << testing::PrintToString(report.Failures());
  EXPECT_EQ(report.counts.abandoned, 1);
}

TEST(CheckCase, AContentStoredTwiceInPostgresIsCounted) {
  auto evidence = Healthy();
  evidence.stored["g"].push_back({1, 13, 3, "b"});
  evidence.shown["g"] = {Shown({"a", "b", "c", "b"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.stored_twice, 1);
  EXPECT_EQ(report.counts.out_of_order, 0) << "GET shows what PostgreSQL holds, in its order";
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"stored twice"});
}

TEST(CheckCase, ARepeatAnsweredWithAnotherMessageIdIsStoredTwice) {
  auto evidence = Healthy();
  evidence.messages[0].repeat_attempts = {Ok(5, 99, 3, /*replayed=*/true)};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.stored_twice, 1);
}

TEST(CheckCase, ARepeatAnsweredWithoutReplayedHeaderIsStoredTwice) {
  auto evidence = Healthy();
  evidence.messages[0].repeat_attempts = {Failed(5, 5.1), Ok(5.2, 10, 0, /*replayed=*/false)};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.stored_twice, 1);
  EXPECT_EQ(report.counts.retries, 1);
}

TEST(CheckCase, ARepeatStoredAgainCountsOnce) {
  auto evidence = Healthy();
  evidence.messages[0].repeat_attempts = {Ok(5, 13, 3, /*replayed=*/false)};
  evidence.stored["g"].push_back({1, 13, 3, "a"});
  evidence.shown["g"] = {Shown({"a", "b", "c", "a"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.stored_twice, 1) << "one message, found by both checks";
  EXPECT_EQ(report.examples["stored twice"].size(), 2u);
}

TEST(CheckCase, AMessageShownButNotInPostgresIsOrphaned) {
  auto evidence = Healthy();
  evidence.shown["g"] = {Shown({"a", "x", "b", "c"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.orphaned, 1);
  EXPECT_EQ(report.examples["orphaned"][0].content, "x");
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"orphaned"});
}

TEST(CheckCase, AMessageInPostgresButNotShownIsHidden) {
  auto evidence = Healthy();
  evidence.shown["g"] = {Shown({"c"})};  // as after a Redis restart: older history gone
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.hidden, 2);
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"hidden"});
}

TEST(CheckCase, AFailedFinalGetHidesEverything) {
  auto evidence = Healthy();
  ShownHistory failed;
  failed.instance = "stowaged 1";
  failed.failure = "status 503 stage_failed";
  evidence.shown["g"].push_back(failed);
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.hidden, 3);
}

TEST(CheckCase, HiddenIsCountedPerInstance) {
  auto evidence = Healthy();
  evidence.shown["g"] = {Shown({"a", "b"}), Shown({"a", "c"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.hidden, 2);
}

TEST(CheckCase, AGetInAnotherOrderThanTheSequencesIsOutOfOrder) {
  auto evidence = Healthy();
  evidence.shown["g"] = {Shown({"b", "a", "c"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.out_of_order, 1);
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"out of order"});
}

TEST(CheckCase, AMessageShownTwiceIsOutOfOrder) {
  auto evidence = Healthy();
  evidence.shown["g"] = {Shown({"a", "b", "b", "c"})};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.out_of_order, 1);
  EXPECT_EQ(report.counts.hidden, 0);
  EXPECT_EQ(report.counts.orphaned, 0);
}

TEST(CheckCase, SequencesWithAGapAreCounted) {
  auto evidence = Healthy();
  evidence.stored["g"][2].sequence = 3;
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.sequence_gaps, 1);
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"sequence gaps"});
}

TEST(CheckCase, SequencesNotStartingAtZeroAreAGap) {
  auto evidence = Healthy();
  for (auto& row : evidence.stored["g"]) ++row.sequence;
  EXPECT_EQ(CheckCase(evidence).counts.sequence_gaps, 1);
}

TEST(CheckCase, OnlineViolationsFailTheCase) {
  auto evidence = Healthy();
  evidence.online_checks = 10;
  evidence.online_violations = 2;
  evidence.online_examples = {{"g", "a", "missing"}};
  auto report = CheckCase(evidence);
  EXPECT_EQ(report.counts.online_violations, 2);
  EXPECT_EQ(report.Failures(), std::vector<std::string>{"online violations"});
  EXPECT_EQ(report.examples["online violations"].size(), 1u);
}

TEST(CheckOnlineGet, PassesWhenEveryAcknowledgedMessageIsShownOnceInOrder) {
  EXPECT_FALSE(CheckOnlineGet("g", {{"a", 0}, {"b", 1}}, {"a", "b"}));
  // A message stored but not yet acknowledged may be shown.
  EXPECT_FALSE(CheckOnlineGet("g", {{"a", 0}, {"c", 2}}, {"a", "b", "c"}));
  // Acknowledged in another order than their sequences: the sequences rule.
  EXPECT_FALSE(CheckOnlineGet("g", {{"b", 1}, {"a", 0}}, {"a", "b"}));
}

TEST(CheckOnlineGet, FindsAMissingMessage) {
  auto problem = CheckOnlineGet("g", {{"a", 0}, {"b", 1}}, {"a"});
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->content, "b");
}

TEST(CheckOnlineGet, FindsAMessageShownTwice) {
  auto problem = CheckOnlineGet("g", {{"a", 0}}, {"a", "a"});
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->content, "a");
}

TEST(CheckOnlineGet, FindsAMisorder) {
  auto problem = CheckOnlineGet("g", {{"a", 0}, {"b", 1}}, {"b", "a"});
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->content, "b");
}

TEST(PostFailureWindows, RunFromTheFirstFailureToTheNextSuccessOfAnyClient) {
  std::vector<MessageRecord> messages = {
      Message("g", "a", {Ok(1, 1, 0)}),
      Message("g", "b", {Failed(2, 2.5), Failed(3, 3.5), Ok(4, 2, 1)}),
      Message("h", "c", {Failed(2.2, 7.2, 0), Ok(7.3, 3, 0)}),
  };
  auto windows = PostFailureWindows(messages);
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_DOUBLE_EQ(windows[0].from, 2);
  EXPECT_DOUBLE_EQ(windows[0].to, 4.01);
  EXPECT_EQ(windows[0].failed_attempts, 2);
  EXPECT_DOUBLE_EQ(windows[1].from, 4.01) << "a failure sent before the last 200 counts from that 200";
  EXPECT_DOUBLE_EQ(windows[1].to, 7.31);
  EXPECT_EQ(windows[1].failed_attempts, 1);
}

TEST(CheckCase, AttributesFailureWindowsToTheFaultBeforeThem) {
  auto evidence = Healthy();
  evidence.messages.push_back(Message("g", "d", {Failed(10, 10.5), Ok(11, 13, 3)}));
  evidence.stored["g"].push_back({1, 13, 3, "d"});
  evidence.shown["g"] = {Shown({"a", "b", "c", "d"})};
  evidence.faults = {{"first", 5, 6}, {"second", 9.9, 10.2}, {"third", 20, 21}};
  auto report = CheckCase(evidence);
  ASSERT_TRUE(report.passed()) << testing::PrintToString(report.Failures());
  ASSERT_EQ(report.outages.size(), 3u);
  EXPECT_EQ(report.outages[0].failed_attempts, 0);
  EXPECT_EQ(report.outages[1].failed_attempts, 1);
  EXPECT_NEAR(report.outages[1].longest, 1.01, 1e-9);
  EXPECT_EQ(report.outages[2].failed_attempts, 0);
  ASSERT_TRUE(report.longest_window);
  EXPECT_NEAR(report.longest_window->length(), 1.01, 1e-9);
}

TEST(PrintReport, NamesTheFailedCountsAndAnExample) {
  auto evidence = Healthy();
  evidence.shown["g"] = {Shown({"c"})};
  std::ostringstream out;
  PrintReport("case x", CheckCase(evidence), out);
  EXPECT_NE(out.str().find("result: FAILED (hidden)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("hidden: guest g, 'a'"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace stowage::faults
