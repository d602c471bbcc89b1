// MetricsStage against the stage conformance suite, in a fresh database on
// the server of STOWAGE_TEST_DATABASE_URL (scripts/test starts it). The
// stage keeps no message content: it serves no reads and an erase keeps the
// guest's accounting, so the suite skips those checks. It keeps no record per
// message either (no count_stored): a replay counts the request once more by
// design, the count its failed write rolled back (metrics_stage_test checks
// it), so the replay check is skipped too.
#include <memory>

#include "conformance_database.h"
#include "metrics_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::metrics {
namespace {

using stowage::testing::ConformanceDatabase;
using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

ConformanceDatabase* const kDatabase = ConformanceDatabase::Register("metrics_conformance");

StageUnderTest MetricsUnderTest() {
  StageUnderTest stage;
  stage.name = "metrics";
  stage.schema = MetricsStage::config_schema();
  stage.make = [](StageEnvironment& env) -> std::unique_ptr<Stage> {
    env.database = kDatabase->database();
    if (env.database == nullptr) return nullptr;
    return std::make_unique<MetricsStage>(stowage::testkit::ConfigWithDefaults(MetricsStage::config_schema()),
                                          env);
  };
  kDatabase->Bind(stage);
  stage.serves_reads = false;
  stage.erase_reports_held = false;
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Metrics, StageConformanceTest, ::testing::Values(MetricsUnderTest()),
                         stowage::testkit::StageName());

}  // namespace
}  // namespace stowage::metrics
