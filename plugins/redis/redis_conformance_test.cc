// RedisStage against the stage conformance suite, on the Redis server named
// by STOWAGE_TEST_REDIS_URL (scripts/test starts it).
#include <cstdlib>
#include <memory>
#include <string>

#include "redis_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::redis {
namespace {

using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

StageUnderTest RedisUnderTest() {
  StageUnderTest stage;
  stage.name = "redis";
  stage.schema = RedisStage::config_schema();
  stage.make = [](StageEnvironment& env) -> std::unique_ptr<Stage> {
    const char* url = std::getenv("STOWAGE_TEST_REDIS_URL");
    if (url == nullptr || *url == '\0') {
      ADD_FAILURE() << "STOWAGE_TEST_REDIS_URL is not set; run the suite through scripts/test";
      return nullptr;
    }
    StageConfig config({{"url", std::string(url)},
                        {"key_prefix", std::string("conformance:")},
                        {"ttl_seconds", std::int64_t{600}},
                        {"pool_size", std::int64_t{8}},
                        {"connect_timeout_ms", std::int64_t{1000}},
                        {"command_timeout_ms", std::int64_t{2000}},
                        {"change_lifetime_ms", std::int64_t{30000}}});
    return std::make_unique<RedisStage>(config, env);
  };
  // It runs after the COMMIT (kAfterCommit): the host never journals it.
  stage.replayable = false;
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Redis, StageConformanceTest, ::testing::Values(RedisUnderTest()),
                         stowage::testkit::StageName());

}  // namespace
}  // namespace stowage::redis
