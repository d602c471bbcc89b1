#include "config/pipeline_config.h"

#include "config/host_keys.h"
#include "config/key_check.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

namespace stowage::config {
namespace {

// `text` contains `part`; the failure message shows both.
::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

::testing::AssertionResult StartsWith(const std::string& text, const std::string& prefix) {
  if (text.rfind(prefix, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not start with \"" << prefix << "\"";
}

// An Environment over a fixed map, so tests never read the process environment.
Environment FakeEnv(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

LoadResult Parse(std::string_view text, std::map<std::string, std::string> vars = {}) {
  return ParsePipelineConfig(text, "pipeline.toml", FakeEnv(std::move(vars)));
}

// 1-based line of the first occurrence of `needle` in `text`.
int LineOf(std::string_view text, std::string_view needle) {
  std::size_t at = text.find(needle);
  EXPECT_NE(at, std::string_view::npos) << needle;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

// The only error of `result`; fails the test if there is not exactly one.
ConfigError OnlyError(const LoadResult& result) {
  EXPECT_FALSE(result.config.has_value());
  EXPECT_EQ(result.errors.size(), 1u) << FormatErrors(result.errors);
  if (result.errors.empty()) return {};
  return result.errors.front();
}

constexpr std::string_view kMinimalStage = R"(
[[stage]]
name = "memory"
plugin = "test_stage"
)";

std::string WithStage(std::string_view text) {
  return std::string(text) + std::string(kMinimalStage);
}

// ---------------------------------------------------------------------------
// A valid file

TEST(PipelineConfigTest, FullValidFileIsReadIntoSettings) {
  constexpr std::string_view kText = R"([server]
listen = "0.0.0.0:9000"
io_threads = 2
workers = 16
body_limit = 131072
max_content_bytes = 4096
max_connections = 500
max_queue = 32
queue_timeout_ms = 250
max_history = 100
plugin_path = ["plugins", "/opt/stowage/plugins"]

[log]
level = "debug"

[[stage]]
name = "redis"
plugin = "redis"
policy = "required"
timeout_ms = 250
  [stage.config]
  url = "redis://127.0.0.1:6379/0"
  pool_size = 4
  ratio = 0.5
  tls = false

[[stage]]
name = "embeddings"
plugin = "/usr/lib/stowage/embeddings.so"
policy = "best_effort"
enabled = false
config = { provider = "offline" }

[[stage]]
name = "metrics-2"
plugin = "metrics"
)";
  LoadResult result = ParsePipelineConfig(kText, "/etc/stowage/pipeline.toml", FakeEnv());
  ASSERT_TRUE(result.errors.empty()) << FormatErrors(result.errors);
  ASSERT_TRUE(result.config.has_value());
  const PipelineConfig& config = *result.config;

  EXPECT_EQ(config.file, "/etc/stowage/pipeline.toml");
  EXPECT_EQ(config.server.listen, "0.0.0.0:9000");
  EXPECT_EQ(config.server.io_threads, 2);
  EXPECT_EQ(config.server.workers, 16);
  EXPECT_EQ(config.server.body_limit, 131072u);
  EXPECT_EQ(config.server.max_content_bytes, 4096u);
  EXPECT_EQ(config.server.max_connections, 500u);
  EXPECT_EQ(config.server.max_queue, 32u);
  EXPECT_EQ(config.server.queue_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(config.server.max_history, 100u);
  ASSERT_EQ(config.server.plugin_path.size(), 2u);
  EXPECT_EQ(config.server.plugin_path[0], "/etc/stowage/plugins");
  EXPECT_EQ(config.server.plugin_path[1], "/opt/stowage/plugins");
  EXPECT_EQ(config.log.level, "debug");

  ASSERT_EQ(config.stages.size(), 3u);
  const StageSettings& redis = config.stages[0];
  EXPECT_EQ(redis.name, "redis");
  EXPECT_EQ(redis.plugin, "redis");
  EXPECT_EQ(redis.policy, Policy::kRequired);
  EXPECT_TRUE(redis.enabled);
  EXPECT_EQ(redis.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(redis.where.file, "/etc/stowage/pipeline.toml");
  EXPECT_EQ(redis.where.line, LineOf(kText, "[[stage]]"));
  ASSERT_EQ(redis.config.size(), 4u);
  EXPECT_EQ(std::get<std::string>(redis.config.at("url").value), "redis://127.0.0.1:6379/0");
  EXPECT_EQ(redis.config.at("url").where.line, LineOf(kText, "url ="));
  EXPECT_EQ(std::get<std::int64_t>(redis.config.at("pool_size").value), 4);
  EXPECT_DOUBLE_EQ(std::get<double>(redis.config.at("ratio").value), 0.5);
  EXPECT_EQ(std::get<bool>(redis.config.at("tls").value), false);

  const StageSettings& embeddings = config.stages[1];
  EXPECT_EQ(embeddings.name, "embeddings");
  EXPECT_EQ(embeddings.plugin, "/usr/lib/stowage/embeddings.so");
  EXPECT_EQ(embeddings.policy, Policy::kBestEffort);
  EXPECT_FALSE(embeddings.enabled);
  EXPECT_EQ(std::get<std::string>(embeddings.config.at("provider").value), "offline");

  const StageSettings& metrics = config.stages[2];
  EXPECT_EQ(metrics.name, "metrics-2");
  EXPECT_EQ(metrics.policy, Policy::kRequired);
  EXPECT_TRUE(metrics.enabled);
  EXPECT_EQ(metrics.timeout, std::chrono::milliseconds(1000));
  EXPECT_TRUE(metrics.config.empty());
}

TEST(PipelineConfigTest, OmittedSectionsKeepTheirDefaults) {
  LoadResult result = Parse(kMinimalStage);
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  const ServerSettings defaults;
  EXPECT_EQ(result.config->server.listen, defaults.listen);
  EXPECT_EQ(result.config->server.workers, defaults.workers);
  EXPECT_EQ(result.config->server.body_limit, defaults.body_limit);
  EXPECT_TRUE(result.config->server.plugin_path.empty());
  EXPECT_EQ(result.config->log.level, "info");
}

TEST(PipelineConfigTest, RelativePluginPathStaysRelativeToTheFileFolder) {
  LoadResult result = ParsePipelineConfig(WithStage("[server]\nplugin_path = [\"../plugins\", \"./x\"]\n"),
                                          "conf/pipeline.toml", FakeEnv());
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  ASSERT_EQ(result.config->server.plugin_path.size(), 2u);
  EXPECT_EQ(result.config->server.plugin_path[0], "plugins");
  EXPECT_EQ(result.config->server.plugin_path[1], "conf/x");
}

// ---------------------------------------------------------------------------
// ${VAR} expansion

TEST(PipelineConfigTest, ExpandsVariablesAndDefaultsInEveryStringValue) {
  constexpr std::string_view kText = R"([server]
listen = "${HOST:-127.0.0.1}:${PORT}"
plugin_path = ["${PLUGINS}"]

[log]
level = "${LEVEL:-warn}"

[[stage]]
name = "${NAME}"
plugin = "${PLUGIN:-redis}"
policy = "${POLICY:-best_effort}"
config = { url = "redis://${REDIS_HOST}:${REDIS_PORT:-6379}/${DB:-0}", empty = "${EMPTY:-fallback}" }
)";
  LoadResult result = Parse(kText, {{"PORT", "8123"},
                                    {"PLUGINS", "/srv/plugins"},
                                    {"NAME", "cache"},
                                    {"REDIS_HOST", "redis.internal"},
                                    {"DB", "3"},
                                    {"EMPTY", ""}});
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  const PipelineConfig& config = *result.config;
  EXPECT_EQ(config.server.listen, "127.0.0.1:8123");
  EXPECT_EQ(config.server.plugin_path.at(0), "/srv/plugins");
  EXPECT_EQ(config.log.level, "warn");
  const StageSettings& stage = config.stages.at(0);
  EXPECT_EQ(stage.name, "cache");
  EXPECT_EQ(stage.plugin, "redis");
  EXPECT_EQ(stage.policy, Policy::kBestEffort);
  EXPECT_EQ(std::get<std::string>(stage.config.at("url").value), "redis://redis.internal:6379/3");
  // Like the shell, `:-` also replaces a variable that is set but empty.
  EXPECT_EQ(std::get<std::string>(stage.config.at("empty").value), "fallback");
}

TEST(PipelineConfigTest, SetVariableWinsOverItsDefault) {
  LoadResult result = Parse(R"([log]
level = "${LEVEL:-warn}"
)" + std::string(kMinimalStage),
                            {{"LEVEL", "trace"}});
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  EXPECT_EQ(result.config->log.level, "trace");
}

TEST(PipelineConfigTest, DoubleDollarIsALiteralDollarAndALoneDollarIsKept) {
  LoadResult result = Parse(R"([[stage]]
name = "s"
plugin = "p"
config = { a = "pa$$word", b = "$${NOT_A_VAR}", c = "cost: 5$", d = "$HOME" }
)");
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  const auto& config = result.config->stages.at(0).config;
  EXPECT_EQ(std::get<std::string>(config.at("a").value), "pa$word");
  EXPECT_EQ(std::get<std::string>(config.at("b").value), "${NOT_A_VAR}");
  EXPECT_EQ(std::get<std::string>(config.at("c").value), "cost: 5$");
  EXPECT_EQ(std::get<std::string>(config.at("d").value), "$HOME");
}

TEST(PipelineConfigTest, ExpandedStringsConvertToIntegersAndBooleans) {
  LoadResult result = Parse(R"([server]
workers = "${WORKERS:-8}"
io_threads = "${IO:-3}"
body_limit = "${LIMIT}"

[[stage]]
name = "s"
plugin = "p"
enabled = "${ENABLED:-false}"
timeout_ms = "${TIMEOUT:-2500}"
)",
                            {{"LIMIT", "1024"}});
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  EXPECT_EQ(result.config->server.workers, 8);
  EXPECT_EQ(result.config->server.io_threads, 3);
  EXPECT_EQ(result.config->server.body_limit, 1024u);
  EXPECT_FALSE(result.config->stages.at(0).enabled);
  EXPECT_EQ(result.config->stages.at(0).timeout, std::chrono::milliseconds(2500));
}

TEST(PipelineConfigTest, ExpandedStringThatIsNotAnIntegerIsATypeError) {
  const std::string text = "[server]\nworkers = \"${WORKERS}\"\n" + std::string(kMinimalStage);
  ConfigError error = OnlyError(Parse(text, {{"WORKERS", "abc"}}));
  EXPECT_EQ(error.ToString(), "pipeline.toml:2:11: server.workers: expected an integer, got string \"abc\"");
}

TEST(PipelineConfigTest, UnsetVariableWithoutDefaultNamesFileLineKeyAndVariable) {
  constexpr std::string_view kText = R"([[stage]]
name = "redis"
plugin = "redis"
config = { url = "redis://${REDIS_HOST}:6379" }
)";
  ConfigError error = OnlyError(Parse(kText));
  EXPECT_EQ(error.where.file, "pipeline.toml");
  EXPECT_EQ(error.where.line, 4);
  EXPECT_EQ(error.key, "stage[redis].config.url");
  EXPECT_EQ(error.ToString(),
            "pipeline.toml:4:18: stage[redis].config.url: environment variable REDIS_HOST is not set; "
            "set REDIS_HOST or write ${REDIS_HOST:-default}");
}

TEST(PipelineConfigTest, EveryUnsetVariableOfAStringIsReported) {
  LoadResult result = Parse("[server]\nlisten = \"${A}:${B}\"\n" + std::string(kMinimalStage));
  ASSERT_EQ(result.errors.size(), 2u) << FormatErrors(result.errors);
  EXPECT_TRUE(Contains(result.errors[0].message, "environment variable A is not set"));
  EXPECT_TRUE(Contains(result.errors[1].message, "environment variable B is not set"));
}

TEST(PipelineConfigTest, MalformedReferencesAreErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"${UNCLOSED", "a ${ has no closing }"}, {"${}", "malformed \"${}\""},
      {"${1X}", "malformed \"${1X}\""},        {"${A-x}", "malformed \"${A-x}\""},
      {"${A B}", "malformed \"${A B}\""},
  };
  for (const auto& [value, expected] : cases) {
    ConfigError error = OnlyError(Parse("[log]\nlevel = \"" + value + "\"\n" + std::string(kMinimalStage)));
    EXPECT_EQ(error.key, "log.level") << value;
    EXPECT_EQ(error.where.line, 2) << value;
    EXPECT_TRUE(Contains(error.message, expected)) << value;
    EXPECT_TRUE(Contains(error.message, "${NAME:-default}")) << value;
  }
}

TEST(PipelineConfigTest, NestedReferenceInADefaultIsRefused) {
  ConfigError error =
      OnlyError(Parse("[log]\nlevel = \"${A:-${B}}\"\n" + std::string(kMinimalStage), {{"B", "info"}}));
  EXPECT_EQ(error.key, "log.level");
  EXPECT_TRUE(Contains(error.message, "a default cannot contain another ${...}"));
}

TEST(PipelineConfigTest, AnEnvironmentThatThrowsBecomesAnError) {
  Environment env = [](const std::string&) -> std::optional<std::string> {
    throw std::runtime_error("environment unavailable");
  };
  LoadResult result =
      ParsePipelineConfig("[log]\nlevel = \"${X}\"\n" + std::string(kMinimalStage), "p.toml", env);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].key, "log.level");
  EXPECT_TRUE(Contains(result.errors[0].message, "environment unavailable"));
}

// ---------------------------------------------------------------------------
// Errors in [server], [log] and [[stage]]

TEST(PipelineConfigTest, TypoInAStageKeySuggestsTheKnownKey) {
  constexpr std::string_view kText = R"([[stage]]
name = "redis"
plugin = "redis"
polcy = "required"
)";
  ConfigError error = OnlyError(Parse(kText));
  EXPECT_EQ(error.ToString(), "pipeline.toml:4:1: stage[redis].polcy: unknown key; did you mean 'policy'?");
}

TEST(PipelineConfigTest, TyposInServerLogAndTopLevelSuggestTheKnownKey) {
  constexpr std::string_view kText = R"([sever]
listen = "127.0.0.1:1"

[server]
wrokers = 4

[log]
levl = "info"

[[stage]]
name = "s"
plugin = "p"
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 3u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].key, "sever");
  EXPECT_EQ(result.errors[0].where.line, 1);
  EXPECT_EQ(result.errors[0].message, "unknown key; did you mean 'server'?");
  EXPECT_EQ(result.errors[1].key, "server.wrokers");
  EXPECT_EQ(result.errors[1].where.line, LineOf(kText, "wrokers"));
  EXPECT_EQ(result.errors[1].message, "unknown key; did you mean 'workers'?");
  EXPECT_EQ(result.errors[2].key, "log.levl");
  EXPECT_EQ(result.errors[2].message, "unknown key; did you mean 'level'?");
}

TEST(PipelineConfigTest, AdminStartupAndCircuitKeysAreReadWithTheirDefaults) {
  LoadResult defaults = Parse(kMinimalStage);
  ASSERT_TRUE(defaults.config) << FormatErrors(defaults.errors);
  EXPECT_EQ(defaults.config->server.admin_token_env, "STOWAGE_ADMIN_TOKEN");
  EXPECT_EQ(defaults.config->server.admin_listen, "");
  EXPECT_EQ(defaults.config->server.startup_timeout, std::chrono::milliseconds(30000));
  EXPECT_EQ(defaults.config->stages[0].circuit_threshold, 5);
  EXPECT_EQ(defaults.config->stages[0].circuit_cooldown, std::chrono::milliseconds(30000));

  LoadResult set = Parse(
      "[server]\nadmin_token_env = \"OPS_TOKEN\"\nadmin_listen = \"127.0.0.1:9000\"\nstartup_timeout_ms = "
      "500\n"
      "[[stage]]\nname = \"a\"\nplugin = \"redis\"\ncircuit_threshold = 0\ncircuit_cooldown_ms = 250\n");
  ASSERT_TRUE(set.config) << FormatErrors(set.errors);
  EXPECT_EQ(set.config->server.admin_token_env, "OPS_TOKEN");
  EXPECT_EQ(set.config->server.admin_listen, "127.0.0.1:9000");
  EXPECT_EQ(set.config->server.startup_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(set.config->stages[0].circuit_threshold, 0);
  EXPECT_EQ(set.config->stages[0].circuit_cooldown, std::chrono::milliseconds(250));

  ConfigError bad = OnlyError(Parse("[server]\nadmin_listen = \"nowhere\"\n" + std::string(kMinimalStage)));
  EXPECT_EQ(bad.key, "server.admin_listen");
  EXPECT_NE(bad.message.find("host:port"), std::string::npos) << bad.message;
  bad = OnlyError(Parse("[[stage]]\nname = \"a\"\nplugin = \"redis\"\ncircuit_threshold = -1\n"));
  EXPECT_EQ(bad.key, "stage[a].circuit_threshold");
}

// Caught by fuzz/pipeline_config_fuzzer (errors must be valid UTF-8): a long
// value was cut after its 80th byte, inside a UTF-8 character, so the error
// (which a reload through the admin API sends as JSON) was not valid UTF-8.
TEST(PipelineConfigTest, LongValueInAnErrorIsCutBetweenCharacters) {
  std::string e_acute = "\xc3\xa9";
  std::string value = "x";
  for (int i = 0; i < 45; ++i) value += e_acute;
  ConfigError bad = OnlyError(Parse("[server]\nlisten = \"" + value + "\"\n" + std::string(kMinimalStage)));
  EXPECT_EQ(bad.key, "server.listen");
  // 1 + 39 * 2 bytes shown: the 40th character would end after byte 80.
  EXPECT_TRUE(Contains(bad.message, "\"" + value.substr(0, 79) + "...\""));
}

// Found by fuzz/pipeline_config_fuzzer: toml++ 3.3.0 reaches
// TOML_UNREACHABLE (undefined behaviour) for some non-ASCII characters where
// it looks for whitespace (marzer/tomlplusplus issues 190 and 295). Built
// with Debian's library the loader still reads them right; this pins that.
TEST(PipelineConfigTest, NonAsciiWhereTomlLooksForWhitespace) {
  // Outside a string: a syntax error.
  for (std::string text : {"potgu\xef\xbb\x85t = 1\n", "\xcc\xaa\n"}) {
    ConfigError error = OnlyError(Parse(text + std::string(kMinimalStage)));
    EXPECT_TRUE(Contains(error.message, "TOML syntax error")) << text;
  }
  // After a line-ending backslash in a multi-line string: part of the string.
  LoadResult result = Parse("[[stage]]\nname = \"a\"\nplugin = \"\"\"\\\n\xc2\xa7\"\"\"\n");
  ASSERT_TRUE(result.config) << FormatErrors(result.errors);
  EXPECT_EQ(result.config->stages[0].plugin, "\xc2\xa7");
}

TEST(PipelineConfigTest, JournalKeysAreReadWithTheirDefaults) {
  LoadResult defaults = Parse(kMinimalStage);
  ASSERT_TRUE(defaults.config) << FormatErrors(defaults.errors);
  EXPECT_FALSE(defaults.config->stages[0].journal.has_value());
  EXPECT_EQ(defaults.config->stages[0].replay_max_attempts, 10);
  EXPECT_EQ(defaults.config->stages[0].replay_max_age, std::chrono::hours(24));

  LoadResult set = Parse(
      "[[stage]]\nname = \"a\"\nplugin = \"redis\"\npolicy = \"best_effort\"\njournal = false\n"
      "replay_max_attempts = 3\nreplay_max_age = \"30m\"\n"
      "[[stage]]\nname = \"b\"\nplugin = \"redis\"\npolicy = \"best_effort\"\nreplay_max_age = 90\n");
  ASSERT_TRUE(set.config) << FormatErrors(set.errors);
  EXPECT_EQ(set.config->stages[0].journal, std::optional<bool>(false));
  EXPECT_EQ(set.config->stages[0].replay_max_attempts, 3);
  EXPECT_EQ(set.config->stages[0].replay_max_age, std::chrono::minutes(30));
  EXPECT_EQ(set.config->stages[1].replay_max_age, std::chrono::seconds(90));
}

TEST(PipelineConfigTest, JournalOnARequiredStageAndBadDurationsAreRefusedAtTheirKey) {
  ConfigError bad = OnlyError(Parse("[[stage]]\nname = \"a\"\nplugin = \"redis\"\njournal = true\n"));
  EXPECT_EQ(bad.key, "stage[a].journal");
  EXPECT_EQ(bad.where.line, 4);
  EXPECT_NE(bad.message.find("required"), std::string::npos) << bad.message;
  for (const char* age : {"\"24\"", "\"1w\"", "\"h\"", "\"0s\"", "0", "1.5"}) {
    bad =
        OnlyError(Parse("[[stage]]\nname = \"a\"\nplugin = \"redis\"\npolicy = \"best_effort\"\n"
                        "replay_max_age = " +
                        std::string(age) + "\n"));
    EXPECT_EQ(bad.key, "stage[a].replay_max_age") << age;
    EXPECT_EQ(bad.where.line, 5) << age;
  }
  bad = OnlyError(Parse("[[stage]]\nname = \"a\"\nplugin = \"redis\"\nreplay_max_attempts = 0\n"));
  EXPECT_EQ(bad.key, "stage[a].replay_max_attempts");
}

TEST(PipelineConfigTest, SameSettingsIgnoresWhereValuesWereWritten) {
  LoadResult a = Parse(kMinimalStage);
  LoadResult b = Parse("# moved down a line\n" + std::string(kMinimalStage));
  ASSERT_TRUE(a.config && b.config);
  EXPECT_TRUE(SameSettings(a.config->stages[0], b.config->stages[0]));
  b.config->stages[0].circuit_threshold = 1;
  EXPECT_FALSE(SameSettings(a.config->stages[0], b.config->stages[0]));
}

TEST(PipelineConfigTest, UnknownKeyWithNothingCloseListsTheValidKeys) {
  ConfigError error = OnlyError(Parse("[server]\ncolour = \"blue\"\n" + std::string(kMinimalStage)));
  EXPECT_EQ(error.key, "server.colour");
  EXPECT_EQ(
      error.message,
      "unknown key; valid keys: listen, io_threads, workers, body_limit, max_content_bytes, max_connections, "
      "max_queue, queue_timeout_ms, max_history, plugin_path, admin_token_env, admin_listen, "
      "startup_timeout_ms");
}

TEST(PipelineConfigTest, WrongTypesNameTheExpectedAndTheGivenType) {
  constexpr std::string_view kText = R"([server]
workers = true
listen = 8000
plugin_path = "plugins"

[[stage]]
name = "s"
plugin = "p"
enabled = "yes"
timeout_ms = 1.5
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 5u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].ToString(),
            "pipeline.toml:2:11: server.workers: expected an integer, got boolean true");
  EXPECT_EQ(result.errors[1].ToString(),
            "pipeline.toml:3:10: server.listen: expected a string, got integer 8000");
  EXPECT_EQ(result.errors[2].key, "server.plugin_path");
  EXPECT_TRUE(Contains(result.errors[2].message, "expected an array of strings"));
  EXPECT_EQ(result.errors[3].ToString(),
            "pipeline.toml:9:11: stage[s].enabled: expected a boolean, got string \"yes\"");
  EXPECT_EQ(result.errors[4].ToString(),
            "pipeline.toml:10:14: stage[s].timeout_ms: expected an integer, got float 1.5");
}

TEST(PipelineConfigTest, OutOfRangeAndMalformedValuesAreErrors) {
  constexpr std::string_view kText = R"([server]
listen = "localhost"
io_threads = 0
workers = -2
body_limit = 0
max_content_bytes = 0

[log]
level = "verbose"

[[stage]]
name = "s"
plugin = ""
timeout_ms = 0
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 8u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].key, "server.listen");
  EXPECT_TRUE(Contains(result.errors[0].message, "expected \"host:port\""));
  EXPECT_EQ(result.errors[1].ToString(), "pipeline.toml:3:14: server.io_threads: must be at least 1, got 0");
  EXPECT_EQ(result.errors[2].key, "server.workers");
  EXPECT_EQ(result.errors[3].key, "server.body_limit");
  EXPECT_EQ(result.errors[4].key, "server.max_content_bytes");
  EXPECT_EQ(result.errors[5].ToString(),
            "pipeline.toml:9:9: log.level: expected one of trace, debug, info, warn, error, got \"verbose\"");
  EXPECT_EQ(result.errors[6].key, "stage[s].plugin");
  EXPECT_TRUE(Contains(result.errors[6].message, "empty plugin"));
  EXPECT_EQ(result.errors[7].key, "stage[s].timeout_ms");
  EXPECT_EQ(result.errors[7].message, "must be at least 1, got 0");
}

TEST(PipelineConfigTest, BadPolicySuggestsTheValidOne) {
  constexpr std::string_view kText = R"([[stage]]
name = "embeddings"
plugin = "embeddings"
policy = "best-effort"
)";
  ConfigError error = OnlyError(Parse(kText));
  EXPECT_EQ(error.ToString(),
            "pipeline.toml:4:10: stage[embeddings].policy: expected one of required, best_effort, got "
            "\"best-effort\"; did you mean 'best_effort'?");
}

TEST(PipelineConfigTest, MissingRequiredStageKeysAreReportedAtTheStageHeader) {
  constexpr std::string_view kText = R"([[stage]]
name = "a"
plugin = "p"

[[stage]]
plugin = "p"

[[stage]]
name = "c"
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 2u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].where.line, 5);
  EXPECT_EQ(result.errors[0].key, "stage[#2].name");
  EXPECT_TRUE(Contains(result.errors[0].message, "missing required key 'name'"));
  EXPECT_EQ(result.errors[1].where.line, 8);
  EXPECT_EQ(result.errors[1].key, "stage[c].plugin");
  EXPECT_TRUE(
      StartsWith(result.errors[1].ToString(), "pipeline.toml:8:1: stage[c].plugin: missing required key"));
}

TEST(PipelineConfigTest, InvalidStageNameIsRefused) {
  ConfigError error = OnlyError(Parse("[[stage]]\nname = \"my stage\"\nplugin = \"p\"\n"));
  EXPECT_EQ(error.key, "stage[#1].name");
  EXPECT_EQ(error.where.line, 2);
  EXPECT_TRUE(Contains(error.message, "letters, digits, _ and -"));
}

TEST(PipelineConfigTest, DuplicateStageNameIsReportedAtTheSecondStage) {
  constexpr std::string_view kText = R"([[stage]]
name = "redis"
plugin = "redis"

[[stage]]
name = "redis"
plugin = "postgres"
)";
  ConfigError error = OnlyError(Parse(kText));
  EXPECT_EQ(
      error.ToString(),
      "pipeline.toml:6:8: stage[redis].name: duplicate stage name; the [[stage]] at line 1 already uses it, "
      "give each stage a unique name");
}

TEST(PipelineConfigTest, MissingStageListIsAnError) {
  ConfigError error = OnlyError(Parse("[server]\nworkers = 2\n"));
  EXPECT_EQ(error.key, "stage");
  EXPECT_TRUE(Contains(error.message, "declare at least one [[stage]]"));
  EXPECT_TRUE(Contains(OnlyError(Parse("stage = []\n")).message, "declare at least one [[stage]]"));
}

TEST(PipelineConfigTest, SingleBracketStageTableIsRefused) {
  ConfigError error = OnlyError(Parse("[stage]\nname = \"a\"\nplugin = \"p\"\n"));
  EXPECT_EQ(error.key, "stage");
  EXPECT_EQ(error.where.line, 1);
  EXPECT_TRUE(Contains(error.message, "declare each stage under its own [[stage]]"));
}

TEST(PipelineConfigTest, NestedValuesInStageConfigAreRefused) {
  constexpr std::string_view kText = R"([[stage]]
name = "pg"
plugin = "postgres"
  [stage.config]
  hosts = ["a", "b"]
  [stage.config.pool]
  size = 3
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 2u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].key, "stage[pg].config.hosts");
  EXPECT_EQ(result.errors[0].where.line, 5);
  EXPECT_EQ(result.errors[0].message,
            "stage config values must be a string, integer, float or boolean, got an array");
  EXPECT_EQ(result.errors[1].key, "stage[pg].config.pool");
  EXPECT_TRUE(
      Contains(result.errors[1].message, "stage config values must be a string, integer, float or boolean"));
}

TEST(PipelineConfigTest, TomlSyntaxErrorNamesItsLine) {
  constexpr std::string_view kText = R"([server]
workers = 4
listen = "127.0.0.1:8000
)";
  ConfigError error = OnlyError(Parse(kText));
  EXPECT_EQ(error.where.file, "pipeline.toml");
  EXPECT_EQ(error.where.line, 3);
  EXPECT_TRUE(StartsWith(error.ToString(), "pipeline.toml:3:"));
  EXPECT_TRUE(Contains(error.message, "TOML syntax error"));
}

TEST(PipelineConfigTest, AllErrorsAreReportedInFileOrder) {
  constexpr std::string_view kText = R"([[stage]]
name = "b"
plugin = "p"
timout_ms = 5

[server]
workers = "many"

[[stage]]
name = "a"
plugin = "p"
policy = "sometimes"
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 3u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].key, "stage[b].timout_ms");
  EXPECT_TRUE(Contains(result.errors[0].message, "did you mean 'timeout_ms'?"));
  EXPECT_EQ(result.errors[1].key, "server.workers");
  EXPECT_EQ(result.errors[2].key, "stage[a].policy");
  EXPECT_EQ(FormatErrors(result.errors), result.errors[0].ToString() + "\n" + result.errors[1].ToString() +
                                             "\n" + result.errors[2].ToString());
}

// ---------------------------------------------------------------------------
// [[database]] and a stage's `database`

TEST(PipelineConfigDatabaseTest, DatabasesAreReadWithDefaultsAndStagesJoinThem) {
  constexpr std::string_view kText = R"([[stage]]
name = "postgres"
plugin = "postgres"
database = "main"

[[database]]
name = "main"
url = "${DATABASE_URL:-postgresql://stowage@127.0.0.1:5432/stowage}"

[[database]]
name = "analytics-2"
url = "postgresql://reader:pw@db.internal:6432/analytics"
pool_size = "${POOL:-4}"
connect_timeout_ms = 500

[[stage]]
name = "redis"
plugin = "redis"
)";
  LoadResult result = Parse(kText, {{"POOL", "8"}});
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  const auto& databases = result.config->databases;
  ASSERT_EQ(databases.size(), 2u);
  EXPECT_EQ(databases[0].name, "main");
  EXPECT_EQ(databases[0].url, "postgresql://stowage@127.0.0.1:5432/stowage");
  EXPECT_EQ(databases[0].pool_size, 16);
  EXPECT_EQ(databases[0].connect_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(databases[0].where.line, LineOf(kText, "[[database]]"));
  EXPECT_EQ(databases[1].name, "analytics-2");
  EXPECT_EQ(databases[1].pool_size, 8);
  EXPECT_EQ(databases[1].connect_timeout, std::chrono::milliseconds(500));
  ASSERT_EQ(result.config->stages.size(), 2u);
  EXPECT_EQ(result.config->stages[0].database, "main");  // declared after the stage: fine
  EXPECT_EQ(result.config->stages[1].database, "");
}

TEST(PipelineConfigDatabaseTest, MissingNameAndUrlAreReportedAtTheHeader) {
  constexpr std::string_view kText = R"([[database]]
pool_size = 2

[[database]]
name = "main"
)";
  LoadResult result = Parse(WithStage(kText));
  ASSERT_EQ(result.errors.size(), 3u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].ToString(),
            "pipeline.toml:1:1: database[#1].name: missing required key 'name'; add name = \"...\" (letters, "
            "digits, _ and -) to this [[database]]");
  EXPECT_EQ(result.errors[1].key, "database[#1].url");
  EXPECT_EQ(result.errors[2].key, "database[main].url");
  EXPECT_EQ(result.errors[2].where.line, 4);
  EXPECT_TRUE(Contains(result.errors[2].message, "missing required key 'url'"));
}

TEST(PipelineConfigDatabaseTest, BadNamesDuplicatesAndValuesAreErrors) {
  constexpr std::string_view kText = R"([[database]]
name = "main db"
url = "postgresql://a@h/d"

[[database]]
name = "main"
url = ""
pool_size = 0

[[database]]
name = "main"
url = "postgresql://a@h/d"
connect_timeout_ms = -5
)";
  LoadResult result = Parse(WithStage(kText));
  ASSERT_EQ(result.errors.size(), 5u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].key, "database[#1].name");
  EXPECT_EQ(result.errors[0].message, "invalid database name \"main db\"; use letters, digits, _ and - only");
  EXPECT_EQ(result.errors[1].key, "database[main].url");
  EXPECT_TRUE(StartsWith(result.errors[1].message, "empty url;"));
  EXPECT_EQ(result.errors[2].key, "database[main].pool_size");
  EXPECT_EQ(result.errors[2].message, "must be at least 1, got 0");
  EXPECT_EQ(result.errors[3].key, "database[main].name");
  EXPECT_EQ(result.errors[3].where.line, LineOf(kText, "name = \"main\"\nurl = \"postgresql"));
  EXPECT_TRUE(Contains(result.errors[3].message, "duplicate database name; the [[database]] at line 5"));
  EXPECT_EQ(result.errors[4].key, "database[main].connect_timeout_ms");
  EXPECT_EQ(result.errors[4].message, "must be at least 1, got -5");
}

TEST(PipelineConfigDatabaseTest, UnknownKeySuggestsAndWrongTypeIsNamed) {
  constexpr std::string_view kText = R"([[database]]
name = "main"
url = "postgresql://a@h/d"
pool_sise = 4
connect_timeout_ms = "soon"
)";
  LoadResult result = Parse(WithStage(kText));
  ASSERT_EQ(result.errors.size(), 2u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].ToString(),
            "pipeline.toml:4:1: database[main].pool_sise: unknown key; did you mean 'pool_size'?");
  EXPECT_EQ(
      result.errors[1].ToString(),
      "pipeline.toml:5:22: database[main].connect_timeout_ms: expected an integer, got string \"soon\"");
}

TEST(PipelineConfigDatabaseTest, PreparedStatementsDefaultsToTrueAndIsABoolean) {
  constexpr std::string_view kText = R"([[database]]
name = "main"
url = "postgresql://a@h/d"

[[database]]
name = "pooled"
url = "postgresql://a@h:6432/d"
prepared_statements = false

[[database]]
name = "from-env"
url = "postgresql://a@h:6432/d"
prepared_statements = "${PREPARED:-true}"
)";
  LoadResult result = Parse(WithStage(kText), {{"PREPARED", "false"}});
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  const auto& databases = result.config->databases;
  ASSERT_EQ(databases.size(), 3u);
  EXPECT_TRUE(databases[0].prepared_statements);
  EXPECT_FALSE(databases[1].prepared_statements);
  EXPECT_FALSE(databases[2].prepared_statements);

  // A change of the key is a change of the database's settings (a reload
  // opens new connections), where it was written is not.
  DatabaseSettings moved = databases[0];
  moved.where.line += 3;
  EXPECT_TRUE(SameSettings(databases[0], moved));
  moved.prepared_statements = false;
  EXPECT_FALSE(SameSettings(databases[0], moved));

  ConfigError bad = OnlyError(Parse(WithStage(R"([[database]]
name = "main"
url = "postgresql://a@h/d"
prepared_statements = 0
)")));
  EXPECT_EQ(bad.ToString(),
            "pipeline.toml:4:23: database[main].prepared_statements: expected a boolean, got integer 0");
  bad = OnlyError(Parse(WithStage(R"([[database]]
name = "main"
url = "postgresql://a@h/d"
prepared_statement = false
)")));
  EXPECT_EQ(bad.ToString(),
            "pipeline.toml:4:1: database[main].prepared_statement: unknown key; did you mean "
            "'prepared_statements'?");
}

TEST(PipelineConfigDatabaseTest, MalformedUrlIsRefusedWithoutShowingThePassword) {
  constexpr std::string_view kText = R"([[database]]
name = "main"
url = "${DATABASE_URL}"
)";
  LoadResult result = Parse(WithStage(kText), {{"DATABASE_URL", "mysql://root:hunter2@db:3306/app"}});
  ConfigError error = OnlyError(result);
  EXPECT_EQ(error.key, "database[main].url");
  EXPECT_EQ(error.where.line, 3);
  EXPECT_TRUE(Contains(error.message, "does not start with postgresql://"));
  EXPECT_TRUE(Contains(error.message, "[[database]] main"));
  EXPECT_FALSE(Contains(error.ToString(), "hunter2"));

  LoadResult port = Parse(WithStage(R"([[database]]
name = "main"
url = "postgresql://u:hunter2@db:54x2/app"
)"));
  ConfigError port_error = OnlyError(port);
  EXPECT_TRUE(Contains(port_error.message, "port that is not a number"));
  EXPECT_FALSE(Contains(port_error.ToString(), "hunter2"));
}

// Caught by fuzz/pipeline_config_fuzzer: a '?' left unescaped in the
// password starts the query (here "app:2024" reads as host and port), and
// the error showed the query parameter without '=', the rest of the password.
TEST(PipelineConfigDatabaseTest, QuestionMarkInThePasswordIsRefusedWithoutShowingIt) {
  ConfigError error = OnlyError(Parse(WithStage(R"([[database]]
name = "main"
url = "postgresql://app:2024?Summer@db/app"
)")));
  EXPECT_EQ(error.key, "database[main].url");
  EXPECT_TRUE(Contains(error.message, "query parameter without '='"));
  EXPECT_FALSE(Contains(error.ToString(), "Summer"));
}

TEST(PipelineConfigDatabaseTest, UnsetVariableInTheUrlIsNamed) {
  ConfigError error =
      OnlyError(Parse(WithStage("[[database]]\nname = \"main\"\nurl = \"${DATABASE_URL}\"\n")));
  EXPECT_EQ(error.key, "database[main].url");
  EXPECT_TRUE(Contains(error.message, "environment variable DATABASE_URL is not set"));
}

TEST(PipelineConfigDatabaseTest, SingleBracketDatabaseTableIsRefused) {
  ConfigError error =
      OnlyError(Parse(WithStage("[database]\nname = \"main\"\nurl = \"postgresql://a@h/d\"\n")));
  EXPECT_EQ(error.key, "database");
  EXPECT_TRUE(Contains(error.message, "declare each database under its own [[database]]"));
}

TEST(PipelineConfigDatabaseTest, StageNamingAnUndeclaredDatabaseGetsASuggestion) {
  constexpr std::string_view kText = R"([[database]]
name = "main"
url = "postgresql://a@h/d"

[[database]]
name = "analytics"
url = "postgresql://a@h/e"

[[stage]]
name = "pg"
plugin = "postgres"
database = "mian"

[[stage]]
name = "metrics"
plugin = "metrics"
database = "warehouse"
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 2u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].ToString(),
            "pipeline.toml:12:12: stage[pg].database: no [[database]] named \"mian\"; did you mean 'main'? "
            "(declared: main, analytics)");
  EXPECT_EQ(result.errors[1].key, "stage[metrics].database");
  EXPECT_EQ(result.errors[1].message,
            "no [[database]] named \"warehouse\"; declared: main, analytics; name one of them or declare it");
}

TEST(PipelineConfigDatabaseTest, StageDatabaseWithNoDatabaseDeclaredSaysToDeclareOne) {
  constexpr std::string_view kText = R"([[stage]]
name = "pg"
plugin = "postgres"
database = "main"
)";
  ConfigError error = OnlyError(Parse(kText));
  EXPECT_EQ(error.key, "stage[pg].database");
  EXPECT_EQ(error.where.line, 4);
  EXPECT_EQ(
      error.message,
      "no [[database]] is declared; add a [[database]] with name = \"main\" and a url, or remove this key");
}

TEST(PipelineConfigDatabaseTest, StageDatabaseMustBeANonEmptyString) {
  constexpr std::string_view kText = R"([[stage]]
name = "pg"
plugin = "postgres"
database = 1

[[stage]]
name = "pg2"
plugin = "postgres"
database = ""
datbase = "main"
)";
  LoadResult result = Parse(kText);
  ASSERT_EQ(result.errors.size(), 3u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].key, "stage[pg].database");
  EXPECT_EQ(result.errors[0].message, "expected a string, got integer 1");
  EXPECT_EQ(result.errors[1].key, "stage[pg2].database");
  EXPECT_TRUE(StartsWith(result.errors[1].message, "empty database name;"));
  EXPECT_EQ(result.errors[2].key, "stage[pg2].datbase");
  EXPECT_EQ(result.errors[2].message, "unknown key; did you mean 'database'?");
}

TEST(PipelineConfigDatabaseTest, TypoOfTheTopLevelDatabaseKeySuggestsIt) {
  ConfigError error = OnlyError(Parse(WithStage("[[databse]]\nname = \"main\"\n")));
  EXPECT_EQ(error.key, "databse");
  EXPECT_EQ(error.message, "unknown key; did you mean 'database'?");
}

// ---------------------------------------------------------------------------
// LoadPipelineConfig

class TempFolder {
 public:
  TempFolder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "stowage-config-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempFolder() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(LoadPipelineConfigTest, LoadsAFileAndResolvesPluginPathAgainstItsFolder) {
  TempFolder folder;
  const std::filesystem::path file = folder.path() / "pipeline.toml";
  std::ofstream(file) << "[server]\nplugin_path = [\"plugins\"]\n" << kMinimalStage;
  LoadResult result = LoadPipelineConfig(file, FakeEnv());
  ASSERT_TRUE(result.config.has_value()) << FormatErrors(result.errors);
  EXPECT_EQ(result.config->file, file);
  EXPECT_EQ(result.config->server.plugin_path.at(0), folder.path() / "plugins");
  EXPECT_EQ(result.config->stages.at(0).where.file, file.string());
}

TEST(LoadPipelineConfigTest, ErrorsOfAFileNameThatFile) {
  TempFolder folder;
  const std::filesystem::path file = folder.path() / "pipeline.toml";
  std::ofstream(file) << "[[stage]]\nname = \"x\"\nplugin = \"p\"\nplicy = \"required\"\n";
  LoadResult result = LoadPipelineConfig(file, FakeEnv());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].ToString(),
            file.string() + ":4:1: stage[x].plicy: unknown key; did you mean 'policy'?");
}

TEST(LoadPipelineConfigTest, MissingFileNamesTheFileAndTheReason) {
  TempFolder folder;
  const std::filesystem::path file = folder.path() / "absent.toml";
  LoadResult result = LoadPipelineConfig(file, FakeEnv());
  ASSERT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].ToString(), file.string() +
                                             ": cannot read the config file: No such file or directory; "
                                             "check the path and its permissions");
}

TEST(LoadPipelineConfigTest, DirectoryIsRefused) {
  TempFolder folder;
  LoadResult result = LoadPipelineConfig(folder.path(), FakeEnv());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_TRUE(
      StartsWith(result.errors[0].ToString(), folder.path().string() + ": cannot read the config file"));
  EXPECT_TRUE(Contains(result.errors[0].message, "directory"));
}

// Root reads files whatever their permissions (and CI runs as root): the
// load then runs in a child process that has dropped to an unprivileged user
// and sends back what it got, one error per line.
std::vector<std::string> ErrorsLoadingAsAnUnprivilegedUser(const std::filesystem::path& file) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe() failed");
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork() failed");
  if (child == 0) {
    ::close(pipe_fds[0]);
    // 65534 is "nobody" on Debian; a non-root user keeps its own id.
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    std::string out;
    for (const ConfigError& error : LoadPipelineConfig(file, FakeEnv()).errors) out += error.message + "\n";
    const bool written = ::write(pipe_fds[1], out.data(), out.size()) == static_cast<ssize_t>(out.size());
    ::_exit(written ? 0 : 4);
  }
  ::close(pipe_fds[1]);
  std::string got;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) got.append(buffer, n);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("the unprivileged child failed (exit status " + std::to_string(status) + ")");
  std::vector<std::string> errors;
  for (std::size_t start = 0, end; (end = got.find('\n', start)) != std::string::npos; start = end + 1)
    errors.push_back(got.substr(start, end - start));
  return errors;
}

TEST(LoadPipelineConfigTest, UnreadableFileNamesTheReason) {
  TempFolder folder;
  // The folder must be reachable by the unprivileged user; only the file is not readable.
  std::filesystem::permissions(folder.path(), std::filesystem::perms::all);
  const std::filesystem::path file = folder.path() / "pipeline.toml";
  std::ofstream(file) << kMinimalStage;
  std::filesystem::permissions(file, std::filesystem::perms::none);
  std::vector<std::string> errors = ErrorsLoadingAsAnUnprivilegedUser(file);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(Contains(errors[0], "Permission denied")) << errors[0];
}

// ---------------------------------------------------------------------------
// ValidateStageConfig

StageSettings StageWith(std::map<std::string, ConfigValue> values) {
  StageSettings stage;
  stage.name = "redis";
  stage.plugin = "redis";
  stage.where = {"pipeline.toml", 7, 1};
  int line = 8;
  for (auto& [key, value] : values)
    stage.config[key] = RawValue{std::move(value), {"pipeline.toml", line++, 3}};
  return stage;
}

ConfigSchema RedisSchema() {
  return ConfigSchema()
      .required("url", ConfigType::kString, "redis://host:port/db")
      .optional("pool_size", std::int64_t{8}, "connections kept open")
      .optional("ratio", 1.0, "share of writes")
      .optional("tls", false, "connect with TLS")
      .optional("password", std::string(""), "AUTH password")
      .secret();
}

TEST(ValidateStageConfigTest, FillsDefaultsAndConvertsExpandedStrings) {
  StageSettings stage = StageWith({{"url", std::string("redis://r:6379/0")},
                                   {"pool_size", std::string("16")},
                                   {"ratio", std::int64_t{2}},
                                   {"tls", std::string("true")}});
  StageConfig out;
  std::vector<ConfigError> errors = ValidateStageConfig(stage, "pipeline.toml", RedisSchema(), &out);
  ASSERT_TRUE(errors.empty()) << FormatErrors(errors);
  EXPECT_EQ(out.string("url"), "redis://r:6379/0");
  EXPECT_EQ(out.integer("pool_size"), 16);
  EXPECT_DOUBLE_EQ(out.floating("ratio"), 2.0);
  EXPECT_TRUE(out.boolean("tls"));
  EXPECT_EQ(out.string("password"), "");
  EXPECT_EQ(out.values().size(), 5u);
}

TEST(ValidateStageConfigTest, StringSpellingAFloatConverts) {
  StageConfig out;
  auto errors = ValidateStageConfig(StageWith({{"url", std::string("u")}, {"ratio", std::string("0.25")}}),
                                    "pipeline.toml", RedisSchema(), &out);
  ASSERT_TRUE(errors.empty()) << FormatErrors(errors);
  EXPECT_DOUBLE_EQ(out.floating("ratio"), 0.25);
}

TEST(ValidateStageConfigTest, WrongTypesAreErrorsAtTheKeyLine) {
  StageSettings stage = StageWith({{"pool_size", std::string("abc")},
                                   {"ratio", std::string("half")},
                                   {"tls", std::int64_t{1}},
                                   {"url", std::int64_t{5}}});
  StageConfig out(std::map<std::string, ConfigValue>{{"sentinel", true}});
  std::vector<ConfigError> errors = ValidateStageConfig(stage, "pipeline.toml", RedisSchema(), &out);
  ASSERT_EQ(errors.size(), 4u) << FormatErrors(errors);
  // StageWith numbers lines in key order: pool_size 8, ratio 9, tls 10, url 11.
  EXPECT_EQ(errors[0].ToString(),
            "pipeline.toml:8:3: stage[redis].config.pool_size: expected an integer, got string \"abc\"");
  EXPECT_EQ(errors[1].ToString(),
            "pipeline.toml:9:3: stage[redis].config.ratio: expected a float, got string \"half\"");
  EXPECT_EQ(errors[2].ToString(),
            "pipeline.toml:10:3: stage[redis].config.tls: expected a boolean, got integer 1");
  EXPECT_EQ(errors[3].ToString(),
            "pipeline.toml:11:3: stage[redis].config.url: expected a string, got integer 5");
  EXPECT_EQ(out.values().count("sentinel"), 1u) << "out must be left alone on error";
}

TEST(ValidateStageConfigTest, FloatIsNotAcceptedWhereAnIntegerIsDeclared) {
  auto errors = ValidateStageConfig(StageWith({{"url", std::string("u")}, {"pool_size", 2.5}}),
                                    "pipeline.toml", RedisSchema(), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "expected an integer, got float 2.5");
}

TEST(ValidateStageConfigTest, SecretValueIsNotShownInErrors) {
  auto errors =
      ValidateStageConfig(StageWith({{"url", std::string("u")}, {"password", std::int64_t{123456}}}),
                          "pipeline.toml", RedisSchema(), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "stage[redis].config.password");
  EXPECT_TRUE(Contains(errors[0].message, "expected a string, got integer"));
  EXPECT_EQ(errors[0].message.find("123456"), std::string::npos) << errors[0].message;
}

TEST(ValidateStageConfigTest, UnknownKeySuggestsAndListsTheValidKeys) {
  auto errors = ValidateStageConfig(StageWith({{"url", std::string("u")}, {"pool_sise", std::int64_t{3}}}),
                                    "pipeline.toml", RedisSchema(), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].ToString(),
            "pipeline.toml:8:3: stage[redis].config.pool_sise: unknown key; did you mean 'pool_size'? "
            "(valid keys: url, pool_size, ratio, tls, password)");
}

TEST(ValidateStageConfigTest, UnknownKeyForASchemaWithoutKeys) {
  auto errors =
      ValidateStageConfig(StageWith({{"url", std::string("u")}}), "pipeline.toml", ConfigSchema(), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "unknown key; this table takes no keys, remove it");
}

TEST(ValidateStageConfigTest, MissingRequiredKeyNamesItsDescriptionAtTheStageHeader) {
  auto errors = ValidateStageConfig(StageWith({}), "pipeline.toml", RedisSchema(), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].ToString(),
            "pipeline.toml:7:1: stage[redis].config.url: missing required key 'url' (string: "
            "redis://host:port/db); "
            "add url = ... to this stage's config table");
}

// ---------------------------------------------------------------------------
// SuggestKey and formatting

TEST(SuggestKeyTest, SuggestsCloseKeysOnly) {
  const std::vector<std::string> keys = {"name", "plugin", "policy", "enabled", "timeout_ms", "config"};
  EXPECT_EQ(SuggestKey("polcy", keys), "policy");
  EXPECT_EQ(SuggestKey("plugni", keys), "plugin");  // adjacent swap
  EXPECT_EQ(SuggestKey("Enabled", keys), "enabled");
  EXPECT_EQ(SuggestKey("timeout", keys), "timeout_ms");
  EXPECT_EQ(SuggestKey("colour", keys), "");
  EXPECT_EQ(SuggestKey("x", keys), "");
  EXPECT_EQ(SuggestKey("policy", {}), "");
}

TEST(ConfigErrorTest, ToStringOmitsWhatIsUnknown) {
  EXPECT_EQ((ConfigError{{"p.toml", 3, 5}, "server.workers", "bad"}).ToString(),
            "p.toml:3:5: server.workers: bad");
  EXPECT_EQ((ConfigError{{"p.toml", 3, 5}, "", "bad"}).ToString(), "p.toml:3:5: bad");
  EXPECT_EQ((ConfigError{{"p.toml", 0, 0}, "", "bad"}).ToString(), "p.toml: bad");
  EXPECT_EQ(FormatErrors({}), "");
}

}  // namespace
}  // namespace stowage::config

namespace stowage::config {
namespace {

using std::chrono::milliseconds;

// A stage schema using each kind of constraint of SDK 2.0.
ConfigSchema ConstrainedSchema() {
  return ConfigSchema()
      .optional("pool_size", std::int64_t{8}, "connections kept open")
      .range(std::int64_t{1}, std::int64_t{64})
      .optional("ratio", 0.5, "share of writes")
      .range(0.0, 1.0)
      .optional("mode", std::string("fast"), "fast | safe")
      .one_of({"fast", "safe"})
      .optional("flush_every", milliseconds(1000), "how often to flush")
      .at_least(milliseconds(10))
      .optional("ca_file", std::string(""), "CA certificates")
      .path()
      .optional("token", std::int64_t{0}, "a secret number")
      .range(std::int64_t{0}, std::int64_t{9})
      .secret();
}

std::vector<ConfigError> Validate(std::map<std::string, ConfigValue> values, const std::string& file,
                                  StageConfig* out) {
  return ValidateStageConfig(StageWith(std::move(values)), file, ConstrainedSchema(), out);
}

TEST(StageSchemaConstraintsTest, ValuesInsideTheirBoundsAndWordsAllowedAreAccepted) {
  StageConfig out;
  auto errors = Validate({{"pool_size", std::int64_t{64}},
                          {"ratio", std::int64_t{1}},
                          {"mode", std::string("safe")},
                          {"flush_every", std::string("250ms")},
                          {"token", std::string("9")}},
                         "pipeline.toml", &out);
  ASSERT_TRUE(errors.empty()) << FormatErrors(errors);
  EXPECT_EQ(out.integer("pool_size"), 64);
  EXPECT_DOUBLE_EQ(out.floating("ratio"), 1.0);
  EXPECT_EQ(out.string("mode"), "safe");
  EXPECT_EQ(out.duration("flush_every"), milliseconds(250));
  EXPECT_EQ(out.integer("token"), 9);
}

TEST(StageSchemaConstraintsTest, EachBrokenConstraintNamesTheKeyItsLineAndWhatIsAllowed) {
  StageConfig out;
  auto errors = Validate({{"pool_size", std::int64_t{0}},
                          {"ratio", 1.5},
                          {"mode", std::string("fsat")},
                          {"flush_every", std::string("5ms")},
                          {"token", std::int64_t{12345}}},
                         "pipeline.toml", &out);
  ASSERT_EQ(errors.size(), 5u) << FormatErrors(errors);
  // StageWith writes the keys one per line from line 8, in key order.
  EXPECT_EQ(errors[0].ToString(), "pipeline.toml:8:3: stage[redis].config.flush_every: must be at least 10ms, got 5ms");
  EXPECT_EQ(errors[1].ToString(),
            "pipeline.toml:9:3: stage[redis].config.mode: expected one of fast, safe, got \"fsat\"; did you mean "
            "'fast'?");
  EXPECT_EQ(errors[2].ToString(), "pipeline.toml:10:3: stage[redis].config.pool_size: must be from 1 to 64, got 0");
  EXPECT_EQ(errors[3].ToString(), "pipeline.toml:11:3: stage[redis].config.ratio: must be from 0 to 1, got 1.5");
  EXPECT_EQ(errors[4].ToString(),
            "pipeline.toml:12:3: stage[redis].config.token: must be from 0 to 9, got a value out of range (hidden: "
            "the key is secret)");
  EXPECT_EQ(errors[4].message.find("12345"), std::string::npos) << "a secret's value is never shown";
}

TEST(StageSchemaConstraintsTest, DurationsTakeSecondsOrAUnitAndRefuseOtherText) {
  StageConfig out;
  for (auto [written, expected] : std::vector<std::pair<ConfigValue, milliseconds>>{
           {std::int64_t{3}, milliseconds(3000)},
           {std::string("90s"), milliseconds(90000)},
           {std::string("30m"), milliseconds(1800000)},
           {std::string("24h"), milliseconds(86400000)},
           {std::string("7d"), milliseconds(604800000)}}) {
    auto errors = Validate({{"flush_every", written}}, "pipeline.toml", &out);
    ASSERT_TRUE(errors.empty()) << FormatErrors(errors);
    EXPECT_EQ(out.duration("flush_every"), expected);
  }
  for (const ConfigValue& bad : {ConfigValue{std::string("soon")}, ConfigValue{std::string("5 s")},
                                 ConfigValue{std::string("5w")}, ConfigValue{std::int64_t{-1}}, ConfigValue{1.5}}) {
    auto errors = Validate({{"flush_every", bad}}, "pipeline.toml", &out);
    ASSERT_EQ(errors.size(), 1u) << DescribeValue(bad);
    EXPECT_TRUE(StartsWith(errors[0].message, "invalid duration ")) << errors[0].message;
    EXPECT_TRUE(Contains(errors[0].message, "\"90s\"")) << "the message shows how to write one";
  }
}

TEST(StageSchemaConstraintsTest, APathIsResolvedAgainstTheConfigFilesFolder) {
  StageConfig out;
  ASSERT_TRUE(Validate({{"ca_file", std::string("certs/../ca.pem")}}, "/etc/stowage/pipeline.toml", &out).empty());
  EXPECT_EQ(out.string("ca_file"), "/etc/stowage/ca.pem");
  ASSERT_TRUE(Validate({{"ca_file", std::string("/srv/ca.pem")}}, "/etc/stowage/pipeline.toml", &out).empty());
  EXPECT_EQ(out.string("ca_file"), "/srv/ca.pem") << "an absolute path is kept";
  ASSERT_TRUE(Validate({}, "/etc/stowage/pipeline.toml", &out).empty());
  EXPECT_EQ(out.string("ca_file"), "") << "an empty path stays empty: the key is unset";
  ASSERT_TRUE(Validate({{"ca_file", std::string("ca.pem")}}, "conf/pipeline.toml", &out).empty());
  EXPECT_EQ(out.string("ca_file"), "conf/ca.pem") << "a config file named relatively gives a relative folder";
}

TEST(HostSchemaTest, TheHostsTablesAreCheckedByTheSameBoundsAndSayTheRange) {
  LoadResult result = Parse(std::string(kMinimalStage) + "replay_max_attempts = 0\nreplay_max_age = \"500ms\"\n");
  ASSERT_EQ(result.errors.size(), 2u) << FormatErrors(result.errors);
  EXPECT_EQ(result.errors[0].message, "must be from 1 to 1000000, got 0");
  EXPECT_EQ(result.errors[1].message, "must be from 1s to 36500d, got 500ms");
}

// Two configs alike but for one key of [server]: each of ServerKeys() is
// reported by KeysNeedingRestart, alone. A key added to the schema without
// a way to compare it fails here.
TEST(HostSchemaTest, AReloadReportsEveryServerKeyThatChanged) {
  for (const HostKey<ServerSettings>& key : ServerKeys()) {
    const std::string& name = key.key.name;
    std::string a = name + " = ", b = a;
    if (name == "listen" || name == "admin_listen") {
      a += "\"127.0.0.1:1\"", b += "\"127.0.0.1:2\"";
    } else if (name == "plugin_path") {
      a += "[\"a\"]", b += "[\"b\"]";
    } else if (key.key.type == ConfigType::kString) {
      a += "\"A\"", b += "\"B\"";
    } else {
      ASSERT_EQ(key.key.type, ConfigType::kInteger) << name;
      const std::int64_t min = std::get<std::int64_t>(*key.key.min);
      a += std::to_string(min + 1), b += std::to_string(min + 2);
    }
    LoadResult first = Parse("[server]\n" + a + "\n" + std::string(kMinimalStage));
    LoadResult second = Parse("[server]\n" + b + "\n" + std::string(kMinimalStage));
    ASSERT_TRUE(first.config && second.config) << name << ": " << FormatErrors(first.errors)
                                               << FormatErrors(second.errors);
    EXPECT_EQ(KeysNeedingRestart(first.config->server, second.config->server), std::vector<std::string>{name});
    EXPECT_TRUE(KeysNeedingRestart(first.config->server, first.config->server).empty()) << name;
  }
}

// The same for the keys of [[stage]]: a change of any of them makes the
// stage "reconfigured" on a reload, never "kept" with stale settings.
TEST(HostSchemaTest, AStageDiffersFromItselfWithAnyOneKeyChanged) {
  const std::map<std::string, std::pair<std::string, std::string>> values = {
      {"name", {"\"m\"", "\"m\""}},  // the name is the stage: compared by name, never "changed"
      {"plugin", {"\"p\"", "\"q\""}},
      {"policy", {"\"best_effort\"", "\"required\""}},
      {"enabled", {"true", "false"}},
      {"timeout_ms", {"1", "2"}},
      {"database", {"\"d\"", "\"e\""}},
      {"config", {"{ k = 1 }", "{ k = 2 }"}},
      {"circuit_threshold", {"1", "2"}},
      {"circuit_cooldown_ms", {"1", "2"}},
      {"journal", {"true", "false"}},
      {"replay_max_attempts", {"1", "2"}},
      {"replay_max_age", {"1", "2"}},
  };
  const std::string databases = "[[database]]\nname = \"d\"\nurl = \"postgresql://u@h/x\"\n"
                                "[[database]]\nname = \"e\"\nurl = \"postgresql://u@h/y\"\n";
  for (const HostKey<StageSettings>& key : StageKeys()) {
    const std::string& name = key.key.name;
    ASSERT_TRUE(values.count(name)) << "no test values for [[stage]] key " << name;
    if (name == "name") continue;
    auto stage = [&](const std::string& value) {
      std::string text = databases + "[[stage]]\nname = \"m\"\n";
      if (name != "plugin") text += "plugin = \"p\"\n";
      if (name != "policy") text += "policy = \"best_effort\"\n";
      text += name + " = " + value + "\n";
      LoadResult result = Parse(text);
      EXPECT_TRUE(result.config) << name << ": " << FormatErrors(result.errors);
      return result.config ? result.config->stages.at(0) : StageSettings{};
    };
    const auto& [first, second] = values.at(name);
    EXPECT_FALSE(SameSettings(stage(first), stage(second))) << name;
    EXPECT_TRUE(SameSettings(stage(first), stage(first))) << name;
  }
}

}  // namespace
}  // namespace stowage::config

namespace stowage::config {
namespace {

// docs/configuration.md has a row for every key the host declares, and none
// for a key it does not: the reference cannot drift from the schema.
TEST(HostSchemaTest, TheConfigurationReferenceDocumentsEveryHostKey) {
  std::ifstream file(std::string(STOWAGE_DOCS_DIR) + "/configuration.md");
  ASSERT_TRUE(file) << "cannot read docs/configuration.md";
  std::map<std::string, std::set<std::string>> rows;  // section -> keys of its table
  std::string line, section;
  while (std::getline(file, line)) {
    if (line.rfind("#", 0) == 0) section = line;  // "## `[server]`", "### Stage `config`", ...
    if (line.rfind("| `", 0) == 0) rows[section].insert(line.substr(3, line.find('`', 3) - 3));
  }
  auto documented = [&](const std::string& heading, const std::vector<std::string>& keys) {
    std::set<std::string> declared(keys.begin(), keys.end());
    EXPECT_EQ(rows["## " + heading], declared) << "the table under \"## " << heading << "\"";
  };
  documented("`[server]`", NamesOf(ServerKeys()));
  documented("`[log]`", NamesOf(LogKeys()));
  documented("`[[database]]`", NamesOf(DatabaseKeys()));
  documented("`[[stage]]`", NamesOf(StageKeys()));
}

}  // namespace
}  // namespace stowage::config
