// The Redis stage with cluster = true against a real Redis Cluster of 3
// masters and 3 replicas (Debian's redis-server, started for this test by
// scripts/services start redis-cluster in a temporary folder): slots agree
// with Redis's own CLUSTER KEYSLOT, keys land on their slot's master and
// are on a replica when a write returns, a slot moved under the stage's
// feet (ASK while it moves, MOVED after) is followed, and a master killed
// with kill -9 is failed over to its replica without restarting the stage.
// Skipped when redis-server is missing.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster_slot.h"
#include "redis_stage.h"
#include "redis_url.h"
#include "stowage/chat/attributes.h"
#include "support/services.h"

namespace stowage::redis {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

class QuietLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view) noexcept override {}
  bool enabled(LogLevel) const noexcept override { return false; }
};

// Runs a shell command; returns its exit status and puts its stdout in *out.
int Shell(const std::string& command, std::string* out) {
  out->clear();
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out->append(buffer, n);
  const int status = pclose(pipe);
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A plain hiredis connection to one node, for looking behind the stage.
class Node {
 public:
  explicit Node(int port) : port_(port) {
    timeval tv{2, 0};
    context_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (context_ == nullptr || context_->err != 0)
      throw std::runtime_error("cannot connect to the cluster node on port " + std::to_string(port));
  }
  ~Node() { redisFree(context_); }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Whether CLUSTER SLOTS, as this node answers it, lists a replica beside
  // the master of every slot range. Redis leaves out a replica whose
  // replication offset it has not heard of yet, and a stage waits for a
  // replica (WAIT) only where CLUSTER SLOTS lists one.
  bool SlotsListReplicas() {
    auto* reply = static_cast<redisReply*>(redisCommand(context_, "CLUSTER SLOTS"));
    if (reply == nullptr)
      throw std::runtime_error("the node on port " + std::to_string(port_) + " did not answer");
    bool all = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0;
    for (std::size_t i = 0; all && i < reply->elements; ++i)
      all = reply->element[i]->type == REDIS_REPLY_ARRAY && reply->element[i]->elements > 3;
    freeReplyObject(reply);
    return all;
  }

  // The reply as text: a string, a status, an error ("ERR ..."), an integer,
  // "(nil)"; an array's elements joined by '\n'.
  std::string Command(const std::vector<std::string>& argv) {
    std::vector<const char*> parts;
    std::vector<std::size_t> lengths;
    for (const auto& arg : argv) {
      parts.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_, static_cast<int>(argv.size()), parts.data(), lengths.data()));
    if (reply == nullptr)
      throw std::runtime_error("the node on port " + std::to_string(port_) + " did not answer");
    std::string text = Text(reply);
    freeReplyObject(reply);
    return text;
  }

 private:
  static std::string Text(const redisReply* reply) {
    switch (reply->type) {
      case REDIS_REPLY_INTEGER:
        return std::to_string(reply->integer);
      case REDIS_REPLY_NIL:
        return "(nil)";
      case REDIS_REPLY_ARRAY: {
        std::string text;
        for (std::size_t i = 0; i < reply->elements; ++i) text += (i ? "\n" : "") + Text(reply->element[i]);
        return text;
      }
      default:
        return std::string(reply->str, reply->len);
    }
  }

  int port_;
  redisContext* context_ = nullptr;
};

struct NodeInfo {
  int port = 0;
  std::string id;
  bool master = false;
  std::string master_id;  // of a replica
  bool failed = false;
  std::vector<std::pair<int, int>> slots;  // served ranges, of a master
};

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string out;
    if (Shell("command -v redis-server", &out) != 0) return;
    services_ = testing::ServicesScript().string();
    if (Shell(services_ + " free-port 12", &out) != 0) {
      setup_error_ = "scripts/services free-port 12 failed: " + out;
      return;
    }
    first_port_ = std::stoi(out);
    folder_ = fs::temp_directory_path() / ("stowage-cluster-" + std::to_string(::getpid()));
    if (Shell(services_ + " start redis-cluster " + folder_.string() + " " + std::to_string(first_port_),
              &out) != 0) {
      setup_error_ = "scripts/services start redis-cluster failed: " + out;
      return;
    }
    url_ = out;
    // The cluster answers before its replicas have synced, and a stage
    // learns which masters have replicas (so which writes wait for one) when
    // it starts: the tests begin once every master's replica is linked and
    // listed (an idle cluster may take a replication ping, 10 s, for that).
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!ReplicasLinked() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(milliseconds(100));
    if (!ReplicasLinked())
      setup_error_ =
          "the cluster's replicas were not linked to their masters and listed by CLUSTER SLOTS within 30 s";
  }
  // Whether every master that serves slots has a replica whose link to it is
  // up, and the seed's CLUSTER SLOTS (which a stage learns) lists them.
  static bool ReplicasLinked() {
    try {
      if (!Node(first_port_).SlotsListReplicas()) return false;
      const std::vector<NodeInfo> nodes = Nodes();
      for (const NodeInfo& master : nodes) {
        if (!master.master || master.slots.empty()) continue;
        bool linked = false;
        for (const NodeInfo& replica : nodes) {
          if (replica.master || replica.failed || replica.master_id != master.id) continue;
          Node node(replica.port);
          linked = linked ||
                   node.Command({"INFO", "replication"}).find("master_link_status:up") != std::string::npos;
        }
        if (!linked) return false;
      }
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  static void TearDownTestSuite() {
    if (folder_.empty()) return;
    std::string out;
    Shell(services_ + " stop redis-cluster " + folder_.string(), &out);
    fs::remove_all(folder_);
  }

  void SetUp() override {
    if (services_.empty()) GTEST_SKIP() << "redis-server is not installed; run scripts/deps";
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  // The stage's options from its defaults and `overrides`, as the host
  // would build them.
  static ChatStoreOptions OptionsFor(const std::map<std::string, ConfigValue>& overrides) {
    return RedisStage::OptionsFromConfig(ConfigWithDefaults(RedisStage::config_schema(), overrides));
  }

  // A stage on the cluster, given only the first seed of the url or all.
  std::unique_ptr<RedisStage> NewStage(bool all_seeds = false) {
    const std::string url = all_seeds ? url_ : "redis://127.0.0.1:" + std::to_string(first_port_);
    return std::make_unique<RedisStage>(
        OptionsFor({{"url", url}, {"cluster", true}, {"change_lifetime_ms", std::int64_t{1000}}}), log_);
  }

  // Every node, from CLUSTER NODES as a live node sees it (fields: id,
  // address, flags, master id, ping, pong, epoch, link, then slot ranges).
  static std::vector<NodeInfo> Nodes() {
    for (int i = 0; i < 6; ++i) {
      try {
        Node node(first_port_ + i);
        std::vector<NodeInfo> nodes;
        std::istringstream lines(node.Command({"CLUSTER", "NODES"}));
        std::string line;
        while (std::getline(lines, line)) {
          std::istringstream fields(line);
          std::string id, address, flags, master, skip;
          fields >> id >> address >> flags >> master >> skip >> skip >> skip >> skip;
          NodeInfo info;
          info.id = id;
          info.port =
              std::stoi(address.substr(address.find(':') + 1, address.find('@') - address.find(':') - 1));
          info.master = flags.find("master") != std::string::npos;
          info.failed = flags.find("fail") != std::string::npos;
          info.master_id = master;
          std::string range;
          while (fields >> range) {
            if (range.front() == '[') continue;  // a slot being moved
            const auto dash = range.find('-');
            const int first = std::stoi(range.substr(0, dash));
            info.slots.emplace_back(first,
                                    dash == std::string::npos ? first : std::stoi(range.substr(dash + 1)));
          }
          nodes.push_back(info);
        }
        return nodes;
      } catch (const std::exception&) {
      }
    }
    throw std::runtime_error("no node of the cluster answers");
  }
  // The port of the live master that serves `slot`, as the cluster says; 0: none.
  static int MasterOf(std::uint16_t slot) {
    for (const NodeInfo& info : Nodes()) {
      if (!info.master || info.failed) continue;
      for (const auto& [first, last] : info.slots)
        if (slot >= first && slot <= last) return info.port;
    }
    return 0;
  }
  static std::string IdOf(int port) {
    Node node(port);
    return node.Command({"CLUSTER", "MYID"});
  }
  // A guest id whose keys fall in `slot`, other than those in `taken`.
  static std::string GuestInSlot(std::uint16_t slot, const std::set<std::string>& taken = {}) {
    for (int i = 0;; ++i) {
      std::string guest = "c" + std::to_string(::getpid()) + "-" + std::to_string(i);
      if (KeySlot("guest:" + guest) == slot && taken.count(guest) == 0) return guest;
    }
  }

  // One POST's calls to the stage with a store behind: prepare before the
  // COMMIT, write after it.
  Status Post(RedisStage& stage, const std::string& guest, int sequence, const std::string& content) {
    Message message{"user", content, "2026-03-04T05:06:07.123456Z"};
    Attributes attributes;
    attributes.set(chat::kSequence, std::to_string(sequence));
    WriteContext ctx{guest, message, Deadline::After(milliseconds(3000)), log_, attributes};
    Status prepared = stage.prepare(ctx);
    return prepared.ok() ? stage.write(ctx) : prepared;
  }
  // What a GET finds in the cache: the contents, or nullopt on a miss.
  std::optional<std::vector<std::string>> Cached(RedisStage& stage, const std::string& guest) {
    Attributes notes;
    GuestContext ctx{guest, Deadline::After(milliseconds(3000)), log_, nullptr, &notes};
    ReadResult result = stage.read(ctx);
    EXPECT_TRUE(result.status.ok()) << result.status.ToString();
    if (!result.found) return std::nullopt;
    std::vector<std::string> contents;
    for (const Message& message : result.messages) contents.push_back(message.content);
    return contents;
  }

  inline static std::string services_;
  inline static std::string setup_error_;
  inline static fs::path folder_;
  inline static int first_port_ = 0;
  inline static std::string url_;
  QuietLogger log_;
};

TEST_F(RedisClusterTest, KeySlotAgreesWithTheCluster) {
  Node node(first_port_);
  std::vector<std::string> keys = {
      "guest:1",      "guest:{guest:1}:version", "{chat}:guest:7", "a{}b", "{}{x}", "x{y}{z}", "{{a}}", "",
      "user:\xff\x01"};
  for (int i = 0; i < 300; ++i) keys.push_back("guest:" + std::to_string(i * 7919));
  for (const std::string& key : keys)
    EXPECT_EQ(std::to_string(KeySlot(key)), node.Command({"CLUSTER", "KEYSLOT", key})) << key;
}

TEST_F(RedisClusterTest, WritesLandOnTheSlotsMasterAndOnAReplica) {
  auto stage = NewStage();  // one seed: the stage learns the other nodes
  ASSERT_TRUE(stage->health(Deadline::After(milliseconds(3000))).ok());
  std::map<int, int> per_master;
  for (int g = 0; g < 40; ++g) {
    const std::string guest = "spread-" + std::to_string(::getpid()) + "-" + std::to_string(g);
    ASSERT_TRUE(Post(*stage, guest, 0, "first").ok()) << guest;
    ASSERT_TRUE(Post(*stage, guest, 1, "second").ok()) << guest;
    EXPECT_EQ(Cached(*stage, guest), (std::vector<std::string>{"first", "second"})) << guest;
    const std::uint16_t slot = KeySlot("guest:" + guest);
    const int master = MasterOf(slot);
    ASSERT_NE(master, 0) << "slot " << slot;
    ++per_master[master];
    Node on_master(master);
    EXPECT_NE(on_master.Command({"GET", "guest:" + guest}), "(nil)")
        << guest << " is not on its slot's master";
    // WAIT 1 ran before write() returned: the master's replica has it.
    const std::string master_id = IdOf(master);
    for (const NodeInfo& info : Nodes()) {
      if (info.master || info.master_id != master_id) continue;
      Node replica(info.port);
      replica.Command({"READONLY"});
      EXPECT_NE(replica.Command({"GET", "guest:" + guest}).find("second"), std::string::npos)
          << guest << " is not on the replica on port " << info.port << ": "
          << replica.Command({"GET", "guest:" + guest});
    }
  }
  EXPECT_EQ(per_master.size(), 3u) << "40 guests should spread over the 3 masters";
}

// A slot moved as redis-cli --cluster reshard moves it: marked migrating on
// the source and importing on the target, its keys MIGRATEd, then given to
// the target.
TEST_F(RedisClusterTest, FollowsASlotThatMovesAskWhileItMovesMovedAfter) {
  auto stage = NewStage(/*all_seeds=*/true);
  const std::uint16_t slot = 4321;
  const std::string settled = GuestInSlot(slot);
  ASSERT_TRUE(Post(*stage, settled, 0, "before the move").ok());
  const int from = MasterOf(slot);
  int to = 0;
  for (const NodeInfo& info : Nodes())
    if (info.master && !info.failed && info.port != from) to = info.port;
  ASSERT_NE(from, 0);
  ASSERT_NE(to, 0);
  Node source(from), target(to);
  const std::string slot_text = std::to_string(slot);
  ASSERT_EQ(target.Command({"CLUSTER", "SETSLOT", slot_text, "IMPORTING", IdOf(from)}), "OK");
  ASSERT_EQ(source.Command({"CLUSTER", "SETSLOT", slot_text, "MIGRATING", IdOf(to)}), "OK");

  // A guest of that slot with no keys yet cannot be written on either side
  // until the move ends (TRYAGAIN): its write waits, within its deadline.
  const std::string fresh = GuestInSlot(slot, {settled});
  Status during;
  std::thread waiting([&] { during = Post(*stage, fresh, 0, "during the move"); });
  struct Joiner {
    std::thread& thread;
    ~Joiner() {
      if (thread.joinable()) thread.join();
    }
  } joiner{waiting};
  std::this_thread::sleep_for(milliseconds(300));

  // The settled guest's keys go over; the source now answers ASK for them.
  ASSERT_EQ(source.Command({"MIGRATE", "127.0.0.1", std::to_string(to), "", "0", "5000", "KEYS",
                            "guest:" + settled, "guest:{guest:" + settled + "}:version"}),
            "OK");
  ASSERT_TRUE(Post(*stage, settled, 1, "asked over").ok());
  target.Command({"ASKING"});
  EXPECT_NE(target.Command({"GET", "guest:" + settled}).find("asked over"), std::string::npos);
  // The source no longer holds them: it redirects.
  EXPECT_EQ(source.Command({"EXISTS", "guest:" + settled}).rfind("ASK ", 0), 0u);

  // The move ends; the stage still maps the slot to the source, which now
  // answers MOVED.
  for (const NodeInfo& info : Nodes()) {
    if (!info.master) continue;
    Node master(info.port);
    ASSERT_EQ(master.Command({"CLUSTER", "SETSLOT", slot_text, "NODE", IdOf(to)}), "OK");
  }
  waiting.join();
  ASSERT_TRUE(during.ok()) << "the write of a new guest during the move: " << during.ToString();
  ASSERT_TRUE(Post(*stage, settled, 2, "after the move").ok());
  EXPECT_EQ(Cached(*stage, settled),
            (std::vector<std::string>{"before the move", "asked over", "after the move"}));
  EXPECT_EQ(Cached(*stage, fresh), (std::vector<std::string>{"during the move"}));
  EXPECT_NE(target.Command({"GET", "guest:" + fresh}), "(nil)");
  EXPECT_EQ(MasterOf(slot), to);
}

TEST_F(RedisClusterTest, AKilledMasterIsFailedOverWithoutRestartingTheStage) {
  auto stage = NewStage();
  const std::uint16_t slot = 9000;
  const std::string guest = GuestInSlot(slot);
  ASSERT_TRUE(Post(*stage, guest, 0, "before the kill").ok());
  const int master = MasterOf(slot);
  ASSERT_NE(master, 0);
  std::ifstream pid_file(folder_ / std::to_string(master) / "redis.pid");
  pid_t pid = 0;
  ASSERT_TRUE(pid_file >> pid && pid > 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);

  // Writes of that slot fail fast until a replica is promoted, then go on.
  const auto killed = std::chrono::steady_clock::now();
  int failed = 0;
  Status last;
  bool resumed = false;
  int sequence = 1;
  while (std::chrono::steady_clock::now() - killed < std::chrono::seconds(20)) {
    const auto started = std::chrono::steady_clock::now();
    last = Post(*stage, guest, sequence, "after the kill");
    const auto took = std::chrono::steady_clock::now() - started;
    if (last.ok()) {
      resumed = true;
      break;
    }
    ++failed;
    EXPECT_LT(took, std::chrono::milliseconds(2500)) << "a write during the failover waited too long";
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(resumed) << "writes did not resume within 20 s of the kill; last: " << last.ToString();
  const auto resumed_after =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - killed).count();
  std::printf("writes to slot %d resumed %lld ms after its master was killed (%d writes failed meanwhile)\n",
              slot, static_cast<long long>(resumed_after), failed);
  EXPECT_NE(MasterOf(slot), master);
  // The message written before the kill was on the replica (WAIT): nothing lost.
  EXPECT_EQ(Cached(*stage, guest), (std::vector<std::string>{"before the kill", "after the kill"}));

  // The killed node comes back as a replica; the cluster is whole again.
  std::string out;
  ASSERT_EQ(Shell(services_ + " start redis-node " + folder_.string() + " " + std::to_string(master), &out),
            0)
      << out;
  // The stage learned the map while the promoted master had no replica; a
  // second later it knows the replica and waits for it again: frozen, the
  // replica makes the write fail instead of leaving it unreplicated.
  std::this_thread::sleep_for(milliseconds(1200));
  std::ifstream rejoined(folder_ / std::to_string(master) / "redis.pid");
  pid_t replica = 0;
  ASSERT_TRUE(rejoined >> replica && replica > 0);
  ASSERT_EQ(::kill(replica, SIGSTOP), 0);
  const Status unreplicated = Post(*stage, guest, sequence + 1, "while the new replica is frozen");
  ASSERT_EQ(::kill(replica, SIGCONT), 0);
  EXPECT_NE(unreplicated.message().find("no replica held the change"), std::string::npos)
      << unreplicated.ToString();
  EXPECT_TRUE(stage->health(Deadline::After(milliseconds(3000))).ok());
}

// WAIT 1 is what makes a write survive a failover: a write that no replica
// acknowledged is reported failed, not done.
TEST_F(RedisClusterTest, AWriteNoReplicaHoldsIsReportedFailed) {
  auto stage = NewStage();
  const std::uint16_t slot = 15000;
  const std::string guest = GuestInSlot(slot);
  ASSERT_TRUE(Post(*stage, guest, 0, "replicated").ok());
  const std::string master_id = IdOf(MasterOf(slot));
  int replica = 0;
  for (const NodeInfo& info : Nodes())
    if (!info.master && info.master_id == master_id && !info.failed) replica = info.port;
  ASSERT_NE(replica, 0) << "slot " << slot << "'s master has no replica";
  std::ifstream pid_file(folder_ / std::to_string(replica) / "redis.pid");
  pid_t pid = 0;
  ASSERT_TRUE(pid_file >> pid && pid > 0);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const Status frozen = Post(*stage, guest, 1, "not replicated");
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  EXPECT_FALSE(frozen.ok());
  EXPECT_NE(frozen.message().find("no replica held the change"), std::string::npos) << frozen.ToString();
  // Back: the next write is replicated and done; the failed one's array was
  // dropped (it is not served until the store refills it).
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_TRUE(Post(*stage, guest, 2, "replicated again").ok());
}

TEST_F(RedisClusterTest, RefusesConfigsThatCannotWork) {
  auto options = [](const std::map<std::string, ConfigValue>& overrides) { return OptionsFor(overrides); };
  try {
    options({{"url", std::string("redis://h1:7000,h2:7000")}});
    FAIL() << "several hosts without cluster = true were taken";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("cluster = true"), std::string::npos) << error.what();
  }
  for (const std::string& url : {"unix:///tmp/redis.sock", "redis://h1:7000/3"}) {
    EXPECT_THROW(options({{"url", url}, {"cluster", true}}), std::invalid_argument) << url;
  }
  const ChatStoreOptions taken =
      options({{"url", std::string("redis://:pw@h1:7000,h2,[::1]:7002")}, {"cluster", true}});
  ASSERT_EQ(taken.cluster_seeds.size(), 3u);
  EXPECT_EQ(taken.cluster_seeds[1].Address(), "h2:6379");
  EXPECT_EQ(taken.cluster_seeds[2].Address(), "[::1]:7002");
  EXPECT_EQ(taken.cluster_seeds[2].password, "pw");
}

}  // namespace
}  // namespace stowage::redis
