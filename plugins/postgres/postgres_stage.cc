#include "postgres_stage.h"

#include <chrono>
#include <stdexcept>
#include <vector>

#include "message_hash.h"
#include "migrations.h"
#include "stowage/chat/attributes.h"

namespace stowage::postgres {
namespace {

using stowage::Status;

// How long construction may spend bringing the schema up to date.
constexpr std::chrono::seconds kMigrationTimeout{30};

stowage::Database& RequireDatabase(stowage::StageEnvironment& env) {
  if (env.database == nullptr) {
    throw std::runtime_error(
        "the postgres stage needs `database = \"<name>\"` in its [[stage]] entry, naming a [[database]] of "
        "pipeline.toml");
  }
  return *env.database;
}

std::string JoinVersions(const std::vector<int>& versions) {
  std::string out;
  for (int v : versions) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

// A call without ctx.sql: the host did not give the stage its database.
Status NoSession(const std::string& operation) {
  return Status::Internal("the postgres stage's " + operation +
                          " was called without a database session; give the stage `database = \"<name>\"` "
                          "in its [[stage]] entry of pipeline.toml");
}

}  // namespace

stowage::ConfigSchema PostgresStage::config_schema() {
  return stowage::ConfigSchema().optional("platform", std::string("guest"),
                                          "conversation_cache.platform of the conversations it keeps");
}

PostgresStage::PostgresStage(const stowage::StageConfig& config, stowage::StageEnvironment& env)
    : log_(env.log), database_(RequireDatabase(env)), chat_(config.string("platform")) {
  if (config.string("platform").empty()) {
    throw std::invalid_argument("stage[postgres].config.platform is empty; leave it out to use 'guest'");
  }
  Status status = EnsureSchema(stowage::Deadline::After(kMigrationTimeout));
  if (status.code() == stowage::StatusCode::kUnavailable) {
    log_.warn(status.message() + "; the schema will be migrated by the first call that reaches database '" +
              database_.name() + "'");
    return;
  }
  if (!status.ok()) {
    throw std::runtime_error("cannot create the PostgreSQL schema: " + status.message() +
                             "; check that the user of [[database]] '" + database_.name() +
                             "' may create tables in that database");
  }
}

Status PostgresStage::EnsureSchema(stowage::Deadline deadline) {
  if (schema_ready_.load()) return Status::Ok();
  std::unique_lock lock(schema_mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline.at())) {
    return Status::DeadlineExceeded("the schema of database '" + database_.name() +
                                    "' is still being migrated by another call; try again");
  }
  if (schema_ready_.load()) return Status::Ok();
  std::vector<int> applied;
  Status status = database_.apply_migrations(kMigrationComponent, ChatMigrations(), deadline, &applied);
  if (!status.ok()) return status;
  if (applied.empty()) {
    log_.info("schema of database '" + database_.name() + "' is current");
  } else {
    log_.info("schema of database '" + database_.name() + "': applied migration(s) " + JoinVersions(applied));
  }
  schema_ready_.store(true);
  return Status::Ok();
}

Status PostgresStage::Failed(const Status& status, const std::string& what) const {
  std::string message = "could not " + what + " in database '" + database_.name() + "': " + status.message();
  switch (status.code()) {
    case stowage::StatusCode::kUnavailable:
      return Status::Unavailable(std::move(message));
    case stowage::StatusCode::kDeadlineExceeded:
      return Status::DeadlineExceeded(std::move(message));
    case stowage::StatusCode::kInvalidArgument:
      return Status::InvalidArgument(std::move(message));
    case stowage::StatusCode::kConflict:
      return Status::Conflict(std::move(message));
    case stowage::StatusCode::kRejected:
      return Status::Rejected(std::move(message));
    case stowage::StatusCode::kNotFound:
      return Status::NotFound(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

Status PostgresStage::write(stowage::WriteContext& ctx) {
  if (ctx.sql == nullptr) return NoSession("write");
  const std::string what = "store a message of guest " + ctx.guest_id;
  StoredMessage stored;
  Status status = EnsureSchema(ctx.deadline);
  if (status.ok())
    status = chat_.InsertMessage(*ctx.sql, ctx.guest_id, ctx.message, MessageHash(ctx.message), &stored);
  if (!status.ok()) return Failed(status, what);
  ctx.attributes.set(chat::kMessageId, std::to_string(stored.message_id));
  ctx.attributes.set(chat::kConversationId, std::to_string(stored.conversation_id));
  ctx.attributes.set(chat::kSequence, std::to_string(stored.sequence));
  if (ctx.log.enabled(stowage::LogLevel::kDebug)) {
    ctx.log.debug("inserted message id=" + std::to_string(stored.message_id) + " conversation=" +
                  std::to_string(stored.conversation_id) + " sequence=" + std::to_string(stored.sequence) +
                  " for guest " + ctx.guest_id + "; it is stored once the request's transaction commits");
  }
  return Status::Ok();
}

void PostgresStage::observe(const stowage::RequestReport& report) noexcept {
  if (report.kind != stowage::RequestKind::kWrite || !report.ok || report.attributes == nullptr) return;
  const auto message_id = report.attributes->get(chat::kMessageId);
  if (!message_id) return;  // another stage refused or answered first: nothing of ours committed
  try {
    // The operators' checklist looks for these words.
    log_.info("Message committed! id=" + *message_id +
              " conversation=" + report.attributes->get(chat::kConversationId).value_or("?") + " sequence=" +
              report.attributes->get(chat::kSequence).value_or("?") + " for guest " + report.guest_id);
  } catch (...) {
    // A line that cannot be built (out of memory) is dropped; observe() never throws.
  }
}

Status PostgresStage::compensate(stowage::WriteContext& ctx) {
  ctx.log.debug("nothing to undo for guest " + ctx.guest_id + ": the transaction of database '" +
                database_.name() + "' is rolled back instead");
  return Status::Ok();
}

stowage::ReadResult PostgresStage::read(stowage::GuestContext& ctx) {
  stowage::ReadResult result;
  if (ctx.sql == nullptr) {
    result.status = NoSession("read");
    return result;
  }
  result.status = EnsureSchema(ctx.deadline);
  // A page (SDK 1.5) is read alone, through the (conversation_id, sequence)
  // key; its size and the guest's total tell the host where it stands.
  std::uint64_t total = 0;
  if (result.status.ok()) {
    result.status = ctx.range != nullptr ? chat_.SelectPage(*ctx.sql, ctx.guest_id, ctx.range->before,
                                                            ctx.range->limit, &result.messages, &total)
                                         : chat_.SelectMessages(*ctx.sql, ctx.guest_id, &result.messages);
  }
  if (!result.status.ok()) {
    result.status = Failed(result.status, "read the messages of guest " + ctx.guest_id);
    result.messages.clear();
    return result;
  }
  // Every page of a guest that has messages holds one (a `before` is at
  // least 1 and sequences start at 0), so an empty page is an unknown guest.
  result.found = !result.messages.empty();
  if (ctx.range != nullptr && result.found) ctx.range->total = total;
  ctx.log.debug("read " + std::to_string(result.messages.size()) + " message(s) of guest " + ctx.guest_id +
                (ctx.range != nullptr ? " (a page; " + std::to_string(total) + " in all)" : ""));
  return result;
}

stowage::EraseResult PostgresStage::erase(stowage::GuestContext& ctx) {
  stowage::EraseResult result;
  if (ctx.sql == nullptr) {
    result.status = NoSession("erase");
    return result;
  }
  result.status = EnsureSchema(ctx.deadline);
  if (result.status.ok()) result.status = chat_.DeleteConversation(*ctx.sql, ctx.guest_id, &result.held);
  if (!result.status.ok()) {
    result.status = Failed(result.status, "delete the conversation of guest " + ctx.guest_id);
    result.held = false;
    return result;
  }
  ctx.log.info(result.held ? "deleted the conversation of guest " + ctx.guest_id
                           : "guest " + ctx.guest_id + " had no conversation to delete");
  return result;
}

Status PostgresStage::health(stowage::Deadline deadline) {
  Status status = EnsureSchema(deadline);
  if (status.ok()) status = database_.with_session(deadline, &ChatStatements::Ping);
  return status.ok() ? status : Failed(status, "answer SELECT 1");
}

}  // namespace stowage::postgres
