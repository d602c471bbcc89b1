// EmbeddingsStage: keeps an embedding of every stored message in
// cache_embeddings (PostgreSQL), and searches a guest's messages by
// similarity to a query.
//
// It joins the write transaction of its [[database]]: a message's row is
// committed with the message or not at all, so the stage never undoes a
// write itself. It comes after the postgres stage, which creates
// message_cache (referenced by cache_embeddings) and sets the message_id
// and conversation_id attributes this stage stores.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "embedding_provider.h"
#include "stowage/sdk.h"

namespace stowage::embeddings {

class EmbeddingsStage final : public Stage {
 public:
  // The provider keys (see provider_factory.h) and max_chunk_chars.
  static ConfigSchema config_schema();

  // Builds the provider from `config` and migrates cache_embeddings through
  // env.database. Throws std::runtime_error when env.database is null, when
  // message_cache is missing (no postgres stage before it), or when the
  // schema cannot be created; std::invalid_argument for a bad config. When
  // the database cannot be reached, logs a warning and migrates before the
  // first use instead. `env` outlives the stage.
  EmbeddingsStage(const StageConfig& config, StageEnvironment& env);
  // The same with a provider of the caller's choice (tests).
  EmbeddingsStage(const StageConfig& config, StageEnvironment& env,
                  std::unique_ptr<EmbeddingProvider> provider);

  // It stores the message's content (text_chunk) in PostgreSQL.
  std::string target() const override { return "postgresql"; }
  // Brings the schema up to date if the constructor could not; never
  // refuses a message (write() reports a schema still missing).
  Status admit(WriteContext& ctx) override;
  // Embeds the content (cut at max_chunk_chars bytes on a character
  // boundary) and inserts one row, chunk_index 0, in ctx.sql's transaction.
  Status write(WriteContext& ctx) override;
  // Ok: the host rolls the transaction back instead.
  Status compensate(WriteContext& ctx) override;
  // Deletes the guest's rows; held when there were any.
  EraseResult erase(GuestContext& ctx) override;
  // The guest's k messages closest to `query` by cosine similarity, best
  // first. Rows made by another model or size than the current provider's
  // are skipped (logged once at warn).
  SearchResult search(GuestContext& ctx, const std::string& query, std::size_t k) override;
  // Whether the schema is in place (migrating it if needed).
  Status health(Deadline deadline) override;

  const EmbeddingProvider& provider() const noexcept { return *provider_; }

 private:
  // Applies the migrations once, on a session of its own; thread-safe.
  Status EnsureSchema(Deadline deadline);

  Logger& log_;
  Database* database_;
  std::size_t max_chunk_bytes_;
  std::unique_ptr<EmbeddingProvider> provider_;
  std::mutex schema_mu_;
  std::atomic<bool> schema_ready_{false};
  Status schema_status_;  // the last migration failure, under schema_mu_
  std::atomic<bool> warned_mismatch_{false};
};

}  // namespace stowage::embeddings
