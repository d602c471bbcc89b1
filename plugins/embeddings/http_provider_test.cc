// The Vertex and OpenAI providers against a fake provider server that speaks
// their wire formats, and every way a call can fail.
#include <gtest/gtest.h>

#include <cstdlib>

#include "builtin_provider.h"
#include "embeddings_stage.h"
#include "fake_provider.h"
#include "openai_provider.h"
#include "provider_factory.h"
#include "vertex_provider.h"

namespace stowage::embeddings {
namespace {

using std::chrono::milliseconds;
using testing::FakeProvider;
using Mode = FakeProvider::Mode;

constexpr const char* kTokenEnv = "STOWAGE_TEST_EMBEDDINGS_TOKEN";
constexpr const char* kToken = "tok-secret-123";

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

StageConfig Config(std::map<std::string, ConfigValue> overrides) {
  return ConfigWithDefaults(EmbeddingsStage::config_schema(), std::move(overrides));
}

FakeProvider::Options FakeOptions(std::string token = kToken) {
  FakeProvider::Options options;
  options.dimensions = 16;
  options.token = std::move(token);
  return options;
}

std::unique_ptr<VertexProvider> Vertex(const FakeProvider& fake, milliseconds request = milliseconds(5000)) {
  VertexSettings settings;
  settings.project = "test-project";
  settings.endpoint = fake.base_url();
  settings.token_env = kTokenEnv;
  settings.dimensions = 16;
  settings.timeouts.request = request;
  return std::make_unique<VertexProvider>(settings);
}

std::unique_ptr<OpenAiProvider> OpenAi(const std::string& base_url,
                                       milliseconds request = milliseconds(5000)) {
  OpenAiSettings settings;
  settings.base_url = base_url;
  settings.model = "test-embed";
  settings.api_key_env = kTokenEnv;
  settings.dimensions = 16;
  settings.timeouts.request = request;
  return std::make_unique<OpenAiProvider>(settings);
}

class HttpProviderTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv(kTokenEnv, kToken, 1); }
  void TearDown() override { unsetenv(kTokenEnv); }

  static Deadline Soon() { return Deadline::After(milliseconds(5000)); }
};

TEST_F(HttpProviderTest, VertexSpeaksThePredictWireFormat) {
  FakeProvider fake(FakeOptions());
  auto provider = Vertex(fake);
  std::vector<float> out;
  const std::string text = "Hello \"quoted\"\nnew line, é";
  Status status = provider->embed(text, Soon(), &out);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(fake.problems().empty()) << fake.problems().front();
  EXPECT_EQ(fake.last_text(), text);
  ASSERT_EQ(out.size(), 16u);
  const std::vector<float> expected = HashEmbedding(text, 16);
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], expected[i], 1e-6);
  EXPECT_EQ(provider->model(), "multimodalembedding@001");
}

TEST_F(HttpProviderTest, VertexWithoutATokenSaysWhichVariable) {
  unsetenv(kTokenEnv);
  FakeProvider fake(FakeOptions());
  std::vector<float> out;
  Status status = Vertex(fake)->embed("hi", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), kTokenEnv));
  EXPECT_EQ(fake.requests(), 0);
}

TEST_F(HttpProviderTest, OpenAiSpeaksTheEmbeddingsWireFormat) {
  FakeProvider fake(FakeOptions());
  auto provider = OpenAi(fake.base_url() + "/v1/");
  std::vector<float> out;
  Status status = provider->embed("some text", Soon(), &out);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(fake.problems().empty()) << fake.problems().front();
  EXPECT_EQ(fake.last_text(), "some text");
  EXPECT_EQ(out.size(), 16u);
}

TEST_F(HttpProviderTest, OpenAiSendsNoAuthorizationWithoutAKey) {
  unsetenv(kTokenEnv);
  FakeProvider fake(FakeOptions(""));
  std::vector<float> out;
  Status status = OpenAi(fake.base_url() + "/v1")->embed("local model", Soon(), &out);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(fake.problems().empty()) << fake.problems().front();
}

TEST_F(HttpProviderTest, OpenAiSendsDimensionsOnlyWhenAsked) {
  FakeProvider::Options options = FakeOptions();
  options.expect_dimensions_field = true;
  FakeProvider fake(options);
  std::vector<float> out;
  Status status = OpenAi(fake.base_url() + "/v1")->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << "the fake refuses a body without dimensions";

  OpenAiSettings settings;
  settings.base_url = fake.base_url() + "/v1";
  settings.model = "test-embed";
  settings.api_key_env = kTokenEnv;
  settings.dimensions = 16;
  settings.send_dimensions = true;
  status = OpenAiProvider(settings).embed("x", Soon(), &out);
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST_F(HttpProviderTest, ErrorStatusIsUnavailableWithStatusAndBody) {
  FakeProvider fake(FakeOptions());
  fake.set_mode(Mode::kErrorStatus, 503);
  std::vector<float> out;
  Status status = OpenAi(fake.base_url() + "/v1")->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "HTTP 503"));
  EXPECT_TRUE(Contains(status.message(), "fake failure"));
  EXPECT_TRUE(Contains(status.message(), "/v1/embeddings"));
  EXPECT_FALSE(Contains(status.message(), kToken));
  EXPECT_TRUE(out.empty());

  fake.set_mode(Mode::kErrorStatus, 401);
  status = Vertex(fake)->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "HTTP 401"));
  EXPECT_TRUE(Contains(status.message(), ":predict"));
  EXPECT_FALSE(Contains(status.message(), kToken));
}

TEST_F(HttpProviderTest, WrongSizedVectorIsRefusedNamingBothSizes) {
  FakeProvider fake(FakeOptions());
  fake.set_mode(Mode::kWrongSize);
  std::vector<float> out;
  Status status = Vertex(fake)->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "17 dimensions"));
  EXPECT_TRUE(Contains(status.message(), "expects 16"));
  EXPECT_TRUE(Contains(status.message(), "`dimensions`"));
  EXPECT_TRUE(out.empty());
}

TEST_F(HttpProviderTest, EmptyVectorIsRefused) {
  FakeProvider fake(FakeOptions());
  fake.set_mode(Mode::kEmpty);
  std::vector<float> out;
  Status status = OpenAi(fake.base_url() + "/v1")->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "empty data[0].embedding"));
}

TEST_F(HttpProviderTest, MalformedJsonIsRefused) {
  FakeProvider fake(FakeOptions());
  fake.set_mode(Mode::kMalformed);
  std::vector<float> out;
  Status status = Vertex(fake)->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "not valid JSON"));
  EXPECT_TRUE(Contains(status.message(), fake.base_url().substr(7)));
}

TEST_F(HttpProviderTest, HangingProviderTimesOutAtRequestTimeout) {
  FakeProvider fake(FakeOptions());
  fake.set_mode(Mode::kHang);
  std::vector<float> out;
  const auto start = Clock::now();
  Status status = OpenAi(fake.base_url() + "/v1", milliseconds(300))->embed("x", Soon(), &out);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(status.message(), "timed out waiting for the answer"));
  EXPECT_TRUE(Contains(status.message(), "request_timeout_ms 300 ms"));
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(2000));
}

TEST_F(HttpProviderTest, HangingProviderTimesOutAtTheCallsDeadline) {
  FakeProvider fake(FakeOptions());
  fake.set_mode(Mode::kHang);
  std::vector<float> out;
  const auto start = Clock::now();
  Status status = Vertex(fake, milliseconds(10000))->embed("x", Deadline::After(milliseconds(200)), &out);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(status.message(), "deadline"));
  EXPECT_LT(elapsed, milliseconds(1500));
}

TEST_F(HttpProviderTest, ClosedPortCannotConnect) {
  std::string base;
  {
    FakeProvider gone(FakeOptions());
    base = gone.base_url();
  }
  std::vector<float> out;
  Status status = OpenAi(base + "/v1")->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "cannot connect to " + base.substr(0, 7)));
  EXPECT_TRUE(Contains(status.message(), "/v1/embeddings"));
}

TEST_F(HttpProviderTest, HttpsToAServerWithoutTlsFailsTheHandshake) {
  FakeProvider fake(FakeOptions());
  std::vector<float> out;
  Status status =
      OpenAi("https://127.0.0.1:" + std::to_string(fake.port()) + "/v1")->embed("x", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "TLS handshake with https://127.0.0.1"));
}

TEST_F(HttpProviderTest, UnknownHostCannotBeResolved) {
  std::vector<float> out;
  Status status = OpenAi("http://no-such-host.invalid/v1")->embed("x", Soon(), &out);
  EXPECT_NE(status.code(), StatusCode::kOk);
  EXPECT_TRUE(Contains(status.message(), "no-such-host.invalid"));
}

TEST(ProviderFactoryTest, BuildsTheChosenProvider) {
  auto builtin = MakeProvider(Config({}));
  EXPECT_EQ(builtin->model(), "stowage-hash-v1");
  EXPECT_EQ(builtin->dimensions(), 256u);

  auto vertex = MakeProvider(Config({{"provider", std::string("vertex")}, {"project", std::string("p")}}));
  EXPECT_EQ(vertex->model(), "multimodalembedding@001");
  EXPECT_TRUE(
      Contains(vertex->describe(),
               "https://us-central1-aiplatform.googleapis.com:443/v1/projects/p/locations/us-central1/"
               "publishers/google/models/multimodalembedding@001:predict"));

  auto openai = MakeProvider(Config({{"provider", std::string("openai")},
                                     {"model", std::string("nomic-embed-text")},
                                     {"base_url", std::string("http://localhost:11434/v1")},
                                     {"dimensions", std::int64_t{768}}}));
  EXPECT_EQ(openai->model(), "nomic-embed-text");
  EXPECT_EQ(openai->dimensions(), 768u);
  EXPECT_TRUE(Contains(openai->describe(), "http://localhost:11434/v1/embeddings"));
}

TEST(ProviderFactoryTest, RefusesIncompleteConfigNamingTheKey) {
  auto message = [](std::map<std::string, ConfigValue> overrides) {
    try {
      MakeProvider(Config(std::move(overrides)));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_TRUE(
      Contains(message({{"provider", std::string("bert")}}), "\"builtin\", \"vertex\" or \"openai\""));
  EXPECT_TRUE(Contains(message({{"provider", std::string("vertex")}}), "`project`"));
  EXPECT_TRUE(Contains(message({{"provider", std::string("openai")}}), "`model`"));
  EXPECT_TRUE(Contains(
      message(
          {{"provider", std::string("openai")}, {"model", std::string("m")}, {"base_url", std::string("x")}}),
      "`base_url`"));
}

// Without `dimensions` each provider has its own size; one that is set wins.
TEST(ProviderFactoryTest, DimensionsDefaultPerProvider) {
  std::vector<float> out;
  auto builtin = MakeProvider(Config({{"provider", std::string("builtin")}}));
  EXPECT_EQ(builtin->dimensions(), 256u);
  ASSERT_TRUE(builtin->embed("some text", Deadline::After(milliseconds(1000)), &out).ok());
  EXPECT_EQ(out.size(), 256u) << "the vectors themselves are 256 long";

  auto vertex = MakeProvider(Config({{"provider", std::string("vertex")}, {"project", std::string("p")}}));
  EXPECT_EQ(vertex->dimensions(), 1408u) << "multimodalembedding@001's size";
  auto openai = MakeProvider(Config({{"provider", std::string("openai")}, {"model", std::string("m")}}));
  EXPECT_EQ(openai->dimensions(), 1408u);

  EXPECT_EQ(MakeProvider(Config({{"dimensions", std::int64_t{0}}}))->dimensions(), 256u) << "0 is the default";
  EXPECT_EQ(MakeProvider(Config({{"dimensions", std::int64_t{1408}}}))->dimensions(), 1408u);
  EXPECT_EQ(MakeProvider(Config({{"dimensions", std::int64_t{1}}}))->dimensions(), 1u);
  EXPECT_EQ(MakeProvider(Config({{"dimensions", std::int64_t{65536}}}))->dimensions(), 65536u);
  EXPECT_EQ(MakeProvider(Config({{"provider", std::string("vertex")},
                                 {"project", std::string("p")},
                                 {"dimensions", std::int64_t{512}}}))
                ->dimensions(),
            512u);
  EXPECT_EQ(MakeProvider(Config({{"provider", std::string("openai")},
                                 {"model", std::string("m")},
                                 {"dimensions", std::int64_t{768}}}))
                ->dimensions(),
            768u);

  EXPECT_EQ(DefaultDimensions("builtin"), 256u);
  EXPECT_EQ(DefaultDimensions("vertex"), 1408u);
  EXPECT_EQ(DefaultDimensions("openai"), 1408u);
  EXPECT_EQ(DefaultDimensions("bert"), 0u);
}

// The sizes the defaults give are the sizes the providers answer with.
TEST_F(HttpProviderTest, DefaultSizedProvidersAcceptTheirModelsAnswers) {
  FakeProvider::Options options = FakeOptions();
  options.dimensions = 1408;
  FakeProvider fake(options);
  auto vertex = MakeProvider(Config({{"provider", std::string("vertex")},
                                     {"project", std::string("test-project")},
                                     {"endpoint", fake.base_url()},
                                     {"token_env", std::string(kTokenEnv)}}));
  std::vector<float> out;
  Status status = vertex->embed("hello", Soon(), &out);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(out.size(), 1408u);
  EXPECT_TRUE(fake.problems().empty()) << fake.problems().front();

  auto openai = MakeProvider(Config({{"provider", std::string("openai")},
                                     {"model", std::string("test-embed")},
                                     {"base_url", fake.base_url() + "/v1"},
                                     {"api_key_env", std::string(kTokenEnv)}}));
  status = openai->embed("hello", Soon(), &out);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(out.size(), 1408u);

  // A model of another size than the default is refused with the fix.
  auto small = MakeProvider(Config({{"provider", std::string("vertex")},
                                    {"project", std::string("test-project")},
                                    {"endpoint", fake.base_url()},
                                    {"token_env", std::string(kTokenEnv)},
                                    {"dimensions", std::int64_t{256}}}));
  status = small->embed("hello", Soon(), &out);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(status.message(), "1408 dimensions"));
  EXPECT_TRUE(Contains(status.message(), "expects 256"));
}

TEST(ProviderFactoryTest, SchemaDescribesTheDefaults) {
  const ConfigSchema schema = EmbeddingsStage::config_schema();
  const ConfigKey* dimensions = schema.find("dimensions");
  ASSERT_NE(dimensions, nullptr);
  EXPECT_EQ(dimensions->type, ConfigType::kInteger);
  ASSERT_TRUE(dimensions->default_value);
  EXPECT_EQ(std::get<std::int64_t>(*dimensions->default_value), 0);
  EXPECT_TRUE(Contains(dimensions->description, "256 for builtin"));
  EXPECT_TRUE(Contains(dimensions->description, "1408 for vertex"));
  EXPECT_TRUE(Contains(dimensions->description, "openai"));
}

}  // namespace
}  // namespace stowage::embeddings
