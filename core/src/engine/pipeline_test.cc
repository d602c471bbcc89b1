// The engine driven through real plugins: the test stage of tests/stages,
// loaded by the real loader, told to fail, hang or throw.
#include "engine/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "observability/metrics.h"

namespace stowage::engine {
namespace {

namespace fs = std::filesystem;
using config::Policy;
using config::RawValue;
using config::StageSettings;
using namespace std::chrono_literals;

const std::string kTestStage = std::string(STOWAGE_TEST_PLUGIN_DIR) + "/test_stage.so";
// The same stage, declaring that it keeps its deadlines itself.
const std::string kInlineStage = std::string(STOWAGE_TEST_PLUGIN_DIR) + "/test_stage_inline.so";

struct StageSpec {
  std::string name;
  Policy policy = Policy::kRequired;
  std::map<std::string, ConfigValue> config;
  std::chrono::milliseconds timeout = 1000ms;
  bool enabled = true;
  std::string plugin = kTestStage;
};

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stowage_engine_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    journal_ = (dir_ / "journal").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every stage is the test stage, journaling to one file in call order.
  std::shared_ptr<Pipeline> Build(const std::vector<StageSpec>& specs) {
    config::PipelineConfig cfg;
    cfg.file = dir_ / "pipeline.toml";
    int line = 1;
    for (const auto& spec : specs) {
      StageSettings s;
      s.name = spec.name;
      s.plugin = spec.plugin;
      s.policy = spec.policy;
      s.enabled = spec.enabled;
      s.timeout = spec.timeout;
      s.where = {cfg.file.string(), line++, 1};
      s.config["target"] = RawValue{std::string(spec.name), s.where};
      s.config["journal"] = RawValue{journal_, s.where};
      for (const auto& [key, value] : spec.config) s.config[key] = RawValue{value, s.where};
      cfg.stages.push_back(std::move(s));
    }
    auto built = Pipeline::Build(cfg, nullptr, &registry_);
    EXPECT_TRUE(built.errors.empty()) << (built.errors.empty() ? "" : built.errors.front());
    return built.pipeline;
  }

  std::vector<std::string> Journal() const {
    std::ifstream in(journal_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  static Message Msg(const std::string& content) { return {"user", content, "2026-01-01T00:00:00.000000Z"}; }

  // The stage's series `outcome` of stowage_stage_compensations_total.
  double Compensations(const std::string& stage, const std::string& outcome) {
    return registry_.counter("stowage_stage_compensations_total", "", {{"stage", stage}, {"outcome", outcome}})
        .value();
  }

  // The stage's series `outcome` of stowage_stage_admits_total.
  double Admits(const std::string& stage, const std::string& outcome) {
    return registry_.counter("stowage_stage_admits_total", "", {{"stage", stage}, {"outcome", outcome}}).value();
  }

  fs::path dir_;
  std::string journal_;
  observability::Registry registry_;
};

TEST_F(PipelineTest, WhatAdmitSaidOfEachMessageIsExported) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort, {{"write", "reject"}}}});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->Write("g1", Msg("one")).status.code(), StatusCode::kRejected);
  EXPECT_EQ(p->Write("g1", Msg("two")).status.code(), StatusCode::kRejected);
  EXPECT_EQ(Admits("a", "admitted"), 2);
  EXPECT_EQ(Admits("b", "refused"), 2) << "a refusal fails the request whatever the stage's policy";
  EXPECT_EQ(Admits("a", "refused") + Admits("a", "failed") + Admits("b", "admitted") + Admits("b", "failed"), 0);
}

TEST_F(PipelineTest, WriteGoesThroughEveryStageInOrderAndReportsTargets) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort}, {"c", Policy::kRequired, {{"set_attribute", "message_id=41"}}}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.stored_in, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(out.degraded.empty());
  EXPECT_EQ(out.attributes.get("message_id"), "41");
  EXPECT_EQ(Journal(), (std::vector<std::string>{"a write g1 hello", "b write g1 hello", "c write g1 hello"}));
}

TEST_F(PipelineTest, RequiredFailureCompensatesAppliedStagesInReverseOrderAndFailsNamingTheStage) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort}, {"c", Policy::kRequired, {{"write", "fail"}}}, {"d"}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.failed_stage, "c");
  EXPECT_TRUE(out.stored_in.empty());
  EXPECT_EQ(Journal(), (std::vector<std::string>{"a write g1 hello", "b write g1 hello", "b compensate g1 hello",
                                                 "a compensate g1 hello"}));
  // Nothing of the message is left to read anywhere.
  auto read = p->Read("g1");
  EXPECT_TRUE(read.status.ok());
  EXPECT_TRUE(read.messages.empty());
  EXPECT_EQ(p->stages()[0]->counters->compensated.load(), 1u);
  EXPECT_EQ(p->stages()[2]->counters->failed.load(), 1u);
  // Both compensations are exported (/metrics).
  EXPECT_EQ(Compensations("a", "ok"), 1);
  EXPECT_EQ(Compensations("b", "ok"), 1);
  EXPECT_EQ(Compensations("a", "failed"), 0);
}

TEST_F(PipelineTest, BestEffortFailureDegradesAndTheWriteGoesOn) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort, {{"write", "fail"}}}, {"c"}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.degraded, (std::vector<std::string>{"b"}));
  EXPECT_EQ(out.stored_in, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Journal(), (std::vector<std::string>{"a write g1 hello", "c write g1 hello"}));
  EXPECT_EQ(p->stages()[1]->counters->failed.load(), 1u);
}

TEST_F(PipelineTest, HangingRequiredStageTimesOutAndItsLateWriteIsCompensated) {
  auto p = Build({{"a"}, {"b", Policy::kRequired, {{"write", "hang"}, {"hang_ms", std::int64_t{800}}}, 100ms}});
  ASSERT_TRUE(p);
  auto started = Clock::now();
  auto out = p->Write("g1", Msg("hello"));
  auto waited = Clock::now() - started;
  EXPECT_EQ(out.status.code(), StatusCode::kDeadlineExceeded) << out.status.ToString();
  EXPECT_EQ(out.failed_stage, "b");
  EXPECT_LT(waited, 700ms) << "the engine waited for the hanging stage instead of its timeout";
  EXPECT_EQ(p->stages()[1]->counters->timed_out.load(), 1u);
  // When the hanging write finally finishes, the engine compensates it.
  std::vector<std::string> expected{"a write g1 hello", "a compensate g1 hello", "b write g1 hello",
                                    "b compensate g1 hello"};
  for (int i = 0; i < 50 && Journal() != expected; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(Journal(), expected);
  EXPECT_TRUE(p->Read("g1").messages.empty());
}

TEST_F(PipelineTest, AStageThatKeepsItsDeadlinesIsCalledOnTheRequestsThread) {
  // The inline stage promises to return by its deadline; told to hang past
  // it, it shows that the engine calls it directly and waits for it, rather
  // than stopping at the timeout as it does for the plain stage.
  StageSpec spec{"b", Policy::kRequired, {{"write", "hang"}, {"hang_ms", std::int64_t{300}}}, 50ms};
  spec.plugin = kInlineStage;
  auto p = Build({{"a"}, spec});
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->stages()[1]->keeps_deadlines);
  EXPECT_FALSE(p->stages()[0]->keeps_deadlines);
  auto started = Clock::now();
  auto out = p->Write("g1", Msg("hello"));
  EXPECT_GE(Clock::now() - started, 300ms);
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(Journal(), (std::vector<std::string>{"a write g1 hello", "b write g1 hello"}));
  EXPECT_EQ(p->Read("g1").messages.size(), 1u);
}

TEST_F(PipelineTest, HangingBestEffortStageDegradesWithoutFailingTheRequest) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort, {{"write", "hang"}, {"hang_ms", std::int64_t{500}}}, 50ms}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.degraded, (std::vector<std::string>{"b"}));
  EXPECT_EQ(p->stages()[1]->counters->timed_out.load(), 1u);
}

TEST_F(PipelineTest, ThrowingStageIsAnErrorResultNotACrash) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort, {{"write", "throw"}}}, {"c", Policy::kRequired, {{"write", "throw"}}}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kInternal);
  EXPECT_NE(out.status.message().find("told to throw"), std::string::npos) << out.status.message();
  EXPECT_EQ(out.failed_stage, "c");
  EXPECT_EQ(Journal(), (std::vector<std::string>{"a write g1 hello", "a compensate g1 hello"}));
}

TEST_F(PipelineTest, RefusalAtAdmissionStoresNothingAnywhereWhateverTheOrder) {
  auto p = Build({{"a"}, {"b"}, {"quota", Policy::kBestEffort, {{"write", "reject"}}}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  EXPECT_EQ(out.status.code(), StatusCode::kRejected);
  EXPECT_EQ(out.failed_stage, "quota");
  EXPECT_TRUE(Journal().empty());
}

TEST_F(PipelineTest, DisabledStageIsNeverCalled) {
  auto p = Build({{"a"}, {"off", Policy::kRequired, {{"write", "fail"}}, 1000ms, /*enabled=*/false}});
  ASSERT_TRUE(p);
  auto out = p->Write("g1", Msg("hello"));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.stored_in, (std::vector<std::string>{"a"}));
  EXPECT_EQ(Journal(), (std::vector<std::string>{"a write g1 hello"}));
}

TEST_F(PipelineTest, ReadIsServedByTheFirstStageHoldingMessagesAndRefillsTheOnesBefore) {
  auto p = Build({{"cache", Policy::kRequired, {{"write", "skip"}}}, {"store"}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write("g1", Msg("one")).status.ok());
  ASSERT_TRUE(p->Write("g1", Msg("two")).status.ok());
  auto first = p->Read("g1");
  ASSERT_TRUE(first.status.ok());
  EXPECT_EQ(first.served_by, "store");
  ASSERT_EQ(first.messages.size(), 2u);
  EXPECT_EQ(first.messages[0].content, "one");
  EXPECT_EQ(first.messages[1].content, "two");
  auto second = p->Read("g1");
  EXPECT_EQ(second.served_by, "cache");
  EXPECT_EQ(second.messages, first.messages);
  EXPECT_EQ(Journal().back(), "cache refill g1 2");
}

// The contents of `messages`, for comparing pages.
std::vector<std::string> Contents(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.content);
  return out;
}

// Whether the journal has a line equal to `line`.
bool Has(const std::vector<std::string>& journal, const std::string& line) {
  return std::find(journal.begin(), journal.end(), line) != journal.end();
}

TEST_F(PipelineTest, TheHostCutsThePageFromTheWholeHistoryOfAStageThatIgnoresTheRange) {
  auto p = Build({{"a"}});  // a plugin that returns everything, as one built before SDK 1.5 does
  ASSERT_TRUE(p);
  for (const char* c : {"m0", "m1", "m2", "m3", "m4"}) ASSERT_TRUE(p->Write("g1", Msg(c)).status.ok());
  struct Case {
    std::optional<std::uint64_t> before, limit;
    std::vector<std::string> page;
    std::uint64_t first;
  } cases[] = {
      {4, 2, {"m2", "m3"}, 2},
      {std::nullopt, 3, {"m2", "m3", "m4"}, 2},
      {std::nullopt, 10, {"m0", "m1", "m2", "m3", "m4"}, 0},
      {1, std::nullopt, {"m0"}, 0},
      {2, 5, {"m0", "m1"}, 0},
      {99, 1, {"m4"}, 4},
      {std::nullopt, std::nullopt, {"m0", "m1", "m2", "m3", "m4"}, 0},
  };
  for (const auto& c : cases) {
    auto read = p->Read("g1", {c.before, c.limit, std::nullopt});
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    EXPECT_EQ(Contents(read.messages), c.page) << c.page.front();
    EXPECT_EQ(read.first_sequence, c.first) << c.page.front();
    EXPECT_EQ(read.total, 5u);
  }
  auto unknown = p->Read("nobody", {std::nullopt, 2, std::nullopt});
  EXPECT_TRUE(unknown.messages.empty());
  EXPECT_EQ(unknown.total, 0u);
}

TEST_F(PipelineTest, APageNeverRefillsACacheAsIfItWereTheWholeHistory) {
  // The cache holds nothing (its writes are lost); the store reads only the
  // page it is asked for, as the PostgreSQL stage does.
  auto p = Build({{"cache", Policy::kRequired, {{"write", "skip"}}},
                  {"store", Policy::kRequired, {{"range", "honour"}}}});
  ASSERT_TRUE(p);
  for (const char* c : {"m0", "m1", "m2", "m3", "m4"}) ASSERT_TRUE(p->Write("g1", Msg(c)).status.ok());

  auto page = p->Read("g1", {std::nullopt, 2, std::nullopt});
  ASSERT_TRUE(page.status.ok()) << page.status.ToString();
  EXPECT_EQ(page.served_by, "store");
  EXPECT_EQ(Contents(page.messages), (std::vector<std::string>{"m3", "m4"}));
  EXPECT_EQ(page.first_sequence, 3u);
  EXPECT_EQ(page.total, 5u);
  EXPECT_TRUE(Has(Journal(), "store read g1 page")) << "the store was not asked for the page";
  EXPECT_FALSE(Has(Journal(), "cache refill g1 2")) << "a page was stored in the cache as the whole history";

  // A page that happens to be the whole history refills it.
  auto whole = p->Read("g1", {std::nullopt, 10000, std::nullopt});
  ASSERT_TRUE(whole.status.ok());
  EXPECT_EQ(whole.served_by, "store");
  EXPECT_EQ(Contents(whole.messages), (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
  EXPECT_EQ(Journal().back(), "cache refill g1 5");
  // Then the cache serves every page, cut by the host (it ignores ranges).
  auto cached = p->Read("g1", {4, 2, std::nullopt});
  EXPECT_EQ(cached.served_by, "cache");
  EXPECT_EQ(Contents(cached.messages), (std::vector<std::string>{"m2", "m3"}));
  EXPECT_EQ(cached.first_sequence, 2u);
}

TEST_F(PipelineTest, APageReadFromAStageThatIgnoresTheRangeStillRefillsWithTheWholeHistory) {
  auto p = Build({{"cache", Policy::kRequired, {{"write", "skip"}}}, {"store"}});
  ASSERT_TRUE(p);
  for (const char* c : {"m0", "m1", "m2"}) ASSERT_TRUE(p->Write("g1", Msg(c)).status.ok());
  auto page = p->Read("g1", {std::nullopt, 1, std::nullopt});
  EXPECT_EQ(Contents(page.messages), (std::vector<std::string>{"m2"}));
  EXPECT_EQ(Journal().back(), "cache refill g1 3");
  auto cached = p->Read("g1");
  EXPECT_EQ(cached.served_by, "cache");
  EXPECT_EQ(Contents(cached.messages), (std::vector<std::string>{"m0", "m1", "m2"}));
}

TEST_F(PipelineTest, AStageWhosePageDoesNotMatchTheTotalItGaveFailsTheRead) {
  auto p = Build({{"store", Policy::kRequired, {{"range", "wrong"}}}});
  ASSERT_TRUE(p);
  for (const char* c : {"m0", "m1", "m2"}) ASSERT_TRUE(p->Write("g1", Msg(c)).status.ok());
  auto read = p->Read("g1", {std::nullopt, 2, std::nullopt});
  EXPECT_EQ(read.status.code(), StatusCode::kInternal);
  EXPECT_EQ(read.failed_stage, "store");
  EXPECT_NE(read.status.message().find("returned 3 messages where that page holds 2"), std::string::npos)
      << read.status.message();
  EXPECT_TRUE(read.messages.empty());
}

TEST_F(PipelineTest, ReadOfAnUnknownGuestIsEmptyAndGuestsAreIsolated) {
  auto p = Build({{"a"}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write("g1", Msg("mine")).status.ok());
  auto other = p->Read("g2");
  EXPECT_TRUE(other.status.ok());
  EXPECT_TRUE(other.messages.empty());
  EXPECT_TRUE(other.served_by.empty());
}

TEST_F(PipelineTest, ReadFallsThroughAFailingRequiredStageToTheNext) {
  auto p = Build({{"cache", Policy::kRequired, {{"read", "fail"}}}, {"store"}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write("g1", Msg("one")).status.ok());
  auto read = p->Read("g1");
  ASSERT_TRUE(read.status.ok());
  EXPECT_EQ(read.served_by, "store");
  EXPECT_EQ(read.degraded, (std::vector<std::string>{"cache"}));
  // When no stage can serve and a required one failed, the read fails.
  auto unknown = p->Read("nobody");
  EXPECT_EQ(unknown.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(unknown.failed_stage, "cache");
}

TEST_F(PipelineTest, HangingReadTimesOut) {
  auto p = Build({{"a", Policy::kRequired, {{"read", "hang"}, {"hang_ms", std::int64_t{600}}}, 50ms}});
  ASSERT_TRUE(p);
  auto read = p->Read("g1");
  EXPECT_EQ(read.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(p->stages()[0]->counters->timed_out.load(), 1u);
}

TEST_F(PipelineTest, EraseAsksEveryStageAndNamesTheTargetsThatHeldData) {
  // b cannot erase, and (like a metrics stage) never serves reads.
  auto p = Build({{"a"},
                  {"b", Policy::kBestEffort, {{"erase", "fail"}, {"read", "miss"}}},
                  {"c", Policy::kRequired, {{"write", "skip"}}}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write("g1", Msg("one")).status.ok());
  auto erased = p->Erase("g1");
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_EQ(erased.erased_from, (std::vector<std::string>{"a"}));
  EXPECT_EQ(erased.degraded, (std::vector<std::string>{"b"}));
  EXPECT_TRUE(p->Read("g1").messages.empty());
  auto again = p->Erase("g1");
  EXPECT_TRUE(again.erased_from.empty());
}

TEST_F(PipelineTest, RequiredEraseFailureFailsButTheOtherStagesAreStillErased) {
  auto p = Build({{"a", Policy::kRequired, {{"erase", "throw"}}}, {"b"}});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write("g1", Msg("one")).status.ok());
  auto erased = p->Erase("g1");
  EXPECT_EQ(erased.status.code(), StatusCode::kInternal);
  EXPECT_EQ(erased.failed_stage, "a");
  EXPECT_EQ(erased.erased_from, (std::vector<std::string>{"b"}));
}

TEST_F(PipelineTest, BuildReportsEveryBadStageWithFileLineAndReason) {
  config::PipelineConfig cfg;
  cfg.file = dir_ / "pipeline.toml";
  StageSettings missing;
  missing.name = "missing";
  missing.plugin = "no_such_plugin";
  missing.where = {cfg.file.string(), 3, 1};
  StageSettings throws;
  throws.name = "throws";
  throws.plugin = kTestStage;
  throws.where = {cfg.file.string(), 9, 1};
  throws.config["construct"] = RawValue{std::string("throw"), throws.where};
  cfg.stages = {missing, throws};
  auto built = Pipeline::Build(cfg);
  EXPECT_FALSE(built.pipeline);
  ASSERT_EQ(built.errors.size(), 2u);
  EXPECT_NE(built.errors[0].find("pipeline.toml:3: stage[missing].plugin: plugin 'no_such_plugin' not found"),
            std::string::npos)
      << built.errors[0];
  EXPECT_NE(built.errors[1].find("pipeline.toml:9: stage[throws]"), std::string::npos) << built.errors[1];
  EXPECT_NE(built.errors[1].find("told to throw in the constructor"), std::string::npos) << built.errors[1];
}

TEST_F(PipelineTest, ConcurrentWritesAreAllStored) {
  auto p = Build({{"a"}, {"b", Policy::kBestEffort}});
  ASSERT_TRUE(p);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i)
        if (!p->Write("g1", Msg(std::to_string(t) + "-" + std::to_string(i))).status.ok()) ++failures;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(p->Read("g1").messages.size(), 200u);
}

}  // namespace
}  // namespace stowage::engine
