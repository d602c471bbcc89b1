// Test support: a stage under the conformance suite that runs behind the
// postgres stage, as in a pipeline. Each write goes first through a postgres
// stage made with the stage under test, which sets the message_id and
// conversation_id it needs. For stages that serve no reads.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "postgres_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::postgres::testing {

// `database` gives the database both stages join (nullptr when unset: the
// stage is then not made, and the suite says why).
template <typename StageClass>
testkit::StageUnderTest BehindPostgres(std::string name, std::function<Database*()> database) {
  struct Front {
    testkit::NullLogger log;
    std::mutex mu;
    std::shared_ptr<PostgresStage> stage;
  };
  auto front = std::make_shared<Front>();
  testkit::StageUnderTest stage;
  stage.name = std::move(name);
  stage.schema = StageClass::config_schema();
  stage.make = [front, database](StageEnvironment& env) -> std::unique_ptr<Stage> {
    env.database = database();
    if (env.database == nullptr) return nullptr;
    StageEnvironment postgres_env{front->log, env.database};
    auto postgres = std::make_shared<PostgresStage>(
        testkit::ConfigWithDefaults(PostgresStage::config_schema()), postgres_env);
    {
      std::lock_guard lock(front->mu);
      front->stage = postgres;
    }
    return std::make_unique<StageClass>(testkit::ConfigWithDefaults(StageClass::config_schema()), env);
  };
  stage.before_write = [front](WriteContext& ctx) {
    std::shared_ptr<PostgresStage> postgres;
    {
      std::lock_guard lock(front->mu);
      postgres = front->stage;
    }
    return postgres->write(ctx);
  };
  stage.serves_reads = false;
  return stage;
}

}  // namespace stowage::postgres::testing
