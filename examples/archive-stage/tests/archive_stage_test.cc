// The archive stage's own behaviour: its files, their lines, its config.
#include "archive_stage.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "json_line.h"
#include "scratch_folder.h"

namespace archive {
namespace {

class QuietLogger final : public stowage::Logger {
 public:
  void log(stowage::LogLevel, std::string_view) noexcept override {}
  bool enabled(stowage::LogLevel) const noexcept override { return false; }
};

stowage::Message Msg(std::string content, std::string role = "user") {
  return {std::move(role), std::move(content), "2024-05-01T12:00:00.000000Z"};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class ArchiveStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ =
        (test::ScratchFolder() / ::testing::UnitTest::GetInstance()->current_test_info()->name()).string();
    stage_ =
        std::make_unique<ArchiveStage>(stowage::StageConfig({{"folder", folder_}, {"fsync", false}}), env_);
  }

  stowage::Status Write(const std::string& guest, const stowage::Message& message,
                        stowage::Attributes& attributes) {
    stowage::WriteContext ctx{guest, message, stowage::Deadline::After(std::chrono::seconds(5)), log_,
                              attributes};
    return stage_->write(ctx);
  }
  stowage::Status Write(const std::string& guest, const stowage::Message& message) {
    stowage::Attributes attributes;
    return Write(guest, message, attributes);
  }
  stowage::Status Compensate(const std::string& guest, const stowage::Message& message) {
    stowage::Attributes attributes;
    stowage::WriteContext ctx{guest, message, stowage::Deadline::After(std::chrono::seconds(5)), log_,
                              attributes};
    return stage_->compensate(ctx);
  }
  stowage::ReadResult Read(const std::string& guest) {
    stowage::GuestContext ctx{guest, stowage::Deadline::After(std::chrono::seconds(5)), log_};
    return stage_->read(ctx);
  }
  stowage::EraseResult Erase(const std::string& guest) {
    stowage::GuestContext ctx{guest, stowage::Deadline::After(std::chrono::seconds(5)), log_};
    return stage_->erase(ctx);
  }

  QuietLogger log_;
  stowage::StageEnvironment env_{log_};
  std::string folder_;
  std::unique_ptr<ArchiveStage> stage_;
};

TEST_F(ArchiveStageTest, AppendsOneJsonLinePerMessageToTheGuestsFile) {
  ASSERT_TRUE(Write("guest-1", Msg("hello")).ok());
  ASSERT_TRUE(Write("guest-1", Msg("line one\nline two", "assistant")).ok());
  EXPECT_EQ(ReadFile(folder_ + "/guest-1.jsonl"),
            "{\"role\":\"user\",\"content\":\"hello\",\"timestamp\":\"2024-05-01T12:00:00.000000Z\"}\n"
            "{\"role\":\"assistant\",\"content\":\"line one\\nline "
            "two\",\"timestamp\":\"2024-05-01T12:00:00.000000Z\"}\n");
  EXPECT_EQ(stage_->target(), "archive");
}

TEST_F(ArchiveStageTest, ReadReturnsTheLinesOldestFirst) {
  EXPECT_FALSE(Read("nobody").found);
  ASSERT_TRUE(Write("g", Msg("one")).ok());
  ASSERT_TRUE(Write("g", Msg("two\n\"quoted\"")).ok());
  stowage::ReadResult result = Read("g");
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  ASSERT_TRUE(result.found);
  EXPECT_EQ(result.messages, (std::vector<stowage::Message>{Msg("one"), Msg("two\n\"quoted\"")}));
}

TEST_F(ArchiveStageTest, CompensateRemovesOnlyTheLastEqualLine) {
  ASSERT_TRUE(Write("g", Msg("same")).ok());
  ASSERT_TRUE(Write("g", Msg("other")).ok());
  ASSERT_TRUE(Write("g", Msg("same")).ok());
  ASSERT_TRUE(Write("g", Msg("last")).ok());
  ASSERT_TRUE(Compensate("g", Msg("same")).ok());
  EXPECT_EQ(Read("g").messages, (std::vector<stowage::Message>{Msg("same"), Msg("other"), Msg("last")}));
  // A write that never landed: nothing to remove, nothing removed.
  ASSERT_TRUE(Compensate("g", Msg("never written")).ok());
  ASSERT_TRUE(Compensate("nobody", Msg("x")).ok());
  EXPECT_EQ(Read("g").messages.size(), 3u);
}

TEST_F(ArchiveStageTest, EraseDeletesTheFileAndSaysWhetherItExisted) {
  ASSERT_TRUE(Write("g", Msg("x")).ok());
  stowage::EraseResult erased = Erase("g");
  EXPECT_TRUE(erased.status.ok());
  EXPECT_TRUE(erased.held);
  EXPECT_FALSE(std::filesystem::exists(folder_ + "/g.jsonl"));
  erased = Erase("g");
  EXPECT_TRUE(erased.status.ok());
  EXPECT_FALSE(erased.held);
}

TEST_F(ArchiveStageTest, GuestIdsStayInsideTheFolder) {
  EXPECT_EQ(stage_->PathOf("a.b:c"), folder_ + "/a.b%3Ac.jsonl");
  EXPECT_EQ(stage_->PathOf("../x"), folder_ + "/%2E.%2Fx.jsonl");
  ASSERT_TRUE(Write("../escape", Msg("x")).ok());
  EXPECT_TRUE(std::filesystem::exists(folder_ + "/%2E.%2Fescape.jsonl"));
  EXPECT_EQ(Read("../escape").messages.size(), 1u);
}

TEST_F(ArchiveStageTest, ABrokenLineIsAnErrorNamingIt) {
  ASSERT_TRUE(Write("g", Msg("x")).ok());
  std::ofstream(folder_ + "/g.jsonl", std::ios::app) << "not json\n";
  stowage::ReadResult result = Read("g");
  EXPECT_EQ(result.status.code(), stowage::StatusCode::kInternal);
  EXPECT_NE(result.status.message().find("line 2"), std::string::npos) << result.status.message();
}

TEST_F(ArchiveStageTest, AnExpiredDeadlineFailsWithoutWriting) {
  stowage::Attributes attributes;
  stowage::Message message = Msg("late");
  std::string guest = "late";
  stowage::WriteContext ctx{guest, message, stowage::Deadline(stowage::Clock::now()), log_, attributes};
  EXPECT_EQ(stage_->write(ctx).code(), stowage::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(std::filesystem::exists(folder_ + "/late.jsonl"));
}

TEST_F(ArchiveStageTest, ConcurrentWritesKeepEveryLineWhole) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(Write("busy", Msg("t" + std::to_string(t) + "-" + std::to_string(i))).ok());
        if (i % 10 == 9) {
          EXPECT_TRUE(Compensate("busy", Msg("t" + std::to_string(t) + "-" + std::to_string(i))).ok());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  stowage::ReadResult result = Read("busy");
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.messages.size(), 8u * 45u);
}

TEST(ArchiveSchemaTest, DeclaresFolderRequiredAndFsyncOff) {
  stowage::ConfigSchema schema = ArchiveStage::config_schema();
  ASSERT_EQ(schema.keys().size(), 2u);
  ASSERT_NE(schema.find("folder"), nullptr);
  EXPECT_TRUE(schema.find("folder")->required());
  EXPECT_EQ(schema.find("folder")->type, stowage::ConfigType::kPath) << "a relative folder follows the config file";
  ASSERT_NE(schema.find("fsync"), nullptr);
  EXPECT_EQ(schema.find("fsync")->default_value, stowage::ConfigValue(false));
  EXPECT_EQ(schema.find("path"), nullptr);
}

TEST(ArchiveConstructionTest, AFolderThatCannotBeMadeFailsConstruction) {
  QuietLogger log;
  stowage::StageEnvironment env{log};
  std::string file = (test::ScratchFolder() / "a-file").string();
  std::ofstream(file) << "x";
  EXPECT_THROW(ArchiveStage(stowage::StageConfig({{"folder", file + "/sub"}, {"fsync", false}}), env),
               std::runtime_error);
}

TEST(JsonLineTest, RoundTripsAndRejectsWhatIsNotAMessage) {
  stowage::Message message{"system", "tab\t \u00e9 \"q\"", "2024-01-01T00:00:00.000001Z"};
  std::string line = ToJsonLine(message);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(FromJsonLine(line), message);
  EXPECT_FALSE(FromJsonLine("[]"));
  EXPECT_FALSE(FromJsonLine("{\"role\":\"user\",\"content\":1,\"timestamp\":\"t\"}"));
  EXPECT_FALSE(FromJsonLine("{"));
}

}  // namespace
}  // namespace archive
