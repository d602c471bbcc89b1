// MappingStage: the "mapping" stage. Records, for every message the postgres
// stage stored, where its cached copy and its content live
// (cache_content_mapping), in the write's transaction. Runs after the
// postgres stage, on the same database: it needs the message_id attribute
// and message_cache.
#pragma once

#include <string>

#include "stowage/sdk.h"

namespace stowage::mapping {

class MappingStage final : public Stage {
 public:
  // cache_backend, content_backend.
  static ConfigSchema config_schema();

  // Applies the mapping migrations. Throws std::invalid_argument when
  // env.database is null or a backend name is empty, and std::runtime_error
  // when the database is reachable but the table cannot be created. An
  // unreachable database, or one without message_cache yet, only logs a
  // warning: the table is created before the first use. `env` outlives the
  // stage.
  MappingStage(const StageConfig& config, StageEnvironment& env);

  std::string target() const override { return "postgresql"; }
  // Maps the message stored by the postgres stage (attribute message_id).
  Status write(WriteContext& ctx) override;
  // Nothing to undo: the write's transaction is rolled back instead.
  Status compensate(WriteContext& ctx) override;
  // Deletes the guest's rows; held when there were any.
  EraseResult erase(GuestContext& ctx) override;
  // Whether the table is in place and reachable.
  Status health(Deadline deadline) override;

 private:
  // The schema gate, plus a clear message when message_cache is missing.
  Status EnsureSchema(Deadline deadline);

  Logger& log_;
  Database& database_;
  const std::string cache_backend_;
  const std::string content_backend_;
  stowage::SchemaGate schema_;
};

}  // namespace stowage::mapping
