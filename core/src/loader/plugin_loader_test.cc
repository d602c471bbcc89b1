// The loader against real libraries: a good stage, one without a version
// block, one built for another SDK major version.
#include "loader/plugin_loader.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

namespace stowage::loader {
namespace {

namespace fs = std::filesystem;
const fs::path kPluginDir = STOWAGE_TEST_PLUGIN_DIR;

class NullLogger final : public stowage::Logger {
 public:
  void log(LogLevel, std::string_view) noexcept override {}
  bool enabled(LogLevel) const noexcept override { return false; }
};

// The test stage's config as the host would make it from its schema: every
// key at its default, "construct" set to `construct` ("ok" or "throw").
stowage::StageConfig TestStageConfig(const Plugin& plugin, const std::string& construct) {
  std::map<std::string, stowage::ConfigValue> values;
  for (const auto& key : plugin.schema().keys())
    if (key.default_value) values[key.name] = *key.default_value;
  values["target"] = std::string("t");
  values["construct"] = construct;
  return stowage::StageConfig(values);
}

TEST(PluginLoaderTest, LoadsAStageAndReadsItsVersionBlockAndSchema) {
  PluginLoader loader({kPluginDir});
  auto loaded = loader.Load("test_stage", "/nowhere");
  ASSERT_TRUE(loaded.plugin) << loaded.error;
  EXPECT_STREQ(loaded.plugin->info().name, "test_stage");
  EXPECT_STREQ(loaded.plugin->info().label, "TestStage");
  EXPECT_EQ(loaded.plugin->info().sdk_major, static_cast<std::uint32_t>(STOWAGE_SDK_VERSION_MAJOR));
  EXPECT_NE(loaded.plugin->schema().find("write"), nullptr);
  EXPECT_EQ(loaded.plugin->path(), fs::canonical(kPluginDir / "test_stage.so"));
}

TEST(PluginLoaderTest, ReadsWhetherTheStageKeepsItsDeadlines) {
  PluginLoader loader({kPluginDir});
  auto plain = loader.Load("test_stage", "/nowhere");
  auto keeping = loader.Load("test_stage_inline", "/nowhere");
  ASSERT_TRUE(plain.plugin && keeping.plugin) << plain.error << keeping.error;
  EXPECT_FALSE(plain.plugin->keeps_deadlines());
  EXPECT_TRUE(keeping.plugin->keeps_deadlines());
  EXPECT_STREQ(keeping.plugin->info().name, "test_stage_inline");
}

TEST(PluginLoaderTest, TheSameFileIsLoadedOnce) {
  PluginLoader loader({kPluginDir});
  auto first = loader.Load("test_stage", "/nowhere");
  auto second = loader.Load((kPluginDir / "test_stage.so").string(), "/nowhere");
  ASSERT_TRUE(first.plugin && second.plugin);
  EXPECT_EQ(first.plugin.get(), second.plugin.get());
}

TEST(PluginLoaderTest, RelativePathsResolveAgainstTheConfigFolder) {
  PluginLoader loader({});
  auto loaded = loader.Load("plugins/test_stage.so", kPluginDir.parent_path());
  EXPECT_TRUE(loaded.plugin) << loaded.error;
}

TEST(PluginLoaderTest, RefusesALibraryWithoutVersionBlock) {
  PluginLoader loader({kPluginDir});
  auto loaded = loader.Load("no_version_block", "/nowhere");
  EXPECT_FALSE(loaded.plugin);
  EXPECT_NE(loaded.error.find("no_version_block.so"), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("has no version block"), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("host offers SDK " + std::to_string(STOWAGE_SDK_VERSION_MAJOR) + "." + std::to_string(STOWAGE_SDK_VERSION_MINOR)), std::string::npos) << loaded.error;
}

TEST(PluginLoaderTest, RefusesALibraryBuiltForAnotherMajorVersion) {
  PluginLoader loader({kPluginDir});
  auto loaded = loader.Load("wrong_major", "/nowhere");
  EXPECT_FALSE(loaded.plugin);
  EXPECT_NE(loaded.error.find("wrong_major.so was built for SDK 99.0"), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("this host offers SDK " + std::to_string(STOWAGE_SDK_VERSION_MAJOR) + "." + std::to_string(STOWAGE_SDK_VERSION_MINOR)), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("rebuild the plugin"), std::string::npos) << loaded.error;
}

TEST(PluginLoaderTest, AMissingPluginNamesEveryPlaceLookedAt) {
  PluginLoader loader({"/opt/a", "/opt/b"});
  auto loaded = loader.Load("absent", "/nowhere");
  EXPECT_FALSE(loaded.plugin);
  EXPECT_NE(loaded.error.find("/opt/a/absent.so"), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("/opt/b/absent.so"), std::string::npos) << loaded.error;
}

TEST(PluginLoaderTest, AFileThatIsNoLibraryIsRefusedWithTheLinkersReason) {
  auto bogus = fs::temp_directory_path() / "stowage_not_a_library.so";
  { std::ofstream(bogus) << "not an ELF file"; }
  PluginLoader loader({});
  auto loaded = loader.Load(bogus.string(), "/");
  EXPECT_FALSE(loaded.plugin);
  EXPECT_NE(loaded.error.find("could not be loaded"), std::string::npos) << loaded.error;
  fs::remove(bogus);
}

TEST(PluginLoaderTest, AStageKeepsItsLibraryLoadedAfterThePluginIsDropped) {
  NullLogger log;
  stowage::StageEnvironment env{log};
  std::shared_ptr<stowage::Stage> stage;
  {
    PluginLoader loader({kPluginDir});
    auto loaded = loader.Load("test_stage", "/nowhere");
    ASSERT_TRUE(loaded.plugin);
    stowage::StageConfig config = TestStageConfig(*loaded.plugin, "ok");
    stowage::Status error;
    stage = loaded.plugin->Create(config, env, &error);
    ASSERT_TRUE(stage) << error.ToString();
  }
  // The plugin object is gone; the stage's code must still be there.
  EXPECT_EQ(stage->target(), "t");
}

TEST(PluginLoaderTest, AConstructorThatThrowsIsAnErrorResult) {
  NullLogger log;
  PluginLoader loader({kPluginDir});
  auto loaded = loader.Load("test_stage", "/nowhere");
  ASSERT_TRUE(loaded.plugin);
  stowage::StageConfig config = TestStageConfig(*loaded.plugin, "throw");
  stowage::Status error;
  stowage::StageEnvironment env{log};
  EXPECT_FALSE(loaded.plugin->Create(config, env, &error));
  EXPECT_EQ(error.code(), stowage::StatusCode::kInternal);
  EXPECT_NE(error.message().find("told to throw in the constructor"), std::string::npos) << error.message();
}

}  // namespace
}  // namespace stowage::loader
