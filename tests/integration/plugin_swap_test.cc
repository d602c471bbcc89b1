// A plugin rebuilt in place while stowaged runs: two builds of the test
// stage whose code differs (target() answers "<target>-v1" or
// "<target>-v2") are copied over the file pipeline.toml names, then the
// pipeline is reloaded (docs/operations.md). stowaged runs as a child
// process; no store is needed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <thread>

#include "http_client.h"
#include "json_answers.h"
#include "stowaged_process.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "sw4p-t0ken";


std::string String(const json::value& value) {
  return value.is_string() ? std::string(value.as_string()) : json::serialize(value);
}

HttpResult Admin(std::uint16_t port, const std::string& method, const std::string& target) {
  return HttpClient(port).Send(method, target, "", "", {{"Authorization", std::string("Bearer ") + kToken}});
}

HttpResult PostMessage(std::uint16_t port, const std::string& guest, const std::string& content) {
  return HttpClient(port).Send("POST", "/v1/guest/chat/" + guest,
                               json::serialize(json::object{{"role", "user"}, {"content", content}}));
}

// The stage "a" as GET /v1/admin/pipeline shows it.
json::object StageShown(std::uint16_t port) {
  HttpResult view = Admin(port, "GET", "/v1/admin/pipeline");
  EXPECT_EQ(view.status, 200) << view.body;
  json::object pipeline = ParseObject(view.body);
  if (!pipeline.contains("stages") || pipeline["stages"].as_array().empty()) return {};
  return pipeline["stages"].as_array().at(0).as_object();
}

// sha256sum's answer for `file`: an independent check of the host's hash.
std::string Sha256Sum(const fs::path& file) {
  std::string out;
  if (FILE* pipe = ::popen(("sha256sum '" + file.string() + "'").c_str(), "r")) {
    char buffer[128];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
    ::pclose(pipe);
  }
  return out.substr(0, out.find(' '));
}

ino_t Inode(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::vector<std::string> FilesIn(const fs::path& folder) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class PluginSwapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("stowage_plugin_swap_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cache");
    plugin_ = dir_ / "swap.so";
    fs::copy_file(TEST_STAGE_V1_PATH, plugin_);
    v1_ = Sha256Sum(TEST_STAGE_V1_PATH);
    v2_ = Sha256Sum(TEST_STAGE_V2_PATH);
    ASSERT_EQ(v1_.size(), 64u);
    ASSERT_NE(v1_, v2_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // stowaged with one required stage "a" from `plugin_`, whose writes take
  // `hang_ms` (so that a request can be in flight during a reload), its
  // plugin cache in dir_/cache.
  std::unique_ptr<StowagedProcess> Start(int hang_ms) {
    const std::string config =
        "[server]\nlisten = \"${STOWAGE_LISTEN}\"\n[[stage]]\nname = \"a\"\nplugin = \"" + plugin_.string() +
        "\"\ntimeout_ms = 10000\n[stage.config]\ntarget = \"a\"\n" +
        (hang_ms > 0 ? "write = \"hang\"\nhang_ms = " + std::to_string(hang_ms) + "\n" : "");
    return StowagedProcess::FromText(
        config, {{"STOWAGE_ADMIN_TOKEN", kToken}, {"STOWAGE_PLUGIN_CACHE_DIR", (dir_ / "cache").string()}});
  }

  // The folder stowaged keeps its plugin copies in (one per process).
  fs::path CacheFolder() const {
    auto folders = FilesIn(dir_ / "cache");
    return folders.size() == 1 ? dir_ / "cache" / folders[0] : fs::path();
  }

  fs::path dir_, plugin_;
  std::string v1_, v2_;
};

TEST_F(PluginSwapTest, ACopyOverTheFileIsLoadedByAReloadWhileTheRequestInFlightFinishesOnTheOldCode) {
  auto server = Start(1500);
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();
  json::object stage = StageShown(port);
  EXPECT_EQ(String(stage["plugin"]), fs::canonical(plugin_).string());
  EXPECT_EQ(String(stage["plugin_sha256"]), v1_);
  EXPECT_EQ(String(stage["target"]), "a-v1");
  ASSERT_FALSE(CacheFolder().empty()) << FilesIn(dir_ / "cache").size() << " folders in the cache";
  EXPECT_EQ(FilesIn(CacheFolder()), std::vector<std::string>{v1_ + ".so"});

  auto in_flight = std::async(std::launch::async, [port] { return PostMessage(port, "slow", "old code"); });
  std::this_thread::sleep_for(400ms);  // the write is running the first build's code

  // `cp` rewrites the file (the same inode) under the running code.
  const ino_t inode = Inode(plugin_);
  fs::copy_file(TEST_STAGE_V2_PATH, plugin_, fs::copy_options::overwrite_existing);
  ASSERT_EQ(Inode(plugin_), inode);
  HttpResult reloaded = Admin(port, "POST", "/v1/admin/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body << server->log();
  json::object report = ParseObject(reloaded.body);
  EXPECT_EQ(NamesIn(report, "reconfigured"), std::vector<std::string>{"a"});
  EXPECT_TRUE(NamesIn(report, "kept").empty()) << reloaded.body;
  ASSERT_EQ(report["plugin_changed"].as_array().size(), 1u) << reloaded.body;
  json::object change = report["plugin_changed"].as_array().at(0).as_object();
  EXPECT_EQ(String(change["stage"]), "a");
  EXPECT_EQ(String(change["plugin"]), fs::canonical(plugin_).string());
  EXPECT_EQ(String(change["plugin_sha256_before"]), v1_);
  EXPECT_EQ(String(change["plugin_sha256"]), v2_);

  HttpResult slow = in_flight.get();
  ASSERT_EQ(slow.status, 200) << slow.body << server->log();
  EXPECT_EQ(NamesIn(ParseObject(slow.body), "stored_in"), std::vector<std::string>{"a-v1"})
      << "the request in flight finishes on the code it started on";
  HttpResult fresh = PostMessage(port, "fresh", "new code");
  ASSERT_EQ(fresh.status, 200) << fresh.body << server->log();
  EXPECT_EQ(NamesIn(ParseObject(fresh.body), "stored_in"), std::vector<std::string>{"a-v2"});
  stage = StageShown(port);
  EXPECT_EQ(String(stage["plugin_sha256"]), v2_);
  EXPECT_EQ(String(stage["target"]), "a-v2");
  EXPECT_TRUE(server->WaitForLog("new plugin code: a (swap.so " + v1_.substr(0, 12) + " -> " +
                                 v2_.substr(0, 12) + ")"))
      << server->log();
  // The first build's copy went with the last request that ran it.
  EXPECT_EQ(FilesIn(CacheFolder()), std::vector<std::string>{v2_ + ".so"});
}

TEST_F(PluginSwapTest, ANewFileRenamedOverIsLoadedAndAnUnchangedOneIsKept) {
  auto server = Start(0);
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();
  HttpResult stored = PostMessage(port, "g", "first");
  EXPECT_EQ(NamesIn(ParseObject(stored.body), "stored_in"), std::vector<std::string>{"a-v1"}) << stored.body;

  // The way `install` and most build tools replace a file: a new inode.
  fs::copy_file(TEST_STAGE_V2_PATH, dir_ / "swap.so.new");
  fs::rename(dir_ / "swap.so.new", plugin_);
  HttpResult reloaded = Admin(port, "POST", "/v1/admin/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body << server->log();
  EXPECT_EQ(NamesIn(ParseObject(reloaded.body), "reconfigured"), std::vector<std::string>{"a"});
  stored = PostMessage(port, "g", "second");
  EXPECT_EQ(NamesIn(ParseObject(stored.body), "stored_in"), std::vector<std::string>{"a-v2"}) << stored.body;
  EXPECT_EQ(String(StageShown(port)["plugin_sha256"]), v2_);

  // Unchanged: the stage, its image and its copy are kept; no new copy.
  const fs::path copy = CacheFolder() / (v2_ + ".so");
  const ino_t inode = Inode(copy);
  ASSERT_NE(inode, 0u) << "no copy " << copy;
  reloaded = Admin(port, "POST", "/v1/admin/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body;
  json::object report = ParseObject(reloaded.body);
  EXPECT_EQ(NamesIn(report, "kept"), std::vector<std::string>{"a"});
  EXPECT_TRUE(report["plugin_changed"].as_array().empty()) << reloaded.body;
  EXPECT_EQ(Inode(copy), inode);
  EXPECT_EQ(FilesIn(CacheFolder()), std::vector<std::string>{v2_ + ".so"});
  EXPECT_EQ(String(StageShown(port)["plugin_sha256"]), v2_);

  // At exit stowaged removes its cache folder.
  server.reset();
  EXPECT_TRUE(FilesIn(dir_ / "cache").empty());
}

}  // namespace
}  // namespace stowage::testing
