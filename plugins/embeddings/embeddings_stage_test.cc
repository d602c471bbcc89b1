// The embeddings stage against a real PostgreSQL (STOWAGE_TEST_DATABASE_URL),
// after the real postgres stage in one transaction per message, as the
// engine runs them.
#include "embeddings_stage.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>

#include "builtin_provider.h"
#include "database/postgres_database.h"
#include "fake_provider.h"
#include "postgres_stage.h"
#include "similarity.h"
#include "stowage/chat/attributes.h"
#include "stowage/testkit/loggers.h"
#include "support/services.h"
#include "vector_json.h"

namespace stowage::embeddings {
namespace {

using std::chrono::milliseconds;
using stowage::testing::RequireEnv;
using stowage::testkit::CapturingLogger;

// A guest id no other test run uses.
std::string NewGuest(const std::string& tag) {
  static std::mt19937_64 random(std::random_device{}());
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(random()));
  return "emb-" + tag + "-" + buffer;
}

Deadline Soon() {
  return Deadline::After(milliseconds(5000));
}

class EmbeddingsStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = RequireEnv("STOWAGE_TEST_DATABASE_URL");
    if (url_.empty()) GTEST_SKIP();
    log_ = std::make_shared<CapturingLogger>();
    config::DatabaseSettings settings;
    settings.name = "main";
    settings.url = url_;
    settings.pool_size = 8;
    database_ = std::make_unique<database::PostgresDatabase>(settings, log_);
    env_ = std::make_unique<StageEnvironment>(StageEnvironment{*log_, database_.get()});
    postgres_ = std::make_unique<postgres::PostgresStage>(
        ConfigWithDefaults(postgres::PostgresStage::config_schema()), *env_);
    stage_ = std::make_unique<EmbeddingsStage>(ConfigWithDefaults(EmbeddingsStage::config_schema()), *env_);
  }

  struct Written {
    Status status;  // the embeddings stage's
    Attributes attributes;
  };

  // Runs one message through postgres then `stage` in one transaction, the
  // embeddings stage inside a SAVEPOINT as for a best_effort stage; commits
  // unless `rollback`.
  Written Write(EmbeddingsStage& stage, const std::string& guest, const std::string& content,
                bool rollback = false) {
    Written out;
    auto acquired = database_->Acquire(Soon());
    EXPECT_TRUE(acquired.status.ok()) << acquired.status.ToString();
    if (!acquired.lease) return out;
    database::Connection& sql = *acquired.lease;
    sql.set_deadline(Soon());
    const Message message{"user", content, "2024-05-01T12:00:00.101120Z"};
    WriteContext ctx{guest, message, Soon(), *log_, out.attributes, &sql};
    EXPECT_TRUE(sql.execute("BEGIN", {}).ok());
    EXPECT_TRUE(postgres_->admit(ctx).ok());
    EXPECT_TRUE(stage.admit(ctx).ok());
    Status status = postgres_->write(ctx);
    EXPECT_TRUE(status.ok()) << status.ToString();
    EXPECT_TRUE(sql.execute("SAVEPOINT embeddings", {}).ok());
    out.status = stage.write(ctx);
    if (!out.status.ok()) EXPECT_TRUE(sql.execute("ROLLBACK TO SAVEPOINT embeddings", {}).ok());
    EXPECT_TRUE(sql.execute(rollback ? "ROLLBACK" : "COMMIT", {}).ok());
    return out;
  }
  Written Write(const std::string& guest, const std::string& content) {
    return Write(*stage_, guest, content);
  }

  // The host's replay (SDK 1.3) of the message Write(guest, content) wrote,
  // with the attributes it journaled: `stage`'s admit() and write() with
  // ctx.replay set, in a transaction of their own, the stage in a SAVEPOINT.
  Status Replay(EmbeddingsStage& stage, const std::string& guest, const std::string& content,
                const Attributes& journaled, bool replay = true) {
    auto acquired = database_->Acquire(Soon());
    EXPECT_TRUE(acquired.status.ok()) << acquired.status.ToString();
    if (!acquired.lease) return acquired.status;
    database::Connection& sql = *acquired.lease;
    sql.set_deadline(Soon());
    const Message message{"user", content, "2024-05-01T12:00:00.101120Z"};
    Attributes attributes = journaled;
    WriteContext ctx{guest, message, Soon(), *log_, attributes, &sql};
    ctx.replay = replay;
    EXPECT_TRUE(sql.execute("BEGIN", {}).ok());
    EXPECT_TRUE(sql.execute("SAVEPOINT embeddings", {}).ok());
    Status status = stage.admit(ctx);
    if (status.ok()) status = stage.write(ctx);
    if (!status.ok()) EXPECT_TRUE(sql.execute("ROLLBACK TO SAVEPOINT embeddings", {}).ok());
    EXPECT_TRUE(sql.execute("COMMIT", {}).ok());
    return status;
  }

  // Runs `statement` in autocommit and returns its rows.
  SqlResult Query(const std::string& statement, const std::vector<SqlValue>& params) {
    SqlResult result;
    Status status = database_->with_session(
        Soon(), [&](SqlSession& sql) { return sql.execute(statement, params, &result); });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return result;
  }

  std::size_t RowsOf(const std::string& guest) {
    SqlResult result = Query(
        "SELECT count(*) FROM cache_embeddings e JOIN conversation_cache c ON c.id = e.conversation_id"
        " WHERE c.platform = 'guest' AND c.user_id = $1",
        {guest});
    return std::stoul(result.value(0, 0).value_or("0"));
  }

  EraseResult Erase(const std::string& guest) {
    auto acquired = database_->Acquire(Soon());
    EXPECT_TRUE(acquired.status.ok());
    database::Connection& sql = *acquired.lease;
    sql.set_deadline(Soon());
    GuestContext ctx{guest, Soon(), *log_, &sql};
    EXPECT_TRUE(sql.execute("BEGIN", {}).ok());
    EraseResult result = stage_->erase(ctx);
    EXPECT_TRUE(sql.execute("COMMIT", {}).ok());
    return result;
  }

  SearchResult Search(EmbeddingsStage& stage, const std::string& guest, const std::string& query,
                      std::size_t k) {
    auto acquired = database_->Acquire(Soon());
    EXPECT_TRUE(acquired.status.ok());
    database::Connection& sql = *acquired.lease;
    sql.set_deadline(Soon());
    GuestContext ctx{guest, Soon(), *log_, &sql};
    return stage.search(ctx, query, k);
  }

  std::string url_;
  std::shared_ptr<CapturingLogger> log_;
  std::unique_ptr<database::PostgresDatabase> database_;
  std::unique_ptr<StageEnvironment> env_;
  std::unique_ptr<postgres::PostgresStage> postgres_;
  std::unique_ptr<EmbeddingsStage> stage_;
};

TEST_F(EmbeddingsStageTest, WriteStoresOneRowWithModelDimensionAndJsonVector) {
  const std::string guest = NewGuest("write");
  Written written = Write(guest, "Hello, how are you today?");
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  const std::string message_id = *written.attributes.get(chat::kMessageId);
  const std::string conversation_id = *written.attributes.get(chat::kConversationId);

  SqlResult rows = Query(
      "SELECT conversation_id, embedding_model, embedding_dim, text_chunk, chunk_index,"
      " jsonb_typeof(embedding), jsonb_array_length(embedding), embedding::text, created_at IS NOT NULL"
      " FROM cache_embeddings WHERE message_id = $1",
      {message_id});
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.value(0, 0), conversation_id);
  EXPECT_EQ(rows.value(0, 1), "stowage-hash-v1");
  EXPECT_EQ(rows.value(0, 2), "256") << "the builtin provider's default size";
  EXPECT_EQ(rows.value(0, 3), "Hello, how are you today?");
  EXPECT_EQ(rows.value(0, 4), "0");
  EXPECT_EQ(rows.value(0, 5), "array");
  EXPECT_EQ(rows.value(0, 6), "256");
  EXPECT_EQ(rows.value(0, 8), "t");
  std::string error;
  auto stored = VectorFromJson(*rows.value(0, 7), &error);
  ASSERT_TRUE(stored) << error;
  // jsonb keeps the decimal digits as written: the floats come back exactly.
  EXPECT_EQ(*stored, HashEmbedding("Hello, how are you today?", 256));

  EXPECT_EQ(log_->Count(LogLevel::kInfo, "✓ Embedding stored for message " + message_id + " of guest " +
                                             guest + " (256 dims, model stowage-hash-v1)"),
            1)
      << log_->All();
}

TEST_F(EmbeddingsStageTest, ExplicitDimensionsAreStoredAsSet) {
  EmbeddingsStage wide(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"dimensions", std::int64_t{1408}}}), *env_);
  EXPECT_EQ(wide.provider().dimensions(), 1408u);
  const std::string guest = NewGuest("wide");
  Written written = Write(wide, guest, "Hello, how are you today?");
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  SqlResult rows = Query(
      "SELECT embedding_dim, jsonb_array_length(embedding), embedding::text FROM cache_embeddings"
      " WHERE message_id = $1",
      {written.attributes.get(chat::kMessageId)});
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.value(0, 0), "1408");
  EXPECT_EQ(rows.value(0, 1), "1408");
  std::string error;
  auto stored = VectorFromJson(*rows.value(0, 2), &error);
  ASSERT_TRUE(stored) << error;
  EXPECT_EQ(*stored, HashEmbedding("Hello, how are you today?", 1408));
}

// A message of 200 bytes at the default size and at 1408: the default row is
// several times smaller, before and after PostgreSQL's compression.
TEST_F(EmbeddingsStageTest, DefaultSizedEmbeddingIsStoredSmaller) {
  const std::string content =
      "Hello! I booked a table for four people on Friday evening at eight, but two more friends are "
      "joining us. Could you move the reservation to a larger table, ideally near the window? Thanks a lot, "
      "Maria.";
  ASSERT_EQ(content.size(), 200u);
  EmbeddingsStage wide(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"dimensions", std::int64_t{1408}}}), *env_);
  const std::string guest = NewGuest("size");
  Written small = Write(guest, content);
  ASSERT_TRUE(small.status.ok()) << small.status.ToString();
  Written large = Write(wide, guest, content);
  ASSERT_TRUE(large.status.ok()) << large.status.ToString();

  struct Sizes {
    int stored = 0;        // pg_column_size: as kept in the row, compressed or not
    int uncompressed = 0;  // the jsonb value before compression
  };
  auto sizes = [&](const Written& written) {
    SqlResult rows = Query(
        "SELECT pg_column_size(embedding), pg_column_size(embedding::text::jsonb) FROM cache_embeddings"
        " WHERE message_id = $1",
        {written.attributes.get(chat::kMessageId)});
    Sizes out;
    if (rows.rows.size() != 1u) {
      ADD_FAILURE() << "no row for the message";
      return out;
    }
    out.stored = std::stoi(rows.value(0, 0).value_or("0"));
    out.uncompressed = std::stoi(rows.value(0, 1).value_or("0"));
    return out;
  };
  const Sizes a = sizes(small), b = sizes(large);
  RecordProperty("embedding_bytes_256", a.stored);
  RecordProperty("embedding_bytes_1408", b.stored);
  EXPECT_GT(a.stored, 0);
  EXPECT_LT(a.uncompressed * 4, b.uncompressed) << a.uncompressed << " vs " << b.uncompressed;
  EXPECT_LT(a.stored * 2, b.stored) << a.stored << " vs " << b.stored;
}

TEST_F(EmbeddingsStageTest, EveryMessageGetsItsOwnRow) {
  const std::string guest = NewGuest("two");
  ASSERT_TRUE(Write(guest, "first").status.ok());
  ASSERT_TRUE(Write(guest, "second").status.ok());
  EXPECT_EQ(RowsOf(guest), 2u);
}

// SDK 1.3: the host replays a message whose embeddings stage failed or was
// skipped, with the postgres stage's message_id and conversation_id.
TEST_F(EmbeddingsStageTest, AReplayStoresTheEmbeddingTheStageMissedOnce) {
  testing::FakeProvider::Options options;
  options.dimensions = 16;
  testing::FakeProvider fake(options);
  const char* token_env = "STOWAGE_TEST_EMBEDDINGS_REPLAY_KEY";
  unsetenv(token_env);
  EmbeddingsStage remote(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"provider", std::string("openai")},
                                                            {"base_url", fake.base_url() + "/v1"},
                                                            {"model", std::string("test-embed")},
                                                            {"api_key_env", std::string(token_env)},
                                                            {"dimensions", std::int64_t{16}}}),
      *env_);
  const std::string guest = NewGuest("replay-missed");
  fake.set_mode(testing::FakeProvider::Mode::kErrorStatus, 503);
  Written failed = Write(remote, guest, "embedded on replay");
  ASSERT_EQ(failed.status.code(), StatusCode::kUnavailable) << failed.status.ToString();
  ASSERT_EQ(RowsOf(guest), 0u);
  const std::string message_id = *failed.attributes.get(chat::kMessageId);

  fake.set_mode(testing::FakeProvider::Mode::kOk);
  Status replayed = Replay(remote, guest, "embedded on replay", failed.attributes);
  ASSERT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(
      Query("SELECT text_chunk, embedding_model, embedding_dim FROM cache_embeddings WHERE message_id = $1",
            {message_id})
          .rows,
      (std::vector<std::vector<SqlValue>>{{"embedded on replay", "test-embed", "16"}}));
  EXPECT_EQ(log_->Count(LogLevel::kInfo,
                        "✓ Embedding stored (replay) for message " + message_id + " of guest " + guest),
            1)
      << log_->All();
  const int calls = fake.requests();

  // Replayed again: nothing new, and the provider is not called.
  replayed = Replay(remote, guest, "embedded on replay", failed.attributes);
  ASSERT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(RowsOf(guest), 1u);
  EXPECT_EQ(fake.requests(), calls) << "a replay of a stored embedding does not embed again";
  EXPECT_EQ(log_->Count(LogLevel::kInfo, "replay of the embedding of message " + message_id + " for guest " +
                                             guest + ": stored nothing new, it is stored already"),
            1)
      << log_->All();
}

TEST_F(EmbeddingsStageTest, AReplayOfAStoredEmbeddingStoresNothingNew) {
  const std::string guest = NewGuest("replay-stored");
  Written written = Write(guest, "stored, then replayed");
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  const std::string message_id = *written.attributes.get(chat::kMessageId);
  const std::string row =
      Query("SELECT id FROM cache_embeddings WHERE message_id = $1", {message_id}).value(0, 0).value_or("");

  Status replayed = Replay(*stage_, guest, "stored, then replayed", written.attributes);

  ASSERT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(RowsOf(guest), 1u);
  EXPECT_EQ(Query("SELECT id FROM cache_embeddings WHERE message_id = $1", {message_id}).value(0, 0), row)
      << "the row stored first is kept";
}

TEST_F(EmbeddingsStageTest, AnyWriteOfAStoredEmbeddingStoresNothingNew) {
  const std::string guest = NewGuest("rewrite");
  Written written = Write(guest, "written twice");
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  const std::string message_id = *written.attributes.get(chat::kMessageId);

  // The same write again, not marked as a replay: the insert itself skips it.
  Status again = Replay(*stage_, guest, "written twice", written.attributes, /*replay=*/false);

  ASSERT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(RowsOf(guest), 1u);
  EXPECT_EQ(log_->Count(LogLevel::kInfo, "embedding of message " + message_id + " for guest " + guest +
                                             ": stored nothing new, it is stored already"),
            1)
      << log_->All();
}

TEST_F(EmbeddingsStageTest, AReplayOfAMessageErasedSinceStoresNothingAndSucceeds) {
  const std::string guest = NewGuest("replay-erased");
  Written written = Write(guest, "erased before its replay");
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  Query("DELETE FROM conversation_cache WHERE platform = 'guest' AND user_id = $1", {guest});

  Status replayed = Replay(*stage_, guest, "erased before its replay", written.attributes);

  EXPECT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(Query("SELECT count(*) FROM cache_embeddings WHERE message_id = $1",
                  {written.attributes.get(chat::kMessageId)})
                .value(0, 0),
            "0");
  EXPECT_EQ(log_->Count(LogLevel::kInfo, "stored nothing, the message was erased since"), 1) << log_->All();
}

TEST_F(EmbeddingsStageTest, LongContentIsCutOnACharacterBoundary) {
  EmbeddingsStage small(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"max_chunk_chars", std::int64_t{6}}}), *env_);
  const std::string guest = NewGuest("chunk");
  Written written = Write(small, guest, "abcd\xC3\xA9\xC3\xA9 and more");  // "abcdéé and more"
  ASSERT_TRUE(written.status.ok()) << written.status.ToString();
  SqlResult rows = Query("SELECT text_chunk FROM cache_embeddings WHERE message_id = $1",
                         {written.attributes.get("message_id")});
  EXPECT_EQ(rows.value(0, 0), "abcd\xC3\xA9");
}

TEST_F(EmbeddingsStageTest, WriteWithoutThePostgresStageSaysWhereToPutIt) {
  auto acquired = database_->Acquire(Soon());
  ASSERT_TRUE(acquired.status.ok());
  const std::string guest = NewGuest("order");
  const Message message{"user", "hi", "2024-05-01T12:00:00.000000Z"};
  Attributes attributes;
  WriteContext ctx{guest, message, Soon(), *log_, attributes, &*acquired.lease};
  Status status = stage_->write(ctx);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("put the embeddings stage after the postgres stage"), std::string::npos)
      << status.message();
}

TEST_F(EmbeddingsStageTest, RolledBackWriteLeavesNoRow) {
  const std::string guest = NewGuest("rollback");
  Written written = Write(*stage_, guest, "never committed", /*rollback=*/true);
  ASSERT_TRUE(written.status.ok());
  EXPECT_EQ(Query("SELECT count(*) FROM cache_embeddings WHERE message_id = $1",
                  {written.attributes.get("message_id")})
                .value(0, 0),
            "0");
}

TEST_F(EmbeddingsStageTest, ProviderFailureFailsTheStageButNotTheMessage) {
  const char* token_env = "STOWAGE_TEST_EMBEDDINGS_STAGE_KEY";
  unsetenv(token_env);
  testing::FakeProvider::Options options;
  options.dimensions = 16;
  testing::FakeProvider fake(options);
  EmbeddingsStage remote(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"provider", std::string("openai")},
                                                            {"base_url", fake.base_url() + "/v1"},
                                                            {"model", std::string("test-embed")},
                                                            {"api_key_env", std::string(token_env)},
                                                            {"dimensions", std::int64_t{16}},
                                                            {"request_timeout_ms", std::int64_t{300}}}),
      *env_);
  const std::string guest = NewGuest("provider");
  Written ok = Write(remote, guest, "remote embedding");
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_TRUE(fake.problems().empty());
  EXPECT_EQ(Query("SELECT embedding_model, embedding_dim FROM cache_embeddings WHERE message_id = $1",
                  {ok.attributes.get("message_id")})
                .rows,
            (std::vector<std::vector<SqlValue>>{{"test-embed", "16"}}));

  fake.set_mode(testing::FakeProvider::Mode::kErrorStatus, 503);
  Written down = Write(remote, guest, "provider down");
  EXPECT_EQ(down.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(down.status.message().find("HTTP 503"), std::string::npos) << down.status.message();
  EXPECT_NE(down.status.message().find("could not compute the embedding of message"), std::string::npos)
      << down.status.message();
  EXPECT_EQ(log_->All().find("HTTP 503"), std::string::npos) << log_->All();  // the host logs it

  fake.set_mode(testing::FakeProvider::Mode::kHang);
  Written slow = Write(remote, guest, "provider hangs");
  EXPECT_EQ(slow.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(slow.status.message().find("timed out"), std::string::npos) << slow.status.message();
  EXPECT_EQ(log_->All().find("could not compute"), std::string::npos) << log_->All();

  // The messages are stored; only the first has an embedding.
  EXPECT_EQ(
      Query("SELECT message_count FROM conversation_cache WHERE platform = 'guest' AND user_id = $1", {guest})
          .value(0, 0),
      "3");
  EXPECT_EQ(RowsOf(guest), 1u);
}

TEST_F(EmbeddingsStageTest, EraseRemovesOnlyThatGuestsRows) {
  const std::string a = NewGuest("erase-a"), b = NewGuest("erase-b");
  ASSERT_TRUE(Write(a, "one").status.ok());
  ASSERT_TRUE(Write(a, "two").status.ok());
  ASSERT_TRUE(Write(b, "other guest").status.ok());

  EraseResult erased = Erase(a);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_TRUE(erased.held);
  EXPECT_EQ(RowsOf(a), 0u);
  EXPECT_EQ(RowsOf(b), 1u);

  erased = Erase(a);
  EXPECT_TRUE(erased.status.ok());
  EXPECT_FALSE(erased.held) << "nothing left to erase";
  EXPECT_FALSE(Erase(NewGuest("unknown")).held);
}

TEST_F(EmbeddingsStageTest, SearchFindsTheMatchingMessageFirstAndOnlyThatGuests) {
  const std::string a = NewGuest("search-a"), b = NewGuest("search-b");
  ASSERT_TRUE(Write(a, "The weather in Lisbon is sunny today").status.ok());
  ASSERT_TRUE(Write(a, "How do I reset my password?").status.ok());
  ASSERT_TRUE(Write(a, "I would like a pizza with mushrooms").status.ok());
  ASSERT_TRUE(Write(b, "reset my password reset my password").status.ok());

  SearchResult result = Search(*stage_, a, "I forgot my password, please reset it", 2);
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_TRUE(result.supported);
  ASSERT_EQ(result.hits.size(), 2u);
  EXPECT_EQ(result.hits[0].message.content, "How do I reset my password?");
  EXPECT_EQ(result.hits[0].message.role, "user");
  EXPECT_EQ(result.hits[0].message.timestamp, "2024-05-01T12:00:00.101120Z");
  EXPECT_GT(result.hits[0].score, result.hits[1].score);

  result = Search(*stage_, a, "reset my password reset my password", 10);
  ASSERT_TRUE(result.status.ok());
  EXPECT_EQ(result.hits.size(), 3u);
  for (const SearchHit& hit : result.hits) {
    EXPECT_NE(hit.message.content, "reset my password reset my password") << "another guest's message";
  }

  result = Search(*stage_, NewGuest("nobody"), "password", 5);
  EXPECT_TRUE(result.status.ok());
  EXPECT_TRUE(result.supported);
  EXPECT_TRUE(result.hits.empty());
}

TEST_F(EmbeddingsStageTest, SearchSkipsRowsOfAnotherModelOrSizeAndWarnsOnce) {
  EmbeddingsStage other(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"dimensions", std::int64_t{64}}}), *env_);
  const std::string guest = NewGuest("mixed");
  ASSERT_TRUE(Write(other, guest, "password of another size").status.ok());
  ASSERT_TRUE(Write(guest, "password of the current size").status.ok());

  SearchResult result = Search(*stage_, guest, "password", 5);
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  ASSERT_EQ(result.hits.size(), 1u);
  EXPECT_EQ(result.hits[0].message.content, "password of the current size");
  Search(*stage_, guest, "password", 5);
  EXPECT_EQ(log_->Count(LogLevel::kWarn, "search skipped 1 embedding(s) of guest " + guest), 1)
      << log_->All();
}

// Rows written at another size (e.g. 1408, set explicitly or by an older
// default) are skipped by a stage of the default size, and searched again by
// a stage of their size.
TEST_F(EmbeddingsStageTest, SearchKeepsRowsOfEachSizeApart) {
  EmbeddingsStage wide(
      ConfigWithDefaults(EmbeddingsStage::config_schema(), {{"dimensions", std::int64_t{1408}}}), *env_);
  const std::string guest = NewGuest("sizes");
  ASSERT_TRUE(Write(wide, guest, "reset my password please").status.ok());
  ASSERT_TRUE(Write(guest, "my password does not work").status.ok());
  ASSERT_TRUE(Write(guest, "pizza with mushrooms").status.ok());

  SearchResult result = Search(*stage_, guest, "reset my password", 5);
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  ASSERT_EQ(result.hits.size(), 2u);
  EXPECT_EQ(result.hits[0].message.content, "my password does not work");
  EXPECT_EQ(result.hits[1].message.content, "pizza with mushrooms");
  EXPECT_EQ(log_->Count(LogLevel::kWarn, "search skipped 1 embedding(s) of guest " + guest), 1)
      << log_->All();
  EXPECT_EQ(log_->Count(LogLevel::kWarn, "(e.g. message "), 1) << log_->All();
  EXPECT_NE(log_->All().find("model stowage-hash-v1, 1408 dims) than the current provider's (model "
                             "stowage-hash-v1, 256 dims)"),
            std::string::npos)
      << log_->All();

  result = Search(wide, guest, "reset my password", 5);
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  ASSERT_EQ(result.hits.size(), 1u);
  EXPECT_EQ(result.hits[0].message.content, "reset my password please");
  EXPECT_NEAR(result.hits[0].score,
              CosineSimilarity(HashEmbedding("reset my password", 1408),
                               HashEmbedding("reset my password please", 1408)),
              1e-9);
}

TEST_F(EmbeddingsStageTest, ConstructorNeedsADatabase) {
  StageEnvironment no_database{*log_, nullptr};
  try {
    EmbeddingsStage stage(ConfigWithDefaults(EmbeddingsStage::config_schema()), no_database);
    FAIL() << "constructed without a database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("needs `database = "), std::string::npos) << e.what();
  }
}

TEST_F(EmbeddingsStageTest, MigrationIsRecordedOnceAndRepeatable) {
  EmbeddingsStage again(ConfigWithDefaults(EmbeddingsStage::config_schema()), *env_);
  EXPECT_GE(log_->Count(LogLevel::kInfo, "schema of database 'main' is current"), 1) << log_->All();
  EXPECT_EQ(
      Query("SELECT version FROM stowage_schema_migrations WHERE component = 'embeddings' ORDER BY version",
            {})
          .rows,
      (std::vector<std::vector<SqlValue>>{{"1"}, {"2"}}));
  // Migration 2: the embedding column is compressed with lz4 (Debian's
  // PostgreSQL has it).
  EXPECT_EQ(Query("SELECT attcompression FROM pg_attribute WHERE attrelid = 'cache_embeddings'::regclass"
                  " AND attname = 'embedding'",
                  {})
                .value(0, 0),
            "l");
  EXPECT_EQ(Query("SELECT count(*) FROM pg_indexes WHERE tablename = 'cache_embeddings'"
                  " AND indexdef LIKE '%(conversation_id)%'",
                  {})
                .value(0, 0),
            "1");
}

// A database down at construction: the stage starts with a warning and
// creates its table before the first write once the database is back.
TEST(EmbeddingsStageOutageTest, DatabaseDownAtStartIsMigratedBeforeFirstUse) {
  stowage::testing::ServiceInstance server(stowage::testing::Service::kPostgres);
  ASSERT_TRUE(server.running());
  auto log = std::make_shared<CapturingLogger>();
  config::DatabaseSettings settings;
  settings.name = "main";
  settings.url = server.url();
  settings.connect_timeout = milliseconds(1000);
  database::PostgresDatabase database(settings, log);
  StageEnvironment env{*log, &database};
  // The postgres stage creates message_cache first, as in the pipeline.
  postgres::PostgresStage postgres(ConfigWithDefaults(postgres::PostgresStage::config_schema()), env);
  ASSERT_TRUE(server.Stop());

  EmbeddingsStage stage(ConfigWithDefaults(EmbeddingsStage::config_schema()), env);
  EXPECT_EQ(log->Count(LogLevel::kWarn, "cache_embeddings will be created before the first use"), 1)
      << log->All();
  ASSERT_TRUE(server.Start());

  auto acquired = database.Acquire(Soon());
  ASSERT_TRUE(acquired.status.ok()) << acquired.status.ToString();
  database::Connection& sql = *acquired.lease;
  sql.set_deadline(Soon());
  const std::string guest = NewGuest("outage");
  const Message message{"user", "back again", "2024-05-01T12:00:00.000000Z"};
  Attributes attributes;
  WriteContext ctx{guest, message, Soon(), *log, attributes, &sql};
  ASSERT_TRUE(sql.execute("BEGIN", {}).ok());
  ASSERT_TRUE(stage.admit(ctx).ok());
  ASSERT_TRUE(postgres.write(ctx).ok());
  Status status = stage.write(ctx);
  EXPECT_TRUE(status.ok()) << status.ToString();
  ASSERT_TRUE(sql.execute("COMMIT", {}).ok());
  SqlResult rows;
  ASSERT_TRUE(sql.execute("SELECT count(*) FROM cache_embeddings", {}, &rows).ok());
  EXPECT_EQ(rows.value(0, 0), "1");
}

TEST_F(EmbeddingsStageTest, TargetIsPostgresql) {
  EXPECT_EQ(stage_->target(), "postgresql");
}

}  // namespace
}  // namespace stowage::embeddings
