#include "builtin_provider.h"

#include <gtest/gtest.h>

#include <cmath>

#include "similarity.h"

namespace stowage::embeddings {
namespace {

double Norm(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

TEST(BuiltinProviderTest, SameTextGivesTheSameVector) {
  EXPECT_EQ(HashEmbedding("The cat sat on the mat", 1408), HashEmbedding("The cat sat on the mat", 1408));
}

TEST(BuiltinProviderTest, VectorIsPinnedAcrossMachinesAndReleases) {
  // A change here changes every stored embedding: it needs a new model name.
  const std::vector<float> expected = {0.288675129f,  0.288675129f,  0.0f,         -0.577350259f,
                                       -0.288675129f, -0.288675129f, 0.577350259f, 0.0f};
  const std::vector<float> v = HashEmbedding("hello world", 8);
  ASSERT_EQ(v.size(), 8u);
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], 1e-7) << i;
  EXPECT_EQ(HashEmbedding("HELLO   world!", 8), v) << "case, spacing and punctuation must not matter";
}

TEST(BuiltinProviderTest, VectorHasUnitLength) {
  for (const char* text : {"a", "Hello!", "Quelle heure est-il à Zürich ?", "!!!", "1234 5678"}) {
    EXPECT_NEAR(Norm(HashEmbedding(text, 1408)), 1.0, 1e-5) << text;
  }
}

TEST(BuiltinProviderTest, DimensionIsRespected) {
  EXPECT_EQ(HashEmbedding("some text", 1408).size(), 1408u);
  EXPECT_EQ(HashEmbedding("some text", 3).size(), 3u);
  BuiltinProvider provider(256);
  std::vector<float> out;
  ASSERT_TRUE(provider.embed("some text", Deadline::After(std::chrono::seconds(1)), &out).ok());
  EXPECT_EQ(out.size(), 256u);
  EXPECT_EQ(provider.dimensions(), 256u);
  EXPECT_EQ(provider.model(), "stowage-hash-v1");
}

TEST(BuiltinProviderTest, SimilarTextsAreCloserThanUnrelatedOnes) {
  const auto query = HashEmbedding("How do I reset my password?", 1408);
  const auto similar = HashEmbedding("I forgot my password and need to reset it", 1408);
  const auto unrelated = HashEmbedding("The weather in Lisbon is sunny today", 1408);
  const double close = CosineSimilarity(query, similar);
  const double far = CosineSimilarity(query, unrelated);
  EXPECT_GT(close, far + 0.2) << "similar " << close << ", unrelated " << far;
  EXPECT_NEAR(CosineSimilarity(query, query), 1.0, 1e-6);
}

TEST(BuiltinProviderTest, WordPiecesMatchInflections) {
  const auto base = HashEmbedding("booking", 1408);
  EXPECT_GT(CosineSimilarity(base, HashEmbedding("bookings", 1408)),
            CosineSimilarity(base, HashEmbedding("weather", 1408)));
}

TEST(BuiltinProviderTest, TextWithoutWordsStillEmbeds) {
  const auto a = HashEmbedding("?!", 1408);
  const auto b = HashEmbedding("...", 1408);
  EXPECT_NEAR(Norm(a), 1.0, 1e-6);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace stowage::embeddings
