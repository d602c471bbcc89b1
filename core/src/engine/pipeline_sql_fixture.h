// A test fixture for the engine against a real PostgreSQL
// (STOWAGE_TEST_DATABASE_URL): pipelines of test_stage plugins sharing one
// [[database]], the rows they wrote, and the journal of their calls.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "database/postgres_database.h"
#include "engine/pipeline.h"
#include "support/services.h"

namespace stowage::engine {

const std::string kTestStage = std::string(STOWAGE_TEST_PLUGIN_DIR) + "/test_stage.so";
// The test stage declaring kAfterCommit: a copy of the store.
const std::string kAfterCommitStage = std::string(STOWAGE_TEST_PLUGIN_DIR) + "/test_stage_after_commit.so";

// One stage of a test pipeline: test_stage (or `plugin`) with `config`.
struct SqlStage {
  std::string name;
  config::Policy policy = config::Policy::kRequired;
  std::map<std::string, ConfigValue> config;
  bool with_database = true;
  std::string plugin = kTestStage;
  // Journal settings (config::StageSettings), as pipeline.toml would set them.
  std::optional<bool> journal;
  int replay_max_attempts = 10;
  int circuit_threshold = 5;
};

class PipelineSqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = stowage::testing::RequireEnv("STOWAGE_TEST_DATABASE_URL");
    if (url_.empty()) GTEST_SKIP() << "no database";
    std::mt19937_64 random{std::random_device{}()};
    guest_ = "engine-sql-" + std::to_string(random());
    journal_ = std::filesystem::temp_directory_path() / (guest_ + ".journal");
    ASSERT_TRUE(Sql("CREATE TABLE IF NOT EXISTS engine_sql_rows (guest text, stage text, content text)").ok());
    // A constraint checked only at COMMIT, to make a commit fail on purpose.
    ASSERT_TRUE(Sql("CREATE TABLE IF NOT EXISTS engine_sql_commit_check (guest text, "
                    "CONSTRAINT one_per_guest UNIQUE (guest) DEFERRABLE INITIALLY DEFERRED)")
                    .ok());
  }
  void TearDown() override {
    if (!journal_.empty()) std::filesystem::remove(journal_);
  }

  // Runs `statement` on a database of its own, outside any pipeline.
  Status Sql(const std::string& statement, std::vector<SqlValue> params = {}, SqlResult* result = nullptr) {
    auto log = std::make_shared<NullLog>();
    config::DatabaseSettings settings;
    settings.name = "probe";
    settings.url = url_;
    database::PostgresDatabase db(settings, log);
    return db.with_session(Deadline::After(std::chrono::seconds(10)),
                           [&](SqlSession& session) { return session.execute(statement, params, result); });
  }

  // The stages whose rows the guest has, as "stage:content", in insertion order.
  std::vector<std::string> Rows() {
    SqlResult result;
    EXPECT_TRUE(Sql("SELECT stage || ':' || content FROM engine_sql_rows WHERE guest = $1 ORDER BY ctid", {guest_},
                    &result)
                    .ok());
    std::vector<std::string> rows;
    for (const auto& row : result.rows) rows.push_back(row[0].value_or("NULL"));
    return rows;
  }

  // The lines the stages journaled ("<target> <call> <guest> ..."), with
  // the guest's id replaced by "g".
  std::vector<std::string> Journal() const {
    std::vector<std::string> lines;
    std::ifstream in(journal_);
    for (std::string line; std::getline(in, line);) {
      for (auto at = line.find(guest_); at != std::string::npos; at = line.find(guest_))
        line.replace(at, guest_.size(), "g");
      lines.push_back(line);
    }
    return lines;
  }

  std::shared_ptr<Pipeline> Build(const std::vector<SqlStage>& specs, int pool_size = 4) {
    config::PipelineConfig cfg;
    cfg.file = std::filesystem::temp_directory_path() / "pipeline.toml";
    config::DatabaseSettings db;
    db.name = "main";
    db.url = url_;
    db.pool_size = pool_size;
    cfg.databases.push_back(db);
    for (const auto& spec : specs) {
      config::StageSettings s;
      s.name = spec.name;
      s.plugin = spec.plugin;
      s.policy = spec.policy;
      s.timeout = std::chrono::milliseconds(5000);
      s.database = spec.with_database ? "main" : "";
      s.journal = spec.journal;
      s.replay_max_attempts = spec.replay_max_attempts;
      s.circuit_threshold = spec.circuit_threshold;
      s.config["target"] = config::RawValue{std::string(spec.with_database ? "postgresql" : "memory"), s.where};
      s.config["journal"] = config::RawValue{journal_.string(), s.where};
      for (const auto& [key, value] : spec.config) s.config[key] = config::RawValue{value, s.where};
      cfg.stages.push_back(std::move(s));
    }
    auto built = Pipeline::Build(cfg);
    EXPECT_TRUE(built.errors.empty()) << (built.errors.empty() ? "" : built.errors.front());
    return built.pipeline;
  }

  // The errors of building a pipeline of one stage `name` of `plugin` joining
  // database `database`, written at line `line` of /etc/stowage/pipeline.toml,
  // where [[database]] "main" is declared.
  std::vector<std::string> BuildErrors(const std::string& name, const std::string& plugin,
                                       const std::string& database, int line) {
    config::PipelineConfig cfg;
    cfg.file = "/etc/stowage/pipeline.toml";
    config::DatabaseSettings db;
    db.name = "main";
    db.url = url_;
    cfg.databases.push_back(db);
    config::StageSettings s;
    s.name = name;
    s.plugin = plugin;
    s.database = database;
    s.where = {cfg.file.string(), line, 1};
    cfg.stages.push_back(s);
    return Pipeline::Build(cfg).errors;
  }

  // The config of a stage that inserts a row ("stage:content") in write().
  static std::map<std::string, ConfigValue> Insert(const std::string& stage,
                                                   std::map<std::string, ConfigValue> more = {}) {
    more["write_sql"] = "INSERT INTO engine_sql_rows VALUES ($1, '" + stage + "', $2)";
    // What a SQL stage keeps is checked in the table; reads see the cache only.
    more.emplace("read", std::string("miss"));
    return more;
  }

  static Message Msg(const std::string& content) { return {"user", content, "2026-01-01T00:00:00.000000Z"}; }

  struct NullLog final : stowage::Logger {
    void log(LogLevel, std::string_view) noexcept override {}
    bool enabled(LogLevel) const noexcept override { return false; }
  };

  std::string url_, guest_;
  std::filesystem::path journal_;
};

}  // namespace stowage::engine
