// RedisStage against real Redis servers: the shared one named by
// STOWAGE_TEST_REDIS_URL (scripts/test starts it), and private redis-server
// processes this file starts when a test must stop, pause or configure one.
#include "redis_stage.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "chat_json.h"
#include "stowage/chat/attributes.h"
#include "redis_test_config.h"
#include "redis_url.h"
#include "stowage/testkit/loggers.h"

namespace stowage::redis {
namespace {

using testkit::CapturingLogger;

using std::chrono::milliseconds;
using std::chrono::seconds;

// A plain hiredis connection for looking at what the stage stored, the way
// any other client of the key would.
class PlainClient {
 public:
  explicit PlainClient(const std::string& url_text) {
    RedisUrl url = ParseRedisUrl(url_text);
    context_ = url.kind == RedisUrl::Kind::kUnix ? redisConnectUnix(url.socket_path.c_str())
                                                 : redisConnect(url.host.c_str(), url.port);
    if (context_ == nullptr || context_->err != 0)
      throw std::runtime_error("cannot connect to " + url.Address() + " for checks");
    if (!url.password.empty()) {
      if (url.user.empty())
        Free(Command({"AUTH", url.password}));
      else
        Free(Command({"AUTH", url.user, url.password}));
    }
    Free(Command({"SELECT", std::to_string(url.db)}));
  }
  ~PlainClient() {
    if (context_ != nullptr) redisFree(context_);
  }

  redisReply* Command(const std::vector<std::string>& argv) {
    std::vector<const char*> args;
    std::vector<size_t> lengths;
    for (const auto& arg : argv) {
      args.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    auto* reply =
        static_cast<redisReply*>(redisCommandArgv(context_, int(args.size()), args.data(), lengths.data()));
    if (reply == nullptr) throw std::runtime_error(std::string("check command failed: ") + context_->errstr);
    return reply;
  }
  // The string value of `key`; nullopt when it does not exist.
  std::optional<std::string> Get(const std::string& key) {
    redisReply* reply = Command({"GET", key});
    std::optional<std::string> value;
    if (reply->type == REDIS_REPLY_STRING) value = std::string(reply->str, reply->len);
    Free(reply);
    return value;
  }
  // Field `field` of hash `key`; nullopt when it does not exist.
  std::optional<std::string> Field(const std::string& key, const std::string& field) {
    redisReply* reply = Command({"HGET", key, field});
    std::optional<std::string> value;
    if (reply->type == REDIS_REPLY_STRING) value = std::string(reply->str, reply->len);
    Free(reply);
    return value;
  }
  long long Integer(const std::vector<std::string>& argv) {
    redisReply* reply = Command(argv);
    long long value = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -999;
    Free(reply);
    return value;
  }
  void Run(const std::vector<std::string>& argv) { Free(Command(argv)); }

 private:
  static void Free(redisReply* reply) { freeReplyObject(reply); }
  redisContext* context_ = nullptr;
};

// A redis-server of its own, on a free port and a unix socket, for tests that
// stop, pause or reconfigure the server. Shut down when destroyed.
class PrivateRedis {
 public:
  PrivateRedis()
      : port_(FreePort()),
        socket_("/tmp/stowage-redis-test-" + std::to_string(port_) + ".sock"),
        pidfile_("/tmp/stowage-redis-test-" + std::to_string(port_) + ".pid") {}
  ~PrivateRedis() { Stop(); }

  int port() const { return port_; }
  std::string url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }
  std::string socket_url(int db) const { return "unix://" + socket_ + "?db=" + std::to_string(db); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Starts the server and waits until it answers.
  bool Start() {
    std::string command = "redis-server --port " + std::to_string(port_) + " --unixsocket " + socket_ +
                          " --pidfile " + pidfile_ +
                          " --save '' --appendonly no --dir /tmp --daemonize yes --logfile /dev/null";
    if (std::system(command.c_str()) != 0) return false;
    for (int i = 0; i < 100; ++i) {
      if (Answers()) return running_ = true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }
  // Stops the server without saving and waits until it is gone.
  void Stop() {
    if (!running_) return;
    Thaw();
    std::string command = "redis-cli -p " + std::to_string(port_) + " shutdown nosave >/dev/null 2>&1";
    (void)std::system(command.c_str());
    for (int i = 0; i < 100 && Answers(); ++i) std::this_thread::sleep_for(milliseconds(50));
    running_ = false;
  }

  // Freezes the server (SIGSTOP): it holds its connections open and answers
  // nothing until Thaw(), like a server stalled by the host or a long fork.
  bool Freeze() { return Signal(SIGSTOP) && (frozen_ = true); }
  // Lets a frozen server go on (SIGCONT): it runs what it received meanwhile.
  void Thaw() {
    if (frozen_ && Signal(SIGCONT)) frozen_ = false;
  }

 private:
  bool Signal(int signal) const {
    std::ifstream file(pidfile_);
    pid_t pid = 0;
    return file >> pid && pid > 0 && kill(pid, signal) == 0;
  }
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("cannot find a free port for a private redis-server");
    close(fd);
    return ntohs(addr.sin_port);
  }
  bool Answers() const {
    timeval tv{0, 200000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    bool ok = c != nullptr && c->err == 0;
    if (ok) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = reply != nullptr && reply->type == REDIS_REPLY_STATUS;
      if (reply != nullptr) freeReplyObject(reply);
    }
    if (c != nullptr) redisFree(c);
    return ok;
  }

  int port_;
  std::string socket_;
  std::string pidfile_;
  bool running_ = false;
  bool frozen_ = false;
};

std::string UniqueGuest(const std::string& base) {
  static std::mt19937_64 random{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard lock(mu);
  return "t-" + base + "-" + std::to_string(random() % 1000000000);
}

Message Msg(std::string content, std::string role = "user") {
  return {std::move(role), std::move(content), "2026-03-04T05:06:07.123456Z"};
}

// The messages in a raw stored value, parsed by Boost.JSON directly; fails the
// test unless each element has exactly role, content, timestamp in that order.
std::vector<Message> ParseRaw(const std::string& value) {
  std::vector<Message> messages;
  boost::json::value parsed = boost::json::parse(value);
  for (const boost::json::value& element : parsed.as_array()) {
    const boost::json::object& object = element.as_object();
    std::vector<std::string> names;
    for (const auto& member : object) names.push_back(std::string(member.key()));
    EXPECT_EQ(names, (std::vector<std::string>{"role", "content", "timestamp"}));
    messages.push_back({std::string(object.at("role").as_string()),
                        std::string(object.at("content").as_string()),
                        std::string(object.at("timestamp").as_string())});
  }
  return messages;
}

// The version record beside a guest's array (cache_scripts.h), as any
// client finds it: inside the key prefix, in the array's cluster slot.
std::string VersionKey(const std::string& guest, const std::string& prefix = "guest:") {
  return prefix + "{" + prefix + guest + "}:version";
}

// One write, with the context a host would give it. In a pipeline without a
// database the host calls Into() alone (Redis is the store); with one, the
// message is Numbered() by the store, and the host calls Prepare() before
// the COMMIT, then Into() after it, or Abandon() when it did not happen.
struct Write {
  std::string guest;
  Message message;
  Attributes attributes;

  Status Prepare(RedisStage& stage, Logger& log) {
    WriteContext ctx{guest, message, Deadline::After(milliseconds(5000)), log, attributes};
    return stage.prepare(ctx);
  }
  Status Into(RedisStage& stage, Logger& log, milliseconds budget = milliseconds(5000)) {
    WriteContext ctx{guest, message, Deadline::After(budget), log, attributes};
    return stage.write(ctx);
  }
  Status Abandon(RedisStage& stage, Logger& log, Uncommitted why) {
    WriteContext ctx{guest, message, Deadline::After(milliseconds(5000)), log, attributes};
    return stage.abandon(ctx, why);
  }
  Status Undo(RedisStage& stage, Logger& log) {
    WriteContext ctx{guest, message, Deadline::After(milliseconds(5000)), log, attributes};
    return stage.compensate(ctx);
  }
  // Prepare(), the COMMIT that succeeded, Into(): a POST with a store behind.
  Status Post(RedisStage& stage, Logger& log) {
    Status prepared = Prepare(stage, log);
    return prepared.ok() ? Into(stage, log) : prepared;
  }
};

// A write of the message the store numbered `sequence` (0 for the guest's first).
Write Numbered(const std::string& guest, int sequence, Message message) {
  Write write{guest, std::move(message)};
  write.attributes.set(chat::kSequence, std::to_string(sequence));
  return write;
}

// The store's history of a guest, posted in order: message i has sequence i.
std::vector<Message> PostHistory(RedisStage& stage, Logger& log, const std::string& guest, int count) {
  std::vector<Message> history;
  for (int i = 0; i < count; ++i) {
    Write write = Numbered(guest, i, Msg("message " + std::to_string(i)));
    EXPECT_TRUE(write.Post(stage, log).ok()) << i;
    history.push_back(write.message);
  }
  return history;
}

// A write whose context is not needed afterwards.
Status WriteNew(RedisStage& stage, Logger& log, const std::string& guest, Message message,
                milliseconds budget = milliseconds(5000)) {
  return Write{guest, std::move(message)}.Into(stage, log, budget);
}

// The calls of one GET (read, then refill) or one DELETE (prepare_erase,
// then erase) share `notes`, as the host's do; null: a fresh object.
ReadResult ReadGuest(RedisStage& stage, Logger& log, const std::string& guest, Attributes* notes = nullptr) {
  Attributes fresh;
  GuestContext ctx{guest, Deadline::After(milliseconds(5000)), log, nullptr, notes ? notes : &fresh};
  return stage.read(ctx);
}
Status RefillGuest(RedisStage& stage, Logger& log, const std::string& guest,
                   const std::vector<Message>& messages, Attributes* notes) {
  GuestContext ctx{guest, Deadline::After(milliseconds(5000)), log, nullptr, notes};
  return stage.refill(ctx, messages);
}

class RedisStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = std::getenv("STOWAGE_TEST_REDIS_URL");
    if (url == nullptr || *url == '\0')
      GTEST_FAIL() << "STOWAGE_TEST_REDIS_URL is not set: run the tests through scripts/test, which starts a "
                      "throwaway Redis, or set it yourself (e.g. redis://127.0.0.1:6390/0)";
    url_ = url;
    stage_ = std::make_unique<RedisStage>(ConfigFor(url_), env_);
    plain_ = std::make_unique<PlainClient>(url_);
  }

  ReadResult Read(const std::string& guest, Attributes* notes = nullptr) {
    return ReadGuest(*stage_, log_, guest, notes);
  }
  Status Refill(const std::string& guest, const std::vector<Message>& messages, Attributes* notes) {
    return RefillGuest(*stage_, log_, guest, messages, notes);
  }
  // A GET that misses: the read takes a lease, the store serves `history`,
  // the refill stores it. Fails the test unless the refill was stored.
  void MissAndRefill(const std::string& guest, const std::vector<Message>& history) {
    Attributes notes;
    ReadResult miss = Read(guest, &notes);
    ASSERT_TRUE(miss.status.ok()) << miss.status.ToString();
    ASSERT_FALSE(miss.found);
    ASSERT_TRUE(notes.contains(RedisStage::kLeaseAttribute)) << "the miss took no lease";
    ASSERT_TRUE(Refill(guest, history, &notes).ok());
    ASSERT_EQ(Stored(guest), history) << "the refill was refused";
  }
  Status PrepareErase(const std::string& guest, Attributes* notes) {
    GuestContext ctx{guest, Deadline::After(milliseconds(5000)), log_, nullptr, notes};
    return stage_->prepare_erase(ctx);
  }
  EraseResult Erase(const std::string& guest, Attributes* notes = nullptr) {
    GuestContext ctx{guest, Deadline::After(milliseconds(5000)), log_, nullptr, notes};
    return stage_->erase(ctx);
  }
  std::vector<Message> Stored(const std::string& guest) {
    std::optional<std::string> value = plain_->Get("guest:" + guest);
    return value ? ParseRaw(*value) : std::vector<Message>{};
  }
  bool ArrayExists(const std::string& guest) { return plain_->Integer({"EXISTS", "guest:" + guest}) == 1; }
  // The stage of this fixture with change_lifetime_ms = 1000, the least allowed.
  std::unique_ptr<RedisStage> ShortLivedMarksStage() {
    return std::make_unique<RedisStage>(ConfigFor(url_, {{"change_lifetime_ms", std::int64_t{1000}}}), env_);
  }

  std::string url_;
  CapturingLogger log_;
  stowage::StageEnvironment env_{log_};
  std::unique_ptr<RedisStage> stage_;
  std::unique_ptr<PlainClient> plain_;
};

TEST_F(RedisStageTest, TargetIsRedis) {
  EXPECT_EQ(stage_->target(), "redis");
}

TEST_F(RedisStageTest, WriteStoresAJsonArrayAnyClientCanGet) {
  std::string guest = UniqueGuest("format");
  Write first{guest, Msg("hello")}, second{guest, Msg("hi there", "assistant")};
  ASSERT_TRUE(first.Into(*stage_, log_).ok());
  ASSERT_TRUE(second.Into(*stage_, log_).ok());

  std::optional<std::string> value = plain_->Get("guest:" + guest);
  ASSERT_TRUE(value.has_value()) << "no key guest:" << guest;
  EXPECT_EQ(value->rfind(R"([{"role":"user","content":"hello","timestamp":")", 0), 0u) << *value;
  EXPECT_EQ(ParseRaw(*value), (std::vector<Message>{first.message, second.message}));
  EXPECT_EQ(first.attributes.get(RedisStage::kEntryAttribute), EncodeEntry(first.message));
}

TEST_F(RedisStageTest, WriteLogsOneInfoLinePerMessage) {
  std::string guest = UniqueGuest("log");
  ASSERT_TRUE(WriteNew(*stage_, log_, guest, Msg("one")).ok());
  ASSERT_TRUE(WriteNew(*stage_, log_, guest, Msg("two")).ok());
  EXPECT_EQ(
      log_.Count(LogLevel::kInfo, "Message stored successfully! guest " + guest + ", key guest:" + guest), 2u)
      << log_.All();
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "ttl 86400s"), 2u) << log_.All();
}

TEST_F(RedisStageTest, WriteSetsTheTtlAndRenewsIt) {
  std::string guest = UniqueGuest("ttl"), key = "guest:" + guest;
  ASSERT_TRUE(WriteNew(*stage_, log_, guest, Msg("one")).ok());
  long long ttl = plain_->Integer({"TTL", key});
  EXPECT_GT(ttl, 86390);
  EXPECT_LE(ttl, 86400);
  EXPECT_GT(plain_->Integer({"TTL", VersionKey(guest)}), 86390) << "the version record expires too";

  plain_->Run({"EXPIRE", key, "100"});
  plain_->Run({"EXPIRE", VersionKey(guest), "100"});
  ASSERT_LE(plain_->Integer({"TTL", key}), 100);
  ASSERT_TRUE(WriteNew(*stage_, log_, guest, Msg("two")).ok());
  EXPECT_GT(plain_->Integer({"TTL", key}), 86390);
  EXPECT_GT(plain_->Integer({"TTL", VersionKey(guest)}), 86390);
}

TEST_F(RedisStageTest, ConcurrentWritesToOneGuestLoseNothing) {
  std::string guest = UniqueGuest("concurrent");
  constexpr int kWrites = 100, kThreads = 16;
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kWrites; i = next++)
        if (!WriteNew(*stage_, log_, guest, Msg("message " + std::to_string(i))).ok()) ++failed;
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failed, 0) << log_.All();

  std::vector<Message> stored = Stored(guest);
  ASSERT_EQ(stored.size(), std::size_t{kWrites});
  std::map<std::string, int> seen;
  for (const Message& m : stored) ++seen[m.content];
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(seen["message " + std::to_string(i)], 1) << i;
}

TEST_F(RedisStageTest, CompensateRemovesExactlyItsEntryWhileOthersWereAppended) {
  std::string guest = UniqueGuest("compensate"), key = "guest:" + guest;
  Write a{guest, Msg("a")}, b{guest, Msg("b")}, c{guest, Msg("c")};
  ASSERT_TRUE(a.Into(*stage_, log_).ok());
  ASSERT_TRUE(b.Into(*stage_, log_).ok());
  ASSERT_TRUE(c.Into(*stage_, log_).ok());
  plain_->Run({"EXPIRE", key, "5000"});

  ASSERT_TRUE(a.Undo(*stage_, log_).ok());  // first of three
  EXPECT_EQ(Stored(guest), (std::vector<Message>{b.message, c.message}));
  EXPECT_GT(plain_->Integer({"TTL", key}), 4990) << "compensate must keep the key's TTL";
  ASSERT_TRUE(c.Undo(*stage_, log_).ok());  // last
  EXPECT_EQ(Stored(guest), (std::vector<Message>{b.message}));
  ASSERT_TRUE(b.Undo(*stage_, log_).ok());  // the only one left: the key goes
  EXPECT_EQ(plain_->Integer({"EXISTS", key}), 0);
}

TEST_F(RedisStageTest, CompensateRemovesTheLastCopyOfARepeatedMessage) {
  std::string guest = UniqueGuest("repeat");
  Write x1{guest, Msg("x")}, y{guest, Msg("y")}, x2{guest, Msg("x")};
  ASSERT_TRUE(x1.Into(*stage_, log_).ok());
  ASSERT_TRUE(y.Into(*stage_, log_).ok());
  ASSERT_TRUE(x2.Into(*stage_, log_).ok());
  ASSERT_TRUE(x2.Undo(*stage_, log_).ok());
  EXPECT_EQ(Stored(guest), (std::vector<Message>{x1.message, y.message}));
}

TEST_F(RedisStageTest, CompensateMatchesWholeEntriesOnly) {
  // b's content is a's encoded entry: only a itself may be removed.
  std::string guest = UniqueGuest("lookalike");
  Write a{guest, Msg("target")};
  Write b{guest, Msg(EncodeEntry(a.message) + "," + EncodeEntry(a.message))};
  ASSERT_TRUE(a.Into(*stage_, log_).ok());
  ASSERT_TRUE(b.Into(*stage_, log_).ok());
  ASSERT_TRUE(a.Undo(*stage_, log_).ok());
  EXPECT_EQ(Stored(guest), (std::vector<Message>{b.message}));
  ASSERT_TRUE(a.Undo(*stage_, log_).ok());  // nothing of a left: b stays whole
  EXPECT_EQ(Stored(guest), (std::vector<Message>{b.message}));
}

TEST_F(RedisStageTest, CompensateWithoutTheAttributeFindsTheEntryByItsEncoding) {
  std::string guest = UniqueGuest("noattr");
  Write a{guest, Msg("a")}, b{guest, Msg("b")};
  ASSERT_TRUE(a.Into(*stage_, log_).ok());
  ASSERT_TRUE(b.Into(*stage_, log_).ok());
  Write a_again{guest, a.message};  // as after a write whose answer was lost
  ASSERT_TRUE(a_again.Undo(*stage_, log_).ok());
  EXPECT_EQ(Stored(guest), (std::vector<Message>{b.message}));
}

TEST_F(RedisStageTest, CompensateOfAWriteThatNeverLandedChangesNothing) {
  std::string guest = UniqueGuest("nothing");
  Write kept{guest, Msg("kept")}, missing{guest, Msg("never written")};
  ASSERT_TRUE(missing.Undo(*stage_, log_).ok());
  EXPECT_EQ(plain_->Integer({"EXISTS", "guest:" + guest}), 0);
  ASSERT_TRUE(kept.Into(*stage_, log_).ok());
  ASSERT_TRUE(missing.Undo(*stage_, log_).ok());
  EXPECT_EQ(Stored(guest), (std::vector<Message>{kept.message}));
}

TEST_F(RedisStageTest, ReadMissesAnUnknownGuestAndServesAKnownOne) {
  std::string guest = UniqueGuest("read");
  ReadResult miss = Read(guest);
  EXPECT_TRUE(miss.status.ok()) << miss.status.ToString();
  EXPECT_FALSE(miss.found);
  EXPECT_TRUE(miss.messages.empty());

  Write a{guest, Msg("question")}, b{guest, Msg("answer", "assistant")};
  ASSERT_TRUE(a.Into(*stage_, log_).ok());
  ASSERT_TRUE(b.Into(*stage_, log_).ok());
  ReadResult hit = Read(guest);
  EXPECT_TRUE(hit.status.ok()) << hit.status.ToString();
  EXPECT_TRUE(hit.found);
  EXPECT_EQ(hit.messages, (std::vector<Message>{a.message, b.message}));
}

// A read of the page `range` asks for (SDK 1.5), as the host makes it.
ReadResult ReadPage(RedisStage& stage, Logger& log, const std::string& guest, ReadRange* range,
                    Attributes* notes = nullptr) {
  Attributes fresh;
  GuestContext ctx{guest, Deadline::After(milliseconds(5000)), log, nullptr, notes ? notes : &fresh, range};
  return stage.read(ctx);
}

TEST_F(RedisStageTest, EveryPageIsCutInRedisFromTheCachedHistory) {
  // Contents that look like the array's own punctuation, and long ones, so
  // that the history spans several of the script's 64 KiB slices.
  std::vector<Message> history;
  const std::vector<std::string> tricky = {R"({"role":"user"})",
                                           R"(},{"role":"x","content":")",
                                           "\\\"{\"",
                                           "{",
                                           "\"",
                                           "caf\u00e9 \xe2\x82\xac",
                                           "[{}]"};
  for (int i = 0; i < 23; ++i) {
    std::string content = tricky[i % tricky.size()] + " #" + std::to_string(i);
    if (i % 2 == 0) content += std::string(20000 + i * 100, 'x');
    history.push_back(Msg(content, i % 2 ? "assistant" : "user"));
  }
  const std::string guest = UniqueGuest("pages");
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, history));
  ASSERT_GT(plain_->Integer({"STRLEN", "guest:" + guest}), 3 * 65536);

  const std::uint64_t total = history.size();
  std::vector<std::optional<std::uint64_t>> befores = {std::nullopt}, limits = {std::nullopt};
  for (std::uint64_t b = 1; b <= total + 2; ++b) befores.push_back(b);
  for (std::uint64_t l : {1, 2, 3, 7, 22, 23, 40}) limits.push_back(l);
  for (const auto& before : befores) {
    for (const auto& limit : limits) {
      ReadRange range{before, limit, std::nullopt};
      ReadResult read = ReadPage(*stage_, log_, guest, &range);
      const std::string asked = "before=" + (before ? std::to_string(*before) : "-") +
                                " limit=" + (limit ? std::to_string(*limit) : "-");
      ASSERT_TRUE(read.status.ok()) << asked << ": " << read.status.ToString();
      ASSERT_TRUE(read.found) << asked;
      EXPECT_EQ(range.total, total) << asked;
      const std::vector<Message> expected(history.begin() + range.first(total),
                                          history.begin() + range.end(total));
      EXPECT_EQ(read.messages, expected) << asked;
    }
  }
  EXPECT_EQ(Stored(guest), history) << "a read changed the array";
}

TEST_F(RedisStageTest, APageOfAnArrayShorterThanItsVersionSaysIsAMissThatDropsIt) {
  // Another client cut the array: it no longer holds the `v` entries its
  // version record vouches for, so it is no page of the store's history.
  const std::string guest = UniqueGuest("short"), key = "guest:" + guest;
  std::vector<Message> history = {Msg("zero"), Msg("one"), Msg("two"), Msg("three"), Msg("four")};
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, history));
  plain_->Run({"SET", key, EncodeArray({history[2], history[3], history[4]}), "KEEPTTL"});
  ReadRange range{std::nullopt, 4, std::nullopt};
  Attributes notes;
  ReadResult read = ReadPage(*stage_, log_, guest, &range, &notes);
  EXPECT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_FALSE(read.found);
  EXPECT_FALSE(range.total.has_value());
  EXPECT_FALSE(ArrayExists(guest)) << "the short array is still there";
  EXPECT_TRUE(notes.contains(RedisStage::kLeaseAttribute)) << "a miss that may be refilled takes a lease";
}

TEST_F(RedisStageTest, APageOfAnUnknownGuestIsAMiss) {
  ReadRange range{5, 2, std::nullopt};
  ReadResult read = ReadPage(*stage_, log_, UniqueGuest("nobody"), &range);
  EXPECT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_FALSE(read.found);
  EXPECT_FALSE(range.total.has_value());
}

TEST_F(RedisStageTest, AValueOfAnotherShapeIsAnErrorNamingTheKey) {
  // A value the version record vouches for, overwritten by another client.
  std::string guest = UniqueGuest("corrupt"), key = "guest:" + guest;
  PostHistory(*stage_, log_, guest, 1);
  plain_->Run({"SET", key, R"({"not":"an array"})"});
  ReadResult read = Read(guest);
  EXPECT_FALSE(read.status.ok());
  EXPECT_FALSE(read.found);
  EXPECT_NE(read.status.message().find(key), std::string::npos) << read.status.message();

  // With no store behind, a write has nothing to refill from: it refuses.
  std::string alone = UniqueGuest("corrupt-store"), alone_key = "guest:" + alone;
  plain_->Run({"SET", alone_key, R"({"not":"an array"})"});
  Status write = WriteNew(*stage_, log_, alone, Msg("x"));
  EXPECT_FALSE(write.ok());
  EXPECT_NE(write.message().find(alone_key), std::string::npos) << write.message();
  EXPECT_EQ(plain_->Get(alone_key), R"({"not":"an array"})") << "a refused write must leave the value alone";

  std::string list_guest = UniqueGuest("wrongtype"), list_key = "guest:" + list_guest;
  plain_->Run({"RPUSH", list_key, "x"});
  write = WriteNew(*stage_, log_, list_guest, Msg("x"));
  EXPECT_FALSE(write.ok());
  EXPECT_NE(write.message().find(list_key), std::string::npos) << write.message();
  plain_->Run(
      {"DEL", key, alone_key, list_key, VersionKey(guest), VersionKey(alone), VersionKey(list_guest)});
}

TEST_F(RedisStageTest, AValueWithoutAVersionRecordIsAMissThatTheRefillReplaces) {
  // Written by another client (or by a stowage before the version record):
  // nothing says it is the store's history, so it is never served.
  std::vector<Message> history = {Msg("from the store")};
  std::string guest = UniqueGuest("foreign"), key = "guest:" + guest;
  plain_->Run({"SET", key, EncodeArray({Msg("not in the store")})});
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, history));
  EXPECT_EQ(Read(guest).messages, history);

  std::string list_guest = UniqueGuest("foreign-list"), list_key = "guest:" + list_guest;
  plain_->Run({"RPUSH", list_key, "x"});
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(list_guest, history));
  EXPECT_EQ(Read(list_guest).messages, history);
}

TEST_F(RedisStageTest, RefillStoresTheArrayWithTheTtlWhenTheKeyIsAbsent) {
  std::string guest = UniqueGuest("refill"), key = "guest:" + guest;
  std::vector<Message> messages = {Msg("old one"), Msg("old two", "assistant")};
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, messages));
  EXPECT_GT(plain_->Integer({"TTL", key}), 86390);
  EXPECT_GT(plain_->Integer({"TTL", VersionKey(guest)}), 86390);
  ReadResult read = Read(guest);
  EXPECT_TRUE(read.found);
  EXPECT_EQ(read.messages, messages);
}

TEST_F(RedisStageTest, RefillNeverOverwritesANewerWrite) {
  // The read missed and the store was read; then a write began, committed
  // and settled: the history the refill carries lacks it.
  std::string guest = UniqueGuest("refill-nx");
  std::vector<Message> old_history = {Msg("older one"), Msg("older two")};
  Attributes notes;
  ASSERT_FALSE(Read(guest, &notes).found);
  Write newer = Numbered(guest, 2, Msg("newer"));
  ASSERT_TRUE(newer.Post(*stage_, log_).ok());
  ASSERT_TRUE(Refill(guest, old_history, &notes).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "a refill whose lease a write voided was stored";
  EXPECT_FALSE(Read(guest).found);

  std::vector<Message> history = old_history;
  history.push_back(newer.message);
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, history));
  EXPECT_EQ(Read(guest).messages, history);
}

// ---- The version protocol (cache_scripts.h), as the host drives it with a store behind ----

TEST_F(RedisStageTest, PostThenGetIsACacheHitServingTheJsonArrayOldestFirst) {
  std::string guest = UniqueGuest("hit"), key = "guest:" + guest;
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 2);
  plain_->Run({"EXPIRE", key, "100"});
  plain_->Run({"EXPIRE", VersionKey(guest), "100"});

  Write third = Numbered(guest, 2, Msg("third", "assistant"));
  ASSERT_TRUE(third.Post(*stage_, log_).ok());
  history.push_back(third.message);
  EXPECT_EQ(plain_->Field(VersionKey(guest), "v"), "3") << "v counts the messages the array holds";
  EXPECT_GT(plain_->Integer({"TTL", key}), 86390) << "the write renews the array's TTL";
  EXPECT_GT(plain_->Integer({"TTL", VersionKey(guest)}), 86390) << "and the version record's";

  std::optional<std::string> raw = plain_->Get(key);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(ParseRaw(*raw), history);
  ReadResult read = Read(guest);
  EXPECT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_TRUE(read.found);
  EXPECT_EQ(read.messages, history);
}

TEST_F(RedisStageTest, TheGuestsFirstMessageCreatesTheArray) {
  std::string guest = UniqueGuest("first");
  Attributes notes;
  ASSERT_FALSE(Read(guest, &notes).found);  // a new guest: the store serves [], nothing to refill
  Write first = Numbered(guest, 0, Msg("first"));
  ASSERT_TRUE(first.Post(*stage_, log_).ok());
  EXPECT_EQ(Stored(guest), (std::vector<Message>{first.message}));
  EXPECT_EQ(Read(guest).messages, (std::vector<Message>{first.message}));
}

TEST_F(RedisStageTest, AWriteToAMissingArrayStoresNothingUnlessItIsTheFirstMessage) {
  // The array expired (or Redis lost it): the store holds messages 0 to 2.
  std::string guest = UniqueGuest("missing");
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 3);
  plain_->Run({"DEL", "guest:" + guest});
  Write fourth = Numbered(guest, 3, Msg("fourth"));
  ASSERT_TRUE(fourth.Post(*stage_, log_).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "a partial array was created: " << *plain_->Get("guest:" + guest);
  EXPECT_FALSE(Read(guest).found);

  history.push_back(fourth.message);
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, history));
  EXPECT_EQ(Read(guest).messages, history);
}

TEST_F(RedisStageTest, ASequenceMismatchDropsTheArrayAndTheRefillRestoresIt) {
  // The cache holds 3 messages (v = 3); the store's message 4 was never
  // written here, so message 5 cannot extend the array.
  std::string guest = UniqueGuest("mismatch");
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 3);
  history.push_back(Msg("message 3"));
  history.push_back(Msg("message 4"));
  Write sixth = Numbered(guest, 5, Msg("message 5"));
  ASSERT_TRUE(sixth.Post(*stage_, log_).ok());
  EXPECT_FALSE(ArrayExists(guest));
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "dropped key guest:" + guest), 1u) << log_.All();

  history.push_back(sixth.message);
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, history));
  EXPECT_EQ(Read(guest).messages, history);
}

TEST_F(RedisStageTest, AFirstMessageSettledAfterALaterOneDoesNotRecreateAPartialArray) {
  // Message 0 commits, message 1 commits, and 1 settles before 0: the store
  // holds both, so an array of message 0 alone would hide message 1.
  std::string guest = UniqueGuest("late-first");
  Write first = Numbered(guest, 0, Msg("first")), second = Numbered(guest, 1, Msg("second"));
  ASSERT_TRUE(first.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(second.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(second.Into(*stage_, log_).ok());
  ASSERT_TRUE(first.Into(*stage_, log_).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "a partial array was created: " << *plain_->Get("guest:" + guest);
  EXPECT_FALSE(Read(guest).found);
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(guest, {first.message, second.message}));
}

TEST_F(RedisStageTest, AFirstMessageSettledBeforeALaterOneIsExtendedByIt) {
  // The same two writes, settled in order while both are in flight.
  std::string guest = UniqueGuest("early-first");
  Write first = Numbered(guest, 0, Msg("first")), second = Numbered(guest, 1, Msg("second"));
  ASSERT_TRUE(first.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(second.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(first.Into(*stage_, log_).ok());
  ASSERT_TRUE(second.Into(*stage_, log_).ok());
  EXPECT_EQ(Read(guest).messages, (std::vector<Message>{first.message, second.message}));
}

TEST_F(RedisStageTest, WhileAChangeIsInFlightTheArrayIsNotServedNorRefilled) {
  std::string guest = UniqueGuest("in-flight");
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 2);
  Write third = Numbered(guest, 2, Msg("third"));
  ASSERT_TRUE(third.Prepare(*stage_, log_).ok());
  EXPECT_EQ(Stored(guest), history) << "the array stays, unserved";

  Attributes notes;
  ReadResult busy = Read(guest, &notes);
  EXPECT_TRUE(busy.status.ok()) << busy.status.ToString();
  EXPECT_FALSE(busy.found) << "served while the change was in flight";
  EXPECT_TRUE(busy.messages.empty());
  EXPECT_FALSE(notes.contains(RedisStage::kLeaseAttribute)) << "a read in flight took a lease";
  // The store, read before the COMMIT, serves the two messages: no refill.
  ChatStore store(RedisStage::OptionsFromConfig(ConfigFor(url_)));
  const GuestKeys keys = store.Keys(guest);
  ChatStore::Found found = ChatStore::Found::kHit;
  std::vector<Message> messages;
  ASSERT_TRUE(
      store.Read(keys, "lease-in-flight", nullptr, Deadline::After(seconds(5)), &found, &messages).ok());
  EXPECT_EQ(found, ChatStore::Found::kBusy);
  bool stored = true;
  ASSERT_TRUE(store.Refill(keys, "lease-in-flight", history, Deadline::After(seconds(5)), &stored).ok());
  EXPECT_FALSE(stored) << "a refill was stored while a change was in flight";

  ASSERT_TRUE(third.Into(*stage_, log_).ok());
  history.push_back(third.message);
  EXPECT_EQ(Read(guest).messages, history);
}

TEST_F(RedisStageTest, ARefillIsRefusedWhenAWriteBeganAfterItsReadMissed) {
  std::string guest = UniqueGuest("lease-write");
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 2);
  plain_->Run({"DEL", "guest:" + guest});  // expired
  Attributes notes;
  ASSERT_FALSE(Read(guest, &notes).found);
  ASSERT_TRUE(notes.contains(RedisStage::kLeaseAttribute));
  Write third = Numbered(guest, 2, Msg("third"));
  ASSERT_TRUE(third.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(third.Into(*stage_, log_).ok());  // settled before the refill, so no mark stops it
  ASSERT_TRUE(Refill(guest, history, &notes).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "stored the history read before the write";
  EXPECT_EQ(log_.Count(LogLevel::kInfo, "the guest changed since the read missed"), 1u) << log_.All();
}

TEST_F(RedisStageTest, ARefillIsRefusedWhenAnEraseBeganAfterItsReadMissed) {
  std::string guest = UniqueGuest("lease-erase");
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 2);
  plain_->Run({"DEL", "guest:" + guest});
  Attributes get;
  ASSERT_FALSE(Read(guest, &get).found);
  Attributes del;
  ASSERT_TRUE(PrepareErase(guest, &del).ok());
  ASSERT_TRUE(Erase(guest, &del).status.ok());  // the store's erase committed
  ASSERT_TRUE(Refill(guest, history, &get).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "the erased messages came back";
  EXPECT_FALSE(Read(guest).found);
}

TEST_F(RedisStageTest, AbandonAfterARollbackServesTheArrayAgainUnchanged) {
  std::string guest = UniqueGuest("rolled-back");
  std::vector<Message> history = PostHistory(*stage_, log_, guest, 2);
  const std::optional<std::string> before = plain_->Get("guest:" + guest);
  Write third = Numbered(guest, 2, Msg("rolled back"));
  ASSERT_TRUE(third.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(third.Abandon(*stage_, log_, Uncommitted::kRolledBack).ok());
  EXPECT_EQ(plain_->Get("guest:" + guest), before);
  ReadResult read = Read(guest);
  EXPECT_TRUE(read.found);
  EXPECT_EQ(read.messages, history);
}

TEST_F(RedisStageTest, AbandonWithAnUnknownOutcomeKeepsTheGuestUnservedUntilTheMarkLapses) {
  std::unique_ptr<RedisStage> stage = ShortLivedMarksStage();
  std::string guest = UniqueGuest("unknown");
  std::vector<Message> history = PostHistory(*stage, log_, guest, 2);
  Write third = Numbered(guest, 2, Msg("maybe stored"));
  ASSERT_TRUE(third.Prepare(*stage, log_).ok());
  ASSERT_TRUE(third.Abandon(*stage, log_, Uncommitted::kOutcomeUnknown).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "the array may lack the message: it must go";

  // The COMMIT may still land: no read may refill the guest meanwhile.
  Attributes notes;
  EXPECT_FALSE(ReadGuest(*stage, log_, guest, &notes).found);
  EXPECT_FALSE(notes.contains(RedisStage::kLeaseAttribute));
  ASSERT_TRUE(RefillGuest(*stage, log_, guest, history, &notes).ok());
  EXPECT_FALSE(ArrayExists(guest));

  std::this_thread::sleep_for(milliseconds(1200));  // change_lifetime_ms: the mark lapses
  history.push_back(third.message);                 // it did land
  Attributes after;
  ReadResult miss = ReadGuest(*stage, log_, guest, &after);
  EXPECT_TRUE(miss.status.ok()) << miss.status.ToString();
  EXPECT_FALSE(miss.found);
  ASSERT_TRUE(RefillGuest(*stage, log_, guest, history, &after).ok());
  EXPECT_EQ(ReadGuest(*stage, log_, guest).messages, history);
}

TEST_F(RedisStageTest, AWriterKilledBetweenPrepareAndWriteHidesTheArrayUntilItsMarkLapsesThenItIsDropped) {
  std::unique_ptr<RedisStage> stage = ShortLivedMarksStage();
  std::string guest = UniqueGuest("killed");
  std::vector<Message> history = PostHistory(*stage, log_, guest, 2);
  Write third = Numbered(guest, 2, Msg("committed, never settled"));
  ASSERT_TRUE(third.Prepare(*stage, log_).ok());  // then the process dies
  EXPECT_FALSE(ReadGuest(*stage, log_, guest).found);

  std::this_thread::sleep_for(milliseconds(1200));
  ASSERT_TRUE(ArrayExists(guest)) << "nothing dropped the array before the read";
  Attributes notes;
  ReadResult miss = ReadGuest(*stage, log_, guest, &notes);
  EXPECT_TRUE(miss.status.ok()) << miss.status.ToString();
  EXPECT_FALSE(miss.found) << "served an array that may lack a committed message";
  EXPECT_FALSE(ArrayExists(guest)) << "the lapsed mark did not drop the array";
  history.push_back(third.message);
  ASSERT_TRUE(RefillGuest(*stage, log_, guest, history, &notes).ok());
  EXPECT_EQ(ReadGuest(*stage, log_, guest).messages, history);
}

TEST_F(RedisStageTest, PrepareEraseDropsAndHidesTheArrayAndEraseLeavesNoKeyBehind) {
  std::string guest = UniqueGuest("erase-protocol");
  PostHistory(*stage_, log_, guest, 2);
  Attributes del;
  ASSERT_TRUE(PrepareErase(guest, &del).ok());
  EXPECT_FALSE(ArrayExists(guest));
  Attributes get;
  ReadResult during = Read(guest, &get);
  EXPECT_TRUE(during.status.ok()) << during.status.ToString();
  EXPECT_FALSE(during.found);
  EXPECT_FALSE(get.contains(RedisStage::kLeaseAttribute)) << "a read during an erase may not refill";

  EraseResult erased = Erase(guest, &del);
  EXPECT_TRUE(erased.status.ok()) << erased.status.ToString();
  EXPECT_TRUE(erased.held) << "prepare_erase found the array";
  EXPECT_EQ(plain_->Integer({"EXISTS", "guest:" + guest}), 0);
  EXPECT_EQ(plain_->Integer({"EXISTS", VersionKey(guest)}), 0);
}

TEST_F(RedisStageTest, AWriteInFlightAcrossAnEraseNeverCreatesNorExtendsTheArray) {
  // A guest's first message is prepared, commits before the store's erase
  // (which removes it) and settles after the erase finished: it would show
  // an erased message.
  std::string guest = UniqueGuest("erase-before");
  Write before = Numbered(guest, 0, Msg("prepared before the erase"));
  ASSERT_TRUE(before.Prepare(*stage_, log_).ok());
  Attributes del;
  ASSERT_TRUE(PrepareErase(guest, &del).ok());
  ASSERT_TRUE(Erase(guest, &del).status.ok());
  ASSERT_TRUE(before.Into(*stage_, log_).ok());
  EXPECT_FALSE(ArrayExists(guest)) << "created: " << *plain_->Get("guest:" + guest);
  EXPECT_FALSE(Read(guest).found);

  // A first message prepared while the erase is in flight, committed after
  // it: the cache cannot tell which side of the erase it landed on.
  std::string other = UniqueGuest("erase-during");
  Attributes erase_other;
  ASSERT_TRUE(PrepareErase(other, &erase_other).ok());
  Write during = Numbered(other, 0, Msg("prepared during the erase"));
  ASSERT_TRUE(during.Prepare(*stage_, log_).ok());
  ASSERT_TRUE(Erase(other, &erase_other).status.ok());
  ASSERT_TRUE(during.Into(*stage_, log_).ok());
  EXPECT_FALSE(ArrayExists(other)) << "created: " << *plain_->Get("guest:" + other);
  ASSERT_NO_FATAL_FAILURE(MissAndRefill(other, {during.message}));

  // A write of a guest with a history, prepared before the erase: the array
  // is gone and stays gone.
  std::string cached = UniqueGuest("erase-extend");
  PostHistory(*stage_, log_, cached, 2);
  Write third = Numbered(cached, 2, Msg("prepared before the erase"));
  ASSERT_TRUE(third.Prepare(*stage_, log_).ok());
  Attributes erase_cached;
  ASSERT_TRUE(PrepareErase(cached, &erase_cached).ok());
  ASSERT_TRUE(Erase(cached, &erase_cached).status.ok());
  ASSERT_TRUE(third.Into(*stage_, log_).ok());
  EXPECT_FALSE(ArrayExists(cached)) << "created: " << *plain_->Get("guest:" + cached);
}

TEST_F(RedisStageTest, WritesSettledInAnyOrderLeaveTheOrderedArrayOrNone) {
  // The store numbers the messages in COMMIT order, and each write is
  // prepared before its COMMIT, so write k+1 is prepared after write k. Then
  // every write settles at once on its own thread, in whatever order the
  // threads run: the array must be the store's history or absent.
  constexpr int kRounds = 100, kMessages = 8;
  int whole = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::string guest = UniqueGuest("settle-order");
    std::vector<Write> writes;
    std::vector<Message> history;
    for (int i = 0; i < kMessages; ++i) {
      writes.push_back(Numbered(guest, i, Msg("message " + std::to_string(i))));
      history.push_back(writes.back().message);
    }
    std::mutex mu;
    std::condition_variable turn;
    int prepared = 0;
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kMessages; ++i) {
      threads.emplace_back([&, i] {
        std::unique_lock lock(mu);
        turn.wait(lock, [&] { return prepared == i; });
        if (!writes[i].Prepare(*stage_, log_).ok()) ++failed;
        ++prepared;
        turn.notify_all();
        turn.wait(lock, [&] { return prepared == kMessages; });
        lock.unlock();
        if (!writes[i].Into(*stage_, log_).ok()) ++failed;
      });
    }
    for (auto& thread : threads) thread.join();
    ASSERT_EQ(failed, 0) << log_.All();

    std::optional<std::string> raw = plain_->Get("guest:" + guest);
    if (raw) {
      EXPECT_EQ(ParseRaw(*raw), history) << "round " << round;
      ++whole;
    }
    ReadResult read = Read(guest);
    EXPECT_TRUE(read.status.ok()) << read.status.ToString();
    EXPECT_EQ(read.found, raw.has_value()) << "round " << round;
    if (read.found) EXPECT_EQ(read.messages, history) << "round " << round;
  }
  std::cout << "[          ] " << whole << " of " << kRounds << " rounds left the whole array cached\n";
}

TEST_F(RedisStageTest, EraseSaysWhetherTheKeyWasHeld) {
  std::string guest = UniqueGuest("erase");
  ASSERT_TRUE(WriteNew(*stage_, log_, guest, Msg("x")).ok());
  EraseResult held = Erase(guest);
  EXPECT_TRUE(held.status.ok()) << held.status.ToString();
  EXPECT_TRUE(held.held);
  EXPECT_EQ(plain_->Integer({"EXISTS", "guest:" + guest}), 0);
  EraseResult not_held = Erase(guest);
  EXPECT_TRUE(not_held.status.ok()) << not_held.status.ToString();
  EXPECT_FALSE(not_held.held);
}

TEST_F(RedisStageTest, TwoGuestsAreIsolated) {
  std::string one = UniqueGuest("one"), two = UniqueGuest("two");
  Write a{one, Msg("for one")}, b{two, Msg("for two")};
  ASSERT_TRUE(a.Into(*stage_, log_).ok());
  ASSERT_TRUE(b.Into(*stage_, log_).ok());
  EXPECT_EQ(Read(one).messages, (std::vector<Message>{a.message}));
  EXPECT_EQ(Read(two).messages, (std::vector<Message>{b.message}));
  ASSERT_TRUE(Erase(one).held);
  EXPECT_FALSE(Read(one).found);
  EXPECT_EQ(Read(two).messages, (std::vector<Message>{b.message}));
}

TEST_F(RedisStageTest, SpecialCharactersRoundTrip) {
  std::string guest = UniqueGuest("chars");
  Write tricky{guest,
               Msg("she said \"hi\" \\o/ \\\"\nnew line\r\ttab \x01\x1f caf\xc3\xa9 \xf0\x9f\x98\x80 ]},{")};
  ASSERT_TRUE(tricky.Into(*stage_, log_).ok());
  EXPECT_EQ(Read(guest).messages, (std::vector<Message>{tricky.message}));
  EXPECT_EQ(Stored(guest), (std::vector<Message>{tricky.message}));
  ASSERT_TRUE(tricky.Undo(*stage_, log_).ok());
  EXPECT_EQ(plain_->Integer({"EXISTS", "guest:" + guest}), 0);
}

TEST_F(RedisStageTest, KeyPrefixIsConfigurable) {
  RedisStage stage(ConfigFor(url_, {{"key_prefix", std::string("chat:v2:")}}), env_);
  std::string guest = UniqueGuest("prefix");
  ASSERT_TRUE(WriteNew(stage, log_, guest, Msg("x")).ok());
  EXPECT_TRUE(plain_->Get("chat:v2:" + guest).has_value());
  EXPECT_TRUE(plain_->Field(VersionKey(guest, "chat:v2:"), "v").has_value()) << "the version record is "
                                                                                "under the prefix too";
  EXPECT_FALSE(plain_->Get("guest:" + guest).has_value());
  plain_->Run({"DEL", "chat:v2:" + guest, VersionKey(guest, "chat:v2:")});

  // A prefix with a Redis Cluster hash tag of its own: every key in its slot.
  RedisStage tagged(ConfigFor(url_, {{"key_prefix", std::string("{chat}:")}}), env_);
  ASSERT_TRUE(Numbered(guest, 0, Msg("y")).Post(tagged, log_).ok());
  EXPECT_EQ(ReadGuest(tagged, log_, guest).messages, (std::vector<Message>{Msg("y")}));
  plain_->Run({"DEL", "{chat}:" + guest, VersionKey(guest, "{chat}:")});
}

TEST_F(RedisStageTest, HealthPings) {
  EXPECT_TRUE(stage_->health(Deadline::After(seconds(2))).ok());
}

TEST_F(RedisStageTest, APassedDeadlineFailsWithoutWriting) {
  std::string guest = UniqueGuest("late");
  Status status = WriteNew(*stage_, log_, guest, Msg("x"), milliseconds(0));
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_EQ(plain_->Integer({"EXISTS", "guest:" + guest}), 0);
}

TEST(RedisStageConfigTest, BadValuesFailConstructionNamingTheKey) {
  CapturingLogger log;
  stowage::StageEnvironment env{log};
  auto refusal = [&](StageConfig config) -> std::string {
    try {
      RedisStage stage(config, env);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  std::string bad_url = refusal(ConfigFor("redis://:topsecret@host:port"));
  EXPECT_NE(bad_url.find("stage[redis].config.url"), std::string::npos) << bad_url;
  EXPECT_NE(bad_url.find("unix:///path/to/socket"), std::string::npos) << bad_url;
  EXPECT_EQ(bad_url.find("topsecret"), std::string::npos) << bad_url;
  // A prefix that would split a guest's two keys across Redis Cluster slots.
  for (const char* prefix : {"{chat:", "chat}:", "{}:"}) {
    std::string message = refusal(ConfigFor("redis://127.0.0.1:1", {{"key_prefix", std::string(prefix)}}));
    EXPECT_NE(message.find("stage[redis].config.key_prefix"), std::string::npos) << prefix << ": " << message;
  }
  // A rule between two keys stays the stage's own.
  std::string wait = refusal(ConfigFor("redis://127.0.0.1:1", {{"cluster", true},
                                                               {"command_timeout_ms", std::int64_t{100}},
                                                               {"replica_wait_ms", std::int64_t{100}}}));
  EXPECT_NE(wait.find("stage[redis].config.replica_wait_ms (100) must be below command_timeout_ms (100)"),
            std::string::npos)
      << wait;
}

// The bounds of each number are declared in the schema, which the host
// checks before the stage is made (its message names the key and the range).
TEST(RedisStageConfigTest, TheSchemaBoundsEveryNumber) {
  ConfigSchema schema = RedisStage::config_schema();
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>> bounds = {
      {"ttl_seconds", {1, std::int64_t{1} << 31}}, {"pool_size", {1, 1024}},
      {"connect_timeout_ms", {1, 600000}},         {"command_timeout_ms", {1, 600000}},
      {"change_lifetime_ms", {1000, 3600000}},     {"replica_wait_ms", {0, 599999}}};
  for (const auto& [name, range] : bounds) {
    const ConfigKey* key = schema.find(name);
    ASSERT_NE(key, nullptr) << name;
    EXPECT_EQ(key->min, ConfigValue(range.first)) << name;
    EXPECT_EQ(key->max, ConfigValue(range.second)) << name;
  }
  for (const char* file : {"ca_file", "cert_file", "key_file"})
    EXPECT_EQ(schema.find(file)->type, stowage::ConfigType::kPath) << file << ": relative to the config file";
}

TEST(RedisStageConfigTest, SchemaDeclaresTheKeysWithTheirDefaults) {
  ConfigSchema schema = RedisStage::config_schema();
  ASSERT_NE(schema.find("url"), nullptr);
  EXPECT_TRUE(schema.find("url")->required());
  EXPECT_TRUE(schema.find("url")->secret);
  std::map<std::string, ConfigValue> expected = {{"key_prefix", std::string("guest:")},
                                                 {"ttl_seconds", std::int64_t{86400}},
                                                 {"pool_size", std::int64_t{8}},
                                                 {"connect_timeout_ms", std::int64_t{1000}},
                                                 {"command_timeout_ms", std::int64_t{1000}},
                                                 {"change_lifetime_ms", std::int64_t{30000}},
                                                 {"ca_file", std::string("")},
                                                 {"cert_file", std::string("")},
                                                 {"key_file", std::string("")},
                                                 {"cluster", false},
                                                 {"replica_wait_ms", std::int64_t{100}}};
  for (const auto& [name, value] : expected) {
    const ConfigKey* key = schema.find(name);
    ASSERT_NE(key, nullptr) << name;
    EXPECT_EQ(key->default_value, value) << name;
  }
  EXPECT_EQ(schema.keys().size(), expected.size() + 1);
}

// Tests that need a server of their own.
class PrivateRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Start()) << "cannot start redis-server on port " << redis_.port();
  }

  PrivateRedis redis_;
  CapturingLogger log_;
  stowage::StageEnvironment env_{log_};
};

TEST_F(PrivateRedisTest, RedisDownIsUnavailableAndItsReturnNeedsNoRestart) {
  RedisStage stage(ConfigFor(redis_.url()), env_);
  std::string guest = UniqueGuest("down");
  ASSERT_TRUE(WriteNew(stage, log_, guest, Msg("before")).ok()) << log_.All();

  redis_.Stop();
  Status down = WriteNew(stage, log_, guest, Msg("while down"));
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_NE(down.message().find("cannot reach Redis at " + redis_.address()), std::string::npos)
      << down.message();
  EXPECT_NE(down.message().find("stage[redis].config.url"), std::string::npos) << down.message();
  EXPECT_EQ(stage.health(Deadline::After(seconds(2))).code(), StatusCode::kUnavailable);
  EXPECT_NE(down.message().find("could not store message for guest " + guest + " in key guest:" + guest),
            std::string::npos)
      << down.message();
  // The host logs the failure it is given; the stage does not log it too.
  EXPECT_EQ(log_.Count(LogLevel::kWarn, "could not store message"), 0u) << log_.All();
  EXPECT_EQ(log_.Count(LogLevel::kError, "could not store message"), 0u) << log_.All();

  ASSERT_TRUE(redis_.Start());
  Write after{guest, Msg("after")};
  Status up = after.Into(stage, log_);
  EXPECT_TRUE(up.ok()) << up.ToString();
  EXPECT_TRUE(stage.health(Deadline::After(seconds(2))).ok());
  GuestContext ctx{guest, Deadline::After(seconds(2)), log_};
  EXPECT_EQ(stage.read(ctx).messages, (std::vector<Message>{after.message}));  // nothing was saved
}

TEST_F(PrivateRedisTest, IdleConnectionsToARestartedRedisAreReplaced) {
  RedisStage stage(ConfigFor(redis_.url(), {{"pool_size", std::int64_t{4}}}), env_);
  std::string guest = UniqueGuest("restart");
  // Open several connections, all idle afterwards.
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { (void)WriteNew(stage, log_, guest, Msg("warm " + std::to_string(i))); });
  for (auto& thread : threads) thread.join();

  redis_.Stop();
  ASSERT_TRUE(redis_.Start());
  for (int i = 0; i < 6; ++i) {
    Status status = WriteNew(stage, log_, guest, Msg("after restart " + std::to_string(i)));
    EXPECT_TRUE(status.ok()) << i << ": " << status.ToString();
  }
}

TEST_F(PrivateRedisTest, ConstructionDoesNotNeedRedis) {
  redis_.Stop();
  std::unique_ptr<RedisStage> stage;
  ASSERT_NO_THROW(stage = std::make_unique<RedisStage>(ConfigFor(redis_.url()), env_));
  EXPECT_EQ(stage->health(Deadline::After(seconds(2))).code(), StatusCode::kUnavailable);
  ASSERT_TRUE(redis_.Start());
  EXPECT_TRUE(stage->health(Deadline::After(seconds(2))).ok());
}

TEST_F(PrivateRedisTest, ASlowRedisIsCutOffByTheDeadlineOrTheCommandTimeout) {
  RedisStage stage(ConfigFor(redis_.url(), {{"command_timeout_ms", std::int64_t{300}}}), env_);
  PlainClient admin(redis_.url());
  std::string guest = UniqueGuest("slow");
  ASSERT_TRUE(WriteNew(stage, log_, guest, Msg("warm")).ok());

  admin.Run({"CLIENT", "PAUSE", "1500", "ALL"});
  auto start = Clock::now();
  Status by_deadline = WriteNew(stage, log_, guest, Msg("deadline"), milliseconds(100));
  auto took = Clock::now() - start;
  EXPECT_EQ(by_deadline.code(), StatusCode::kDeadlineExceeded) << by_deadline.ToString();
  EXPECT_LT(took, milliseconds(1000));

  start = Clock::now();
  Status by_timeout = WriteNew(stage, log_, guest, Msg("timeout"), milliseconds(5000));
  took = Clock::now() - start;
  EXPECT_EQ(by_timeout.code(), StatusCode::kUnavailable) << by_timeout.ToString();
  EXPECT_NE(by_timeout.message().find("command_timeout_ms"), std::string::npos) << by_timeout.message();
  EXPECT_LT(took, milliseconds(1000));

  std::this_thread::sleep_for(milliseconds(1600));  // the pause ends
  EXPECT_TRUE(WriteNew(stage, log_, guest, Msg("after pause")).ok());
}

TEST_F(PrivateRedisTest, NeverOpensMoreThanPoolSizeConnections) {
  RedisStage stage(ConfigFor(redis_.url(), {{"pool_size", std::int64_t{2}}}), env_);
  PlainClient admin(redis_.url());
  std::string guest = UniqueGuest("pool");
  std::atomic<int> failed{0};
  std::atomic<long long> most_clients{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i)
        if (!WriteNew(stage, log_, guest, Msg(std::to_string(t) + "/" + std::to_string(i))).ok()) ++failed;
    });
  }
  std::thread watcher([&] {
    PlainClient watch(redis_.url());  // its own connection: admin's is not thread-safe
    for (int i = 0; i < 50; ++i) {
      redisReply* reply = watch.Command({"CLIENT", "LIST"});
      std::string list(reply->str, reply->len);
      freeReplyObject(reply);
      long long clients = std::count(list.begin(), list.end(), '\n');
      most_clients = std::max(most_clients.load(), clients);
      std::this_thread::sleep_for(milliseconds(2));
    }
  });
  for (auto& thread : threads) thread.join();
  watcher.join();
  EXPECT_EQ(failed, 0) << log_.All();
  // The stage's two at most, plus admin and watcher; at least one of the stage's was seen.
  EXPECT_LE(most_clients, 4);
  EXPECT_GE(most_clients, 3);
}

TEST_F(PrivateRedisTest, AConnectionTheServerDroppedFailsWithoutKillingTheProcess) {
  // Writing to a socket the server has reset raises SIGPIPE, whose default
  // action ends the process; a big command makes hiredis write more than once.
  std::unique_ptr<RedisConnection> connection;
  ASSERT_TRUE(RedisConnection::Open(ParseRedisUrl(redis_.url()), milliseconds(1000), &connection).ok());
  PlainClient admin(redis_.url());
  admin.Run({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_FALSE(connection->LooksAlive());

  const std::string big(32 << 20, 'x');
  ReplyPtr reply;
  Status status = connection->Command({"SET", "big", big}, milliseconds(2000), false, &reply);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("cannot reach Redis at " + redis_.address()), std::string::npos)
      << status.message();
  EXPECT_TRUE(connection->broken());
}

TEST_F(PrivateRedisTest, UnixSocketAndDatabaseNumber) {
  RedisStage stage(ConfigFor(redis_.socket_url(3)), env_);
  std::string guest = UniqueGuest("unix");
  ASSERT_TRUE(WriteNew(stage, log_, guest, Msg("over the socket")).ok()) << log_.All();
  PlainClient db3(redis_.url(3)), db0(redis_.url(0));
  EXPECT_TRUE(db3.Get("guest:" + guest).has_value());
  EXPECT_FALSE(db0.Get("guest:" + guest).has_value());
}

TEST_F(PrivateRedisTest, AuthWithUserAndPassword) {
  PlainClient admin(redis_.url());
  // The least an operator grants: the keys under the key prefix. Every key
  // the stage touches (the array and its version record) is one of them.
  admin.Run({"ACL", "SETUSER", "chat", "on", ">right-pass", "~guest:*", "+@all"});

  RedisStage good(ConfigFor("redis://chat:right-pass@127.0.0.1:" + std::to_string(redis_.port()) + "/0"),
                  env_);
  std::string guest = UniqueGuest("auth");
  EXPECT_TRUE(WriteNew(good, log_, guest, Msg("x")).ok()) << log_.All();
  std::string cached = UniqueGuest("auth-cache");
  std::vector<Message> history = PostHistory(good, log_, cached, 2);
  ReadResult hit = ReadGuest(good, log_, cached);
  EXPECT_TRUE(hit.status.ok()) << hit.status.ToString();
  EXPECT_EQ(hit.messages, history);
  Attributes del;
  GuestContext erase{cached, Deadline::After(seconds(2)), log_, nullptr, &del};
  EXPECT_TRUE(good.prepare_erase(erase).ok());
  EXPECT_TRUE(good.erase(erase).status.ok());

  RedisStage bad(ConfigFor("redis://chat:wrong-pass@127.0.0.1:" + std::to_string(redis_.port()) + "/0"),
                 env_);
  Status refused = WriteNew(bad, log_, guest, Msg("y"));
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_NE(refused.message().find("refused AUTH"), std::string::npos) << refused.message();
  EXPECT_EQ(refused.message().find("wrong-pass"), std::string::npos) << refused.message();
  EXPECT_EQ(log_.All().find("wrong-pass"), std::string::npos);
}

TEST_F(PrivateRedisTest, AWriteThatTimedOutIsNeverServedStaleAfterRedisComesBack) {
  // Redis stalls (SIGSTOP) after the prepare, during the write after the
  // COMMIT: the write times out. When Redis goes on it may run the write (it
  // was in its socket) or not (lost on the way), and the stage cannot tell;
  // nor can it count on the mark (a failover may have lost it). So the read
  // that follows drops the array before it serves anything.
  RedisStage stage(ConfigFor(redis_.url(), {{"command_timeout_ms", std::int64_t{300}},
                                            {"change_lifetime_ms", std::int64_t{1000}}}),
                   env_);
  PlainClient admin(redis_.url());
  std::string guest = UniqueGuest("frozen"), key = "guest:" + guest;
  std::vector<Message> history = PostHistory(stage, log_, guest, 2);
  Write third = Numbered(guest, 2, Msg("committed while Redis stalled"));
  ASSERT_TRUE(third.Prepare(stage, log_).ok());
  history.push_back(third.message);

  ASSERT_TRUE(redis_.Freeze()) << "cannot SIGSTOP the private redis-server";
  Status timed_out = third.Into(stage, log_);
  redis_.Thaw();
  EXPECT_EQ(timed_out.code(), StatusCode::kUnavailable) << timed_out.ToString();
  EXPECT_EQ(log_.Count(LogLevel::kWarn, "will be dropped before it is served again"), 1u) << log_.All();

  ReadResult read = ReadGuest(stage, log_, guest);
  EXPECT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_FALSE(read.found) << "served an array this process could not settle";
  EXPECT_EQ(admin.Integer({"EXISTS", key}), 0) << "the read did not drop the array first";

  // Whether the write ran when Redis went on or its mark lapses, the guest
  // is refilled from the store afterwards.
  if (admin.Field(VersionKey(guest), "w:" + *third.attributes.get(RedisStage::kChangeAttribute)))
    std::this_thread::sleep_for(milliseconds(1200));
  Attributes notes;
  ReadResult miss = ReadGuest(stage, log_, guest, &notes);
  EXPECT_FALSE(miss.found);
  ASSERT_TRUE(RefillGuest(stage, log_, guest, history, &notes).ok());
  EXPECT_EQ(ReadGuest(stage, log_, guest).messages, history);
}

}  // namespace
}  // namespace stowage::redis
