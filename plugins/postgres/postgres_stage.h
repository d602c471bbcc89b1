// PostgresStage: the PostgreSQL storage target. Keeps each guest's chat in
// conversation_cache (one row per guest) and message_cache (one row per
// message, sequence 0..n-1 without gaps), in a [[database]] of pipeline.toml
// that the host connects to and lends per call as ctx.sql.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "chat_statements.h"
#include "stowage/sdk.h"

namespace stowage::postgres {

class PostgresStage final : public stowage::Stage {
 public:
  // platform: the conversation_cache.platform of the rows it writes and reads.
  static stowage::ConfigSchema config_schema();

  // Brings the schema up to date through env.database. Throws
  // std::runtime_error when the stage names no database, or when the
  // database is reachable but the schema cannot be migrated (e.g. no right
  // to create tables). When the database cannot be reached, construction
  // succeeds with a warning and the first call that reaches it migrates
  // first. `env` outlives the stage.
  PostgresStage(const stowage::StageConfig& config, stowage::StageEnvironment& env);

  std::string target() const override { return "postgresql"; }

  // Inserts the message in ctx.sql's transaction and sets the attributes
  // message_id, conversation_id and sequence.
  stowage::Status write(stowage::WriteContext& ctx) override;
  // Returns Ok and does nothing: a stage with a database is never
  // compensated by the host, which rolls its transaction back instead, and
  // that removes the message and the message_count increment of write().
  stowage::Status compensate(stowage::WriteContext& ctx) override;
  // The guest's messages by sequence; none is a miss (found = false).
  stowage::ReadResult read(stowage::GuestContext& ctx) override;
  // Deletes the guest's conversation; its messages go by cascade.
  stowage::EraseResult erase(stowage::GuestContext& ctx) override;
  // Migrates if still needed, then SELECT 1, through env.database.
  stowage::Status health(stowage::Deadline deadline) override;
  // Logs "Message committed!" for a write that committed: write() runs
  // inside the request's transaction, so only the report knows it held.
  void observe(const stowage::RequestReport& report) noexcept override;

  // Whether the schema is known to be current.
  bool schema_ready() const { return schema_ready_.load(); }

 private:
  // Applies pending migrations on a session of env.database, once per stage;
  // concurrent callers wait for the first one until `deadline`.
  stowage::Status EnsureSchema(stowage::Deadline deadline);
  // `what` (the stage's work, e.g. "store a message of guest g") failed with
  // `status`: the same code, a message naming what failed and the database.
  stowage::Status Failed(const stowage::Status& status, const std::string& what) const;

  stowage::Logger& log_;
  stowage::Database& database_;
  const ChatStatements chat_;
  std::timed_mutex schema_mu_;
  std::atomic<bool> schema_ready_{false};
};

}  // namespace stowage::postgres
