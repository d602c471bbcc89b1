#include "support/services.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <string>
#include <utility>

#include "support/process.h"

namespace stowage::testing {
namespace {

using std::chrono::milliseconds;

// Runs a client program to completion; returns its exit code and output.
std::pair<int, std::string> RunClient(std::vector<std::string> argv) {
  ChildProcess client(std::move(argv));
  auto exit_code = client.Wait(milliseconds(30000));
  return {exit_code.value_or(-1), client.ReadOutput()};
}

std::pair<int, std::string> RedisCli(const ServiceInstance& redis, std::vector<std::string> command) {
  std::vector<std::string> argv{"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(redis.port())};
  argv.insert(argv.end(), command.begin(), command.end());
  return RunClient(argv);
}

std::pair<int, std::string> Psql(const ServiceInstance& postgres, const std::string& sql) {
  return RunClient({"psql", postgres.url(), "-XtAq", "-v", "ON_ERROR_STOP=1", "-c", sql});
}

TEST(RequireEnvTest, ReturnsTheValueOfASetVariable) {
  ::setenv("STOWAGE_SUPPORT_TEST_SET", "value", 1);
  EXPECT_EQ(RequireEnv("STOWAGE_SUPPORT_TEST_SET"), "value");
  ::unsetenv("STOWAGE_SUPPORT_TEST_SET");
}

TEST(RequireEnvTest, FailsTheTestNamingScriptsTestWhenUnset) {
  ::unsetenv("STOWAGE_SUPPORT_TEST_UNSET");
  EXPECT_NONFATAL_FAILURE(RequireEnv("STOWAGE_SUPPORT_TEST_UNSET"),
                          "run the suite through scripts/test, which sets STOWAGE_SUPPORT_TEST_UNSET");
}

TEST(ServicesScriptTest, PrefersStowageServicesFromTheEnvironment) {
  const char* saved = std::getenv("STOWAGE_SERVICES");
  std::string previous = saved ? saved : "";
  ::setenv("STOWAGE_SERVICES", "/elsewhere/services", 1);
  EXPECT_EQ(ServicesScript(), "/elsewhere/services");
  ::unsetenv("STOWAGE_SERVICES");
  EXPECT_EQ(ServicesScript(), std::string(STOWAGE_SOURCE_DIR) + "/scripts/services");
  if (saved) ::setenv("STOWAGE_SERVICES", previous.c_str(), 1);
}

TEST(ServiceInstanceTest, RedisStopsAndStartsAgainOnTheSamePort) {
  ServiceInstance redis(Service::kRedis);
  ASSERT_TRUE(redis.running());
  EXPECT_EQ(redis.url(), "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0");
  EXPECT_EQ(RedisCli(redis, {"PING"}), std::make_pair(0, std::string("PONG\n")));
  EXPECT_EQ(RedisCli(redis, {"SET", "support:key", "v"}).second, "OK\n");

  ASSERT_TRUE(redis.Stop());
  EXPECT_FALSE(redis.running());
  EXPECT_FALSE(WaitForTcp(redis.port(), milliseconds(0))) << "Redis still listens after Stop()";
  EXPECT_TRUE(redis.Stop()) << "a second Stop() must succeed";

  ASSERT_TRUE(redis.Start());
  EXPECT_TRUE(redis.running());
  EXPECT_EQ(RedisCli(redis, {"PING"}), std::make_pair(0, std::string("PONG\n")));
  // Nothing persists across a restart.
  EXPECT_EQ(RedisCli(redis, {"EXISTS", "support:key"}).second, "0\n");
}

TEST(ServiceInstanceTest, PostgresStopsAndStartsAgainWithItsData) {
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.running());
  EXPECT_EQ(postgres.url(), "postgresql://stowage@127.0.0.1:" + std::to_string(postgres.port()) + "/stowage");
  EXPECT_EQ(Psql(postgres, "SELECT 1"), std::make_pair(0, std::string("1\n")));
  ASSERT_EQ(Psql(postgres, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)").first, 0);

  ASSERT_TRUE(postgres.Stop());
  EXPECT_FALSE(postgres.running());
  EXPECT_FALSE(WaitForTcp(postgres.port(), milliseconds(0))) << "PostgreSQL still listens after Stop()";
  EXPECT_NE(Psql(postgres, "SELECT 1").first, 0);
  EXPECT_TRUE(postgres.Stop()) << "a second Stop() must succeed";

  ASSERT_TRUE(postgres.Start());
  EXPECT_EQ(Psql(postgres, "SELECT n FROM kept"), std::make_pair(0, std::string("42\n")));
}

TEST(ServiceInstanceTest, DestructorStopsTheServerAndRemovesItsFolder) {
  std::uint16_t port = 0;
  std::filesystem::path data;
  {
    ServiceInstance redis(Service::kRedis);
    ASSERT_TRUE(redis.running());
    port = redis.port();
    data = redis.data_dir();
    ASSERT_TRUE(std::filesystem::exists(data));
  }
  EXPECT_FALSE(WaitForTcp(port, milliseconds(0))) << "Redis still listens on " << port;
  EXPECT_FALSE(std::filesystem::exists(data.parent_path())) << data.parent_path();
}

}  // namespace
}  // namespace stowage::testing
