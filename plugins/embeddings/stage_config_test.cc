// The embeddings stage's config table as the host checks it: pipeline.toml
// text, validated against the stage's schema, then turned into a provider.
#include <gtest/gtest.h>

#include <string>

#include "config/pipeline_config.h"
#include "embeddings_stage.h"
#include "provider_factory.h"

namespace stowage::embeddings {
namespace {

using config::FormatErrors;

struct Checked {
  std::vector<config::ConfigError> errors;
  StageConfig config;
};

// Parses a pipeline.toml with one embeddings stage whose [stage.config]
// holds `config_lines`, and checks that table against the stage's schema.
Checked Check(const std::string& config_lines, const config::Environment& env = {}) {
  const std::string text =
      "[[stage]]\n"
      "name = \"embeddings\"\n"
      "plugin = \"embeddings\"\n"
      "policy = \"best_effort\"\n"
      "[stage.config]\n" +
      config_lines;
  auto no_variables = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  config::LoadResult loaded = config::ParsePipelineConfig(text, "pipeline.toml", env ? env : no_variables);
  Checked out;
  if (!loaded.config) {
    out.errors = loaded.errors;
    return out;
  }
  EXPECT_EQ(loaded.config->stages.size(), 1u);
  out.errors = config::ValidateStageConfig(loaded.config->stages.at(0), "pipeline.toml",
                                           EmbeddingsStage::config_schema(), &out.config);
  return out;
}

// The dimensions of the provider built from `config_lines`; records a test
// failure, and gives 0, when the table is refused.
std::size_t DimensionsOf(const std::string& config_lines, const config::Environment& env = {}) {
  Checked checked = Check(config_lines, env);
  if (!checked.errors.empty()) {
    ADD_FAILURE() << "refused:\n" << config_lines << FormatErrors(checked.errors);
    return 0;
  }
  return MakeProvider(checked.config)->dimensions();
}

TEST(EmbeddingsStageConfigTest, DimensionsLeftOutIsTheProvidersOwnSize) {
  EXPECT_EQ(DimensionsOf("provider = \"builtin\"\n"), 256u);
  EXPECT_EQ(DimensionsOf(""), 256u) << "builtin is the default provider";
  EXPECT_EQ(DimensionsOf("provider = \"vertex\"\nproject = \"my-project\"\n"), 1408u);
  EXPECT_EQ(DimensionsOf("provider = \"openai\"\nmodel = \"text-embedding-3-small\"\n"), 1408u);
}

TEST(EmbeddingsStageConfigTest, DimensionsSetInTheFileWin) {
  EXPECT_EQ(DimensionsOf("provider = \"builtin\"\ndimensions = 1408\n"), 1408u);
  EXPECT_EQ(DimensionsOf("provider = \"vertex\"\nproject = \"p\"\ndimensions = 512\n"), 512u);

  // As written by ${VAR} expansion: a string spelling an integer.
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "EMBEDDING_DIMS") return "768";
    return std::nullopt;
  };
  EXPECT_EQ(
      DimensionsOf("provider = \"openai\"\nmodel = \"nomic-embed-text\"\ndimensions = \"${EMBEDDING_DIMS:-0}\"\n", env),
      768u);

  EXPECT_EQ(DimensionsOf("dimensions = \"${EMBEDDING_DIMS:-0}\"\n"), 256u);  // variable unset: 0, the default
}

TEST(EmbeddingsStageConfigTest, UnknownKeysAndWrongTypesAreStillRefused) {
  Checked typo = Check("provider = \"builtin\"\ndimension = 64\n");
  ASSERT_EQ(typo.errors.size(), 1u) << FormatErrors(typo.errors);
  EXPECT_EQ(typo.errors[0].key, "stage[embeddings].config.dimension");
  EXPECT_NE(typo.errors[0].message.find("did you mean 'dimensions'"), std::string::npos)
      << typo.errors[0].message;
  EXPECT_EQ(typo.errors[0].where.line, 7);

  Checked text = Check("dimensions = \"many\"\n");
  ASSERT_EQ(text.errors.size(), 1u) << FormatErrors(text.errors);
  EXPECT_EQ(text.errors[0].key, "stage[embeddings].config.dimensions");
  EXPECT_NE(text.errors[0].message.find("expected an integer"), std::string::npos) << text.errors[0].message;

  Checked fraction = Check("dimensions = 25.6\n");
  ASSERT_EQ(fraction.errors.size(), 1u) << FormatErrors(fraction.errors);

  // Outside the schema's bounds, or not one of its providers: refused with the allowed values.
  Checked negative = Check("dimensions = -3\n");
  ASSERT_EQ(negative.errors.size(), 1u) << FormatErrors(negative.errors);
  EXPECT_EQ(negative.errors[0].message, "must be from 0 to 65536, got -3");
  Checked unknown = Check("provider = \"bert\"\n");
  ASSERT_EQ(unknown.errors.size(), 1u) << FormatErrors(unknown.errors);
  EXPECT_EQ(unknown.errors[0].message, "expected one of builtin, vertex, openai, got \"bert\"");
}

}  // namespace
}  // namespace stowage::embeddings
