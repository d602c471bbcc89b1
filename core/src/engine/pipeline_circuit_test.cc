// The circuit breaker of best_effort stages and the stage metrics, through
// the real test stage.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "engine/pipeline.h"
#include "observability/metrics.h"

namespace stowage::engine {
namespace {

namespace fs = std::filesystem;
using config::RawValue;
using namespace std::chrono_literals;

const std::string kTestStage = std::string(STOWAGE_TEST_PLUGIN_DIR) + "/test_stage.so";

class PipelineCircuitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stowage_circuit_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    journal_ = (dir_ / "journal").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // "a" required and ok; "flaky" best_effort, failing its writes, with a breaker.
  std::shared_ptr<Pipeline> Build(int threshold, std::chrono::milliseconds cooldown) {
    config::PipelineConfig cfg;
    cfg.file = dir_ / "pipeline.toml";
    for (const std::string name : {"a", "flaky"}) {
      config::StageSettings s;
      s.name = name;
      s.plugin = kTestStage;
      s.policy = name == "a" ? config::Policy::kRequired : config::Policy::kBestEffort;
      s.circuit_threshold = threshold;
      s.circuit_cooldown = cooldown;
      s.where = {cfg.file.string(), 1, 1};
      s.config["target"] = RawValue{name, s.where};
      s.config["journal"] = RawValue{journal_, s.where};
      if (name == "flaky") s.config["write"] = RawValue{std::string("fail"), s.where};
      cfg.stages.push_back(std::move(s));
    }
    auto built = Pipeline::Build(cfg, nullptr, &registry_);
    EXPECT_TRUE(built.errors.empty()) << (built.errors.empty() ? "" : built.errors.front());
    return built.pipeline;
  }

  // Calls that reached the failing stage (a failing write leaves no journal line).
  static int FlakyCalls(const Pipeline& p) {
    return static_cast<int>(p.stage("flaky")->counters->failed.load());
  }

  static Message Msg(const std::string& content) { return {"user", content, "2026-01-01T00:00:00.000000Z"}; }

  double Calls(const std::string& stage, const std::string& outcome) {
    return registry_.counter("stowage_stage_calls_total", "", {{"stage", stage}, {"outcome", outcome}})
        .value();
  }

  fs::path dir_;
  std::string journal_;
  observability::Registry registry_;
};

TEST_F(PipelineCircuitTest, OpensAfterThresholdFailuresSkipsThenProbesAfterCooldown) {
  auto p = Build(2, 300ms);
  ASSERT_TRUE(p);
  const StageInstance* flaky = p->stage("flaky");
  ASSERT_TRUE(flaky->breaker);

  for (int i = 0; i < 2; ++i) {
    auto w = p->Write("g", Msg("m" + std::to_string(i)));
    ASSERT_TRUE(w.status.ok());
    EXPECT_EQ(w.degraded, std::vector<std::string>{"flaky"});
  }
  EXPECT_EQ(FlakyCalls(*p), 2);
  EXPECT_EQ(flaky->breaker->state(), CircuitBreaker::State::kOpen);

  // Open: skipped at once, not called, still listed as degraded.
  auto skipped = p->Write("g", Msg("while open"));
  ASSERT_TRUE(skipped.status.ok());
  EXPECT_EQ(skipped.degraded, std::vector<std::string>{"flaky"});
  EXPECT_EQ(skipped.stored_in, std::vector<std::string>{"a"});
  EXPECT_EQ(FlakyCalls(*p), 2);
  EXPECT_EQ(Calls("flaky", "skipped"), 1);
  EXPECT_EQ(Calls("flaky", "failed"), 2);
  EXPECT_EQ(registry_.gauge("stowage_circuit_state", "", {{"stage", "flaky"}}).value(), 1);

  // After the cool-down one request probes it; it fails again and reopens.
  std::this_thread::sleep_for(350ms);
  ASSERT_TRUE(p->Write("g", Msg("probe")).status.ok());
  EXPECT_EQ(FlakyCalls(*p), 3);
  EXPECT_EQ(flaky->breaker->state(), CircuitBreaker::State::kOpen);
  ASSERT_TRUE(p->Write("g", Msg("skipped again")).status.ok());
  EXPECT_EQ(FlakyCalls(*p), 3);
  EXPECT_EQ(Calls("a", "ok"), 5);
}

TEST_F(PipelineCircuitTest, ThresholdZeroNeverOpens) {
  auto p = Build(0, 300ms);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->stage("flaky")->breaker);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p->Write("g", Msg("m")).status.ok());
  EXPECT_EQ(FlakyCalls(*p), 4);
}

TEST_F(PipelineCircuitTest, StageDurationsAreObserved) {
  auto p = Build(5, 300ms);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->Write("g", Msg("m")).status.ok());
  ASSERT_TRUE(p->Read("g").status.ok());
  EXPECT_EQ(registry_.histogram("stowage_stage_duration_seconds", "", {{"stage", "a"}}).count(), 2u);
  std::string text = registry_.RenderPrometheus();
  EXPECT_NE(text.find("stowage_stage_calls_total{stage=\"a\",outcome=\"ok\"} 2"), std::string::npos) << text;
}

}  // namespace
}  // namespace stowage::engine
