// The operators' acceptance checklist of SPEC.md, point by point, against
// stowaged started from the repository's default pipeline.toml (all five
// stages), and its graceful degradation when a best-effort stage fails.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "stores.h"
#include "stowaged_process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string UniqueGuest(const std::string& prefix) {
  static std::mt19937_64 random{std::random_device{}()};
  std::ostringstream id;
  id << prefix << "-" << std::hex << random();
  return id.str();
}

std::string Body(const std::string& content) {
  return json::serialize(json::object{{"role", "user"}, {"content", content}});
}

HttpResult Post(std::uint16_t port, const std::string& guest, const std::string& content) {
  return HttpClient(port).Send("POST", "/v1/guest/chat/" + guest, Body(content));
}
HttpResult Get(std::uint16_t port, const std::string& target) { return HttpClient(port).Send("GET", target, "", ""); }

json::value Parse(const std::string& text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return value;
}

// Lines of `log` that carry `prefix` and mention `guest`.
int CountLines(const std::string& log, const std::string& prefix, const std::string& guest) {
  std::istringstream lines(log);
  int count = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.find(prefix) != std::string::npos && line.find(guest) != std::string::npos) ++count;
  return count;
}

std::map<std::string, std::string> StoreEnv(const std::string& redis_url, const std::string& database_url) {
  return {{"REDIS_URL", redis_url}, {"DATABASE_URL", database_url}};
}

constexpr const char* kMessagesOf =
    "SELECT m.id, m.conversation_id, m.sequence, m.content FROM message_cache m "
    "JOIN conversation_cache c ON c.id = m.conversation_id WHERE c.user_id = $1 ORDER BY m.sequence";

TEST(ChecklistTest, TheOperatorsChecklistHoldsPointByPoint) {
  const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
  const std::string database_url = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (redis_url.empty() || database_url.empty()) return;
  PostgresProbe pg(database_url);
  RedisProbe redis(redis_url);
  const std::string started_at = pg.Scalar("SELECT now()::text WHERE $1 = $1", "x");
  auto server = std::make_unique<StowagedProcess>(STOWAGE_DEFAULT_PIPELINE, StoreEnv(redis_url, database_url));
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();
  const std::string guest = UniqueGuest("checklist");
  int requests = 0;

  // 1. POST a message: 200 with status, guest_id, message_id, conversation_id, stored_in.
  HttpResult first = Post(port, guest, "What are your opening hours?");
  ++requests;
  ASSERT_EQ(first.status, 200) << first.body << "\n" << server->log();
  json::object answer = Parse(first.body).as_object();
  EXPECT_EQ(answer.at("status"), "stored");
  EXPECT_EQ(answer.at("guest_id"), guest.c_str());
  const std::int64_t message_id = answer.at("message_id").as_int64();
  const std::int64_t conversation_id = answer.at("conversation_id").as_int64();
  EXPECT_EQ(json::serialize(answer.at("stored_in")), R"(["redis","postgresql"])");
  EXPECT_EQ(json::serialize(answer.at("degraded")), "[]") << server->log();

  // 2. Logs show, per stage, that it stored the message, in the operators'
  // own words (each line begins with them, then names the guest).
  constexpr const char* kStagePrefixes[] = {
      "[Redis] Message stored successfully!", "[PostgreSQL] Message committed!", "[Embeddings] ✓ Embedding stored",
      "[UsageMetrics] ✓ Created new usage metrics record", "[CacheMapping] ✓ Created cache_content_mapping entry"};
  EXPECT_TRUE(server->WaitForLog([&](const std::string& log) {
    for (const char* prefix : kStagePrefixes)
      if (CountLines(log, prefix, guest) == 0) return false;
    return true;
  })) << "a stage's line never showed:\n" << server->log();
  const std::string log = server->log();
  for (const char* prefix : kStagePrefixes)
    EXPECT_EQ(CountLines(log, prefix, guest), 1) << prefix << " should log one line for the message:\n" << log;
  // Each names its stage (pipeline.toml's name) beside the plugin's tag.
  const char* const kStageNames[] = {"redis", "postgres", "embeddings", "metrics", "mapping"};
  for (std::size_t i = 0; i < std::size(kStageNames); ++i)
    EXPECT_EQ(CountLines(log, kStagePrefixes[i], std::string(" stage=") + kStageNames[i]), 1)
        << kStagePrefixes[i] << " should end with stage=" << kStageNames[i] << ":\n"
        << log;

  // 3. Redis holds guest:{id}: a JSON array of the messages, TTL 86400.
  auto cached = redis.Get("guest:" + guest);
  ASSERT_TRUE(cached);
  EXPECT_EQ(Parse(*cached).as_array().size(), 1u);
  EXPECT_GT(redis.Ttl("guest:" + guest), 86390);

  // 4. Each of the six tables holds the rows described.
  auto conversation = pg.Query("SELECT id, platform, message_count FROM conversation_cache WHERE user_id = $1", guest);
  ASSERT_EQ(conversation.size(), 1u);
  EXPECT_EQ(conversation[0][0], std::to_string(conversation_id));
  EXPECT_EQ(conversation[0][1], "guest");
  EXPECT_EQ(conversation[0][2], "1");
  auto messages = pg.Query(kMessagesOf, guest);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0][0], std::to_string(message_id));
  auto embedding = pg.Query(
      "SELECT conversation_id, message_id, jsonb_array_length(embedding), embedding_dim, embedding_model, "
      "text_chunk, chunk_index FROM cache_embeddings WHERE message_id = $1::bigint",
      std::to_string(message_id));
  ASSERT_EQ(embedding.size(), 1u);
  EXPECT_EQ(embedding[0][0], std::to_string(conversation_id));
  EXPECT_EQ(embedding[0][2], embedding[0][3]) << "embedding_dim is not the length of the embedding";
  EXPECT_EQ(embedding[0][3], "256");  // the builtin provider's default size
  EXPECT_FALSE(embedding[0][4].empty());
  EXPECT_EQ(embedding[0][5], "What are your opening hours?");
  EXPECT_EQ(embedding[0][6], "0");
  auto usage = pg.Query(
      "SELECT tier, total_requests, cache_misses, monthly_request_limit FROM usage_metrics WHERE user_id = $1", guest);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0], (std::vector<std::string>{"guest", "1", "1", "1000"}));
  auto mapping = pg.Query(
      "SELECT cache_type, cache_id, coalesce(content_id::text, 'NULL'), user_id, cache_backend, content_backend, "
      "is_synced FROM cache_content_mapping WHERE user_id = $1",
      guest);
  ASSERT_EQ(mapping.size(), 1u);
  EXPECT_EQ(mapping[0], (std::vector<std::string>{"message", std::to_string(message_id), "NULL", guest, "redis",
                                                  "postgresql", "t"}));

  // 5. A second POST: total_requests and message_count up by one; two rows in
  // message_cache and in cache_embeddings.
  ASSERT_EQ(Post(port, guest, "And on Sundays?").status, 200);
  ++requests;
  EXPECT_TRUE(server->WaitForLog([&](const std::string& log) {
    return CountLines(log, "[UsageMetrics] ✓ Updated usage metrics", guest) == 1 &&
           CountLines(log, "[PostgreSQL] Message committed!", guest) == 2;
  })) << "the second POST's lines never showed:\n" << server->log();
  EXPECT_EQ(pg.Scalar("SELECT total_requests FROM usage_metrics WHERE user_id = $1", guest), "2");
  EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest), "2");
  EXPECT_EQ(pg.Query(kMessagesOf, guest).size(), 2u);
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_embeddings WHERE conversation_id = $1::bigint",
                      std::to_string(conversation_id)),
            "2");

  // 6. GET returns all messages in order (served by Redis: a cache hit).
  HttpResult got = Get(port, "/v1/guest/chat/" + guest);
  ++requests;
  json::array all = Parse(got.body).as_array();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].at("content"), "What are your opening hours?");
  EXPECT_EQ(all[1].at("content"), "And on Sundays?");

  // Search finds the matching message first.
  HttpResult found = Get(port, "/v1/guest/chat/" + guest + "/search?q=sundays&k=2");
  ASSERT_EQ(found.status, 200) << found.body;
  json::array results = Parse(found.body).at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("content"), "And on Sundays?");

  // 8. Two guests never see or touch each other's data.
  const std::string other = UniqueGuest("other");
  ASSERT_EQ(Post(port, other, "Sundays are my favourite").status, 200);
  ++requests;
  EXPECT_EQ(Parse(Get(port, "/v1/guest/chat/" + other).body).as_array().size(), 1u);
  ++requests;
  json::array other_found =
      Parse(Get(port, "/v1/guest/chat/" + other + "/search?q=sundays&k=5").body).at("results").as_array();
  ASSERT_EQ(other_found.size(), 1u);
  EXPECT_EQ(other_found[0].at("content"), "Sundays are my favourite");

  // 7. DELETE answers deleted_from ["redis","postgresql"]; the key and the rows are gone.
  HttpResult deleted = HttpClient(port).Send("DELETE", "/v1/guest/chat/" + guest, "", "");
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(json::serialize(Parse(deleted.body).at("deleted_from")), R"(["redis","postgresql"])");
  EXPECT_FALSE(redis.Get("guest:" + guest));
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM conversation_cache WHERE user_id = $1", guest), "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM message_cache WHERE conversation_id = $1::bigint",
                      std::to_string(conversation_id)),
            "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_embeddings WHERE conversation_id = $1::bigint",
                      std::to_string(conversation_id)),
            "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_content_mapping WHERE user_id = $1", guest), "0");
  // Accounting stays: usage_metrics holds no content.
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM usage_metrics WHERE user_id = $1", guest), "1");
  EXPECT_EQ(json::serialize(Parse(Get(port, "/v1/guest/chat/" + other).body).as_array()[0].at("content")),
            R"("Sundays are my favourite")");
  ++requests;

  // cache_metrics: written in the background and at shutdown; its rows since
  // the start count every POST and GET of this server, the GETs from Redis as hits.
  server.reset();
  auto windows = pg.Query(
      "SELECT coalesce(sum(total_requests), 0), coalesce(sum(cache_hits), 0) FROM cache_metrics WHERE recorded_at >= "
      "$1::timestamptz",
      started_at);
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0][0], std::to_string(requests));
  EXPECT_EQ(windows[0][1], "3") << "the three GETs, all served from Redis, are the hits";
  EXPECT_EQ(pg.Scalar("SELECT cache_hits FROM usage_metrics WHERE user_id = $1", guest), "1");
}

// ---------------------------------------------------------------------------
// Graceful degradation, each on a PostgreSQL of its own (tables are dropped).

// The default pipeline's five stages with the given extra text per stage.
std::string FiveStages(const std::string& embeddings_config, const std::string& metrics_config = "",
                       const std::string& extra_stage = "") {
  return "[server]\nlisten = \"${STOWAGE_LISTEN}\"\n"
         "[[database]]\nname = \"main\"\nurl = \"${DATABASE_URL}\"\n"
         "[[stage]]\nname = \"redis\"\nplugin = \"redis\"\nconfig = { url = \"${REDIS_URL}\" }\n"
         "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\ndatabase = \"main\"\n"
         "[[stage]]\nname = \"embeddings\"\nplugin = \"embeddings\"\npolicy = \"best_effort\"\ndatabase = \"main\"\n"
         "config = { " + embeddings_config + " }\n"
         "[[stage]]\nname = \"metrics\"\nplugin = \"metrics\"\npolicy = \"best_effort\"\ndatabase = \"main\"\n"
         "config = { " + metrics_config + " }\n"
         "[[stage]]\nname = \"mapping\"\nplugin = \"mapping\"\npolicy = \"best_effort\"\ndatabase = \"main\"\n" +
         extra_stage;
}

class DegradationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_url_ = RequireEnv("STOWAGE_TEST_REDIS_URL");
    if (redis_url_.empty()) GTEST_SKIP();
    postgres_ = std::make_unique<ServiceInstance>(Service::kPostgres);
    ASSERT_TRUE(postgres_->running());
    guest_ = UniqueGuest("degraded");
  }

  std::unique_ptr<StowagedProcess> Start(const std::string& pipeline) {
    return StowagedProcess::FromText(pipeline, StoreEnv(redis_url_, postgres_->url()));
  }

  // The message rows of the guest are whole: one message, one conversation
  // counting it, and the Redis array.
  void ExpectRequiredDataIntact(const std::string& content) {
    PostgresProbe pg(postgres_->url());
    auto messages = pg.Query(kMessagesOf, guest_);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0][3], content);
    EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest_), "1");
    RedisProbe redis(redis_url_);
    auto cached = redis.Get("guest:" + guest_);
    ASSERT_TRUE(cached);
    EXPECT_EQ(Parse(*cached).as_array().size(), 1u);
  }

  std::string redis_url_, guest_;
  std::unique_ptr<ServiceInstance> postgres_;
};

// Reads of guests that never wrote leave nothing behind: no usage_metrics,
// conversation or mapping row, no key in Redis (a flood of GETs of made-up
// ids cannot fill the stores).
TEST_F(DegradationTest, AGetOfAnUnknownGuestCreatesNothingAnywhere) {
  auto server = Start(FiveStages("provider = \"builtin\""));
  ASSERT_TRUE(server->running());
  ASSERT_EQ(Post(server->port(), UniqueGuest("warm-up"), "creates the tables").status, 200);
  PostgresProbe pg(postgres_->url());
  auto flushes = [&] { return pg.Scalar("SELECT count(*) FROM cache_metrics WHERE $1 = $1", "x"); };
  // The metrics stage flushes every second: wait for the warm-up's flush.
  for (int i = 0; i < 50 && flushes() == "0"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string before = flushes();
  HttpClient client(server->port());
  ASSERT_EQ(client.Send("GET", "/v1/guest/chat/" + guest_, "", "").body, "[]");
  ASSERT_EQ(client.Send("GET", "/v1/guest/chat/" + guest_, "", "").body, "[]");
  // ... and for a flush after the GETs.
  for (int i = 0; i < 50 && flushes() == before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(flushes(), before) << "no metrics flush within 5 s of the GETs\n" << server->log();
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM usage_metrics WHERE user_id = $1", guest_), "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM conversation_cache WHERE user_id = $1", guest_), "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_content_mapping WHERE user_id = $1", guest_), "0");
  RedisProbe redis(redis_url_);
  EXPECT_FALSE(redis.Get("guest:" + guest_).has_value()) << "an empty history was cached";
}

TEST_F(DegradationTest, EmbeddingProviderDownStillStoresTheMessage) {
  // An OpenAI-compatible provider on a port nothing listens on.
  auto server = Start(FiveStages("provider = \"openai\", base_url = \"http://127.0.0.1:" +
                                 std::to_string(FreePort()) + "/v1\", model = \"m\", dimensions = 8"));
  ASSERT_TRUE(server->running());
  HttpResult posted = Post(server->port(), guest_, "hello");
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(json::serialize(Parse(posted.body).at("degraded")), R"(["embeddings"])");
  ExpectRequiredDataIntact("hello");
  PostgresProbe pg(postgres_->url());
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_embeddings WHERE $1 = $1", "x"), "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_content_mapping WHERE user_id = $1", guest_), "1");
  EXPECT_EQ(CountLines(server->log(), "[Embeddings] ✗ could not store the message", guest_), 1) << server->log();
  EXPECT_NE(server->log().find("failures so far: 1"), std::string::npos) << server->log();
}

TEST_F(DegradationTest, ADroppedMetricsTableStillStoresTheMessage) {
  auto server = Start(FiveStages("provider = \"builtin\""));
  ASSERT_TRUE(server->running());
  ASSERT_EQ(Post(server->port(), UniqueGuest("warm-up"), "creates the tables").status, 200);
  PostgresProbe pg(postgres_->url());
  pg.Exec("DROP TABLE usage_metrics");
  HttpResult posted = Post(server->port(), guest_, "hello");
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(json::serialize(Parse(posted.body).at("degraded")), R"(["metrics"])") << server->log();
  ExpectRequiredDataIntact("hello");
  EXPECT_EQ(CountLines(server->log(), "[UsageMetrics]", guest_), 1) << server->log();
}

TEST_F(DegradationTest, AFailingMappingStageStillStoresTheMessageAndTheEmbedding) {
  auto server = Start(FiveStages("provider = \"builtin\""));
  ASSERT_TRUE(server->running());
  ASSERT_EQ(Post(server->port(), UniqueGuest("warm-up"), "creates the tables").status, 200);
  PostgresProbe pg(postgres_->url());
  pg.Exec("DROP TABLE cache_content_mapping");
  HttpResult posted = Post(server->port(), guest_, "hello");
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(json::serialize(Parse(posted.body).at("degraded")), R"(["mapping"])") << server->log();
  ExpectRequiredDataIntact("hello");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_embeddings e JOIN conversation_cache c ON c.id = "
                      "e.conversation_id WHERE c.user_id = $1",
                      guest_),
            "1");
}

TEST_F(DegradationTest, ARequiredFailureAfterTheBestEffortStagesLeavesNoneOfTheirRows) {
  auto server = Start(FiveStages("provider = \"builtin\"", "",
                                 "[[stage]]\nname = \"last\"\nplugin = \"" TEST_STAGE_PATH
                                 "\"\npolicy = \"required\"\nconfig = { write = \"fail\" }\n"));
  ASSERT_TRUE(server->running());
  HttpResult posted = Post(server->port(), guest_, "hello");
  EXPECT_EQ(posted.status, 503) << posted.body;
  PostgresProbe pg(postgres_->url());
  for (const char* table : {"conversation_cache", "usage_metrics", "cache_content_mapping"})
    EXPECT_EQ(pg.Scalar(std::string("SELECT count(*) FROM ") + table + " WHERE user_id = $1", guest_), "0") << table;
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_embeddings WHERE $1 = $1", "x"), "0");
  RedisProbe redis(redis_url_);
  auto cached = redis.Get("guest:" + guest_);
  EXPECT_TRUE(!cached || Parse(*cached).as_array().empty()) << *cached;
}

TEST_F(DegradationTest, APostOverTheMonthlyLimitGets429AndStoresNothing) {
  auto server = Start(FiveStages("provider = \"builtin\"", "guest_monthly_limit = 2"));
  ASSERT_TRUE(server->running());
  ASSERT_EQ(Post(server->port(), guest_, "one").status, 200);
  ASSERT_EQ(Post(server->port(), guest_, "two").status, 200);
  HttpResult refused = Post(server->port(), guest_, "three");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_NE(refused.body.find("monthly request limit"), std::string::npos) << refused.body;
  PostgresProbe pg(postgres_->url());
  EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest_), "2");
  EXPECT_EQ(pg.Scalar("SELECT total_requests FROM usage_metrics WHERE user_id = $1", guest_), "2");
  RedisProbe redis(redis_url_);
  EXPECT_EQ(Parse(*redis.Get("guest:" + guest_)).as_array().size(), 2u);
}

}  // namespace
}  // namespace stowage::testing
