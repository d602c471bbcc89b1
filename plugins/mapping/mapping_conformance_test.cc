// MappingStage against the stage conformance suite, in a fresh database on
// the server of STOWAGE_TEST_DATABASE_URL (scripts/test starts it). As in a
// pipeline, the postgres stage runs first in each write's transaction and
// sets the message_id the mapping stage maps. The stage serves no reads.
#include <memory>
#include <mutex>

#include "conformance_database.h"
#include "mapping_stage.h"
#include "postgres_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::mapping {
namespace {

using stowage::postgres::PostgresStage;
using stowage::testing::ConformanceDatabase;
using stowage::testkit::ConfigWithDefaults;
using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

ConformanceDatabase* const kDatabase = ConformanceDatabase::Register("mapping_conformance");

// The postgres stage in front of the mapping stage, made with it.
testkit::NullLogger postgres_log;
std::mutex postgres_mu;
std::shared_ptr<PostgresStage> postgres_stage;

StageUnderTest MappingUnderTest() {
  StageUnderTest stage;
  stage.name = "mapping";
  stage.schema = MappingStage::config_schema();
  stage.make = [](StageEnvironment& env) -> std::unique_ptr<Stage> {
    env.database = kDatabase->database();
    if (env.database == nullptr) return nullptr;
    StageEnvironment postgres_env{postgres_log, env.database};
    auto postgres =
        std::make_shared<PostgresStage>(ConfigWithDefaults(PostgresStage::config_schema()), postgres_env);
    {
      std::lock_guard lock(postgres_mu);
      postgres_stage = postgres;
    }
    return std::make_unique<MappingStage>(ConfigWithDefaults(MappingStage::config_schema()), env);
  };
  stage.before_write = [](WriteContext& ctx) {
    std::shared_ptr<PostgresStage> postgres;
    {
      std::lock_guard lock(postgres_mu);
      postgres = postgres_stage;
    }
    return postgres->write(ctx);
  };
  kDatabase->Bind(stage);
  stage.serves_reads = false;
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Mapping, StageConformanceTest, ::testing::Values(MappingUnderTest()),
                         stowage::testkit::StageName());

}  // namespace
}  // namespace stowage::mapping
