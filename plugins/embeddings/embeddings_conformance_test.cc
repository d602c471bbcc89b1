// EmbeddingsStage against the stage conformance suite, in a fresh database on
// the server of STOWAGE_TEST_DATABASE_URL (scripts/test starts it). As in a
// pipeline, the postgres stage runs first in each write's transaction and
// sets the message_id and conversation_id the embeddings stage keys its vectors
// by, with the offline builtin provider. The stage serves searches, not reads.
#include <memory>
#include <string>

#include "behind_postgres.h"
#include "conformance_database.h"
#include "embeddings_stage.h"
#include "stowage/testkit/conformance.h"

namespace stowage::embeddings {
namespace {

using stowage::testing::ConformanceDatabase;
using stowage::testkit::StageConformanceTest;
using stowage::testkit::StageUnderTest;

ConformanceDatabase* const kDatabase = ConformanceDatabase::Register("embeddings_conformance");

StageUnderTest EmbeddingsUnderTest() {
  StageUnderTest stage =
      postgres::testing::BehindPostgres<EmbeddingsStage>("embeddings", [] { return kDatabase->database(); });
  kDatabase->Bind(stage);
  // One row per message (chunk 0): the replay check counts them.
  stage.count_stored = [](const std::string& guest) {
    if (kDatabase->scratch() == nullptr || !kDatabase->scratch()->ok()) return -1;
    const std::string count = kDatabase->scratch()->Scalar(
        "SELECT count(*) FROM cache_embeddings e JOIN conversation_cache c ON c.id = e.conversation_id"
        " WHERE c.platform = 'guest' AND c.user_id = $1",
        {guest});
    return count == "<null>" ? -1 : std::stoi(count);
  };
  return stage;
}

INSTANTIATE_TEST_SUITE_P(Embeddings, StageConformanceTest, ::testing::Values(EmbeddingsUnderTest()),
                         stowage::testkit::StageName());

}  // namespace
}  // namespace stowage::embeddings
