// The archive stage against stowage's stage conformance suite.
#include "stowage/testkit/conformance.h"

#include <memory>

#include "archive_stage.h"
#include "scratch_folder.h"

namespace {

using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

StageUnderTest Archive(bool fsync) {
  StageUnderTest stage;
  stage.name = fsync ? "archive_fsync" : "archive";
  stage.schema = archive::ArchiveStage::config_schema();
  stage.make = [fsync](stowage::StageEnvironment& env) -> std::unique_ptr<stowage::Stage> {
    stowage::StageConfig config(
        {{"folder", (archive::test::ScratchFolder() / "conformance").string()}, {"fsync", fsync}});
    return std::make_unique<archive::ArchiveStage>(config, env);
  };
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Archive, StageConformanceTest, ::testing::Values(Archive(false), Archive(true)),
                         stowage::testkit::StageName());

}  // namespace
