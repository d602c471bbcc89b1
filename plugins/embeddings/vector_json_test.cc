// Vectors as JSON, UTF-8 truncation, similarity ranking and URL parsing.
#include "vector_json.h"

#include <gtest/gtest.h>

#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "builtin_provider.h"
#include "http_client.h"
#include "similarity.h"
#include "text_chunk.h"

namespace stowage::embeddings {
namespace {

TEST(VectorJsonTest, WritesTheShortestFormOfEachFloat) {
  EXPECT_EQ(VectorToJson({0.5f, -0.123456789f, 1e-7f, 0.0f, 1.0f, -2.5e-5f}),
            "[0.5,-0.12345679,1e-07,0,1,-2.5e-05]");
  EXPECT_EQ(VectorToJson({0.1f}), "[0.1]") << "not 0.100000001";
  EXPECT_EQ(VectorToJson({}), "[]");
  EXPECT_EQ(VectorToJson({7.0f}), "[7]");
}

TEST(VectorJsonTest, WritesZerosAndNonFiniteValuesAsZero) {
  EXPECT_EQ(VectorToJson({0.0f, -0.0f, 0.25f, 0.0f}), "[0,0,0.25,0]");
  EXPECT_EQ(VectorToJson({std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}),
            "[0,0,0]");
}

TEST(VectorJsonTest, IsIndependentOfTheLocale) {
  const char* previous = std::setlocale(LC_ALL, nullptr);
  const std::string saved = previous ? previous : "C";
  // A locale with a decimal comma, when the system has one.
  const bool changed = std::setlocale(LC_ALL, "de_DE.UTF-8") != nullptr ||
                       std::setlocale(LC_ALL, "fr_FR.UTF-8") != nullptr;
  const std::string json = VectorToJson({0.5f, -1.25f});
  std::setlocale(LC_ALL, saved.c_str());
  EXPECT_EQ(json, "[0.5,-1.25]") << (changed ? "under a decimal-comma locale" : "in the C locale");
}

// Every value reads back as exactly the float that was written: values of a
// real embedding, tiny and huge magnitudes, subnormals, and random bits.
TEST(VectorJsonTest, RoundTripsExactly) {
  std::vector<float> in = {0.1f,
                           -0.25f,
                           0.333333343f,
                           12345.6f,
                           1e-7f,
                           -3.0e-7f,
                           1.17549435e-38f,
                           std::numeric_limits<float>::denorm_min(),
                           -std::numeric_limits<float>::denorm_min(),
                           std::numeric_limits<float>::max(),
                           -std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::epsilon()};
  const std::vector<float> embedding = HashEmbedding("The weather in Lisbon is sunny today", 1408);
  in.insert(in.end(), embedding.begin(), embedding.end());
  std::mt19937 random(12345);
  for (int i = 0; i < 20000; ++i) {
    const std::uint32_t bits = random();
    float value;
    std::memcpy(&value, &bits, sizeof value);
    if (std::isfinite(value)) in.push_back(value);
  }
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int i = 0; i < 20000; ++i) in.push_back(unit(random));

  std::string error;
  const std::string json = VectorToJson(in);
  auto out = VectorFromJson(json, &error);
  ASSERT_TRUE(out) << error;
  ASSERT_EQ(out->size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ((*out)[i], in[i]) << "element " << i;
  }
}

TEST(VectorJsonTest, SparseVectorsStayShort) {
  std::vector<float> sparse(256, 0.0f);
  sparse[3] = 0.5f;
  sparse[200] = -0.5f;
  const std::string json = VectorToJson(sparse);
  EXPECT_EQ(json.size(), 2 + 255 + 254 + 3 + 4) << json;  // brackets, commas, 254 zeros, 0.5, -0.5
  std::string error;
  auto out = VectorFromJson(json, &error);
  ASSERT_TRUE(out) << error;
  EXPECT_EQ(*out, sparse);
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

TEST(UrlTest, Ipv6HostsInBrackets) {
  std::string error;
  auto url = ParseUrl("https://[2001:db8::7]/v1", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "2001:db8::7");
  EXPECT_EQ(url->port, "443");
  EXPECT_EQ(url->text, "https://[2001:db8::7]:443/v1");
  EXPECT_FALSE(ParseUrl("http://[::1", &error));
  EXPECT_NE(error.find("unclosed '['"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("http://[::1]8080/", &error));
  EXPECT_NE(error.find("text after its IPv6 host"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("http://[localhost]/", &error));
  EXPECT_NE(error.find("not an IPv6 address"), std::string::npos) << error;
}

TEST(UrlTest, PortsOutOfRange) {
  std::string error;
  EXPECT_EQ(ParseUrl("http://h:65535/", &error)->port, "65535");
  EXPECT_EQ(ParseUrl("http://h:0080/", &error)->port, "80");
  EXPECT_EQ(ParseUrl("http://h:/", &error)->port, "80");
  for (const char* bad : {"http://h:0/", "http://h:65536/", "http://h:-1/", "http://h:8o/"}) {
    EXPECT_FALSE(ParseUrl(bad, &error)) << bad;
    EXPECT_NE(error.find("use 1 to 65535"), std::string::npos) << error;
  }
}

TEST(UrlTest, UserInfoIsNeverSentNorShown) {
  std::string error;
  // Percent-encoded or not, it is dropped.
  auto url = ParseUrl("https://us%40er:p%40ss@api.example.com/v1", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "api.example.com");
  EXPECT_EQ(url->target, "/v1");
  EXPECT_EQ(ParseUrl("https://u:p@ss%zz@api.example.com/v1", &error)->host, "api.example.com");
  for (const char* bad : {"https://u:s3cret@h:99999/", "https://u:s3cret@h:x/", "https://u:s3cret@[::1/",
                          "https://u:s3/cret@h:1/", "https://:s3cret?#@h:1/", "https://u:s3cret@h%zz/"}) {
    EXPECT_FALSE(ParseUrl(bad, &error)) << bad;
    EXPECT_EQ(error.find("s3cret"), std::string::npos) << error;
    EXPECT_EQ(error.find("cret"), std::string::npos) << error;
  }
}

TEST(UrlTest, BadPercentEscapesAreRefused) {
  std::string error;
  EXPECT_FALSE(ParseUrl("http://h/v1%zz", &error));
  EXPECT_NE(error.find("malformed %-escape in its path"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("http://h/v1?x=%4", &error));
  EXPECT_NE(error.find("malformed %-escape in its query"), std::string::npos) << error;
  EXPECT_FALSE(ParseUrl("http://h%g1/", &error));
  EXPECT_NE(error.find("malformed %-escape in its host"), std::string::npos) << error;
}

TEST(UrlTest, TheTargetIsSentAsRfc3986WritesIt) {
  std::string error;
  auto url = ParseUrl("http://h/v1/a b?q=caf\xC3\xA9&x=%41", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->target, "/v1/a%20b?q=caf%C3%A9&x=%41");
  // Vertex AI's model path holds '@' and ':'; a name may start like an
  // address.
  url = ParseUrl("https://10.0.0.5.nip.io/v1/models/multimodalembedding@001:predict", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->host, "10.0.0.5.nip.io");
  EXPECT_EQ(url->target, "/v1/models/multimodalembedding@001:predict");
}

}  // namespace
}  // namespace stowage::embeddings
