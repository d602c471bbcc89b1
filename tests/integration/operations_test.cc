// Operating stowaged: admin access, live reload (route and SIGHUP), /readyz,
// /metrics, the circuit breaker of a best_effort stage, and the startup
// health check. stowaged runs as a child process; Redis is a real server.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "json_answers.h"
#include "stowaged_process.h"
#include "support/process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "op3rator-t0ken";


std::string TestStage(const std::string& name, const std::string& extra = "",
                      const std::string& policy = "required") {
  return "[[stage]]\nname = \"" + name + "\"\nplugin = \"" + std::string(TEST_STAGE_PATH) +
         "\"\npolicy = \"" + policy + "\"\n" + extra + "\n[stage.config]\ntarget = \"" + name + "\"\n";
}

std::string Server(const std::string& extra = "") {
  return "[server]\nlisten = \"${STOWAGE_LISTEN}\"\n" + extra + "\n";
}

HttpResult Admin(std::uint16_t port, const std::string& method, const std::string& target,
                 const std::string& token = kToken) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  return HttpClient(port).Send(method, target, "", "", headers);
}

HttpResult PostMessage(std::uint16_t port, const std::string& guest, const std::string& content) {
  return HttpClient(port).Send("POST", "/v1/guest/chat/" + guest,
                               json::serialize(json::object{{"role", "user"}, {"content", content}}));
}

void Rewrite(const fs::path& file, const std::string& text) {
  std::ofstream(file, std::ios::trunc) << text;
}

int CountLinesStartingWith(const fs::path& file, const std::string& prefix) {
  std::ifstream in(file);
  int count = 0;
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) ++count;
  return count;
}

// The value of the series `name{labels}` in a /metrics text; -1 when absent.
double Sample(const std::string& metrics, const std::string& series) {
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

TEST(OperationsTest, AdminRoutesAreOffWithoutATokenAndNeedTheBearerToken) {
  auto off = StowagedProcess::FromText(Server() + TestStage("a"), {{"STOWAGE_ADMIN_TOKEN", ""}});
  ASSERT_TRUE(off->running());
  HttpResult hidden = Admin(off->port(), "GET", "/v1/admin/pipeline");
  EXPECT_EQ(hidden.status, 404) << hidden.body;
  EXPECT_NE(hidden.body.find("admin_token_env"), std::string::npos) << hidden.body;
  EXPECT_EQ(Admin(off->port(), "POST", "/v1/admin/reload").status, 404);

  auto on = StowagedProcess::FromText(Server("admin_token_env = \"OPS_TOKEN\"") + TestStage("a"),
                                      {{"OPS_TOKEN", kToken}});
  ASSERT_TRUE(on->running());
  HttpResult none = Admin(on->port(), "GET", "/v1/admin/pipeline", "");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_EQ(ParseObject(none.body)["error"].as_object()["code"], "unauthorized");
  EXPECT_EQ(Admin(on->port(), "GET", "/v1/admin/pipeline", "wrong").status, 401);
  EXPECT_EQ(Admin(on->port(), "GET", "/v1/admin/pipeline", std::string(kToken) + "x").status, 401);

  HttpResult view = Admin(on->port(), "GET", "/v1/admin/pipeline");
  ASSERT_EQ(view.status, 200) << view.body;
  json::object pipeline = ParseObject(view.body);
  EXPECT_EQ(pipeline["generation"], 1);
  json::object stage = pipeline["stages"].as_array().at(0).as_object();
  EXPECT_EQ(stage["name"], "a");
  EXPECT_EQ(stage["policy"], "required");
  EXPECT_EQ(stage["enabled"], true);
  EXPECT_EQ(std::string(stage["plugin"].as_string()), fs::canonical(TEST_STAGE_PATH).string());
  EXPECT_EQ(stage["plugin_version"], "1.0.0");
  EXPECT_EQ(stage["health"], "healthy");
  EXPECT_TRUE(stage["circuit"].is_null());  // required stages have no breaker
}

TEST(OperationsTest, AdminRoutesCanHaveAListenerOfTheirOwn) {
  const std::uint16_t admin_port = FreePort();
  auto server = StowagedProcess::FromText(
      Server("admin_listen = \"127.0.0.1:" + std::to_string(admin_port) + "\"") + TestStage("a"),
      {{"STOWAGE_ADMIN_TOKEN", kToken}});
  ASSERT_TRUE(server->running());
  ASSERT_TRUE(WaitForTcp(admin_port, 5000ms)) << server->log();
  EXPECT_EQ(Admin(server->port(), "GET", "/v1/admin/pipeline").status, 404);
  EXPECT_EQ(Admin(admin_port, "GET", "/v1/admin/pipeline").status, 200);
  EXPECT_EQ(Admin(admin_port, "GET", "/v1/admin/pipeline", "").status, 401);
  EXPECT_EQ(PostMessage(admin_port, "g", "not here").status, 404);
  EXPECT_EQ(PostMessage(server->port(), "g", "here").status, 200);
}

TEST(OperationsTest, ReloadAddsAndDisablesStagesAndRefusesABadFile) {
  auto server = StowagedProcess::FromText(Server() + TestStage("a") + TestStage("b", "", "best_effort"),
                                          {{"STOWAGE_ADMIN_TOKEN", kToken}});
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();

  Rewrite(server->config(), Server() + TestStage("a") + TestStage("b", "enabled = false", "best_effort") +
                                TestStage("c", "", "best_effort"));
  HttpResult reloaded = Admin(port, "POST", "/v1/admin/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body << server->log();
  json::object report = ParseObject(reloaded.body);
  EXPECT_EQ(report["status"], "reloaded");
  EXPECT_EQ(report["generation"], 2);
  EXPECT_EQ(NamesIn(report, "added"), std::vector<std::string>{"c"});
  EXPECT_EQ(NamesIn(report, "disabled"), std::vector<std::string>{"b"});
  EXPECT_EQ(NamesIn(report, "kept"), std::vector<std::string>{"a"});
  HttpResult stored = PostMessage(port, "guest-1", "after reload");
  ASSERT_EQ(stored.status, 200) << stored.body;
  EXPECT_EQ(NamesIn(ParseObject(stored.body), "stored_in"), (std::vector<std::string>{"a", "c"}));

  // A file with a typo is refused with its error; generation 2 keeps serving.
  Rewrite(server->config(), Server() + TestStage("a", "polcy = \"required\""));
  HttpResult refused = Admin(port, "POST", "/v1/admin/reload");
  ASSERT_EQ(refused.status, 400) << refused.body;
  json::object why = ParseObject(refused.body);
  EXPECT_EQ(why["status"], "refused");
  EXPECT_EQ(why["generation"], 2);
  ASSERT_EQ(NamesIn(why, "errors").size(), 1u);
  EXPECT_NE(NamesIn(why, "errors")[0].find("did you mean 'policy'"), std::string::npos) << refused.body;
  stored = PostMessage(port, "guest-1", "still served");
  ASSERT_EQ(stored.status, 200) << stored.body;
  EXPECT_EQ(NamesIn(ParseObject(stored.body), "stored_in"), (std::vector<std::string>{"a", "c"}));

  HttpResult metrics = HttpClient(port).Send("GET", "/metrics", "", "");
  EXPECT_EQ(Sample(metrics.body, "stowage_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(Sample(metrics.body, "stowage_reloads_total{result=\"refused\"}"), 1);
  EXPECT_EQ(Sample(metrics.body, "stowage_pipeline_generation"), 2);
  EXPECT_NE(server->log().find("reload refused (generation 2 keeps serving)"), std::string::npos);
}

TEST(OperationsTest, SighupReloads) {
  auto server = StowagedProcess::FromText(Server() + TestStage("a"), {{"STOWAGE_ADMIN_TOKEN", kToken}});
  ASSERT_TRUE(server->running());
  Rewrite(server->config(), Server() + TestStage("a") + TestStage("b"));
  ASSERT_TRUE(server->Signal(SIGHUP));
  std::string answer;
  for (int i = 0; i < 50 && answer.find("\"b\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    answer = Admin(server->port(), "GET", "/v1/admin/pipeline").body;
  }
  EXPECT_EQ(ParseObject(answer)["generation"], 2) << answer;
  EXPECT_NE(server->log().find("reload: generation 2"), std::string::npos) << server->log();
  HttpResult stored = PostMessage(server->port(), "g", "two stages");
  EXPECT_EQ(NamesIn(ParseObject(stored.body), "stored_in"), (std::vector<std::string>{"a", "b"}));
}

TEST(OperationsTest, ReadyzNamesTheUnhealthyRequiredStage) {
  ServiceInstance redis(Service::kRedis);
  ASSERT_TRUE(redis.Start());
  auto server = StowagedProcess::FromText(
      Server() + "[[stage]]\nname = \"redis\"\nplugin = \"redis\"\n[stage.config]\nurl = \"" + redis.url() +
      "\"\n");
  ASSERT_TRUE(server->running());
  HttpResult ready = HttpClient(server->port()).Send("GET", "/readyz", "", "");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ParseObject(ready.body)["status"], "ready");

  ASSERT_TRUE(redis.Stop());
  // The last answer is kept for a second.
  HttpResult unready;
  for (int i = 0; i < 30; ++i) {
    unready = HttpClient(server->port()).Send("GET", "/readyz", "", "");
    if (unready.status != 200) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(unready.status, 503) << unready.body;
  json::object answer = ParseObject(unready.body);
  EXPECT_EQ(answer["status"], "unready");
  ASSERT_EQ(answer["unhealthy"].as_array().size(), 1u) << unready.body;
  EXPECT_EQ(answer["unhealthy"].as_array()[0].as_object()["stage"], "redis");
  EXPECT_EQ(answer["unhealthy"].as_array()[0].as_object()["reason"], "unreachable") << unready.body;
  EXPECT_EQ(answer["stages"].as_object()["redis"].as_object()["status"], "unhealthy") << unready.body;
  // No address: the detail is in the log.
  std::string port = redis.url().substr(redis.url().rfind(':') + 1);
  port = port.substr(0, port.find_first_not_of("0123456789"));
  EXPECT_EQ(unready.body.find("127.0.0.1"), std::string::npos) << unready.body;
  EXPECT_EQ(unready.body.find(port), std::string::npos) << unready.body;
  EXPECT_NE(server->log().find("readiness: stage 'redis' (required) is unhealthy"), std::string::npos)
      << server->log();
  EXPECT_EQ(HttpClient(server->port()).Send("GET", "/healthz", "", "").status, 200);  // alive all the same

  ASSERT_TRUE(redis.Start());
  HttpResult again;
  for (int i = 0; i < 50; ++i) {
    again = HttpClient(server->port()).Send("GET", "/readyz", "", "");
    if (again.status == 200) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(again.status, 200) << again.body;
}

TEST(OperationsTest, MetricsCountRequestsStagesAndDegradedAnswers) {
  auto server = StowagedProcess::FromText(Server() + TestStage("a") +
                                          TestStage("flaky", "circuit_threshold = 0", "best_effort") +
                                          "write = \"fail\"\n");
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(PostMessage(port, "guest-m", "m" + std::to_string(i)).status, 200);
  ASSERT_EQ(HttpClient(port).Send("GET", "/v1/guest/chat/guest-m", "", "").status, 200);
  ASSERT_EQ(HttpClient(port).Send("GET", "/v1/guest/chat/bad%20id", "", "").status, 400);

  HttpResult metrics = HttpClient(port).Send("GET", "/metrics", "", "");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = metrics.body;
  const std::string chat = "route=\"/v1/guest/chat/{guest_id}\"";
  EXPECT_EQ(Sample(text, "stowage_http_requests_total{" + chat + ",method=\"POST\",status=\"200\"}"), 3)
      << text;
  EXPECT_EQ(Sample(text, "stowage_http_requests_total{" + chat + ",method=\"GET\",status=\"200\"}"), 1);
  EXPECT_EQ(Sample(text, "stowage_http_requests_total{" + chat + ",method=\"GET\",status=\"400\"}"), 1);
  EXPECT_EQ(text.find("guest-m"), std::string::npos) << "raw paths must not be labels";
  EXPECT_EQ(Sample(text, "stowage_http_request_duration_seconds_count{" + chat + "}"), 5);
  EXPECT_GT(Sample(text, "stowage_http_request_duration_seconds_sum{" + chat + "}"), 0);
  EXPECT_EQ(Sample(text, "stowage_stage_calls_total{stage=\"a\",outcome=\"ok\"}"), 4);  // 3 writes, 1 read
  EXPECT_EQ(Sample(text, "stowage_stage_calls_total{stage=\"flaky\",outcome=\"failed\"}"), 3);
  EXPECT_EQ(Sample(text, "stowage_stage_calls_total{stage=\"flaky\",outcome=\"skipped\"}"), 0);
  EXPECT_EQ(Sample(text, "stowage_stage_duration_seconds_count{stage=\"a\"}"), 4);
  EXPECT_EQ(Sample(text, "stowage_degraded_responses_total"), 3);
  EXPECT_EQ(Sample(text, "stowage_pipeline_generation"), 1);
  EXPECT_EQ(Sample(text, "stowage_reloads_total{result=\"ok\"}"), 0);
  EXPECT_NE(text.find("# TYPE stowage_http_request_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE stowage_stage_duration_seconds histogram"), std::string::npos);
}

TEST(OperationsTest, CircuitOpensSkipsTheStageThenProbesAfterTheCooldown) {
  const fs::path journal = fs::temp_directory_path() / ("stowage_circuit_" + std::to_string(::getpid()));
  fs::remove(journal);
  // Each write hangs past the stage's timeout: a failure for the engine, and
  // a journal line once the write ends, so every call that reached the stage shows.
  auto server = StowagedProcess::FromText(
      Server() + TestStage("a") +
          TestStage("flaky", "timeout_ms = 100\ncircuit_threshold = 2\ncircuit_cooldown_ms = 1500",
                    "best_effort") +
          "write = \"hang\"\nhang_ms = 200\njournal = \"" + journal.string() + "\"\n",
      {{"STOWAGE_ADMIN_TOKEN", kToken}});
  ASSERT_TRUE(server->running());
  const std::uint16_t port = server->port();
  for (int i = 0; i < 2; ++i) {
    HttpResult answer = PostMessage(port, "guest-c", "m" + std::to_string(i));
    ASSERT_EQ(answer.status, 200) << answer.body;
    EXPECT_EQ(NamesIn(ParseObject(answer.body), "degraded"), std::vector<std::string>{"flaky"});
  }
  std::this_thread::sleep_for(400ms);
  ASSERT_EQ(CountLinesStartingWith(journal, "flaky write"), 2);

  const auto opened = std::chrono::steady_clock::now();
  HttpResult skipped = PostMessage(port, "guest-c", "while open");
  ASSERT_EQ(skipped.status, 200);
  EXPECT_EQ(NamesIn(ParseObject(skipped.body), "degraded"), std::vector<std::string>{"flaky"});
  EXPECT_EQ(NamesIn(ParseObject(skipped.body), "stored_in"), std::vector<std::string>{"a"});
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(CountLinesStartingWith(journal, "flaky write"), 2) << "the open circuit should skip the stage";

  std::string metrics = HttpClient(port).Send("GET", "/metrics", "", "").body;
  EXPECT_EQ(Sample(metrics, "stowage_circuit_state{stage=\"flaky\"}"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "stowage_stage_calls_total{stage=\"flaky\",outcome=\"skipped\"}"), 1);
  EXPECT_EQ(Sample(metrics, "stowage_stage_calls_total{stage=\"flaky\",outcome=\"timed_out\"}"), 2);
  json::object view = ParseObject(Admin(port, "GET", "/v1/admin/pipeline").body);
  EXPECT_EQ(view["stages"].as_array().at(1).as_object()["circuit"], "open");
  EXPECT_NE(server->log().find("circuit opened (2 consecutive failures)"), std::string::npos)
      << server->log();

  std::this_thread::sleep_until(opened + 1600ms);
  ASSERT_EQ(PostMessage(port, "guest-c", "probe").status, 200);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(CountLinesStartingWith(journal, "flaky write"), 3)
      << "one request should probe after the cool-down";
  EXPECT_NE(server->log().find("circuit opened (the probe failed)"), std::string::npos) << server->log();
  fs::remove(journal);
}

TEST(OperationsTest, StartupIsRefusedWhileARequiredStageIsUnhealthy) {
  const std::uint16_t dead = FreePort();  // nothing listens there
  const fs::path file =
      fs::temp_directory_path() / ("stowage_startup_" + std::to_string(::getpid()) + ".toml");
  Rewrite(file, "[server]\nlisten = \"127.0.0.1:" + std::to_string(FreePort()) +
                    "\"\nstartup_timeout_ms = 600\n[[stage]]\nname = \"redis\"\nplugin = \"redis\"\n"
                    "[stage.config]\nurl = \"redis://127.0.0.1:" +
                    std::to_string(dead) + "/0\"\n");
  const fs::path out = file.string() + ".log";
  ChildProcess stowaged({STOWAGED_PATH, "--config", file.string()}, out);
  const auto started = std::chrono::steady_clock::now();
  std::optional<int> code = stowaged.Wait(15000ms);
  const std::string log = stowaged.ReadOutput();
  ASSERT_TRUE(code.has_value()) << log;
  EXPECT_EQ(*code, 2) << log;
  EXPECT_GE(std::chrono::steady_clock::now() - started, 500ms) << "it should retry until startup_timeout_ms";
  EXPECT_NE(log.find("refusing to start: required stages still unhealthy after startup_timeout_ms = 600"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("stage 'redis' (required)"), std::string::npos) << log;
  fs::remove(file);
  fs::remove(out);
}

TEST(OperationsTest, AnUnhealthyBestEffortStageOnlyDegradesTheStart) {
  const std::uint16_t dead = FreePort();
  auto server = StowagedProcess::FromText(
      Server("startup_timeout_ms = 300") + TestStage("a") +
      "[[stage]]\nname = \"cache\"\nplugin = \"redis\"\npolicy = \"best_effort\"\n[stage.config]\nurl = "
      "\"redis://127.0.0.1:" +
      std::to_string(dead) + "/0\"\n");
  ASSERT_TRUE(server->running());
  EXPECT_NE(server->log().find("stage 'cache' (best_effort) is not healthy"), std::string::npos)
      << server->log();
  EXPECT_EQ(HttpClient(server->port()).Send("GET", "/readyz", "", "").status, 200);
}

}  // namespace
}  // namespace stowage::testing
