// Live reload at the engine level, through real plugins (the test stage) and
// real pipeline.toml files.
#include "engine/pipeline_holder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

namespace stowage::engine {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kTestStage = std::string(STOWAGE_TEST_PLUGIN_DIR) + "/test_stage.so";

class PipelineHolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stowage_holder_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    file_ = dir_ / "pipeline.toml";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A [[stage]] of the test stage; `extra` is added to its config table.
  std::string Stage(const std::string& name, const std::string& extra = "", bool enabled = true,
                    const std::string& policy = "required", int timeout_ms = 1000) const {
    return "[[stage]]\nname = \"" + name + "\"\nplugin = \"" + kTestStage + "\"\npolicy = \"" + policy +
           "\"\nenabled = " + (enabled ? "true" : "false") + "\ntimeout_ms = " + std::to_string(timeout_ms) +
           "\n[stage.config]\ntarget = \"" + name + "\"\n" + extra + "\n";
  }

  void Write(const std::string& text) const { std::ofstream(file_) << text; }

  std::unique_ptr<PipelineHolder> Start(const std::string& text) {
    Write(text);
    auto loaded = config::LoadPipelineConfig(file_);
    EXPECT_TRUE(loaded.errors.empty()) << config::FormatErrors(loaded.errors);
    if (!loaded.config) return nullptr;
    auto built = Pipeline::Build(*loaded.config);
    EXPECT_TRUE(built.errors.empty()) << (built.errors.empty() ? "" : built.errors.front());
    if (!built.pipeline) return nullptr;
    return std::make_unique<PipelineHolder>(built.pipeline);
  }

  static Message Msg(const std::string& content) { return {"user", content, "2026-01-01T00:00:00.000000Z"}; }

  fs::path dir_;
  fs::path file_;
};

TEST_F(PipelineHolderTest, UnchangedStageIsKeptAsTheSameObject) {
  auto holder = Start(Stage("a") + Stage("b", "", true, "best_effort"));
  ASSERT_TRUE(holder);
  auto before = holder->current();
  auto a_before = before->stage("a")->stage;
  auto b_before = before->stage("b")->stage;
  ASSERT_TRUE(before->Write("g1", Msg("kept in memory")).status.ok());

  // The same stages with a comment added: nothing changed.
  Write("# reloaded\n" + Stage("a") + Stage("b", "", true, "best_effort"));
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.generation, 2u);
  EXPECT_EQ(holder->generation(), 2u);
  EXPECT_EQ(report.kept, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(report.added.empty() && report.removed.empty() && report.reconfigured.empty());
  auto after = holder->current();
  EXPECT_NE(after.get(), before.get());
  EXPECT_EQ(after->stage("a")->stage.get(), a_before.get());
  EXPECT_EQ(after->stage("b")->stage.get(), b_before.get());
  // The kept stage keeps its state: the message written before is still there.
  auto read = after->Read("g1");
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  ASSERT_EQ(read.messages.size(), 1u);
  EXPECT_EQ(read.messages[0].content, "kept in memory");
}

TEST_F(PipelineHolderTest, ReconfiguredStageIsReplacedAndOthersKept) {
  auto holder = Start(Stage("a") + Stage("b", "set_attribute = \"x=1\""));
  ASSERT_TRUE(holder);
  auto before = holder->current();
  Write(Stage("a") + Stage("b", "set_attribute = \"x=2\""));
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.reconfigured, std::vector<std::string>{"b"});
  EXPECT_EQ(report.kept, std::vector<std::string>{"a"});
  auto after = holder->current();
  EXPECT_EQ(after->stage("a")->stage.get(), before->stage("a")->stage.get());
  EXPECT_NE(after->stage("b")->stage.get(), before->stage("b")->stage.get());
  auto written = after->Write("g", Msg("hi"));
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  EXPECT_EQ(written.attributes.get("x").value_or(""), "2");
}

TEST_F(PipelineHolderTest, DisabledStageIsGoneThenEnabledAgain) {
  auto holder = Start(Stage("a") + Stage("b", "", true, "best_effort"));
  ASSERT_TRUE(holder);
  Write(Stage("a") + Stage("b", "", false, "best_effort"));
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.disabled, std::vector<std::string>{"b"});
  EXPECT_EQ(holder->current()->stage("b")->stage, nullptr);
  auto written = holder->current()->Write("g", Msg("hi"));
  ASSERT_TRUE(written.status.ok());
  EXPECT_EQ(written.stored_in, std::vector<std::string>{"a"});

  Write(Stage("a") + Stage("b", "", true, "best_effort") + Stage("c"));
  report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.enabled, std::vector<std::string>{"b"});
  EXPECT_EQ(report.added, std::vector<std::string>{"c"});
  EXPECT_EQ(report.generation, 3u);
  written = holder->current()->Write("g", Msg("again"));
  ASSERT_TRUE(written.status.ok());
  EXPECT_EQ(written.stored_in, (std::vector<std::string>{"a", "b", "c"}));

  Write(Stage("a"));
  report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.removed, (std::vector<std::string>{"b", "c"}));
}

TEST_F(PipelineHolderTest, AStageThatStaysDisabledIsReportedKept) {
  auto holder = Start(Stage("a") + Stage("b", "", false, "best_effort"));
  ASSERT_TRUE(holder);
  auto report = holder->Reload(file_);  // the same file again
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.kept, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(report.reconfigured.empty()) << report.Summary();
  Write(Stage("a") + Stage("b", "set_attribute = \"x=2\"", false, "best_effort"));
  report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.reconfigured, std::vector<std::string>{"b"});
}

TEST_F(PipelineHolderTest, RefusedConfigKeepsTheRunningPipeline) {
  auto holder = Start(Stage("a"));
  ASSERT_TRUE(holder);
  auto before = holder->current();

  Write(Stage("a") + "[[stage]]\nname = \"b\"\nplugin = \"" + kTestStage + "\"\npolcy = \"required\"\n");
  auto report = holder->Reload(file_);
  EXPECT_FALSE(report.ok);
  ASSERT_FALSE(report.errors.empty());
  EXPECT_NE(report.errors[0].find("polcy"), std::string::npos) << report.errors[0];
  EXPECT_NE(report.errors[0].find("did you mean 'policy'"), std::string::npos) << report.errors[0];
  EXPECT_EQ(report.generation, 1u);

  // A config key the plugin does not know is caught when building.
  Write(Stage("a", "wirte = \"ok\""));
  report = holder->Reload(file_);
  EXPECT_FALSE(report.ok);
  ASSERT_FALSE(report.errors.empty());
  EXPECT_NE(report.errors[0].find("wirte"), std::string::npos) << report.errors[0];

  // A plugin that is not there.
  Write("[[stage]]\nname = \"a\"\nplugin = \"/nonexistent/stage.so\"\n");
  report = holder->Reload(file_);
  EXPECT_FALSE(report.ok);

  EXPECT_EQ(holder->current().get(), before.get());
  EXPECT_EQ(holder->generation(), 1u);
  EXPECT_TRUE(holder->current()->Write("g", Msg("still served")).status.ok());
}

TEST_F(PipelineHolderTest, ServerChangesAreReportedAsNeedingARestart) {
  auto holder = Start("[server]\nworkers = 4\n" + Stage("a"));
  ASSERT_TRUE(holder);
  Write("[server]\nworkers = 8\nadmin_listen = \"127.0.0.1:0\"\n" + Stage("a"));
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.needs_restart, (std::vector<std::string>{"workers", "admin_listen"}));
  EXPECT_EQ(holder->current()->config().server.workers, 4);
  EXPECT_NE(report.Summary().find("need a restart: workers, admin_listen"), std::string::npos)
      << report.Summary();
}

TEST_F(PipelineHolderTest, RequestInFlightFinishesOnItsGenerationWhileTheNewOneServes) {
  auto holder = Start(Stage("a", "write = \"hang\"\nhang_ms = 800", true, "required", 3000));
  ASSERT_TRUE(holder);
  std::weak_ptr<Pipeline> old_generation = holder->current();
  auto in_flight = std::async(std::launch::async, [&holder] {
    auto pipeline = holder->current();  // taken once, at the start
    return pipeline->Write("slow", Msg("old generation"));
  });
  std::this_thread::sleep_for(100ms);

  Write(Stage("a") + Stage("b"));
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  const auto started = std::chrono::steady_clock::now();
  auto fast = holder->current()->Write("fast", Msg("new generation"));
  EXPECT_TRUE(fast.status.ok()) << fast.status.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms) << "the new generation waited for the old one";
  EXPECT_EQ(fast.stored_in, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(old_generation.expired()) << "the request in flight should hold its generation";

  auto slow = in_flight.get();
  EXPECT_TRUE(slow.status.ok()) << slow.status.ToString();
  EXPECT_EQ(slow.stored_in, std::vector<std::string>{"a"});
  EXPECT_TRUE(old_generation.expired()) << "the old generation should go with its last request";
}

// A health check the host stopped waiting for runs on to its end on the call
// runner (Pipeline::Health); a reload meanwhile makes its stage again and
// drops the generation it was asked on. What the stage was given (its logger)
// must last until the check ends, and go with it: the stage logs when it
// wakes up (under ASan, a use after free if the logger went with the
// generation).
TEST_F(PipelineHolderTest, AHealthCheckThatOutlivesItsGenerationKeepsItsStagesLoggerUntilItEnds) {
  const std::string hangs = "health = \"hang\"\nhang_ms = 400";
  auto holder = Start(Stage("a", hangs));
  ASSERT_TRUE(holder);
  std::weak_ptr<stowage::Logger> logger = holder->current()->stage("a")->logger;
  std::weak_ptr<stowage::Stage> stage = holder->current()->stage("a")->stage;
  auto health = holder->current()->Health(50ms);
  ASSERT_EQ(health.size(), 1u);
  EXPECT_EQ(health[0].status.code(), StatusCode::kDeadlineExceeded) << health[0].status.ToString();

  Write(Stage("a", hangs + "\nset_attribute = \"x=1\""));
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.reconfigured, std::vector<std::string>{"a"});
  EXPECT_NE(holder->current()->stage("a")->stage.get(), stage.lock().get());
  // Generation 1 is gone; its stage's health() still sleeps.
  EXPECT_FALSE(stage.expired()) << "the health check in flight should hold its stage";
  EXPECT_FALSE(logger.expired()) << "the health check in flight should hold its stage's logger";

  const auto until = std::chrono::steady_clock::now() + 10s;
  // The stage's weak_ptr expires as its destruction begins, what it was
  // given is destroyed after it.
  while (!(stage.expired() && logger.expired()) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(stage.expired()) << "the stage should go when its health check ends";
  EXPECT_TRUE(logger.expired()) << "the logger should go with the stage";
}

// A plugin rebuilt in place: two builds of the test stage whose target()
// answers "<target>-v1" or "<target>-v2", copied over the file the
// pipeline names.
TEST_F(PipelineHolderTest, APluginRebuiltInPlaceRunsItsNewCodeAfterAReloadAndTheRequestInFlightTheOld) {
  const fs::path plugin = dir_ / "swap.so";
  const fs::path builds = STOWAGE_TEST_PLUGIN_DIR;
  fs::copy_file(builds / "test_stage_code_v1.so", plugin);
  const std::string text =
      "[[stage]]\nname = \"a\"\nplugin = \"swap.so\"\ntimeout_ms = 3000\n"
      "[stage.config]\ntarget = \"a\"\nwrite = \"hang\"\nhang_ms = 600\n";
  auto holder = Start(text);
  ASSERT_TRUE(holder);
  const std::string v1 = holder->current()->stage("a")->plugin->sha256();
  const fs::path v1_copy = holder->current()->stage("a")->plugin->loaded_from();
  std::weak_ptr<Pipeline> old_generation = holder->current();
  auto in_flight = std::async(std::launch::async, [&holder] {
    auto pipeline = holder->current();  // taken once, at the start
    return pipeline->Write("slow", Msg("old code"));
  });
  std::this_thread::sleep_for(100ms);

  // `cp` over the file: the same inode, rewritten while its old code runs.
  fs::copy_file(builds / "test_stage_code_v2.so", plugin, fs::copy_options::overwrite_existing);
  auto report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.reconfigured, std::vector<std::string>{"a"});
  EXPECT_TRUE(report.kept.empty());
  ASSERT_EQ(report.plugin_changed.size(), 1u);
  EXPECT_EQ(report.plugin_changed[0].stage, "a");
  EXPECT_EQ(report.plugin_changed[0].plugin, fs::canonical(plugin));
  EXPECT_EQ(report.plugin_changed[0].sha256_before, v1);
  const std::string v2 = holder->current()->stage("a")->plugin->sha256();
  EXPECT_EQ(report.plugin_changed[0].sha256, v2);
  EXPECT_NE(v2, v1);
  EXPECT_NE(report.Summary().find("new plugin code: a (swap.so " + v1.substr(0, 12) + " -> " +
                                  v2.substr(0, 12) + ")"),
            std::string::npos)
      << report.Summary();
  auto fresh = holder->current()->Write("fresh", Msg("new code"));
  EXPECT_TRUE(fresh.status.ok()) << fresh.status.ToString();
  EXPECT_EQ(fresh.stored_in, std::vector<std::string>{"a-v2"});

  auto slow = in_flight.get();
  EXPECT_TRUE(slow.status.ok()) << slow.status.ToString();
  EXPECT_EQ(slow.stored_in, std::vector<std::string>{"a-v1"})
      << "the request in flight finishes on the old code";
  EXPECT_TRUE(old_generation.expired());
  EXPECT_FALSE(fs::exists(v1_copy)) << "the old code's copy goes with the last generation that ran it";

  // A new file renamed over the old one (as `install` does): the same.
  fs::copy_file(builds / "test_stage_code_v1.so", dir_ / "swap.so.new");
  fs::rename(dir_ / "swap.so.new", plugin);
  report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  ASSERT_EQ(report.plugin_changed.size(), 1u);
  EXPECT_EQ(report.plugin_changed[0].sha256, v1);
  EXPECT_EQ(holder->current()->Write("again", Msg("first code again")).stored_in,
            std::vector<std::string>{"a-v1"});

  // Unchanged: the stage is kept, its image and copy too.
  const auto* stage = holder->current()->stage("a");
  const fs::path copy = stage->plugin->loaded_from();
  const auto modified = fs::last_write_time(copy);
  report = holder->Reload(file_);
  ASSERT_TRUE(report.ok) << report.Summary();
  EXPECT_EQ(report.kept, std::vector<std::string>{"a"});
  EXPECT_TRUE(report.plugin_changed.empty());
  EXPECT_EQ(holder->current()->stage("a"), stage);
  EXPECT_EQ(fs::last_write_time(copy), modified);
}

TEST_F(PipelineHolderTest, AReloadIsRefusedWhenARunningStagesPluginIsGone) {
  const fs::path plugin = dir_ / "gone.so";
  fs::copy_file(fs::path(STOWAGE_TEST_PLUGIN_DIR) / "test_stage.so", plugin);
  auto holder = Start("[[stage]]\nname = \"a\"\nplugin = \"gone.so\"\n");
  ASSERT_TRUE(holder);
  fs::remove(plugin);
  auto report = holder->Reload(file_);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_NE(report.errors[0].find("plugin 'gone.so' not found"), std::string::npos) << report.errors[0];
  EXPECT_EQ(holder->generation(), 1u);
  EXPECT_TRUE(holder->current()->Write("g", Msg("still served")).status.ok());
}

}  // namespace
}  // namespace stowage::engine
