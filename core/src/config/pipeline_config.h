// pipeline.toml: parsing, environment expansion and validation.
//
// Contract: LoadPipelineConfig never throws. Every error it reports names the
// file, the line and the key, and says what to do; an unknown key comes with
// a "did you mean" suggestion when a known key is close.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stowage/config.h"

namespace stowage::config {

enum class Policy { kRequired, kBestEffort };

inline const char* PolicyName(Policy policy) noexcept {
  return policy == Policy::kRequired ? "required" : "best_effort";
}

// Where a value was written: file and 1-based line and column.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

// One problem in a config file.
struct ConfigError {
  SourceLocation where;
  std::string key;      // dotted path, e.g. "stage[redis].config.url"
  std::string message;  // what is wrong and what to do

  // "pipeline.toml:12:1: stage[redis].polcy: unknown key; did you mean 'policy'?"
  std::string ToString() const;
};

std::string FormatErrors(const std::vector<ConfigError>& errors);

struct ServerSettings {
  std::string listen = "127.0.0.1:8000";  // host:port
  int io_threads = 1;                     // threads running the HTTP I/O
  int workers = 8;                        // threads running pipeline work
  std::size_t body_limit = 65536;         // bytes; larger bodies get 413
  std::size_t max_content_bytes = 32768;  // bytes of a message's content
  // Connections served at once; more are answered 503 overloaded and closed
  // (a /healthz on them is still answered). Lowered at start to what the
  // open-files limit allows.
  std::size_t max_connections = 10000;
  // Requests read and waiting for a worker; more are answered 503 overloaded
  // at once, with Retry-After.
  std::size_t max_queue = 256;
  // How long a request may wait for a worker; one that waited longer is
  // answered 503 overloaded without running any stage.
  std::chrono::milliseconds queue_timeout{1000};
  // Messages a GET without `limit` returns at most (the newest that many).
  std::size_t max_history = 10000;
  // Folders searched for a plugin given by bare name, before the default
  // folder next to the executable (<bin>/../lib/stowage/plugins).
  std::vector<std::filesystem::path> plugin_path;
  // The environment variable holding the bearer token of /v1/admin/...;
  // when it is unset or empty, the admin routes are off (404).
  std::string admin_token_env = "STOWAGE_ADMIN_TOKEN";
  // host:port serving the admin routes instead of `listen`; empty: `listen`.
  std::string admin_listen;
  // How long required stages may take to become healthy at start.
  std::chrono::milliseconds startup_timeout{30000};

  bool operator==(const ServerSettings&) const = default;
};

struct LogSettings {
  std::string level = "info";  // trace, debug, info, warn, error
};

// A stage's `config` value before it is checked against the plugin's schema:
// strings already have ${VAR} expanded.
struct RawValue {
  stowage::ConfigValue value;
  SourceLocation where;

  // The same value, wherever it was written.
  bool operator==(const RawValue& other) const { return value == other.value; }
};

// A [[database]] entry: a PostgreSQL database that stages share by name.
struct DatabaseSettings {
  std::string name;    // [A-Za-z0-9_-]+, unique
  std::string url;     // libpq URL, e.g. postgresql://user@host:5432/db
  int pool_size = 16;  // connections kept open at most
  std::chrono::milliseconds connect_timeout{2000};
  // true: a statement with parameters or rows is prepared once per
  // connection under a name (s1, s2, ...) and reused. false: every statement
  // is sent unnamed (parse, bind and execute each time), so that nothing
  // depends on a server-side prepared statement outliving its transaction,
  // as behind pgbouncer in transaction pooling mode.
  bool prepared_statements = true;
  SourceLocation where;  // the [[database]] header
};

struct StageSettings {
  std::string name;
  std::string plugin;  // bare name ("redis") or a path to a .so
  Policy policy = Policy::kRequired;
  bool enabled = true;
  std::chrono::milliseconds timeout{1000};
  std::string database;  // the [[database]] the stage joins; empty for none
  std::map<std::string, RawValue> config;
  // Circuit breaker of a best_effort stage: consecutive failures that open it
  // (0: never) and how long it stays open.
  int circuit_threshold = 5;
  std::chrono::milliseconds circuit_cooldown{30000};
  // The journal of a best_effort stage (engine/journal_replayer.h): what it
  // failed to store is kept and replayed. Unset: on for best_effort stages
  // (that do not run after the commit), off otherwise; refused for required ones.
  std::optional<bool> journal;
  int replay_max_attempts = 10;                 // replays of one entry before it is parked
  std::chrono::seconds replay_max_age{86400};  // an entry older than this is parked
  SourceLocation where;  // the [[stage]] header
};

// Whether two stages are configured alike: every key of [[stage]] and every
// config value, where they were written aside (config/host_keys.h).
bool SameSettings(const StageSettings& a, const StageSettings& b);
// Whether two [[database]] entries are configured alike, where aside.
bool SameSettings(const DatabaseSettings& a, const DatabaseSettings& b);
// The [server] keys whose values differ: each is read at start only, so a
// reload reports it as needing a restart.
std::vector<std::string> KeysNeedingRestart(const ServerSettings& a, const ServerSettings& b);

struct PipelineConfig {
  std::filesystem::path file;  // as given; relative plugin paths resolve against its folder
  ServerSettings server;
  LogSettings log;
  std::vector<DatabaseSettings> databases;  // in file order
  std::vector<StageSettings> stages;        // in file order, disabled ones included
};

// Reads an environment variable; returns nullopt when it is unset.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;
Environment ProcessEnvironment();

struct LoadResult {
  std::optional<PipelineConfig> config;  // set when errors is empty
  std::vector<ConfigError> errors;
};

// Parses `file`, expands ${VAR} and ${VAR:-default} in string values, checks
// every key of [server], [log], [[database]] and [[stage]] (stage `config`
// tables are checked later, against the plugin's schema). A stage's
// `database` must name a declared [[database]].
LoadResult LoadPipelineConfig(const std::filesystem::path& file,
                              const Environment& env = ProcessEnvironment());
// The same from text; `file` only names it in errors.
LoadResult ParsePipelineConfig(std::string_view text, const std::string& file,
                               const Environment& env = ProcessEnvironment());

// Checks a stage's raw config against the plugin's schema: unknown keys (with
// a suggestion), wrong types (a string that spells the declared type, as left
// by ${VAR} expansion, is converted), missing required keys. On success fills
// `out` with every declared key, defaults included.
std::vector<ConfigError> ValidateStageConfig(const StageSettings& stage, const std::string& config_file,
                                             const stowage::ConfigSchema& schema, stowage::StageConfig* out);

}  // namespace stowage::config
