// The loader against real libraries: a good stage, one without a version
// block, one built for another SDK major version, and a plugin rebuilt in
// place (two builds of the test stage whose code differs, copied over each
// other).
#include "loader/plugin_loader.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

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
  return stowage::ConfigWithDefaults(plugin.schema(),
                                     {{"target", std::string("t")}, {"construct", construct}});
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
  EXPECT_NE(loaded.error.find("host offers SDK " + std::to_string(STOWAGE_SDK_VERSION_MAJOR) + "." +
                              std::to_string(STOWAGE_SDK_VERSION_MINOR)),
            std::string::npos)
      << loaded.error;
}

TEST(PluginLoaderTest, RefusesALibraryBuiltForAnotherMajorVersion) {
  PluginLoader loader({kPluginDir});
  auto loaded = loader.Load("wrong_major", "/nowhere");
  EXPECT_FALSE(loaded.plugin);
  EXPECT_NE(loaded.error.find("wrong_major.so was built for SDK 99.0"), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("this host offers SDK " + std::to_string(STOWAGE_SDK_VERSION_MAJOR) + "." +
                              std::to_string(STOWAGE_SDK_VERSION_MINOR)),
            std::string::npos)
      << loaded.error;
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
  // The exception's type is named, demangled, beside its text.
  EXPECT_EQ(error.message(),
            "the stage constructor threw std::runtime_error: told to throw in the constructor");
}

// A folder of the test's own holding "stage.so", a build of the test stage
// that tests replace in place.
class PluginSwapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stowage_swap_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    file_ = dir_ / "stage.so";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Rewrites `file_` in place with the content of `build` (the same inode,
  // as `cp` does).
  void CopyOver(const std::string& build) const {
    const ino_t before = Inode(file_);
    fs::copy_file(kPluginDir / (build + ".so"), file_, fs::copy_options::overwrite_existing);
    ASSERT_EQ(Inode(file_), before) << "the copy should rewrite the file, not replace it";
  }
  // Replaces `file_` by a new file holding `build` (a new inode, as an
  // install or a linker writing a temporary file and renaming it does).
  void RenameOver(const std::string& build) const {
    const fs::path next = dir_ / "stage.so.new";
    fs::copy_file(kPluginDir / (build + ".so"), next, fs::copy_options::overwrite_existing);
    fs::rename(next, file_);
  }
  static ino_t Inode(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }

  // Loads `file_` with a loader of its own, as a reload does.
  std::shared_ptr<const Plugin> Load() const {
    PluginLoader loader({});
    auto loaded = loader.Load(file_.string(), "/");
    EXPECT_TRUE(loaded.plugin) << loaded.error;
    return loaded.plugin;
  }
  std::shared_ptr<stowage::Stage> Create(const Plugin& plugin) {
    stowage::StageConfig config = TestStageConfig(plugin, "ok");
    stowage::Status error;
    auto stage = plugin.Create(config, env_, &error);
    EXPECT_TRUE(stage) << error.ToString();
    return stage;
  }

  NullLogger log_;
  stowage::StageEnvironment env_{log_};
  fs::path dir_;
  fs::path file_;
};

TEST_F(PluginSwapTest, AFileRewrittenInPlaceIsLoadedAsANewImageWhileTheOldCodeRuns) {
  fs::copy_file(kPluginDir / "test_stage_code_v1.so", file_);
  auto v1 = Load();
  ASSERT_TRUE(v1);
  auto old_stage = Create(*v1);
  ASSERT_TRUE(old_stage);
  EXPECT_EQ(old_stage->target(), "t-v1");
  EXPECT_EQ(v1->path(), fs::canonical(file_));
  EXPECT_EQ(v1->sha256().size(), 64u);
  EXPECT_EQ(v1->loaded_from(), PluginCacheFolder() / (v1->sha256() + ".so"));
  EXPECT_TRUE(fs::exists(v1->loaded_from()));

  CopyOver("test_stage_code_v2");
  auto v2 = Load();
  ASSERT_TRUE(v2);
  EXPECT_NE(v2.get(), v1.get());
  EXPECT_NE(v2->sha256(), v1->sha256());
  EXPECT_NE(v2->loaded_from(), v1->loaded_from());
  auto new_stage = Create(*v2);
  ASSERT_TRUE(new_stage);
  EXPECT_EQ(new_stage->target(), "t-v2");
  // The stage made before runs the old code, from its own copy, untouched.
  EXPECT_EQ(old_stage->target(), "t-v1");
}

TEST_F(PluginSwapTest, AFileRenamedOverIsLoadedAsANewImage) {
  fs::copy_file(kPluginDir / "test_stage_code_v1.so", file_);
  auto v1 = Load();
  ASSERT_TRUE(v1);
  auto old_stage = Create(*v1);
  RenameOver("test_stage_code_v2");
  auto v2 = Load();
  ASSERT_TRUE(v2);
  EXPECT_NE(v2->sha256(), v1->sha256());
  auto new_stage = Create(*v2);
  ASSERT_TRUE(old_stage && new_stage);
  EXPECT_EQ(new_stage->target(), "t-v2");
  EXPECT_EQ(old_stage->target(), "t-v1");

  // Back to the first build while it is still loaded: its image is reused.
  RenameOver("test_stage_code_v1");
  auto again = Load();
  EXPECT_EQ(again.get(), v1.get());
}

TEST_F(PluginSwapTest, AnUnchangedFileReusesItsImageAndMakesNoNewCopy) {
  fs::copy_file(kPluginDir / "test_stage_code_v1.so", file_);
  auto first = Load();
  ASSERT_TRUE(first);
  const ino_t copy = Inode(first->loaded_from());
  const auto files = std::distance(fs::directory_iterator(PluginCacheFolder()), fs::directory_iterator());

  // Touched, and even rewritten with the same bytes: the content decides.
  CopyOver("test_stage_code_v1");
  auto second = Load();
  EXPECT_EQ(second.get(), first.get());
  EXPECT_EQ(Inode(first->loaded_from()), copy);
  EXPECT_EQ(std::distance(fs::directory_iterator(PluginCacheFolder()), fs::directory_iterator()), files);
}

TEST_F(PluginSwapTest, TheCacheFolderIsPrivateAndACopyGoesWithItsLastStage) {
  fs::copy_file(kPluginDir / "test_stage_code_v2.so", file_);
  std::shared_ptr<stowage::Stage> stage;
  fs::path copy;
  {
    auto plugin = Load();
    ASSERT_TRUE(plugin);
    copy = plugin->loaded_from();
    stage = Create(*plugin);
  }
  struct stat st {};
  ASSERT_EQ(::stat(PluginCacheFolder().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(PluginCacheFolder().filename().string().starts_with("stowage-plugin-cache-" +
                                                                  std::to_string(::getpid()) + "-"));
  EXPECT_TRUE(fs::exists(copy)) << "the stage still runs its code";
  ASSERT_TRUE(stage);
  EXPECT_EQ(stage->target(), "t-v2");
  stage.reset();
  EXPECT_FALSE(fs::exists(copy)) << "no stage uses the copy any more";
}

TEST_F(PluginSwapTest, ACopyThatCannotBeWrittenFailsTheLoadAndSaysWhatToDo) {
  // A content no image has: the second build with a byte more (an ELF file
  // loads with trailing bytes).
  fs::copy_file(kPluginDir / "test_stage_code_v2.so", file_);
  std::ofstream(file_, std::ios::app) << "x" << ::getpid();
  { PluginLoader({}).Load((kPluginDir / "test_stage.so").string(), "/"); }  // the cache folder exists
  const auto files = std::distance(fs::directory_iterator(PluginCacheFolder()), fs::directory_iterator());

  // The folder is full as far as this process can tell: no file may grow
  // past 4 KiB (write() fails with EFBIG, as it would with ENOSPC).
  struct rlimit before {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  auto* previous = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = before;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  LoadPluginResult loaded = PluginLoader({}).Load(file_.string(), "/");
  ::setrlimit(RLIMIT_FSIZE, &before);
  ::signal(SIGXFSZ, previous);

  EXPECT_FALSE(loaded.plugin);
  const std::string what = "plugin " + fs::canonical(file_).string() +
                           " could not be copied into the plugin cache folder " +
                           PluginCacheFolder().string();
  EXPECT_NE(loaded.error.find(what), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("make room there and reload again"), std::string::npos) << loaded.error;
  EXPECT_NE(loaded.error.find("STOWAGE_PLUGIN_CACHE_DIR"), std::string::npos) << loaded.error;
  // Nothing half-written is left behind; once there is room, it loads.
  EXPECT_EQ(std::distance(fs::directory_iterator(PluginCacheFolder()), fs::directory_iterator()), files);
  auto plugin = Load();
  ASSERT_TRUE(plugin);
  auto stage = Create(*plugin);
  ASSERT_TRUE(stage);
  EXPECT_EQ(stage->target(), "t-v2");
}

}  // namespace
}  // namespace stowage::loader
