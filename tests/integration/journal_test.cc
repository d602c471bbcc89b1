// The journal end to end: stowaged with the real stages on a scratch
// database, an embedding provider (a local fake speaking Vertex AI's wire
// format) that goes down under load, a metrics table dropped and
// re-created, a stowaged killed with kill -9 while a backlog waits, and an
// entry that never succeeds. What a best_effort stage failed to store is
// done once its target is back, once, or parked where an operator sees it.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "fake_provider.h"
#include "../http/http_client.h"
#include "scratch_database.h"
#include "stores.h"
#include "stowaged_process.h"
#include "support/process.h"

namespace stowage::testing {
namespace {

namespace json = boost::json;
using embeddings::testing::FakeProvider;
using namespace std::chrono_literals;

constexpr const char* kToken = "journal-admin-token";
constexpr const char* kProviderToken = "vertex-token";
constexpr std::size_t kDimensions = 1408;  // multimodalembedding@001

FakeProvider::Options Vertex() {
  FakeProvider::Options options;
  options.dimensions = kDimensions;
  options.token = kProviderToken;
  return options;
}

std::string Pipeline(const std::string& database_url, const FakeProvider& provider, const std::string& extra_stages,
                     const std::string& embeddings_extra = "circuit_threshold = 5\ncircuit_cooldown_ms = 1000\n") {
  return "[server]\nlisten = \"${STOWAGE_LISTEN}\"\nadmin_token_env = \"JOURNAL_TEST_TOKEN\"\n"
         "[[database]]\nname = \"main\"\nurl = \"" +
         database_url +
         "\"\npool_size = 4\n"
         "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\npolicy = \"required\"\ndatabase = \"main\"\n"
         "timeout_ms = 5000\n"
         "[[stage]]\nname = \"embeddings\"\nplugin = \"embeddings\"\npolicy = \"best_effort\"\n"
         "database = \"main\"\ntimeout_ms = 2000\n" +
         embeddings_extra + "\n[stage.config]\nprovider = \"vertex\"\nproject = \"test-project\"\nendpoint = \"" +
         provider.base_url() + "\"\nrequest_timeout_ms = 1000\n" + extra_stages;
}

std::map<std::string, std::string> Env() {
  return {{"JOURNAL_TEST_TOKEN", kToken}, {"GOOGLE_ACCESS_TOKEN", kProviderToken}};
}

// The value of the series `series` in a /metrics text; -1 when absent.
double Sample(const std::string& metrics, const std::string& series) {
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

struct Acknowledged {
  std::string guest;
  std::string content;
  bool embeddings_degraded = false;
};

// Clients POSTing unique messages over `guests` guests until stopped; every
// answer that is not 200 is a test failure.
class Load {
 public:
  // Each client waits `pause` between its POSTs.
  Load(std::uint16_t port, const std::string& prefix, int clients, std::chrono::milliseconds pause) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, port, prefix, c, pause] {
        for (int n = 0; !stop_.load(); ++n) {
          std::this_thread::sleep_for(pause);
          const std::string guest = prefix + "-" + std::to_string((c * 7 + n) % 12);
          const std::string content =
              "message " + std::to_string(c) + "." + std::to_string(n) + " about parcel " + std::to_string(n * 31 + c);
          HttpResult answer;
          try {
            answer = HttpClient(port).Send("POST", "/v1/guest/chat/" + guest,
                                           json::serialize(json::object{{"role", "user"}, {"content", content}}));
          } catch (const std::exception& e) {  // stowaged is gone (killed)
            std::lock_guard lock(mu_);
            failures_.push_back(std::string("no answer: ") + e.what());
            std::this_thread::sleep_for(50ms);
            continue;
          }
          std::lock_guard lock(mu_);
          if (answer.status != 200) {
            failures_.push_back(std::to_string(answer.status) + " " + answer.body);
            continue;
          }
          Acknowledged ack{guest, content, answer.body.find("\"embeddings\"") != std::string::npos};
          acknowledged_.push_back(std::move(ack));
        }
      });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::vector<Acknowledged> acknowledged() {
    std::lock_guard lock(mu_);
    return acknowledged_;
  }
  std::vector<std::string> failures() {
    std::lock_guard lock(mu_);
    return failures_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Acknowledged> acknowledged_;
  std::vector<std::string> failures_;
  std::vector<std::thread> threads_;
};

// Waits up to `limit` for `done`; returns how long it took, or nullopt.
template <typename F>
std::optional<std::chrono::milliseconds> Within(std::chrono::milliseconds limit, F done) {
  const auto began = std::chrono::steady_clock::now();
  while (true) {
    if (done())
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
    if (std::chrono::steady_clock::now() - began > limit) return std::nullopt;
    std::this_thread::sleep_for(200ms);
  }
}

// Messages of guests `prefix`-* in message_cache without an embedding row.
int WithoutEmbedding(PostgresProbe& pg, const std::string& prefix) {
  return std::stoi(pg.Scalar(
      "SELECT count(*) FROM message_cache m JOIN conversation_cache c ON c.id = m.conversation_id"
      " WHERE c.user_id LIKE $1 || '-%' AND NOT EXISTS (SELECT 1 FROM cache_embeddings e WHERE e.message_id = m.id)",
      prefix));
}

struct CliResult {
  int exit_code = -1;
  std::string output;
};

// `stowage ARGS...` as an operator runs it, with the variables the test's
// pipeline.toml names set.
CliResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), STOWAGE_CLI_PATH);
  ChildProcess cli(std::move(args), {}, {{"STOWAGE_LISTEN", "127.0.0.1:1"}, {"JOURNAL_TEST_TOKEN", kToken}});
  CliResult result;
  result.exit_code = cli.Wait(30s).value_or(-1);
  result.output = cli.ReadOutput();
  return result;
}

int Backlog(std::uint16_t port, const std::string& stage) {
  HttpResult metrics = HttpClient(port).Send("GET", "/metrics");
  return static_cast<int>(Sample(metrics.body, "stowage_journal_backlog{stage=\"" + stage + "\"}"));
}

TEST(JournalTest, MessagesStoredWhileTheEmbeddingProviderWasDownGetTheirEmbeddingsOnceItIsBack) {
  ScratchDatabase db("journal_outage");
  ASSERT_TRUE(db.ok());
  FakeProvider provider(Vertex());
  auto server = StowagedProcess::FromText(Pipeline(db.url(), provider, ""), Env());
  ASSERT_TRUE(server->running());
  PostgresProbe pg(db.url());
  const std::string prefix = "outage";

  // About 250 POSTs a second (a busy chat service), ~5000 in the outage.
  Load load(server->port(), prefix, 4, 15ms);
  std::this_thread::sleep_for(3s);
  provider.set_mode(FakeProvider::Mode::kErrorStatus, 503);
  const std::size_t before_outage = load.acknowledged().size();
  std::this_thread::sleep_for(20s);
  provider.set_mode(FakeProvider::Mode::kOk);
  const std::size_t after_outage = load.acknowledged().size();
  const auto back = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);
  load.Stop();

  EXPECT_TRUE(load.failures().empty()) << load.failures().size() << " POSTs failed, first: " << load.failures()[0];
  const auto acknowledged = load.acknowledged();
  std::size_t degraded = 0;
  for (std::size_t i = 0; i < acknowledged.size(); ++i) {
    if (acknowledged[i].embeddings_degraded) ++degraded;
    // Every answer during the outage (a second after it began, to the end)
    // lists embeddings under degraded.
    if (i > before_outage + 40 && i < after_outage) EXPECT_TRUE(acknowledged[i].embeddings_degraded) << i;
  }
  ASSERT_GT(degraded, 100u) << "the outage did not show";

  // Within 30 s of the provider's return, every message has its embedding.
  auto drained = Within(30s, [&] { return WithoutEmbedding(pg, prefix) == 0; });
  const auto since_back = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back);
  if (!drained || since_back > 30s) {  // what the replay did, for the failure's reader
    std::istringstream lines(server->log());
    for (std::string line; std::getline(lines, line);)
      if (line.find("journal") != std::string::npos || line.find("circuit") != std::string::npos)
        std::cout << line << "\n";
  }
  ASSERT_TRUE(drained) << WithoutEmbedding(pg, prefix) << " of the " << degraded
                       << " messages stored during the outage still lack an embedding";
  EXPECT_LE(since_back, 30s);
  std::cout << "[ figures  ] acknowledged " << acknowledged.size() << ", answered with embeddings degraded "
            << degraded << ", messages during the 20 s outage " << (after_outage - before_outage)
            << ", every embedding stored " << since_back.count() << " ms after the provider was back\n";

  // Each message once, each embedding once, 1408 numbers each.
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM message_cache m JOIN conversation_cache c ON c.id = m.conversation_id"
                      " WHERE c.user_id LIKE $1 || '-%'",
                      prefix),
            std::to_string(acknowledged.size()));
  EXPECT_EQ(pg.Scalar("SELECT count(*) - count(DISTINCT (message_id, chunk_index)) FROM cache_embeddings"
                      " WHERE $1 <> ''",
                      prefix),
            "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM cache_embeddings WHERE embedding_dim <> 1408 OR"
                      " jsonb_array_length(embedding) <> 1408 OR $1 = ''",
                      prefix),
            "0");
  // Search finds a message of the outage.
  const Acknowledged* during = nullptr;
  for (const auto& a : acknowledged)
    if (a.embeddings_degraded) during = &a;
  ASSERT_NE(during, nullptr);
  std::string query = during->content;
  for (auto& ch : query)
    if (ch == ' ') ch = '+';
  HttpResult found = HttpClient(server->port()).Send("GET", "/v1/guest/chat/" + during->guest + "/search?q=" + query + "&k=1");
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_NE(found.body.find(during->content), std::string::npos) << found.body;
  // The backlog shows empty.
  EXPECT_TRUE(Within(5s, [&] { return Backlog(server->port(), "embeddings") == 0; })) << Backlog(server->port(), "embeddings");
  HttpResult metrics = HttpClient(server->port()).Send("GET", "/metrics");
  EXPECT_GT(Sample(metrics.body, "stowage_journal_replayed_total{stage=\"embeddings\"}"), 0);
}

TEST(JournalTest, UsageCountsMissedWhileTheMetricsTableWasGoneAreCountedOnceItIsBack) {
  ScratchDatabase db("journal_metrics");
  ASSERT_TRUE(db.ok());
  FakeProvider provider(Vertex());
  const std::string metrics_stage =
      "[[stage]]\nname = \"metrics\"\nplugin = \"metrics\"\npolicy = \"best_effort\"\ndatabase = \"main\"\n"
      "circuit_cooldown_ms = 1000\n[stage.config]\nguest_monthly_limit = 100000\n";
  auto server = StowagedProcess::FromText(Pipeline(db.url(), provider, metrics_stage), Env());
  ASSERT_TRUE(server->running());
  PostgresProbe pg(db.url());
  pg.Exec("DROP TABLE usage_metrics");

  HttpClient client(server->port());
  int accepted = 0, degraded = 0;
  auto post = [&](int n) {
    for (int i = 0; i < n; ++i) {
      HttpResult r = client.Send("POST", "/v1/guest/chat/usage-" + std::to_string(i % 5),
                                 json::serialize(json::object{{"role", "user"}, {"content", "hello " + std::to_string(i)}}));
      ASSERT_EQ(r.status, 200) << r.body;
      ++accepted;
      if (r.body.find("\"metrics\"") != std::string::npos) ++degraded;
    }
  };
  post(40);  // no table: each answered 200 with metrics degraded
  EXPECT_EQ(degraded, 40);
  // Re-created as the stage's migration 1 makes it (plugins/metrics/metrics_schema.cc).
  pg.Exec(
      "CREATE TABLE usage_metrics (id bigserial PRIMARY KEY, user_id text NOT NULL UNIQUE, tier text NOT NULL,"
      " total_requests bigint NOT NULL DEFAULT 0, cache_hits bigint NOT NULL DEFAULT 0,"
      " cache_misses bigint NOT NULL DEFAULT 0, monthly_request_limit integer NOT NULL, month_start date NOT NULL,"
      " month_requests integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(),"
      " updated_at timestamptz NOT NULL DEFAULT now())");
  post(25);
  auto counted = Within(30s, [&] {
    return pg.Scalar("SELECT coalesce(sum(total_requests), 0) FROM usage_metrics WHERE user_id LIKE $1 || '-%'",
                     "usage") == std::to_string(accepted);
  });
  EXPECT_TRUE(counted) << "usage_metrics counts "
                       << pg.Scalar("SELECT coalesce(sum(total_requests), 0) FROM usage_metrics WHERE user_id LIKE $1 || '-%'",
                                    "usage")
                       << " of " << accepted << " accepted POSTs";
  // And stays there: nothing is counted twice by later rounds.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(pg.Scalar("SELECT coalesce(sum(total_requests), 0) FROM usage_metrics WHERE user_id LIKE $1 || '-%'", "usage"),
            std::to_string(accepted));
}

TEST(JournalTest, ABacklogLeftByAKilledStowagedIsReplayedByTheNextOne) {
  ScratchDatabase db("journal_kill");
  ASSERT_TRUE(db.ok());
  FakeProvider provider(Vertex());
  provider.set_mode(FakeProvider::Mode::kErrorStatus, 503);
  const std::string text = Pipeline(db.url(), provider, "");
  PostgresProbe pg(db.url());
  const std::string prefix = "killed";
  std::filesystem::path config;
  std::size_t acknowledged = 0;
  {
    auto first = StowagedProcess::FromText(text, Env());
    ASSERT_TRUE(first->running());
    config = first->config();
    Load load(first->port(), prefix, 2, 0ms);
    std::this_thread::sleep_for(3s);
    // kill -9 under load, while the backlog grows.
    ASSERT_TRUE(first->Signal(SIGKILL));
    load.Stop();
    acknowledged = load.acknowledged().size();
  }
  ASSERT_GT(acknowledged, 20u);
  const int waiting = std::stoi(pg.Scalar("SELECT count(*) FROM stowage_journal WHERE stage = $1", "embeddings"));
  // Every acknowledged message is journaled (a POST killed before its
  // answer may have committed too: at least as many).
  EXPECT_GE(waiting, static_cast<int>(acknowledged));
  EXPECT_EQ(WithoutEmbedding(pg, prefix), waiting);

  provider.set_mode(FakeProvider::Mode::kOk);
  auto second = StowagedProcess::FromText(text, Env());
  ASSERT_TRUE(second->running());
  auto drained = Within(30s, [&] { return WithoutEmbedding(pg, prefix) == 0; });
  EXPECT_TRUE(drained) << WithoutEmbedding(pg, prefix) << " of " << waiting << " still lack an embedding";
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM stowage_journal WHERE stage = $1", "embeddings"), "0");
  EXPECT_EQ(pg.Scalar("SELECT count(*) - count(DISTINCT (message_id, chunk_index)) FROM cache_embeddings WHERE $1 <> ''",
                      prefix),
            "0");
  std::cout << "[ figures  ] " << acknowledged << " acknowledged, " << waiting
            << " journaled when stowaged was killed, all replayed by the next one in "
            << (drained ? drained->count() : -1) << " ms\n";
}

TEST(JournalTest, AnEntryThatNeverSucceedsIsParkedListedAndDroppedByTheOperator) {
  ScratchDatabase db("journal_parked");
  ASSERT_TRUE(db.ok());
  FakeProvider provider(Vertex());
  provider.set_mode(FakeProvider::Mode::kWrongSize);  // a provider that answers, wrongly, every time
  auto server = StowagedProcess::FromText(
      Pipeline(db.url(), provider, "", "replay_max_attempts = 2\ncircuit_threshold = 0\n"), Env());
  ASSERT_TRUE(server->running());
  PostgresProbe pg(db.url());
  HttpClient client(server->port());
  for (int i = 0; i < 3; ++i) {
    HttpResult r = client.Send("POST", "/v1/guest/chat/parked-1",
                               json::serialize(json::object{{"role", "user"}, {"content", "hi " + std::to_string(i)}}));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  auto parked = Within(20s, [&] {
    return pg.Scalar("SELECT count(*) FROM stowage_journal WHERE parked_at IS NOT NULL AND guest_id = $1",
                     "parked-1") == "3";
  });
  ASSERT_TRUE(parked) << pg.Scalar("SELECT string_agg(attempts || ':' || coalesce(last_error, ''), ' | ') FROM "
                                   "stowage_journal WHERE guest_id = $1",
                                   "parked-1");
  EXPECT_EQ(pg.Scalar("SELECT min(attempts) FROM stowage_journal WHERE guest_id = $1", "parked-1"), "2");
  EXPECT_TRUE(Within(5s, [&] {
    HttpResult m = HttpClient(server->port()).Send("GET", "/metrics");
    return Sample(m.body, "stowage_journal_parked{stage=\"embeddings\"}") == 3 &&
           Sample(m.body, "stowage_journal_backlog{stage=\"embeddings\"}") == 0;
  }));

  // The operator sees them...
  CliResult listed = Cli({"journal", "list", server->config().string(), "--stage", "embeddings"});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("parked-1"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("parked"), std::string::npos) << listed.output;
  // ... and drops them.
  CliResult dropped = Cli({"journal", "drop", server->config().string(), "--stage", "embeddings", "--parked"});
  EXPECT_EQ(dropped.exit_code, 0) << dropped.output;
  EXPECT_NE(dropped.output.find("dropped 3"), std::string::npos) << dropped.output;
  EXPECT_EQ(pg.Scalar("SELECT count(*) FROM stowage_journal WHERE guest_id = $1", "parked-1"), "0");
}

TEST(JournalTest, AStageSwitchedOffJournalsNothingKeepsItsEntriesAndReplaysThemWhenSwitchedOnAgain) {
  ScratchDatabase db("journal_rollback");
  ASSERT_TRUE(db.ok());
  FakeProvider provider(Vertex());
  provider.set_mode(FakeProvider::Mode::kErrorStatus, 503);
  const std::string on = Pipeline(db.url(), provider, "");
  const std::string off =
      Pipeline(db.url(), provider, "", "enabled = false\ncircuit_threshold = 5\ncircuit_cooldown_ms = 1000\n");
  auto server = StowagedProcess::FromText(on, Env());
  ASSERT_TRUE(server->running());
  PostgresProbe pg(db.url());
  HttpClient client(server->port());
  auto post = [&](const std::string& guest, int n) {
    for (int i = 0; i < n; ++i) {
      HttpResult r = client.Send("POST", "/v1/guest/chat/" + guest,
                                 json::serialize(json::object{{"role", "user"}, {"content", "note " + std::to_string(i)}}));
      ASSERT_EQ(r.status, 200) << r.body;
    }
  };
  auto reload = [&](const std::string& text) {
    std::ofstream(server->config(), std::ios::trunc) << text;
    std::vector<std::pair<std::string, std::string>> auth{{"Authorization", std::string("Bearer ") + kToken}};
    HttpResult r = HttpClient(server->port()).Send("POST", "/v1/admin/reload", "", "", auth);
    ASSERT_EQ(r.status, 200) << r.body;
  };
  auto entries = [&] { return pg.Scalar("SELECT count(*) FROM stowage_journal WHERE stage = $1", "embeddings"); };

  post("rollback-down-1", 10);  // the provider is down: journaled
  EXPECT_EQ(entries(), "10");
  EXPECT_EQ(HttpClient(server->port()).Send("GET", "/readyz").status, 200);  // best_effort: still ready

  reload(off);  // the operator rolls embeddings back
  provider.set_mode(FakeProvider::Mode::kOk);
  post("rollback-off-1", 5);  // not embedded, not journaled
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(entries(), "10") << "a stage switched off is not replayed, and its entries are kept";
  EXPECT_EQ(WithoutEmbedding(pg, "rollback"), 15);

  reload(on);
  EXPECT_TRUE(Within(15s, [&] { return entries() == "0"; })) << entries();
  EXPECT_EQ(WithoutEmbedding(pg, "rollback-down"), 0);
  EXPECT_EQ(WithoutEmbedding(pg, "rollback-off"), 5);  // never journaled: rolled back means off
}

}  // namespace
}  // namespace stowage::testing
