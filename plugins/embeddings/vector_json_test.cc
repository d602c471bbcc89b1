// Vectors as JSON, UTF-8 truncation, similarity ranking and URL parsing.
#include "vector_json.h"

#include <gtest/gtest.h>

#include "http_client.h"
#include "similarity.h"
#include "text_chunk.h"

namespace stowage::embeddings {
namespace {

TEST(VectorJsonTest, WritesCompactSixDigitNumbers) {
  EXPECT_EQ(VectorToJson({0.5f, -0.123456789f, 1e-7f, 0.0f}), "[0.5,-0.123457,1e-07,0]");
  EXPECT_EQ(VectorToJson({}), "[]");
}

TEST(VectorJsonTest, RoundTripsWithinSixDigits) {
  std::vector<float> in = {0.1f, -0.25f, 0.333333f, 12345.6f};
  std::string error;
  auto out = VectorFromJson(VectorToJson(in), &error);
  ASSERT_TRUE(out) << error;
  ASSERT_EQ(out->size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_NEAR((*out)[i], in[i], std::abs(in[i]) * 1e-5);
}

TEST(VectorJsonTest, ReadsWhatPostgresJsonbWrites) {
  std::string error;
  auto out = VectorFromJson("[0.0000001, -0.5, 1, 2.5E+3]", &error);
  ASSERT_TRUE(out) << error;
  EXPECT_EQ(*out, (std::vector<float>{1e-7f, -0.5f, 1.0f, 2500.0f}));
}

TEST(VectorJsonTest, RefusesWhatIsNotAnArrayOfNumbers) {
  std::string error;
  EXPECT_FALSE(VectorFromJson("{\"a\":1}", &error));
  EXPECT_NE(error.find("array"), std::string::npos) << error;
  EXPECT_FALSE(VectorFromJson("[1, \"two\"]", &error));
  EXPECT_NE(error.find("element 1"), std::string::npos) << error;
  EXPECT_FALSE(VectorFromJson("[1, ", &error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos) << error;
}

TEST(TextChunkTest, CutsOnACharacterBoundary) {
  const std::string text =
      "ab\xC3\xA9"
      "cd";  // "abécd": é is two bytes
  EXPECT_EQ(TruncateUtf8(text, 100), text);
  EXPECT_EQ(TruncateUtf8(text, 4), "ab\xC3\xA9");
  EXPECT_EQ(TruncateUtf8(text, 3), "ab") << "half of é must not be kept";
  EXPECT_EQ(TruncateUtf8("\xF0\x9F\x98\x80x", 2), "") << "a 4-byte emoji that does not fit is dropped whole";
}

TEST(SimilarityTest, RanksBestFirstAndBreaksTiesByAge) {
  std::vector<Scored> top = TopK({{0, 0.1}, {1, 0.9}, {2, 0.5}, {3, 0.9}}, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].index, 1u);
  EXPECT_EQ(top[1].index, 3u);
  EXPECT_EQ(top[2].index, 2u);
  EXPECT_EQ(TopK({{0, 1.0}}, 5).size(), 1u);
}

TEST(SimilarityTest, CosineOfMismatchedOrZeroVectorsIsZero) {
  EXPECT_EQ(CosineSimilarity({1, 0}, {1, 0, 0}), 0);
  EXPECT_EQ(CosineSimilarity({0, 0}, {1, 0}), 0);
  EXPECT_NEAR(CosineSimilarity({1, 0}, {-1, 0}), -1, 1e-9);
}

TEST(UrlTest, ParsesHostPortAndPathWithDefaults) {
  std::string error;
  auto url = ParseUrl("https://api.openai.com/v1/embeddings", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "api.openai.com");
  EXPECT_EQ(url->port, "443");
  EXPECT_EQ(url->target, "/v1/embeddings");
  EXPECT_EQ(url->text, "https://api.openai.com:443/v1/embeddings");

  url = ParseUrl("HTTP://user:secret@localhost:11434/v1/embeddings?x=1#frag", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_FALSE(url->tls);
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, "11434");
  EXPECT_EQ(url->target, "/v1/embeddings?x=1");
  EXPECT_EQ(url->text.find("secret"), std::string::npos) << "user info must not reach messages";

  url = ParseUrl("http://[::1]:8080", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "8080");
  EXPECT_EQ(url->target, "/");
  EXPECT_EQ(ParseUrl("http://example.com", &error)->port, "80");
}

TEST(UrlTest, RefusesWhatItCannotUse) {
  std::string error;
  EXPECT_FALSE(ParseUrl("localhost:8080/v1", &error));
  EXPECT_NE(error.find("http://"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("ftp://host/x", &error));
  EXPECT_NE(error.find("ftp"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("http://host:99999/", &error));
  EXPECT_NE(error.find("99999"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("http:///path", &error));
  EXPECT_NE(error.find("no host"), std::string::npos) << error;
}

}  // namespace
}  // namespace stowage::embeddings
