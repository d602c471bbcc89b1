// PostgresStage against the stage conformance suite, in a fresh database on
// the server of STOWAGE_TEST_DATABASE_URL (scripts/test starts it), opened
// as the host opens a [[database]] and lending its connections per call.
#include <memory>
#include <string>

#include "conformance_database.h"
#include "postgres_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::postgres {
namespace {

using stowage::testing::ConformanceDatabase;
using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

ConformanceDatabase* const kDatabase = ConformanceDatabase::Register("postgres_conformance");

StageUnderTest PostgresUnderTest() {
  StageUnderTest stage;
  stage.name = "postgres";
  stage.schema = PostgresStage::config_schema();
  stage.make = [](StageEnvironment& env) -> std::unique_ptr<Stage> {
    env.database = kDatabase->database();
    if (env.database == nullptr) return nullptr;
    return std::make_unique<PostgresStage>(
        stowage::testkit::ConfigWithDefaults(PostgresStage::config_schema()), env);
  };
  kDatabase->Bind(stage);
  // The pipeline runs it `required` (later stages need its message_id): a
  // failure fails the request, and nothing is journaled for a replay.
  stage.replayable = false;
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Postgres, StageConformanceTest, ::testing::Values(PostgresUnderTest()),
                         stowage::testkit::StageName());

}  // namespace
}  // namespace stowage::postgres
