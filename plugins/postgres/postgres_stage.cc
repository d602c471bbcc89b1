#include "postgres_stage.h"

#include <soci/postgresql/soci-postgresql.h>

#include <charconv>
#include <stdexcept>

#include "message_hash.h"
#include "migrations.h"

namespace stowage::postgres {
namespace {

using stowage::Attributes;
using stowage::Status;

// Parses a decimal attribute this stage set in write().
bool ParseId(const std::optional<std::string>& text, long long& out) {
  if (!text || text->empty()) return false;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), out);
  return error == std::errc() && end == text->data() + text->size();
}

std::string JoinVersions(const std::vector<int>& versions) {
  std::string out;
  for (int v : versions) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

}  // namespace

stowage::ConfigSchema PostgresStage::config_schema() {
  return stowage::ConfigSchema()
      .required("url", stowage::ConfigType::kString, "libpq URL postgresql://user[:password]@host:port/db")
      .secret()
      .optional("pool_size", std::int64_t{8}, "connections kept open to the server")
      .optional("connect_timeout_ms", std::int64_t{2000},
                "how long opening a connection may take, in milliseconds (libpq rounds up to seconds)")
      .optional("statement_timeout_ms", std::int64_t{2000},
                "how long one statement may run before the server cancels it, in milliseconds");
}

PostgresStage::PostgresStage(const stowage::StageConfig& config, stowage::Logger& log)
    : log_(log), statement_timeout_(config.integer("statement_timeout_ms")) {
  const std::int64_t pool_size = config.integer("pool_size");
  const std::int64_t connect_timeout_ms = config.integer("connect_timeout_ms");
  if (pool_size < 1 || pool_size > 1000) {
    throw std::invalid_argument("stage[postgres].config.pool_size is " + std::to_string(pool_size) +
                                "; set it between 1 and 1000");
  }
  if (connect_timeout_ms < 1) {
    throw std::invalid_argument("stage[postgres].config.connect_timeout_ms must be at least 1");
  }
  if (statement_timeout_.count() < 1) {
    throw std::invalid_argument("stage[postgres].config.statement_timeout_ms must be at least 1");
  }
  Endpoint endpoint =
      ParseEndpoint(config.string("url"), std::chrono::milliseconds(connect_timeout_ms), statement_timeout_);
  const std::string redacted_url = endpoint.redacted_url;
  pool_ = std::make_unique<ConnectionPool>(std::move(endpoint), static_cast<std::size_t>(pool_size), log_);

  auto acquired = pool_->Acquire(stowage::Deadline::After(std::chrono::milliseconds(connect_timeout_ms)));
  if (!acquired.status.ok()) {
    log_.warn(acquired.status.message() + "; the schema will be created by the first call that reaches it");
    return;
  }
  try {
    EnsureSchema(*acquired.lease);
  } catch (const std::exception& e) {
    if (acquired.lease->Broken()) {
      acquired.lease.Discard();
      log_.warn(pool_->Unreachable(ErrorText(e)).message() +
                "; the schema will be created by the first call that reaches it");
      return;
    }
    throw std::runtime_error("cannot create the PostgreSQL schema at " + pool_->endpoint().address + ": " +
                             ErrorText(e) +
                             "; check that the user in stage[postgres].config.url may create tables in that "
                             "database");
  }
  log_.info("connected to " + redacted_url + " (pool_size " + std::to_string(pool_size) + ")");
}

void PostgresStage::EnsureSchema(Connection& conn) {
  if (schema_ready_.load()) return;
  std::lock_guard lock(schema_mu_);
  if (schema_ready_.load()) return;
  std::vector<int> applied = ApplyMigrations(conn.session(), kMigrationComponent, ChatMigrations());
  if (applied.empty()) {
    log_.info("schema at " + pool_->endpoint().address + " is current");
  } else {
    log_.info("schema at " + pool_->endpoint().address + ": applied migration(s) " + JoinVersions(applied));
  }
  schema_ready_.store(true);
}

Status PostgresStage::Run(stowage::Deadline deadline, const std::string& what,
                          const std::function<void(Connection&)>& work) {
  auto acquired = pool_->Acquire(deadline);
  if (!acquired.status.ok()) return acquired.status;
  Lease& lease = acquired.lease;
  try {
    EnsureSchema(*lease);
    work(*lease);
    return Status::Ok();
  } catch (const soci::postgresql_soci_error& e) {
    const std::string state = e.sqlstate();
    if (lease->Broken() || state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) {
      lease.Discard();
      return pool_->Unreachable(ErrorText(e));
    }
    if (state == "57014") {
      return Status::DeadlineExceeded("PostgreSQL cancelled the statement to " + what + " after " +
                                      std::to_string(statement_timeout_.count()) +
                                      " ms; raise stage[postgres].config.statement_timeout_ms or check the "
                                      "server's load and locks");
    }
    std::string message = "PostgreSQL at " + pool_->endpoint().address + " could not " + what + ": " +
                          ErrorText(e) + " (SQLSTATE " + state + ")";
    // Class 22, data exception: the value cannot be stored as given.
    if (state.rfind("22", 0) == 0) return Status::InvalidArgument(std::move(message));
    return Status::Internal(std::move(message));
  } catch (const std::exception& e) {
    if (lease->Broken()) {
      lease.Discard();
      return pool_->Unreachable(ErrorText(e));
    }
    return Status::Internal("PostgreSQL at " + pool_->endpoint().address + " could not " + what + ": " +
                            ErrorText(e));
  }
}

Status PostgresStage::write(stowage::WriteContext& ctx) {
  const std::string hash = MessageHash(ctx.message);
  StoredMessage stored;
  Status status = Run(ctx.deadline, "store a message of guest " + ctx.guest_id, [&](Connection& conn) {
    stored = conn.chat().Insert(ctx.guest_id, ctx.message, hash);
  });
  if (!status.ok()) {
    ctx.log.error("could not store message for guest " + ctx.guest_id + ": " + status.message());
    return status;
  }
  ctx.attributes.set(Attributes::kMessageId, std::to_string(stored.message_id));
  ctx.attributes.set(Attributes::kConversationId, std::to_string(stored.conversation_id));
  ctx.attributes.set(Attributes::kSequence, std::to_string(stored.sequence));
  ctx.log.info("stored message id=" + std::to_string(stored.message_id) +
               " conversation=" + std::to_string(stored.conversation_id) +
               " sequence=" + std::to_string(stored.sequence) + " for guest " + ctx.guest_id);
  return Status::Ok();
}

Status PostgresStage::compensate(stowage::WriteContext& ctx) {
  long long message_id = 0, conversation_id = 0;
  if (!ParseId(ctx.attributes.get(Attributes::kMessageId), message_id) ||
      !ParseId(ctx.attributes.get(Attributes::kConversationId), conversation_id)) {
    // write() sets both only once the message is committed: nothing to undo.
    ctx.log.debug("nothing to undo for guest " + ctx.guest_id + ": no message was stored");
    return Status::Ok();
  }
  bool removed = false;
  Status status =
      Run(ctx.deadline, "remove message " + std::to_string(message_id) + " of guest " + ctx.guest_id,
          [&](Connection& conn) { removed = conn.chat().Remove(message_id, conversation_id); });
  if (!status.ok()) {
    ctx.log.error("could not remove message id=" + std::to_string(message_id) + " of guest " + ctx.guest_id +
                  ": " + status.message());
    return status;
  }
  if (removed) {
    ctx.log.info("removed message id=" + std::to_string(message_id) + " conversation=" +
                 std::to_string(conversation_id) + " of guest " + ctx.guest_id + " (write undone)");
  } else {
    ctx.log.info("message id=" + std::to_string(message_id) + " of guest " + ctx.guest_id +
                 " was already gone; nothing to undo");
  }
  return Status::Ok();
}

stowage::ReadResult PostgresStage::read(stowage::GuestContext& ctx) {
  stowage::ReadResult result;
  result.status = Run(ctx.deadline, "read the messages of guest " + ctx.guest_id,
                      [&](Connection& conn) { result.messages = conn.chat().Select(ctx.guest_id); });
  if (!result.status.ok()) {
    ctx.log.error("could not read messages of guest " + ctx.guest_id + ": " + result.status.message());
    result.messages.clear();
    return result;
  }
  result.found = !result.messages.empty();
  ctx.log.debug("read " + std::to_string(result.messages.size()) + " message(s) of guest " + ctx.guest_id);
  return result;
}

stowage::EraseResult PostgresStage::erase(stowage::GuestContext& ctx) {
  stowage::EraseResult result;
  result.status = Run(ctx.deadline, "delete the conversation of guest " + ctx.guest_id,
                      [&](Connection& conn) { result.held = conn.chat().Delete(ctx.guest_id); });
  if (!result.status.ok()) {
    ctx.log.error("could not delete the conversation of guest " + ctx.guest_id + ": " +
                  result.status.message());
    return result;
  }
  ctx.log.info(result.held ? "deleted the conversation of guest " + ctx.guest_id
                           : "guest " + ctx.guest_id + " had no conversation to delete");
  return result;
}

Status PostgresStage::health(stowage::Deadline deadline) {
  return Run(deadline, "answer SELECT 1", [](Connection& conn) { conn.chat().Ping(); });
}

}  // namespace stowage::postgres
