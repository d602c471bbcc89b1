#include "mapping_stage.h"

#include <charconv>
#include <stdexcept>

#include "mapping_schema.h"
#include "mapping_store.h"
#include "stowage/chat/attributes.h"

namespace stowage::mapping {
namespace {

constexpr std::chrono::seconds kConstructionMigrationTimeout{30};

// The postgres stage's table that cache_content_mapping references.
constexpr const char* kMessageTable = "message_cache";

Database& RequireDatabase(StageEnvironment& env) {
  if (env.database == nullptr) {
    throw std::invalid_argument(
        "the mapping stage keeps its table in a SQL database, but its [[stage]] entry names none; add "
        "database = \"<name>\" naming the [[database]] of the postgres stage");
  }
  return *env.database;
}

std::string NonEmpty(const StageConfig& config, const std::string& key) {
  std::string value = config.string(key);
  if (value.empty()) {
    throw std::invalid_argument("stage config key '" + key + "' is empty; name the storage target, e.g. \"" +
                                (key == "cache_backend" ? "redis" : "postgresql") + "\"");
  }
  return value;
}

Status NoSession(const std::string& operation) {
  return Status::Internal(
      "the mapping stage was called to " + operation +
      " without a database session; give its [[stage]] entry a database = \"<name>\" key");
}


bool ParseId(const std::string& text, std::int64_t& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && error == std::errc() && end == text.data() + text.size() && out > 0;
}

}  // namespace

ConfigSchema MappingStage::config_schema() {
  return ConfigSchema()
      .optional("cache_backend", std::string("redis"), "the target holding the cached copy of each message")
      .optional("content_backend", std::string("postgresql"), "the target holding each message's content");
}

MappingStage::MappingStage(const StageConfig& config, StageEnvironment& env)
    : log_(env.log),
      database_(RequireDatabase(env)),
      cache_backend_(NonEmpty(config, "cache_backend")),
      content_backend_(NonEmpty(config, "content_backend")),
      schema_(database_, std::string(kMigrationComponent), MappingMigrations(), log_) {
  Status status = EnsureSchema(Deadline::After(kConstructionMigrationTimeout));
  if (status.ok()) {
    log_.info("mapping messages (" + cache_backend_ + " -> " + content_backend_ + ") in database '" +
              database_.name() + "'");
    return;
  }
  if (status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded ||
      status.code() == StatusCode::kNotFound) {
    log_.warn(status.message() + "; the table will be created before the first use");
    return;
  }
  throw std::runtime_error(status.message());
}

Status MappingStage::EnsureSchema(Deadline deadline) {
  if (schema_.ready()) return Status::Ok();
  Status status = schema_.ensure(deadline);
  if (status.ok() || status.code() == StatusCode::kUnavailable ||
      status.code() == StatusCode::kDeadlineExceeded) {
    return status;
  }
  // The likely cause: the postgres stage has not created message_cache here.
  SqlResult found;
  Status probe = database_.with_session(deadline, [&](SqlSession& sql) {
    return sql.execute("SELECT to_regclass($1)::text", {std::string(kMessageTable)}, &found);
  });
  if (probe.ok() && !found.value(0, 0).has_value()) {
    return Status::NotFound(
        "cache_content_mapping references " + std::string(kMessageTable) + ", which database '" +
        database_.name() +
        "' does not have: put the mapping stage after the postgres stage in pipeline.toml, "
        "with the same database");
  }
  return status;
}

Status MappingStage::write(WriteContext& ctx) {
  if (ctx.sql == nullptr) return NoSession("map a message");
  const std::optional<std::string> message_id = ctx.attributes.get(chat::kMessageId);
  if (!message_id) {
    return Status::Internal("no message_id for the message of guest " + ctx.guest_id +
                            ": put the mapping stage after the postgres stage in pipeline.toml "
                            "(the postgres stage sets message_id)");
  }
  MappingRow row;
  if (!ParseId(*message_id, row.cache_id)) {
    return Status::Internal("message_id '" + *message_id + "' of guest " + ctx.guest_id +
                            " is not a message_cache id; the stage that set it must be the postgres "
                            "stage");
  }
  Status status = EnsureSchema(ctx.deadline);
  if (!status.ok()) {
    return status.WithContext("could not map message " + *message_id + " for guest " + ctx.guest_id);
  }
  row.cache_type = "message";
  row.user_id = ctx.guest_id;  // guests have no content id
  row.cache_backend = cache_backend_;
  row.content_backend = content_backend_;
  row.is_synced = true;
  bool inserted = false;
  status = MappingStore::Insert(*ctx.sql, row, ctx.replay, &inserted);
  if (!status.ok()) return status;
  if (!inserted) {
    ctx.log.info(std::string(ctx.replay ? "replay: " : "") + "message " + *message_id + " of guest " +
                 ctx.guest_id +
                 (ctx.replay ? " is mapped already, or was erased since: stored nothing new"
                             : " is mapped already: stored nothing new"));
    return Status::Ok();
  }
  // The operators' checklist looks for these words.
  ctx.log.info(std::string("✓ Created cache_content_mapping entry: ") + (ctx.replay ? "replay: " : "") +
               "message " + *message_id + " (" + cache_backend_ + " -> " + content_backend_ + ") for guest " +
               ctx.guest_id);
  return Status::Ok();
}

Status MappingStage::compensate(WriteContext& ctx) {
  (void)ctx;
  return Status::Ok();
}

EraseResult MappingStage::erase(GuestContext& ctx) {
  if (ctx.sql == nullptr) return {NoSession("erase a guest"), false};
  Status status = EnsureSchema(ctx.deadline);
  if (!status.ok())
    return {status.WithContext("could not erase the mappings of guest " + ctx.guest_id), false};
  std::uint64_t deleted = 0;
  status = MappingStore::DeleteUser(*ctx.sql, ctx.guest_id, &deleted);
  if (!status.ok()) return {status, false};  // names the guest and the table
  ctx.log.info("deleted " + std::to_string(deleted) + " mapping(s) of guest " + ctx.guest_id);
  return {Status::Ok(), deleted > 0};
}

Status MappingStage::health(Deadline deadline) {
  Status status = EnsureSchema(deadline);
  if (!status.ok()) return status;
  return database_.with_session(deadline, [](SqlSession& sql) {
    return sql.execute("SELECT 1 FROM cache_content_mapping LIMIT 0", {});
  });
}

}  // namespace stowage::mapping
