#include "embeddings_stage.h"

#include <charconv>
#include <chrono>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "embedding_statements.h"
#include "migrations.h"
#include "provider_factory.h"
#include "similarity.h"
#include "stowage/chat/attributes.h"
#include "text_chunk.h"
#include "vector_json.h"

namespace stowage::embeddings {
namespace {

constexpr std::chrono::seconds kMigrationTimeout{30};

bool IsDecimal(const std::optional<std::string>& text) {
  if (!text || text->empty()) return false;
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  return error == std::errc() && end == text->data() + text->size();
}

std::unique_ptr<EmbeddingProvider> CheckedProvider(std::unique_ptr<EmbeddingProvider> provider) {
  if (provider == nullptr) throw std::invalid_argument("the embeddings stage was given no provider");
  return provider;
}

// Has the host apply the migrations, after checking that message_cache is there.
Status Migrate(Database& database, Deadline deadline, std::vector<int>* applied) {
  Status status = database.with_session(deadline, [](SqlSession& sql) {
    SqlResult result;
    Status found = sql.execute("SELECT to_regclass('message_cache') IS NOT NULL", {}, &result);
    if (!found.ok()) return found;
    if (result.value(0, 0).value_or("f") != "t") {
      return Status::NotFound("table message_cache does not exist in database '" + sql.database() +
                              "': cache_embeddings references it and the postgres stage creates it; put the "
                              "postgres stage, with the same `database`, before the embeddings stage in "
                              "pipeline.toml");
    }
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return database.apply_migrations(kMigrationComponent, EmbeddingMigrations(), deadline, applied);
}

std::string Versions(const std::vector<int>& versions) {
  std::string out;
  for (int v : versions) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

}  // namespace

ConfigSchema EmbeddingsStage::config_schema() {
  ConfigSchema schema;
  AddProviderKeys(schema);
  schema.optional("max_chunk_chars", std::int64_t{8000},
                  "the most bytes of a message's content embedded and stored in text_chunk (cut on a UTF-8 "
                  "character boundary)")
      .range(std::int64_t{1}, std::int64_t{100'000'000});
  return schema;
}

EmbeddingsStage::EmbeddingsStage(const StageConfig& config, StageEnvironment& env)
    : EmbeddingsStage(config, env, MakeProvider(config)) {}

EmbeddingsStage::EmbeddingsStage(const StageConfig& config, StageEnvironment& env,
                                 std::unique_ptr<EmbeddingProvider> provider)
    : log_(env.log),
      database_(env.database),
      max_chunk_bytes_(static_cast<std::size_t>(config.integer("max_chunk_chars"))),
      provider_(CheckedProvider(std::move(provider))) {
  if (database_ == nullptr) {
    throw std::runtime_error(
        "the embeddings stage needs `database = \"<name>\"` in its [[stage]] entry, naming the [[database]] "
        "of "
        "pipeline.toml that the postgres stage uses");
  }
  std::vector<int> applied;
  Status status = Migrate(*database_, Deadline::After(kMigrationTimeout), &applied);
  if (status.code() == StatusCode::kUnavailable) {
    log_.warn(status.message() + "; cache_embeddings will be created before the first use");
    schema_status_ = status;
  } else if (!status.ok()) {
    throw std::runtime_error(status.message());
  } else {
    schema_ready_ = true;
    log_.info(std::string("schema of database '") + database_->name() + "' " +
              (applied.empty() ? "is current" : "migrated: applied version(s) " + Versions(applied)));
  }
  log_.info("embedding with " + provider_->describe() + ": model " + provider_->model() + ", " +
            std::to_string(provider_->dimensions()) + " dims");
}

Status EmbeddingsStage::EnsureSchema(Deadline deadline) {
  if (schema_ready_) return Status::Ok();
  std::lock_guard lock(schema_mu_);
  if (schema_ready_) return Status::Ok();
  std::vector<int> applied;
  Status status = Migrate(*database_, deadline, &applied);
  if (!status.ok()) {
    schema_status_ = status;
    return status;
  }
  schema_ready_ = true;
  log_.info(std::string("schema of database '") + database_->name() + "' " +
            (applied.empty() ? "is current" : "migrated: applied version(s) " + Versions(applied)));
  return Status::Ok();
}

Status EmbeddingsStage::admit(WriteContext& ctx) {
  // Migrating here, before any stage writes, takes no lock this request's
  // own transaction holds (write() runs after the postgres stage inserted
  // into message_cache, which CREATE TABLE ... REFERENCES would wait for).
  if (!schema_ready_) {
    Status status = EnsureSchema(ctx.deadline);
    if (!status.ok()) ctx.log.debug("cache_embeddings is not ready yet: " + status.message());
  }
  return Status::Ok();
}

Status EmbeddingsStage::write(WriteContext& ctx) {
  const std::optional<std::string> message_id = ctx.attributes.get(chat::kMessageId);
  const std::optional<std::string> conversation_id = ctx.attributes.get(chat::kConversationId);
  if (!IsDecimal(message_id) || !IsDecimal(conversation_id)) {
    return Status::Internal("the message of guest " + ctx.guest_id +
                            " has no message_id and conversation_id attributes: put the embeddings "
                            "stage after the postgres stage in "
                            "pipeline.toml");
  }
  const std::string what = "embedding of message " + *message_id + " for guest " + ctx.guest_id;
  if (ctx.sql == nullptr) {
    return Status::Internal("cannot store the " + what +
                            ": the stage was called without its database; give it `database = \"<name>\"`");
  }
  if (!schema_ready_) {
    std::lock_guard lock(schema_mu_);
    return Status::Unavailable("cannot store the " + what + ": table cache_embeddings is not created yet (" +
                               schema_status_.message() + ")");
  }

  // A replay (SDK 1.3) looks before it embeds: a provider call costs more
  // than this query, and the message may have been erased since (its row
  // would then fail the foreign key at every retry).
  if (ctx.replay) {
    ReplayState state;
    Status checked = SelectReplayState(*ctx.sql, *message_id, &state);
    if (!checked.ok()) return checked.WithContext("could not check the replayed " + what);
    if (!state.message_exists) {
      ctx.log.info("replay of the " + what + ": stored nothing, the message was erased since");
      return Status::Ok();
    }
    if (state.embedded) {
      ctx.log.info("replay of the " + what + ": stored nothing new, it is stored already");
      return Status::Ok();
    }
  }

  const std::string_view chunk = TruncateUtf8(ctx.message.content, max_chunk_bytes_);
  std::vector<float> vector;
  Status status = provider_->embed(chunk, ctx.deadline, &vector);
  if (!status.ok())
    return status.WithContext("could not compute the " + what + " with " + provider_->describe());
  EmbeddingRecord record;
  record.conversation_id = *conversation_id;
  record.message_id = *message_id;
  record.embedding_json = VectorToJson(vector);
  record.model = provider_->model();
  record.dimensions = vector.size();
  record.text_chunk = std::string(chunk);
  bool inserted = false;
  status = InsertEmbedding(*ctx.sql, record, &inserted);
  if (!status.ok()) return status.WithContext("could not store the " + what);
  if (!inserted) {
    ctx.log.info(std::string(ctx.replay ? "replay of the " : "") + what +
                 ": stored nothing new, it is stored already");
    return Status::Ok();
  }
  // The operators' checklist looks for these words.
  ctx.log.info(std::string("✓ Embedding stored") + (ctx.replay ? " (replay)" : "") + " for message " +
               *message_id + " of guest " + ctx.guest_id + " (" + std::to_string(vector.size()) + " dims, model " +
               provider_->model() + ")");
  return Status::Ok();
}

Status EmbeddingsStage::compensate(WriteContext& ctx) {
  (void)ctx;
  return Status::Ok();
}

EraseResult EmbeddingsStage::erase(GuestContext& ctx) {
  EraseResult result;
  if (ctx.sql == nullptr) {
    result.status = Status::Internal("cannot erase the embeddings of guest " + ctx.guest_id +
                                     ": the stage was called without its database");
    return result;
  }
  if (!schema_ready_) {
    // Never migrate here: the erase's transaction may already hold locks
    // that creating the table would wait for. No table, nothing held.
    bool exists = false;
    result.status = EmbeddingsTableExists(*ctx.sql, &exists);
    if (!result.status.ok()) {
      result.status = result.status.WithContext("could not erase the embeddings of guest " + ctx.guest_id);
      return result;
    }
    if (!exists) return result;
  }
  std::uint64_t deleted = 0;
  result.status = DeleteGuestEmbeddings(*ctx.sql, ctx.guest_id, &deleted);
  if (!result.status.ok()) {
    result.status = result.status.WithContext("could not erase the embeddings of guest " + ctx.guest_id);
    return result;
  }
  result.held = deleted > 0;
  ctx.log.info("erased " + std::to_string(deleted) + " embedding(s) of guest " + ctx.guest_id);
  return result;
}

SearchResult EmbeddingsStage::search(GuestContext& ctx, const std::string& query, std::size_t k) {
  SearchResult result;
  result.supported = true;
  if (ctx.sql == nullptr) {
    result.status = Status::Internal("cannot search the messages of guest " + ctx.guest_id +
                                     ": the stage was called without its database");
    return result;
  }
  if (k == 0) return result;
  if (Status status = EnsureSchema(ctx.deadline); !status.ok()) {
    result.status =
        Status::Unavailable("cannot search the messages of guest " + ctx.guest_id +
                            ": table cache_embeddings is not created yet (" + status.message() + ")");
    return result;
  }
  std::vector<float> query_vector;
  result.status = provider_->embed(query, ctx.deadline, &query_vector);
  if (!result.status.ok()) {
    result.status = result.status.WithContext("could not embed the search query of guest " + ctx.guest_id +
                                                   " with " + provider_->describe());
    return result;
  }
  std::vector<GuestEmbedding> rows;
  result.status = SelectGuestEmbeddings(*ctx.sql, ctx.guest_id, &rows);
  if (!result.status.ok()) {
    result.status = result.status.WithContext("could not read the embeddings of guest " + ctx.guest_id);
    return result;
  }

  // One candidate per message: its best chunk.
  std::vector<Scored> candidates;
  std::unordered_map<std::int64_t, std::size_t> by_message;  // message id -> index in candidates
  std::vector<std::size_t> row_of;                           // candidate -> row
  std::size_t skipped = 0;
  const GuestEmbedding* first_skipped = nullptr;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const GuestEmbedding& row = rows[i];
    std::string error;
    std::optional<std::vector<float>> vector;
    if (row.model == provider_->model() && row.dimensions == provider_->dimensions()) {
      vector = VectorFromJson(row.embedding_json, &error);
    }
    if (!vector || vector->size() != provider_->dimensions()) {
      ++skipped;
      if (first_skipped == nullptr) first_skipped = &row;
      continue;
    }
    const double score = CosineSimilarity(query_vector, *vector);
    auto [it, inserted] = by_message.try_emplace(row.message_id, candidates.size());
    if (inserted) {
      candidates.push_back({candidates.size(), score});
      row_of.push_back(i);
    } else if (score > candidates[it->second].score) {
      candidates[it->second].score = score;
      row_of[it->second] = i;
    }
  }
  if (skipped > 0 && !warned_mismatch_.exchange(true)) {
    ctx.log.warn("search skipped " + std::to_string(skipped) + " embedding(s) of guest " + ctx.guest_id +
                 " made with another model or size (e.g. message " +
                 std::to_string(first_skipped->message_id) + ": model " + first_skipped->model + ", " +
                 std::to_string(first_skipped->dimensions) + " dims) than the current provider's (model " +
                 provider_->model() + ", " + std::to_string(provider_->dimensions()) +
                 " dims); such rows are not searched until they are embedded again (logged once)");
  }
  for (const Scored& best : TopK(std::move(candidates), k)) {
    result.hits.push_back({rows[row_of[best.index]].message, best.score});
  }
  ctx.log.debug("search of guest " + ctx.guest_id + " returned " + std::to_string(result.hits.size()) +
                " of " + std::to_string(by_message.size()) + " message(s)");
  return result;
}

Status EmbeddingsStage::health(Deadline deadline) {
  return EnsureSchema(deadline);
}

}  // namespace stowage::embeddings
