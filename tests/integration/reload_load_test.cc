// Live reload under load: the default five-stage pipeline on real Redis and
// PostgreSQL, four clients doing POST and GET without pause, while the
// embeddings stage is turned off and on again by reload ten times. No
// request may fail. Prints requests sent, failed, and reload times.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "stowaged_process.h"
#include "support/process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "reload-under-load";

// The default pipeline with the embeddings stage enabled or not.
std::string WithEmbeddings(const std::string& pipeline, bool enabled) {
  const std::string header = "name = \"embeddings\"\n";
  std::string text = pipeline;
  const auto at = text.find(header);
  if (at == std::string::npos) return text;
  if (!enabled) text.insert(at + header.size(), "enabled = false\n");
  return text;
}

TEST(ReloadLoadTest, TogglingEmbeddingsTenTimesUnderLoadFailsNoRequest) {
  const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
  const std::string database_url = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (redis_url.empty() || database_url.empty()) return;

  const std::string pipeline = ReadFile(STOWAGE_DEFAULT_PIPELINE);
  ASSERT_NE(pipeline.find("name = \"embeddings\"\n"), std::string::npos) << "the default pipeline changed";
  const fs::path file =
      fs::temp_directory_path() / ("stowage_reload_load_" + std::to_string(::getpid()) + ".toml");
  std::ofstream(file, std::ios::trunc) << pipeline;
  auto server = std::make_unique<StowagedProcess>(
      file, std::map<std::string, std::string>{
                {"REDIS_URL", redis_url}, {"DATABASE_URL", database_url}, {"STOWAGE_ADMIN_TOKEN", kToken}});
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();

  std::atomic<bool> stop{false};
  std::atomic<long> sent{0}, failed{0};
  std::mutex failures_mu;
  std::vector<std::string> failures;
  auto client = [&](int id) {
    HttpClient http(port);
    const std::string run = std::to_string(::getpid()) + "-" + std::to_string(id) + "-" +
                            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    for (long i = 0; !stop.load(); ++i) {
      // A new guest now and then, so the monthly request limit is never near.
      const std::string guest = "reload-" + run + "-" + std::to_string(i / 100);
      for (const char* method : {"POST", "GET"}) {
        HttpResult answer;
        std::string error;
        try {
          answer = std::string(method) == "POST"
                       ? http.Send("POST", "/v1/guest/chat/" + guest,
                                   json::serialize(json::object{{"role", "user"},
                                                                {"content", "load " + std::to_string(i)}}))
                       : http.Send("GET", "/v1/guest/chat/" + guest, "", "");
        } catch (const std::exception& e) {
          error = e.what();
          http.Close();
        }
        sent.fetch_add(1);
        if (!error.empty() || answer.status != 200) {
          failed.fetch_add(1);
          std::lock_guard lock(failures_mu);
          if (failures.size() < 10)
            failures.push_back(std::string(method) + " " + guest + ": " +
                               (error.empty() ? std::to_string(answer.status) + " " + answer.body : error));
        }
      }
    }
  };
  std::vector<std::thread> clients;
  for (int id = 0; id < 4; ++id) clients.emplace_back(client, id);
  std::this_thread::sleep_for(500ms);

  std::vector<double> reload_ms;
  bool enabled = true;
  for (int round = 0; round < 10; ++round) {
    enabled = !enabled;
    std::ofstream(file, std::ios::trunc) << WithEmbeddings(pipeline, enabled);
    const auto started = std::chrono::steady_clock::now();
    HttpResult answer = HttpClient(port).Send("POST", "/v1/admin/reload", "", "",
                                              {{"Authorization", std::string("Bearer ") + kToken}});
    reload_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    ASSERT_EQ(answer.status, 200) << answer.body;
    json::object report = json::parse(answer.body).as_object();
    EXPECT_EQ(report["generation"], round + 2);
    const char* changed = enabled ? "enabled" : "disabled";
    ASSERT_EQ(report[changed].as_array().size(), 1u) << answer.body;
    EXPECT_EQ(report[changed].as_array()[0], "embeddings");
    EXPECT_EQ(report["kept"].as_array().size(), 4u) << answer.body;
    std::this_thread::sleep_for(300ms);
  }
  std::this_thread::sleep_for(300ms);
  stop.store(true);
  for (auto& t : clients) t.join();

  double max = 0, sum = 0;
  for (double ms : reload_ms) {
    max = std::max(max, ms);
    sum += ms;
  }
  std::cout << "reload under load: requests sent " << sent.load() << ", failed " << failed.load()
            << ", reloads " << reload_ms.size() << ", reload time max " << max << " ms, mean "
            << sum / reload_ms.size() << " ms\n";
  EXPECT_GT(sent.load(), 100);
  EXPECT_EQ(failed.load(), 0);
  for (const auto& failure : failures) ADD_FAILURE() << failure;
  EXPECT_TRUE(enabled);
  EXPECT_NE(server->log().find("reload: generation 11"), std::string::npos);
  server.reset();
  fs::remove(file);
}

}  // namespace
}  // namespace stowage::testing
