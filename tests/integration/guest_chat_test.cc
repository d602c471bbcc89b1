// The guest chat data path end to end: stowaged with the real redis and
// postgres stages, against real servers, checked directly in Redis and
// PostgreSQL as the operators' checklist does with redis-cli and psql.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "stores.h"
#include "support/process.h"
#include "support/services.h"
#include "stowaged_process.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::milliseconds;

std::string UniqueGuest(const std::string& prefix) {
  static std::mt19937_64 random{std::random_device{}()};
  std::ostringstream id;
  id << prefix << "-" << std::hex << random();
  return id.str();
}


// stowaged running the default pipeline's first two stages: redis
// (required), then postgres (required), on the given servers.
class Stowaged {
 public:
  // `server_keys`: more lines of its [server] table.
  Stowaged(const std::string& redis_url, const std::string& database_url, const std::string& server_keys = "")
      : process_(StowagedProcess::FromText(
            "[server]\nlisten = \"${STOWAGE_LISTEN}\"\nworkers = 16\n" + server_keys +
            "plugin_path = [\"" STOWAGE_PLUGIN_DIR "\"]\n"
            "[log]\nlevel = \"info\"\n"
            "[[database]]\nname = \"main\"\nurl = \"" + database_url + "\"\nconnect_timeout_ms = 1000\n"
            "[[stage]]\nname = \"redis\"\nplugin = \"redis\"\npolicy = \"required\"\ntimeout_ms = 2000\n"
            "config = { url = \"" + redis_url + "\", connect_timeout_ms = 300 }\n"
            "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\npolicy = \"required\"\ntimeout_ms = 3000\n"
            "database = \"main\"\n")) {}

  std::uint16_t port() const { return process_->port(); }
  std::string log() const { return process_->log(); }

 private:
  std::unique_ptr<StowagedProcess> process_;
};

std::string MessageBody(const std::string& content, const std::string& role = "user") {
  return json::serialize(json::object{{"role", role}, {"content", content}});
}

json::value Parse(const HttpResult& result) {
  boost::system::error_code ec;
  json::value value = json::parse(result.body, ec);
  EXPECT_FALSE(ec) << "not JSON: " << result.body;
  return value;
}

// The suite's shared servers (started by scripts/test) and one stowaged on them.
class GuestChatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_url_ = RequireEnv("STOWAGE_TEST_REDIS_URL");
    database_url_ = RequireEnv("STOWAGE_TEST_DATABASE_URL");
    if (redis_url_.empty() || database_url_.empty()) return;
    server_ = new Stowaged(redis_url_, database_url_);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_ == nullptr) GTEST_FAIL() << "run the suite through scripts/test";
  }

  HttpResult Post(const std::string& guest, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    HttpClient client(server_->port());
    return client.Send("POST", "/v1/guest/chat/" + guest, body, "application/json", headers);
  }
  HttpResult Get(const std::string& guest) {
    HttpClient client(server_->port());
    return client.Send("GET", "/v1/guest/chat/" + guest, "", "");
  }
  HttpResult Delete(const std::string& guest) {
    HttpClient client(server_->port());
    return client.Send("DELETE", "/v1/guest/chat/" + guest, "", "");
  }

  static inline std::string redis_url_, database_url_;
  static inline Stowaged* server_ = nullptr;
};

constexpr const char* kMessagesOf =
    "SELECT m.sequence, m.role, m.content, m.message_hash, m.id, c.id, c.message_count "
    "FROM message_cache m JOIN conversation_cache c ON c.id = m.conversation_id "
    "WHERE c.platform = 'guest' AND c.user_id = $1 ORDER BY m.sequence";

TEST_F(GuestChatTest, PostStoresTheMessageInRedisAndPostgresAsTheChecklistSays) {
  const std::string guest = UniqueGuest("checklist");
  HttpResult posted = Post(guest, MessageBody("Hello, stowage"));
  ASSERT_EQ(posted.status, 200) << posted.body;
  json::object answer = Parse(posted).as_object();
  EXPECT_EQ(answer.at("status"), "stored");
  EXPECT_EQ(answer.at("guest_id"), guest.c_str());
  EXPECT_TRUE(answer.at("message_id").is_int64());
  EXPECT_TRUE(answer.at("conversation_id").is_int64());
  EXPECT_EQ(answer.at("sequence"), 0);
  EXPECT_EQ(json::serialize(answer.at("stored_in")), R"(["redis","postgresql"])");
  EXPECT_EQ(json::serialize(answer.at("degraded")), "[]");

  RedisProbe redis(redis_url_);
  auto value = redis.Get("guest:" + guest);
  ASSERT_TRUE(value) << "no key guest:" << guest;
  json::array stored = json::parse(*value).as_array();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].at("role"), "user");
  EXPECT_EQ(stored[0].at("content"), "Hello, stowage");
  EXPECT_EQ(stored[0].as_object().size(), 3u) << *value;
  long long ttl = redis.Ttl("guest:" + guest);
  EXPECT_GT(ttl, 86390);
  EXPECT_LE(ttl, 86400);

  PostgresProbe pg(database_url_);
  auto rows = pg.Query(kMessagesOf, guest);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "0");
  EXPECT_EQ(rows[0][1], "user");
  EXPECT_EQ(rows[0][2], "Hello, stowage");
  EXPECT_EQ(rows[0][3].size(), 64u) << "message_hash is not a hex SHA-256: " << rows[0][3];
  EXPECT_EQ(rows[0][4], std::to_string(answer.at("message_id").as_int64()));
  EXPECT_EQ(rows[0][5], std::to_string(answer.at("conversation_id").as_int64()));
  EXPECT_EQ(rows[0][6], "1");
}

TEST_F(GuestChatTest, ASecondPostAddsOneMessageEverywhereAndRenewsTheTtl) {
  const std::string guest = UniqueGuest("second");
  ASSERT_EQ(Post(guest, MessageBody("one")).status, 200);
  RedisProbe redis(redis_url_);
  redis.Expire("guest:" + guest, 100);
  HttpResult second = Post(guest, MessageBody("two", "assistant"));
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(Parse(second).at("sequence"), 1);
  EXPECT_GT(redis.Ttl("guest:" + guest), 86000) << "the TTL was not renewed by the write";
  EXPECT_EQ(json::parse(*redis.Get("guest:" + guest)).as_array().size(), 2u);
  PostgresProbe pg(database_url_);
  auto rows = pg.Query(kMessagesOf, guest);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1][0], "1");
  EXPECT_EQ(rows[1][6], "2");
}

TEST_F(GuestChatTest, GetReturnsEveryMessageInOrderAndAnUnknownGuestGetsAnEmptyList) {
  const std::string guest = UniqueGuest("order");
  for (const char* content : {"first", "second", "third"}) ASSERT_EQ(Post(guest, MessageBody(content)).status, 200);
  HttpResult got = Get(guest);
  ASSERT_EQ(got.status, 200);
  json::array messages = Parse(got).as_array();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].at("content"), "first");
  EXPECT_EQ(messages[2].at("content"), "third");
  EXPECT_EQ(Get(UniqueGuest("nobody")).body, "[]");
}

TEST_F(GuestChatTest, AGetMissingInRedisIsServedByPostgresAndRefillsRedis) {
  const std::string guest = UniqueGuest("refill");
  ASSERT_EQ(Post(guest, MessageBody("kept")).status, 200);
  ASSERT_EQ(Post(guest, MessageBody("also kept")).status, 200);
  RedisProbe redis(redis_url_);
  const std::string before = *redis.Get("guest:" + guest);
  redis.Del("guest:" + guest);

  HttpResult miss = Get(guest);
  ASSERT_EQ(miss.status, 200);
  EXPECT_EQ(Parse(miss).as_array().size(), 2u);
  auto refilled = redis.Get("guest:" + guest);
  ASSERT_TRUE(refilled) << "the read did not refill Redis";
  EXPECT_EQ(json::parse(*refilled), json::parse(before)) << "Redis and PostgreSQL serve different text";
  EXPECT_GT(redis.Ttl("guest:" + guest), 86000);
  EXPECT_EQ(Get(guest).body, miss.body);
}

TEST_F(GuestChatTest, DeleteRemovesTheKeyAndTheRowsAndNamesWhereItDeleted) {
  const std::string guest = UniqueGuest("delete");
  ASSERT_EQ(Post(guest, MessageBody("bye")).status, 200);
  HttpResult deleted = Delete(guest);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  json::object answer = Parse(deleted).as_object();
  EXPECT_EQ(answer.at("status"), "deleted");
  EXPECT_EQ(json::serialize(answer.at("deleted_from")), R"(["redis","postgresql"])");
  RedisProbe redis(redis_url_);
  EXPECT_FALSE(redis.Get("guest:" + guest));
  PostgresProbe pg(database_url_);
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM conversation_cache WHERE user_id = $1", guest), "0");
  EXPECT_EQ(Get(guest).body, "[]");
  EXPECT_EQ(json::serialize(Parse(Delete(guest)).at("deleted_from")), "[]");
}

TEST_F(GuestChatTest, TwoGuestsNeverSeeOrTouchEachOthersData) {
  const std::string a = UniqueGuest("alice"), b = UniqueGuest("bob");
  ASSERT_EQ(Post(a, MessageBody("from a")).status, 200);
  ASSERT_EQ(Post(b, MessageBody("from b")).status, 200);
  json::array of_a = Parse(Get(a)).as_array();
  ASSERT_EQ(of_a.size(), 1u);
  EXPECT_EQ(of_a[0].at("content"), "from a");
  ASSERT_EQ(Delete(a).status, 200);
  json::array of_b = Parse(Get(b)).as_array();
  ASSERT_EQ(of_b.size(), 1u);
  EXPECT_EQ(of_b[0].at("content"), "from b");
  PostgresProbe pg(database_url_);
  EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", b), "1");
}

TEST_F(GuestChatTest, HundredParallelPostsToOneGuestLoseNothingAndNumberWithoutGaps) {
  const std::string guest = UniqueGuest("parallel");
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      HttpClient client(server_->port());
      for (int i = next++; i < 100; i = next++) {
        try {
          if (client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("message " + std::to_string(i))).status !=
              200)
            ++failed;
        } catch (const std::exception&) {
          ++failed;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);

  PostgresProbe pg(database_url_);
  auto rows = pg.Query(kMessagesOf, guest);
  ASSERT_EQ(rows.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(rows[i][0], std::to_string(i));
  EXPECT_EQ(rows[0][6], "100");
  std::vector<std::string> stored;  // contents in sequence order
  for (const auto& row : rows) stored.push_back(row[2]);
  auto contents_of = [](const json::array& messages) {
    std::vector<std::string> contents;
    for (const auto& entry : messages) contents.push_back(std::string(entry.at("content").as_string()));
    return contents;
  };

  // Writes that finish out of order drop the cached array rather than
  // reorder it: Redis holds PostgreSQL's history exactly, or nothing.
  RedisProbe redis(redis_url_);
  if (auto cached = redis.Get("guest:" + guest)) EXPECT_EQ(contents_of(json::parse(*cached).as_array()), stored);
  // GET shows all of them in sequence order, and refills Redis with them.
  HttpClient client(server_->port());
  HttpResult read = client.Send("GET", "/v1/guest/chat/" + guest);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(contents_of(json::parse(read.body).as_array()), stored);
  auto refilled = redis.Get("guest:" + guest);
  ASSERT_TRUE(refilled.has_value()) << "the GET did not refill Redis";
  EXPECT_EQ(contents_of(json::parse(*refilled).as_array()), stored);
}

TEST_F(GuestChatTest, ARetriedPostWithAnIdempotencyKeyIsStoredOnce) {
  const std::string guest = UniqueGuest("idempotent");
  const std::string body = MessageBody("exactly once");
  HttpResult first = Post(guest, body, {{"Idempotency-Key", "key-1"}});
  ASSERT_EQ(first.status, 200) << first.body;
  HttpResult retry = Post(guest, body, {{"Idempotency-Key", "key-1"}});
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(Post(guest, MessageBody("another"), {{"Idempotency-Key", "key-1"}}).status, 409);
  PostgresProbe pg(database_url_);
  EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest), "1");
  RedisProbe redis(redis_url_);
  EXPECT_EQ(json::parse(*redis.Get("guest:" + guest)).as_array().size(), 1u);
}

TEST_F(GuestChatTest, ARetryToAnotherStowagedIsReplayedAndStoredOnce) {
  Stowaged other(redis_url_, database_url_);
  const std::string guest = UniqueGuest("two-instances");
  const std::string body = MessageBody("stored once across instances");
  HttpResult first = Post(guest, body, {{"Idempotency-Key", "cross-1"}});
  ASSERT_EQ(first.status, 200) << first.body;
  HttpClient client(other.port());
  HttpResult retry =
      client.Send("POST", "/v1/guest/chat/" + guest, body, "application/json", {{"Idempotency-Key", "cross-1"}});
  EXPECT_EQ(retry.status, 200) << retry.body << "\n" << other.log();
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(retry.body, first.body);
  PostgresProbe pg(database_url_);
  EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest), "1");
  const std::string metrics = client.Send("GET", "/metrics").body;
  EXPECT_NE(metrics.find("\nstowage_idempotent_replays_total 1\n"), std::string::npos) << metrics;
}

TEST_F(GuestChatTest, APostThenAGetOfTheSameGuestIsServedByRedis) {
  const std::string guest = UniqueGuest("warm");
  ASSERT_EQ(Post(guest, MessageBody("first")).status, 200);
  ASSERT_EQ(Post(guest, MessageBody("second")).status, 200);
  // Wrong data in the store would show if the GET were not served by Redis.
  PostgresProbe pg(database_url_);
  pg.Exec("UPDATE message_cache SET content = 'changed behind the cache' WHERE conversation_id = "
          "(SELECT id FROM conversation_cache WHERE platform = 'guest' AND user_id = '" + guest + "')");
  HttpResult read = Get(guest);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.body.find("changed behind the cache"), std::string::npos) << read.body;
  EXPECT_EQ(Parse(read).as_array().size(), 2u);
}

TEST_F(GuestChatTest, AfterDeleteNoRefillBringsTheHistoryBack) {
  const std::string guest = UniqueGuest("erased");
  ASSERT_EQ(Post(guest, MessageBody("secret")).status, 200);
  RedisProbe redis(redis_url_);
  redis.Del("guest:" + guest);  // cold: the next GET refills
  ASSERT_EQ(Get(guest).status, 200);
  ASSERT_EQ(Delete(guest).status, 200);
  EXPECT_FALSE(redis.Get("guest:" + guest).has_value());
  EXPECT_FALSE(redis.Get("{guest:" + guest + "}:version").has_value());
  EXPECT_EQ(Get(guest).body, "[]");
  EXPECT_FALSE(redis.Get("guest:" + guest).has_value());
}

// ---------------------------------------------------------------------------
// Pages of history (docs/api.md): ?limit=N&before=SEQ, the Link to the page
// before, and the cache that is filled only from a whole history.

// The contents of a GET's answer, in order.
std::vector<std::string> ContentsOf(const HttpResult& result) {
  std::vector<std::string> out;
  const json::value parsed = Parse(result);
  for (const auto& m : parsed.as_array()) out.push_back(std::string(m.at("content").as_string()));
  return out;
}

// The target of a `Link: <target>; rel="next"` header; empty without one.
std::string NextTarget(const HttpResult& result) {
  const std::string link = result.header("link");
  const auto open = link.find('<'), close = link.find('>');
  if (open == std::string::npos || close == std::string::npos || link.find("rel=\"next\"") == std::string::npos)
    return "";
  return link.substr(open + 1, close - open - 1);
}

// The contents PostgreSQL holds for the guest, by sequence.
std::vector<std::string> StoredContents(const std::string& database_url, const std::string& guest) {
  PostgresProbe pg(database_url);
  std::vector<std::string> out;
  for (const auto& row : pg.Query(kMessagesOf, guest)) out.push_back(row[2]);
  return out;
}

// Follows the Link headers from `target` to the guest's first message;
// returns the messages of every page put back in order (oldest first).
std::vector<std::string> WalkPages(std::uint16_t port, std::string target, int* pages) {
  std::vector<std::vector<std::string>> walked;
  HttpClient client(port);
  while (!target.empty() && walked.size() < 100) {
    HttpResult page = client.Send("GET", target, "", "");
    EXPECT_EQ(page.status, 200) << target << ": " << page.body;
    if (page.status != 200) break;
    walked.push_back(ContentsOf(page));
    target = NextTarget(page);
  }
  *pages = static_cast<int>(walked.size());
  std::vector<std::string> all;
  for (auto it = walked.rbegin(); it != walked.rend(); ++it) all.insert(all.end(), it->begin(), it->end());
  return all;
}

TEST_F(GuestChatTest, APageReadOnACacheMissStoresNothingInRedisAndTheNextGetIsTheWholeHistory) {
  const std::string guest = UniqueGuest("page-miss"), key = "guest:" + guest;
  for (const char* content : {"m0", "m1", "m2", "m3", "m4"}) ASSERT_EQ(Post(guest, MessageBody(content)).status, 200);
  RedisProbe redis(redis_url_);
  redis.Del(key);  // cold: the next read misses

  HttpClient client(server_->port());
  HttpResult page = client.Send("GET", "/v1/guest/chat/" + guest + "?limit=2", "", "");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(ContentsOf(page), (std::vector<std::string>{"m3", "m4"}));
  EXPECT_EQ(page.header("link"), "</v1/guest/chat/" + guest + "?limit=2&before=3>; rel=\"next\"");
  EXPECT_EQ(page.header("x-history-truncated"), "");
  EXPECT_FALSE(redis.Get(key).has_value()) << "a page was cached as if it were the guest's whole history";

  // The whole history, from PostgreSQL, fills the cache; the cache then
  // holds exactly what PostgreSQL holds and serves the pages.
  const std::vector<std::string> stored = StoredContents(database_url_, guest);
  ASSERT_EQ(stored, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
  HttpResult whole = Get(guest);
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(ContentsOf(whole), stored);
  EXPECT_EQ(whole.header("link"), "");
  auto cached = redis.Get(key);
  ASSERT_TRUE(cached.has_value()) << "the whole history did not refill Redis";
  std::vector<std::string> in_redis;
  const json::value cached_array = json::parse(*cached);
  for (const auto& m : cached_array.as_array()) in_redis.push_back(std::string(m.at("content").as_string()));
  EXPECT_EQ(in_redis, stored);

  // Served by Redis: a change made behind the cache does not show.
  PostgresProbe(database_url_)
      .Exec("UPDATE message_cache SET content = 'changed behind the cache' WHERE conversation_id = "
            "(SELECT id FROM conversation_cache WHERE platform = 'guest' AND user_id = '" + guest + "')");
  HttpResult older = client.Send("GET", "/v1/guest/chat/" + guest + "?limit=2&before=3", "", "");
  ASSERT_EQ(older.status, 200) << older.body;
  EXPECT_EQ(ContentsOf(older), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(NextTarget(older), "/v1/guest/chat/" + guest + "?limit=2&before=1");
}

TEST_F(GuestChatTest, FollowingTheLinksWalksTheWholeHistoryFromRedisAndFromPostgres) {
  const std::string guest = UniqueGuest("page-walk"), key = "guest:" + guest;
  for (int i = 0; i < 7; ++i) ASSERT_EQ(Post(guest, MessageBody("m" + std::to_string(i))).status, 200);
  const std::vector<std::string> stored = StoredContents(database_url_, guest);
  ASSERT_EQ(stored.size(), 7u);
  RedisProbe redis(redis_url_);
  ASSERT_TRUE(redis.Get(key).has_value()) << "the posts did not fill Redis";

  int pages = 0;
  EXPECT_EQ(WalkPages(server_->port(), "/v1/guest/chat/" + guest + "?limit=3", &pages), stored);
  EXPECT_EQ(pages, 3);  // m4-m6, m1-m3, m0

  redis.Del(key);  // every page from PostgreSQL, none filling the cache
  EXPECT_EQ(WalkPages(server_->port(), "/v1/guest/chat/" + guest + "?limit=3", &pages), stored);
  EXPECT_EQ(pages, 3);
  EXPECT_FALSE(redis.Get(key).has_value()) << "a page was cached as if it were the guest's whole history";
}

TEST(GuestChatHistoryTest, AHistoryLongerThanMaxHistoryAnswersTheNewestAndLinksTheRest) {
  const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
  const std::string database_url = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (redis_url.empty() || database_url.empty()) GTEST_FAIL() << "run the suite through scripts/test";
  Stowaged server(redis_url, database_url, "max_history = 3\n");
  HttpClient client(server.port());
  const std::string guest = UniqueGuest("max-history");
  for (const char* content : {"m0", "m1", "m2", "m3", "m4"})
    ASSERT_EQ(client.Send("POST", "/v1/guest/chat/" + guest, MessageBody(content)).status, 200) << server.log();

  for (bool cold : {false, true}) {
    if (cold) RedisProbe(redis_url).Del("guest:" + guest);
    HttpResult newest = client.Send("GET", "/v1/guest/chat/" + guest, "", "");
    ASSERT_EQ(newest.status, 200) << newest.body;
    EXPECT_EQ(ContentsOf(newest), (std::vector<std::string>{"m2", "m3", "m4"})) << "cold=" << cold;
    EXPECT_EQ(newest.header("link"), "</v1/guest/chat/" + guest + "?limit=3&before=2>; rel=\"next\"");
    EXPECT_EQ(newest.header("x-history-truncated"), "true");
    HttpResult rest = client.Send("GET", NextTarget(newest), "", "");
    ASSERT_EQ(rest.status, 200) << rest.body;
    EXPECT_EQ(ContentsOf(rest), (std::vector<std::string>{"m0", "m1"}));
    EXPECT_EQ(rest.header("link"), "");
  }
  // The history of 5 was never whole in one answer: Redis was not refilled.
  EXPECT_FALSE(RedisProbe(redis_url).Get("guest:" + guest).has_value());

  HttpResult too_many = client.Send("GET", "/v1/guest/chat/" + guest + "?limit=4", "", "");
  EXPECT_EQ(too_many.status, 400);
  EXPECT_NE(too_many.body.find("parameter 'limit' must be a whole number from 1 to 3 (server.max_history)"),
            std::string::npos)
      << too_many.body;
  HttpResult unknown = client.Send("GET", "/v1/guest/chat/" + guest + "?page=2", "", "");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("unknown parameter 'page'"), std::string::npos) << unknown.body;
}

// ---------------------------------------------------------------------------
// Outages: a private server is stopped under a running stowaged, then started.

TEST(GuestChatOutageTest, AfterRedisLosesItsDataGetShowsTheWholeHistoryAndPostsExtendIt) {
  const std::string database_url = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (database_url.empty()) return;
  ServiceInstance redis(Service::kRedis);
  ASSERT_TRUE(redis.running());
  Stowaged server(redis.url(), database_url);
  HttpClient client(server.port());
  const std::string guest = UniqueGuest("redis-restart");
  for (const char* content : {"one", "two", "three"})
    ASSERT_EQ(client.Send("POST", "/v1/guest/chat/" + guest, MessageBody(content)).status, 200) << server.log();

  ASSERT_TRUE(redis.Stop());
  ASSERT_TRUE(redis.Start());  // empty: it keeps nothing on disk
  client.Close();
  ASSERT_EQ(client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("four")).status, 200) << server.log();
  RedisProbe probe(redis.url());
  // The append found no array: it stored nothing rather than a partial one.
  EXPECT_FALSE(probe.Get("guest:" + guest).has_value());
  auto contents = [&] {
    std::vector<std::string> out;
    const json::value read = Parse(client.Send("GET", "/v1/guest/chat/" + guest));
    for (const auto& m : read.as_array()) out.push_back(std::string(m.at("content").as_string()));
    return out;
  };
  const std::vector<std::string> all = {"one", "two", "three", "four"};
  EXPECT_EQ(contents(), all);  // from PostgreSQL, refilling Redis
  ASSERT_EQ(client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("five")).status, 200);
  EXPECT_EQ(contents(), (std::vector<std::string>{"one", "two", "three", "four", "five"}));  // from Redis
  auto cached = probe.Get("guest:" + guest);
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(json::parse(*cached).as_array().size(), 5u);
}

std::string ErrorMessage(const HttpResult& result) {
  boost::system::error_code ec;
  auto value = json::parse(result.body, ec);
  if (ec || !value.is_object() || !value.as_object().contains("error")) return result.body;
  return std::string(value.at("error").at("message").as_string());
}

// The port of a URL such as redis://127.0.0.1:6379/0.
std::string PortOf(const std::string& url) {
  std::string port = url.substr(url.rfind(':') + 1);
  return port.substr(0, port.find_first_not_of("0123456789"));
}

// An error answer shows nothing of what is behind the server: not the host,
// port, database or user of `url`, no SQL or SQLSTATE; it carries the
// request's id (`request_id`, equal to its X-Request-Id header).
void ExpectNoDetail(const HttpResult& failed, const std::string& url, const std::string& request_id) {
  for (const std::string& piece : {std::string("127.0.0.1"), std::string("localhost"), PortOf(url),
                                   std::string("stowage"), std::string("SQLSTATE"), std::string("relation"),
                                   std::string("Connection refused"), std::string("connection to server")}) {
    EXPECT_EQ(failed.body.find(piece), std::string::npos) << piece << " in " << failed.body;
  }
  EXPECT_FALSE(request_id.empty());
  EXPECT_EQ(failed.header("x-request-id"), request_id);
  boost::system::error_code ec;
  auto value = json::parse(failed.body, ec);
  ASSERT_FALSE(ec) << failed.body;
  const json::value* id = value.find_pointer("/error/request_id", ec);
  ASSERT_TRUE(id != nullptr && id->is_string()) << failed.body;
  EXPECT_EQ(std::string(id->as_string()), request_id) << failed.body;
}

TEST(GuestChatOutageTest, RedisDownFailsThePostNamingRedisAndPostgresKeepsNothing) {
  const std::string database_url = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (database_url.empty()) return;
  ServiceInstance redis(Service::kRedis);
  ASSERT_TRUE(redis.running());
  Stowaged server(redis.url(), database_url);
  HttpClient client(server.port());
  const std::string guest = UniqueGuest("redis-down");

  ASSERT_TRUE(redis.Stop());
  HttpResult failed = client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("lost?"), "application/json",
                                  {{"X-Request-Id", "redis-down-" + guest}});
  EXPECT_EQ(failed.status, 503) << failed.body;
  EXPECT_NE(ErrorMessage(failed).find("stage 'redis'"), std::string::npos) << failed.body;
  ExpectNoDetail(failed, redis.url(), "redis-down-" + guest);
  // The log has the detail, on the lines of this request.
  bool logged = false;
  std::istringstream log(server.log());
  for (std::string line; std::getline(log, line);)
    logged = logged || (line.find("[Redis]") != std::string::npos && line.find(PortOf(redis.url())) != std::string::npos &&
                        line.find("request_id=redis-down-" + guest) != std::string::npos);
  EXPECT_TRUE(logged) << server.log();
  PostgresProbe pg(database_url);
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM conversation_cache WHERE user_id = $1", guest), "0");

  ASSERT_TRUE(redis.Start());
  HttpResult back = client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("stored"));
  EXPECT_EQ(back.status, 200) << back.body << "\n" << server.log();
  EXPECT_EQ(pg.Scalar("SELECT message_count FROM conversation_cache WHERE user_id = $1", guest), "1");
}

TEST(GuestChatOutageTest, PostgresDownFailsThePostNamingPostgresAndRedisKeepsItsHistory) {
  const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
  if (redis_url.empty()) return;
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.running());
  // By host name: no answer may show it.
  std::string by_name = postgres.url();
  if (auto at = by_name.find("127.0.0.1"); at != std::string::npos) by_name.replace(at, 9, "localhost");
  Stowaged server(redis_url, by_name);
  HttpClient client(server.port());
  const std::string guest = UniqueGuest("postgres-down");
  ASSERT_EQ(client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("before")).status, 200) << server.log();

  ASSERT_TRUE(postgres.Stop());
  HttpResult failed = client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("lost?"));
  EXPECT_EQ(failed.status, 503) << failed.body;
  EXPECT_NE(ErrorMessage(failed).find("stage 'postgres'"), std::string::npos) << failed.body;
  ExpectNoDetail(failed, postgres.url(), failed.header("x-request-id"));
  RedisProbe redis(redis_url);
  json::array cached = json::parse(*redis.Get("guest:" + guest)).as_array();
  ASSERT_EQ(cached.size(), 1u) << "the failed message was left in Redis";
  EXPECT_EQ(cached[0].at("content"), "before");

  ASSERT_TRUE(postgres.Start());
  HttpResult back = client.Send("POST", "/v1/guest/chat/" + guest, MessageBody("after"));
  EXPECT_EQ(back.status, 200) << back.body << "\n" << server.log();
  EXPECT_EQ(Parse(back).at("sequence"), 1);
}

// ---------------------------------------------------------------------------
// stowage migrate: prepares the schema alone, and says when it cannot.

int RunMigrate(const std::string& redis_url, const std::string& database_url, std::string* output) {
  fs::path folder = fs::temp_directory_path() / ("stowage_migrate_" + std::to_string(::getpid()));
  fs::create_directories(folder);
  std::ofstream(folder / "pipeline.toml")
      << "[server]\nplugin_path = [\"" << STOWAGE_PLUGIN_DIR << "\"]\n"
      << "[[stage]]\nname = \"redis\"\nplugin = \"redis\"\nconfig = { url = \"" << redis_url << "\" }\n"
      << "[[database]]\nname = \"main\"\nurl = \"" << database_url << "\"\nconnect_timeout_ms = 500\n"
      << "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\ndatabase = \"main\"\n";
  ChildProcess migrate({STOWAGE_CLI_PATH, "migrate", (folder / "pipeline.toml").string()}, folder / "out.log");
  auto code = migrate.Wait(milliseconds(60000));
  *output = migrate.ReadOutput();
  fs::remove_all(folder);
  return code.value_or(-1);
}

TEST(StowageMigrateTest, CreatesTheSchemaOfAnEmptyDatabaseAndIsSafeToRunTwice) {
  const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
  if (redis_url.empty()) return;
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.running());
  std::string output;
  ASSERT_EQ(RunMigrate(redis_url, postgres.url(), &output), 0) << output;
  EXPECT_NE(output.find("postgres: ready"), std::string::npos) << output;
  PostgresProbe pg(postgres.url());
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = $1", "message_cache"), "1");
  EXPECT_EQ(RunMigrate(redis_url, postgres.url(), &output), 0) << output;
}

TEST(StowageMigrateTest, FailsNamingTheStageWhenItsDatabaseIsDown) {
  const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
  if (redis_url.empty()) return;
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.Stop());
  std::string output;
  EXPECT_EQ(RunMigrate(redis_url, postgres.url(), &output), 1) << output;
  EXPECT_NE(output.find("postgres: not ready: unavailable"), std::string::npos) << output;
}

}  // namespace
}  // namespace stowage::testing
