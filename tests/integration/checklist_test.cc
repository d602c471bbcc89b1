// The operators' acceptance checklist of SPEC.md, a test per point, against
// one stowaged for the suite started from the repository's default
// pipeline.toml (all five stages); and its graceful degradation when a
// best-effort stage fails, each case on a stowaged of its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "http_client.h"
#include "json_answers.h"
#include "stores.h"
#include "stowaged_process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// What a test run without the suite's servers is told, after the name of the
// variable missing.
constexpr const char* kHowToRun =
    "these tests run against the Redis and PostgreSQL that scripts/test starts: run scripts/test -R "
    "checklist";

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
HttpResult Get(std::uint16_t port, const std::string& target) {
  return HttpClient(port).Send("GET", target, "", "");
}

json::value Parse(const std::string& text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return value;
}

// The lines of `log` that carry `prefix` and mention `guest`.
std::vector<std::string> LinesOf(const std::string& log, const std::string& prefix,
                                 const std::string& guest) {
  std::istringstream lines(log);
  std::vector<std::string> found;
  for (std::string line; std::getline(lines, line);)
    if (line.find(prefix) != std::string::npos && line.find(guest) != std::string::npos)
      found.push_back(line);
  return found;
}

int CountLines(const std::string& log, const std::string& prefix, const std::string& guest) {
  return static_cast<int>(LinesOf(log, prefix, guest).size());
}

std::map<std::string, std::string> StoreEnv(const std::string& redis_url, const std::string& database_url) {
  return {{"REDIS_URL", redis_url}, {"DATABASE_URL", database_url}};
}

constexpr const char* kMessagesOf =
    "SELECT m.id, m.conversation_id, m.sequence, m.content FROM message_cache m "
    "JOIN conversation_cache c ON c.id = m.conversation_id WHERE c.user_id = $1 ORDER BY m.sequence";

// The checklist's point 2: what each stage of the default pipeline logs for a
// message it stored (each line then names the guest), and the stage's name
// in pipeline.toml, which the line names as stage=NAME.
struct StageLine {
  const char* prefix;
  const char* stage;
};
constexpr StageLine kStoredLines[] = {{"[Redis] Message stored successfully!", "redis"},
                                      {"[PostgreSQL] Message committed!", "postgres"},
                                      {"[Embeddings] ✓ Embedding stored", "embeddings"},
                                      {"[UsageMetrics] ✓ Created new usage metrics record", "metrics"},
                                      {"[CacheMapping] ✓ Created cache_content_mapping entry", "mapping"}};

// The suite's shared Redis and PostgreSQL (started by scripts/test) and one
// stowaged on them, from the default pipeline.toml, started by the first test
// and stopped after the last. Each test stores the data it checks under
// guests of its own.
class ChecklistTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { server_.reset(); }

  // Fails the test, naming the variable missing, unless the suite's servers
  // are given; then starts stowaged once for the suite.
  void SetUp() override {
    const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
    const std::string database_url = RequireEnv("STOWAGE_TEST_DATABASE_URL");
    if (redis_url.empty() || database_url.empty()) GTEST_FAIL() << kHowToRun;
    if (server_ == nullptr)
      server_ =
          std::make_unique<StowagedProcess>(STOWAGE_DEFAULT_PIPELINE, StoreEnv(redis_url, database_url));
    if (!server_->running()) GTEST_FAIL() << "stowaged did not start:\n" << server_->log();
    pg_ = std::make_unique<PostgresProbe>(database_url);
    redis_ = std::make_unique<RedisProbe>(redis_url);
  }

  std::uint16_t port() const { return server_->port(); }

  // POSTs `content` for `guest`; true when it was stored (200). Fails the
  // test, with the answer and the server's log, when it was not.
  ::testing::AssertionResult Stored(const std::string& guest, const std::string& content) {
    HttpResult posted = Post(port(), guest, content);
    if (posted.status == 200) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "POST of \"" << content << "\" for " << guest << " answered "
                                         << posted.status << ": " << posted.body << "\n"
                                         << server_->log();
  }

  // The id of `guest`'s conversation_cache row.
  std::string ConversationId(const std::string& guest) {
    return pg_->Scalar("SELECT id::text FROM conversation_cache WHERE user_id = $1", guest);
  }

  // The time on PostgreSQL's clock after which cache_metrics rows count only
  // the requests made from then on: waits until the rows of the requests made
  // before are in (the metrics stage writes a row for each second that had
  // requests, at the latest a second after them: no new row for two seconds).
  std::string CacheMetricsQuiet() {
    auto rows = [&] { return pg_->Scalar("SELECT count(*) FROM cache_metrics WHERE $1 = $1", "x"); };
    using Clock = std::chrono::steady_clock;
    const auto give_up = Clock::now() + 10s;
    std::string seen = rows();
    for (auto unchanged_since = Clock::now(); Clock::now() - unchanged_since < 2s;) {
      if (Clock::now() >= give_up) {
        ADD_FAILURE() << "cache_metrics kept growing for 10 s with no request of this test";
        break;
      }
      std::this_thread::sleep_for(100ms);
      if (std::string now = rows(); now != seen) {
        seen = now;
        unchanged_since = Clock::now();
      }
    }
    return pg_->Scalar("SELECT now()::text WHERE $1 = $1", "x");
  }

  static inline std::unique_ptr<StowagedProcess> server_;
  std::unique_ptr<PostgresProbe> pg_;
  std::unique_ptr<RedisProbe> redis_;
};

// 1. POST a message: 200 with status, guest_id, message_id, conversation_id,
// and stored_in ["redis","postgresql"] (and no stage degraded).
TEST_F(ChecklistTest, Point1_APostAnswers200WithItsIdsAndStoredInRedisAndPostgresql) {
  const std::string guest = UniqueGuest("point1");
  HttpResult posted = Post(port(), guest, "What are your opening hours?");
  ASSERT_EQ(posted.status, 200) << posted.body << "\n" << server_->log();
  json::object answer = ParseObject(posted.body);
  for (const char* key : {"status", "guest_id", "message_id", "conversation_id", "stored_in", "degraded"})
    ASSERT_TRUE(answer.contains(key)) << "no " << key << " in " << posted.body;
  EXPECT_EQ(answer.at("status"), "stored");
  EXPECT_EQ(answer.at("guest_id"), guest.c_str());
  EXPECT_TRUE(answer.at("message_id").is_int64()) << posted.body;
  EXPECT_TRUE(answer.at("conversation_id").is_int64()) << posted.body;
  EXPECT_EQ(json::serialize(answer.at("stored_in")), R"(["redis","postgresql"])");
  EXPECT_EQ(json::serialize(answer.at("degraded")), "[]") << server_->log();
}

// 2. Logs show, per stage, that it stored the message, in the operators' own
// words: one line each, naming the guest and the stage.
TEST_F(ChecklistTest, Point2_EachStageLogsThatItStoredTheMessageInTheOperatorsWords) {
  const std::string guest = UniqueGuest("point2");
  ASSERT_TRUE(Stored(guest, "What are your opening hours?"));
  EXPECT_TRUE(server_->WaitForLog([&](const std::string& log) {
    for (const StageLine& line : kStoredLines)
      if (CountLines(log, line.prefix, guest) == 0) return false;
    return true;
  })) << "a stage's line never showed:\n"
      << server_->log();
  const std::string log = server_->log();
  for (const StageLine& stored : kStoredLines) {
    std::vector<std::string> lines = LinesOf(log, stored.prefix, guest);
    ASSERT_EQ(lines.size(), 1u) << stored.prefix << " should log one line for the message:\n" << log;
    EXPECT_NE((lines[0] + " ").find(std::string(" stage=") + stored.stage + " "), std::string::npos)
        << "should name stage=" << stored.stage << ": " << lines[0];
  }
}

// 3. Redis holds guest:{id}: a JSON array of the messages, TTL 86400.
TEST_F(ChecklistTest, Point3_RedisHoldsTheGuestsMessagesAsAJsonArrayWithATtlOf86400) {
  const std::string guest = UniqueGuest("point3");
  ASSERT_TRUE(Stored(guest, "What are your opening hours?"));
  ASSERT_TRUE(Stored(guest, "And on Sundays?"));
  auto cached = redis_->Get("guest:" + guest);
  ASSERT_TRUE(cached) << "no key guest:" << guest;
  json::value messages = Parse(*cached);
  ASSERT_TRUE(messages.is_array()) << *cached;
  ASSERT_EQ(messages.as_array().size(), 2u) << *cached;
  EXPECT_EQ(messages.as_array()[0].at("content"), "What are your opening hours?");
  EXPECT_EQ(messages.as_array()[1].at("content"), "And on Sundays?");
  const long long ttl = redis_->Ttl("guest:" + guest);
  EXPECT_GT(ttl, 86390);
  EXPECT_LE(ttl, 86400);
}

// 4. Each of the six tables holds the rows described (SPEC.md, "Storage
// targets"): conversation_cache, message_cache, cache_embeddings,
// usage_metrics and cache_content_mapping for a POST; cache_metrics counting
// the requests, a GET served by Redis as a hit and one served by PostgreSQL
// as a miss, as usage_metrics does for the guest.
TEST_F(ChecklistTest, Point4_EachOfTheSixTablesHoldsTheRowsDescribed) {
  const std::string guest = UniqueGuest("point4");
  HttpResult posted = Post(port(), guest, "What are your opening hours?");
  ASSERT_EQ(posted.status, 200) << posted.body << "\n" << server_->log();
  json::object answer = ParseObject(posted.body);
  const std::string message_id = json::serialize(answer["message_id"]);
  const std::string conversation_id = json::serialize(answer["conversation_id"]);

  auto conversation =
      pg_->Query("SELECT id, platform, message_count FROM conversation_cache WHERE user_id = $1", guest);
  ASSERT_EQ(conversation.size(), 1u);
  EXPECT_EQ(conversation[0], (std::vector<std::string>{conversation_id, "guest", "1"}));
  auto messages = pg_->Query(kMessagesOf, guest);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0],
            (std::vector<std::string>{message_id, conversation_id, "0", "What are your opening hours?"}));
  auto embedding = pg_->Query(
      "SELECT conversation_id, message_id, jsonb_array_length(embedding), embedding_dim, embedding_model, "
      "text_chunk, chunk_index FROM cache_embeddings WHERE message_id = $1::bigint",
      message_id);
  ASSERT_EQ(embedding.size(), 1u);
  EXPECT_EQ(embedding[0][0], conversation_id);
  EXPECT_EQ(embedding[0][1], message_id);
  EXPECT_EQ(embedding[0][2], embedding[0][3]) << "embedding_dim is not the length of the embedding";
  EXPECT_EQ(embedding[0][3], "256");  // the builtin provider's default size
  EXPECT_FALSE(embedding[0][4].empty());
  EXPECT_EQ(embedding[0][5], "What are your opening hours?");
  EXPECT_EQ(embedding[0][6], "0");
  constexpr const char* kUsageOf =
      "SELECT tier, total_requests, cache_hits, cache_misses, monthly_request_limit FROM usage_metrics "
      "WHERE user_id = $1";
  auto usage = pg_->Query(kUsageOf, guest);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0], (std::vector<std::string>{"guest", "1", "0", "1", "1000"}));
  auto mapping = pg_->Query(
      "SELECT cache_type, cache_id, coalesce(content_id::text, 'NULL'), user_id, cache_backend, "
      "content_backend, is_synced FROM cache_content_mapping WHERE user_id = $1",
      guest);
  ASSERT_EQ(mapping.size(), 1u);
  EXPECT_EQ(mapping[0],
            (std::vector<std::string>{"message", message_id, "NULL", guest, "redis", "postgresql", "t"}));

  // cache_metrics: from a quiet moment on, a GET served by Redis, then one
  // served by PostgreSQL (the key gone), and nothing else.
  const std::string since = CacheMetricsQuiet();
  ASSERT_EQ(Get(port(), "/v1/guest/chat/" + guest).status, 200);
  redis_->Del("guest:" + guest);
  ASSERT_EQ(Get(port(), "/v1/guest/chat/" + guest).status, 200);
  constexpr const char* kWindowsSince =
      "SELECT coalesce(sum(total_requests), 0), coalesce(sum(cache_hits), 0), coalesce(sum(cache_misses), 0) "
      "FROM cache_metrics WHERE recorded_at >= $1::timestamptz";
  std::vector<std::vector<std::string>> windows;
  for (int i = 0; i < 50; ++i, std::this_thread::sleep_for(100ms)) {
    windows = pg_->Query(kWindowsSince, since);
    if (windows.size() == 1 && windows[0][0] == "2") break;
  }
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0], (std::vector<std::string>{"2", "1", "1"}))
      << "total_requests, cache_hits and cache_misses since " << since << "\n"
      << server_->log();
  // The reads are the guest's too, written in the same flush.
  usage = pg_->Query(kUsageOf, guest);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0], (std::vector<std::string>{"guest", "3", "1", "2", "1000"}));
}

// 5. A second POST to the same guest: total_requests and message_count go up
// by one; two rows in message_cache and in cache_embeddings.
TEST_F(ChecklistTest, Point5_ASecondPostCountsOneMoreRequestAndMessageAndStoresItsEmbedding) {
  const std::string guest = UniqueGuest("point5");
  ASSERT_TRUE(Stored(guest, "What are your opening hours?"));
  const std::string conversation_id = ConversationId(guest);
  auto embeddings = [&] {
    return pg_->Scalar("SELECT count(*) FROM cache_embeddings WHERE conversation_id = $1::bigint",
                       conversation_id);
  };
  EXPECT_EQ(pg_->Scalar("SELECT total_requests FROM usage_metrics WHERE user_id = $1", guest), "1");
  EXPECT_EQ(pg_->Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest), "1");
  EXPECT_EQ(pg_->Query(kMessagesOf, guest).size(), 1u);
  EXPECT_EQ(embeddings(), "1");

  ASSERT_TRUE(Stored(guest, "And on Sundays?"));
  EXPECT_TRUE(server_->WaitForLog([&](const std::string& log) {
    return CountLines(log, "[UsageMetrics] ✓ Updated usage metrics", guest) == 1 &&
           CountLines(log, "[PostgreSQL] Message committed!", guest) == 2;
  })) << "the second POST's lines never showed:\n"
      << server_->log();
  EXPECT_EQ(pg_->Scalar("SELECT total_requests FROM usage_metrics WHERE user_id = $1", guest), "2");
  EXPECT_EQ(pg_->Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest), "2");
  EXPECT_EQ(pg_->Query(kMessagesOf, guest).size(), 2u);
  EXPECT_EQ(embeddings(), "2");
}

// 6. GET returns all messages in order.
TEST_F(ChecklistTest, Point6_AGetReturnsAllTheGuestsMessagesInOrder) {
  const std::string guest = UniqueGuest("point6");
  const std::vector<std::string> sent = {"What are your opening hours?", "And on Sundays?", "Thank you!"};
  for (const std::string& content : sent) ASSERT_TRUE(Stored(guest, content));
  HttpResult got = Get(port(), "/v1/guest/chat/" + guest);
  ASSERT_EQ(got.status, 200) << got.body;
  json::value all = Parse(got.body);
  ASSERT_TRUE(all.is_array()) << got.body;
  ASSERT_EQ(all.as_array().size(), sent.size()) << got.body;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(all.as_array()[i].at("role"), "user");
    EXPECT_EQ(all.as_array()[i].at("content"), sent[i].c_str()) << "message " << i;
  }
}

// 7. DELETE answers deleted_from ["redis","postgresql"]; the key and the rows
// are gone. usage_metrics stays: it is accounting and holds no content.
TEST_F(ChecklistTest, Point7_ADeleteRemovesTheKeyAndTheRowsFromRedisAndPostgresql) {
  const std::string guest = UniqueGuest("point7");
  ASSERT_TRUE(Stored(guest, "What are your opening hours?"));
  ASSERT_TRUE(Stored(guest, "And on Sundays?"));
  const std::string conversation_id = ConversationId(guest);
  constexpr const char* kMessages = "SELECT count(*) FROM message_cache WHERE conversation_id = $1::bigint";
  constexpr const char* kEmbeddings =
      "SELECT count(*) FROM cache_embeddings WHERE conversation_id = $1::bigint";
  constexpr const char* kMappings = "SELECT count(*) FROM cache_content_mapping WHERE user_id = $1";
  ASSERT_TRUE(redis_->Get("guest:" + guest));
  ASSERT_EQ(pg_->Scalar(kMessages, conversation_id), "2");
  ASSERT_EQ(pg_->Scalar(kEmbeddings, conversation_id), "2");
  ASSERT_EQ(pg_->Scalar(kMappings, guest), "2");

  HttpResult deleted = HttpClient(port()).Send("DELETE", "/v1/guest/chat/" + guest, "", "");
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  json::object answer = ParseObject(deleted.body);
  ASSERT_TRUE(answer.contains("deleted_from")) << deleted.body;
  EXPECT_EQ(json::serialize(answer.at("deleted_from")), R"(["redis","postgresql"])");
  EXPECT_FALSE(redis_->Get("guest:" + guest));
  EXPECT_EQ(pg_->Scalar("SELECT count(*) FROM conversation_cache WHERE user_id = $1", guest), "0");
  EXPECT_EQ(pg_->Scalar(kMessages, conversation_id), "0");
  EXPECT_EQ(pg_->Scalar(kEmbeddings, conversation_id), "0");
  EXPECT_EQ(pg_->Scalar(kMappings, guest), "0");
  EXPECT_EQ(pg_->Scalar("SELECT count(*) FROM usage_metrics WHERE user_id = $1", guest), "1");
}

// 8. Two guests never see or touch each other's data: neither's GET or search
// shows the other's messages, and neither's POST or DELETE changes the
// other's.
TEST_F(ChecklistTest, Point8_TwoGuestsNeverSeeOrTouchEachOthersData) {
  const std::string guest = UniqueGuest("point8"), other = UniqueGuest("other");
  ASSERT_TRUE(Stored(other, "Sundays are my favourite"));
  ASSERT_TRUE(Stored(guest, "What are your opening hours?"));
  ASSERT_TRUE(Stored(guest, "And on Sundays?"));
  EXPECT_EQ(pg_->Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", other), "1");

  auto contents = [&](const json::array& messages) {
    std::vector<std::string> found;
    for (const json::value& message : messages) found.emplace_back(message.at("content").as_string());
    return found;
  };
  auto history = [&](const std::string& of) {
    json::value got = Parse(Get(port(), "/v1/guest/chat/" + of).body);
    return got.is_array() ? contents(got.as_array()) : std::vector<std::string>{};
  };
  auto search = [&](const std::string& of) {
    HttpResult found = Get(port(), "/v1/guest/chat/" + of + "/search?q=sundays&k=5");
    EXPECT_EQ(found.status, 200) << found.body;
    json::object answer = ParseObject(found.body);
    return answer.contains("results") ? contents(answer.at("results").as_array())
                                      : std::vector<std::string>{};
  };
  const std::vector<std::string> others = {"Sundays are my favourite"};
  EXPECT_EQ(history(other), others);
  EXPECT_EQ(search(other), others);
  EXPECT_EQ(history(guest), (std::vector<std::string>{"What are your opening hours?", "And on Sundays?"}));
  std::vector<std::string> guests_found = search(guest);
  EXPECT_EQ(guests_found.size(), 2u);
  EXPECT_EQ(std::count(guests_found.begin(), guests_found.end(), others[0]), 0);

  ASSERT_EQ(HttpClient(port()).Send("DELETE", "/v1/guest/chat/" + guest, "", "").status, 200);
  EXPECT_EQ(history(other), others);
  auto cached = redis_->Get("guest:" + other);
  ASSERT_TRUE(cached) << "the other guest's key went with the DELETE";
  EXPECT_EQ(Parse(*cached).as_array().size(), 1u);
  EXPECT_EQ(pg_->Query(kMessagesOf, other).size(), 1u);
  EXPECT_EQ(pg_->Scalar("SELECT count(*) FROM cache_content_mapping WHERE user_id = $1", other), "1");
}

// Beyond the checklist: search ranks the guest's message that matches first.
TEST_F(ChecklistTest, SearchFindsTheMatchingMessageFirst) {
  const std::string guest = UniqueGuest("search");
  ASSERT_TRUE(Stored(guest, "What are your opening hours?"));
  ASSERT_TRUE(Stored(guest, "And on Sundays?"));
  HttpResult found = Get(port(), "/v1/guest/chat/" + guest + "/search?q=sundays&k=2");
  ASSERT_EQ(found.status, 200) << found.body;
  json::object answer = ParseObject(found.body);
  ASSERT_TRUE(answer.contains("results")) << found.body;
  json::array results = answer.at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("content"), "And on Sundays?");
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
    if (redis_url_.empty()) GTEST_FAIL() << kHowToRun;
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
