// MappingStage against the stage conformance suite, in a fresh database on
// the server of STOWAGE_TEST_DATABASE_URL (scripts/test starts it). As in a
// pipeline, the postgres stage runs first in each write's transaction and
// sets the message_id the mapping stage maps. The stage serves no reads.
#include <memory>
#include <string>

#include "behind_postgres.h"
#include "conformance_database.h"
#include "mapping_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::mapping {
namespace {

using stowage::testing::ConformanceDatabase;
using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

ConformanceDatabase* const kDatabase = ConformanceDatabase::Register("mapping_conformance");

StageUnderTest MappingUnderTest() {
  StageUnderTest stage =
      postgres::testing::BehindPostgres<MappingStage>("mapping", [] { return kDatabase->database(); });
  kDatabase->Bind(stage);
  // One row per message: the replay check counts them.
  stage.count_stored = [](const std::string& guest) {
    if (kDatabase->scratch() == nullptr || !kDatabase->scratch()->ok()) return -1;
    const std::string count = kDatabase->scratch()->Scalar(
        "SELECT count(*) FROM cache_content_mapping WHERE user_id = $1", {guest});
    return count == "<null>" ? -1 : std::stoi(count);
  };
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Mapping, StageConformanceTest, ::testing::Values(MappingUnderTest()),
                         stowage::testkit::StageName());

}  // namespace
}  // namespace stowage::mapping
