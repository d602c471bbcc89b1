// Fuzz target: the config loader, ParsePipelineConfig
// (core/src/config/pipeline_config.h), the text of a pipeline.toml. String
// values may use ${VAR}; the environment is a fixed map (HOST, PORT, EMPTY,
// DATABASE_URL, REDIS_URL), and reading ${THROWS} throws, as a broken
// Environment may.
//
// Checks, beyond "no crash, no undefined behaviour":
// - it never throws; a config is returned exactly when there are no errors;
// - every error names the file, has a message of valid UTF-8 (a reload
//   through the admin API answers with it in JSON), and errors come in file
//   order; no error of a [[database]] url shows the password;
// - a returned config holds what the loader promises: at least one stage,
//   unique valid stage and database names, a plugin for each stage,
//   positive timeouts, a declared database for each stage that names one,
//   journal only on best_effort stages, a known log level, a listen
//   address host:port, database urls that ParseEndpoint accepts.
// Inputs that would make toml++ 3.3.0 reach undefined behaviour of its own
// are skipped (HoldsTomlUnreachable below; fuzz/README.md).
#include <algorithm>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config/pipeline_config.h"
#include "database/endpoint.h"
#include "fuzz_check.h"

namespace {

using namespace stowage::config;

const std::string kFile = "fuzz/pipeline.toml";
const std::string kPassword = "pw-S3cr3t";

std::optional<std::string> FakeEnvironment(const std::string& name) {
  static const std::map<std::string, std::string> kVariables = {
      {"HOST", "127.0.0.1"},
      {"PORT", "8000"},
      {"EMPTY", ""},
      {"DATABASE_URL", "postgresql://stowage:" + kPassword + "@127.0.0.1:5432/stowage"},
      {"REDIS_URL", "redis://127.0.0.1:6379/0"},
  };
  if (name == "THROWS") throw std::runtime_error("the environment cannot be read");
  auto it = kVariables.find(name);
  if (it == kVariables.end()) return std::nullopt;
  return it->second;
}

// toml++ 3.3.0, Debian bookworm's, reaches TOML_UNREACHABLE (undefined
// behaviour) in is_non_ascii_horizontal_whitespace() for the code points
// below when it looks for whitespace, e.g. at a bare key (marzer/tomlplusplus
// issues 190 and 295, fixed upstream by pull request 305). stowage's build
// (g++, Debian's libtomlplusplus.so) reads such files right
// (PipelineConfigTest.NonAsciiWhereTomlLooksForWhitespace); this target
// skips inputs holding one, so that it keeps fuzzing the rest.
bool HitsTomlUnreachable(char32_t c) {
  if (c < 0xA0 || c > 0xFEFF) return false;
  const auto child = (static_cast<std::uint64_t>(c) - 0xA0) / 0x3FA;
  if ((std::uint64_t{1} << child) & 0x7FFFFFFFFFFFF75Eull) return false;
  if (c == 0xA0 || c == 0x3000 || c == 0xFEFF) return false;
  return child != 5 && child != 7;
}

// Whether `text` holds such a code point anywhere. Telling where toml++
// looks for whitespace (outside strings, but also in strings it reads on
// through to report an error) proved unreliable, so any occurrence skips the
// input: such characters in strings go unfuzzed, the rest does not.
bool HoldsTomlUnreachable(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t len = (lead & 0xE0) == 0xC0   ? 2
                            : (lead & 0xF0) == 0xE0 ? 3
                            : (lead & 0xF8) == 0xF0 ? 4
                                                    : 1;
    if (len == 1 || i + len > text.size()) {
      ++i;
      continue;
    }
    char32_t code = lead & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k)
      code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    if (HitsTomlUnreachable(code)) return true;
    i += len;
  }
  return false;
}

bool IsName(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

void CheckErrors(const LoadResult& result, std::string_view text) {
  const bool password_in_text = text.find(kPassword) != std::string_view::npos;
  for (std::size_t i = 0; i < result.errors.size(); ++i) {
    const ConfigError& error = result.errors[i];
    FUZZ_CHECK(error.where.file == kFile, "error names file '%s'", error.where.file.c_str());
    FUZZ_CHECK(!error.message.empty(), "an error of key '%s' has no message", error.key.c_str());
    FUZZ_CHECK(error.where.line >= 0 && error.where.column >= 0, "error at %d:%d", error.where.line,
               error.where.column);
    if (i > 0) {
      const ConfigError& before = result.errors[i - 1];
      FUZZ_CHECK(std::pair(before.where.line, before.where.column) <=
                     std::pair(error.where.line, error.where.column),
                 "errors out of order:\n  %s\n  %s", before.ToString().c_str(), error.ToString().c_str());
    }
    const bool url_key = error.key.size() >= 4 && error.key.compare(error.key.size() - 4, 4, ".url") == 0;
    if (url_key && error.key.rfind("database", 0) == 0 && !password_in_text) {
      FUZZ_CHECK(error.message.find(kPassword) == std::string::npos, "an error shows the password: %s",
                 error.ToString().c_str());
    }
    const std::string line = error.ToString();
    FUZZ_CHECK(line.find(error.message) != std::string::npos, "ToString lost the message: %s", line.c_str());
    // POST /v1/admin/reload answers with these lines in JSON.
    FUZZ_CHECK(stowage::fuzz::IsValidUtf8(line), "an error is not valid UTF-8: %s", line.c_str());
  }
  (void)FormatErrors(result.errors);
}

void CheckConfig(const PipelineConfig& config) {
  FUZZ_CHECK(!config.stages.empty(), "a config without stages");
  std::set<std::string> databases;
  for (const DatabaseSettings& database : config.databases) {
    FUZZ_CHECK(IsName(database.name), "database name '%s'", database.name.c_str());
    FUZZ_CHECK(databases.insert(database.name).second, "database '%s' twice", database.name.c_str());
    FUZZ_CHECK(database.pool_size >= 1, "database '%s' pool_size %d", database.name.c_str(),
               database.pool_size);
    FUZZ_CHECK(database.connect_timeout.count() >= 1, "database '%s' connect timeout", database.name.c_str());
    try {
      stowage::database::ParseEndpoint(database.url, database.name, database.connect_timeout);
    } catch (const std::exception& e) {
      FUZZ_CHECK(false, "database '%s' was accepted, but its url is not: %s", database.name.c_str(),
                 e.what());
    }
  }
  std::set<std::string> stages;
  for (const StageSettings& stage : config.stages) {
    FUZZ_CHECK(IsName(stage.name), "stage name '%s'", stage.name.c_str());
    FUZZ_CHECK(stages.insert(stage.name).second, "stage '%s' twice", stage.name.c_str());
    FUZZ_CHECK(!stage.plugin.empty(), "stage '%s' has no plugin", stage.name.c_str());
    FUZZ_CHECK(
        stage.timeout.count() >= 1 && stage.circuit_cooldown.count() >= 1 && stage.circuit_threshold >= 0,
        "stage '%s' timeouts", stage.name.c_str());
    FUZZ_CHECK(stage.replay_max_attempts >= 1 && stage.replay_max_age.count() >= 1,
               "stage '%s' replay settings", stage.name.c_str());
    FUZZ_CHECK(stage.database.empty() || databases.count(stage.database), "stage '%s' joins undeclared '%s'",
               stage.name.c_str(), stage.database.c_str());
    FUZZ_CHECK(!(stage.journal.value_or(false) && stage.policy == Policy::kRequired),
               "required stage '%s' is journaled", stage.name.c_str());
    FUZZ_CHECK(SameSettings(stage, stage), "stage '%s' differs from itself", stage.name.c_str());
  }
  const std::string& level = config.log.level;
  FUZZ_CHECK(level == "trace" || level == "debug" || level == "info" || level == "warn" || level == "error",
             "log level '%s'", level.c_str());
  FUZZ_CHECK(config.server.listen.find(':') != std::string::npos && config.server.listen.front() != ':',
             "listen '%s'", config.server.listen.c_str());
  FUZZ_CHECK(config.server.io_threads >= 1 && config.server.workers >= 1 && config.server.body_limit >= 1 &&
                 config.server.max_content_bytes >= 1,
             "server sizes");
  FUZZ_CHECK(!config.server.admin_token_env.empty(), "empty admin_token_env");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (HoldsTomlUnreachable(text)) return -1;  // not added to the corpus
  LoadResult result;
  try {
    result = ParsePipelineConfig(text, kFile, FakeEnvironment);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "ParsePipelineConfig threw: %s", e.what());
  } catch (...) {
    FUZZ_CHECK(false, "ParsePipelineConfig threw something that is not a std::exception");
  }
  FUZZ_CHECK(result.config.has_value() == result.errors.empty(), "config %d with %zu errors",
             result.config.has_value(), result.errors.size());
  CheckErrors(result, text);
  if (result.config) CheckConfig(*result.config);
  return 0;
}
