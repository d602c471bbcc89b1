// End-to-end tests of stowaged: the real server binary, started on a free
// port with a pipeline of test_stage plugins, driven over real sockets.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "support/process.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr std::size_t kBodyLimit = 4096;
constexpr std::size_t kMaxContent = 1000;

// One [[stage]] of a test pipeline: a test_stage with the given settings.
struct StageSpec {
  std::string name;
  std::string policy = "required";
  std::string config;  // the inline table's entries, e.g. R"(target = "redis")"
  int timeout_ms = 3000;
};

// A folder of its own for one test, removed afterwards.
fs::path TempFolder() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "suite";
  fs::path folder = fs::temp_directory_path() / ("stowage_http_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(folder);
  fs::create_directories(folder);
  return folder;
}

// Writes a pipeline.toml into `folder` for `stages`, listening on `port`;
// every stage journals into `folder`/journal.
fs::path WritePipeline(const fs::path& folder, std::uint16_t port, const std::vector<StageSpec>& stages) {
  fs::path file = folder / "pipeline.toml";
  std::ofstream out(file);
  out << "[server]\n"
      << "listen = \"127.0.0.1:" << port << "\"\n"
      << "io_threads = 2\nworkers = 4\n"
      << "body_limit = " << kBodyLimit << "\n"
      << "max_content_bytes = " << kMaxContent << "\n\n"
      << "[log]\nlevel = \"info\"\n";
  for (const auto& stage : stages) {
    out << "\n[[stage]]\n"
        << "name = \"" << stage.name << "\"\n"
        << "plugin = \"" << TEST_STAGE_PATH << "\"\n"
        << "policy = \"" << stage.policy << "\"\n"
        << "timeout_ms = " << stage.timeout_ms << "\n"
        << "config = { journal = \"" << (folder / "journal").string() << "\""
        << (stage.config.empty() ? "" : ", " + stage.config) << " }\n";
  }
  return file;
}

// The two stages of the operators' checklist: a cache and a store that sets message_id.
std::vector<StageSpec> CacheAndStore(const std::string& store_config = "") {
  return {{"cache", "required", R"(target = "redis")"},
          {"store", "required",
           R"(target = "postgresql", set_attribute = "message_id=41")" +
               (store_config.empty() ? "" : ", " + store_config)}};
}

// stowaged running on a pipeline of test stages.
class Server {
 public:
  explicit Server(const std::vector<StageSpec>& stages) : folder_(TempFolder()), port_(FreePort()) {
    config_ = WritePipeline(folder_, port_, stages);
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{STOWAGED_PATH, "--config", config_.string()}, folder_ / "stowaged.log");
    if (!WaitForTcp(port_, milliseconds(10000))) {
      ADD_FAILURE() << "stowaged did not listen on port " << port_ << ":\n" << log();
    }
  }

  std::uint16_t port() const { return port_; }
  ChildProcess& process() { return *process_; }
  std::string log() const { return ReadFile(folder_ / "stowaged.log"); }
  // Waits up to 3 s for the log to hold `text`: info lines reach it within a
  // second (warnings and errors at once).
  bool WaitForLog(const std::string& text) const {
    for (int i = 0; i < 150 && log().find(text) == std::string::npos; ++i) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    return log().find(text) != std::string::npos;
  }
  // The lines the stages wrote to their journal ("redis write g1 hello", ...).
  std::string journal() const { return ReadFile(folder_ / "journal"); }

 private:
  fs::path folder_;
  std::uint16_t port_;
  fs::path config_;
  std::unique_ptr<ChildProcess> process_;
};

constexpr const char* kHello = R"({"role":"user","content":"hello","timestamp":"2024-05-01T14:00:00+02:00"})";

HttpResult Post(HttpClient& client, const std::string& guest, const std::string& body = kHello) {
  return client.Send("POST", "/v1/guest/chat/" + guest, body);
}
HttpResult Get(HttpClient& client, const std::string& guest) {
  return client.Send("GET", "/v1/guest/chat/" + guest, "", "");
}

std::string ErrorCode(const HttpResult& result) {
  auto at = result.body.find("\"code\":\"");
  if (at == std::string::npos) return "<no code in " + result.body + ">";
  at += 8;
  return result.body.substr(at, result.body.find('"', at) - at);
}

// ---------------------------------------------------------------------------
// One server for the tests that need the plain cache + store pipeline.
class StowagedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new Server(CacheAndStore()); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static Server* server_;
};
Server* StowagedTest::server_ = nullptr;

TEST_F(StowagedTest, HealthIsOk) {
  HttpClient client(server_->port());
  HttpResult result = client.Send("GET", "/healthz", "", "");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, R"({"status":"ok"})");
  EXPECT_EQ(result.header("content-type"), "application/json");
}

TEST_F(StowagedTest, PostGetDeleteRoundTrip) {
  HttpClient client(server_->port());
  HttpResult stored = Post(client, "happy-1");
  EXPECT_EQ(stored.status, 200);
  EXPECT_EQ(
      stored.body,
      R"({"status":"stored","guest_id":"happy-1","message_id":41,"conversation_id":null,"sequence":null,)"
      R"("stored_in":["redis","postgresql"],"degraded":[]})");

  HttpResult second = Post(client, "happy-1", R"({"role":"assistant","content":"hi \"there\" \u00e9"})");
  EXPECT_EQ(second.status, 200) << second.body;

  HttpResult listed = Get(client, "happy-1");
  EXPECT_EQ(listed.status, 200);
  ASSERT_EQ(
      listed.body.rfind(R"([{"role":"user","content":"hello","timestamp":"2024-05-01T12:00:00.000000Z"},)"
                        R"({"role":"assistant","content":"hi \"there\" )"
                        "\xc3\xa9\",\"timestamp\":\"",
                        0),
      0u)
      << listed.body;

  HttpResult deleted = client.Send("DELETE", "/v1/guest/chat/happy-1", "", "");
  EXPECT_EQ(deleted.status, 200);
  EXPECT_EQ(
      deleted.body,
      R"({"status":"deleted","guest_id":"happy-1","deleted_from":["redis","postgresql"],"degraded":[]})");
  EXPECT_EQ(Get(client, "happy-1").body, "[]");
}

TEST_F(StowagedTest, UnknownGuestHasNoMessages) {
  HttpClient client(server_->port());
  HttpResult result = Get(client, "nobody-here");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "[]");
}

TEST_F(StowagedTest, GuestsAreSeparate) {
  HttpClient client(server_->port());
  ASSERT_EQ(Post(client, "sep-a", R"({"role":"user","content":"for a"})").status, 200);
  ASSERT_EQ(Post(client, "sep-b", R"({"role":"user","content":"for b"})").status, 200);
  EXPECT_EQ(Get(client, "sep-a").body.find("for b"), std::string::npos);
  ASSERT_EQ(client.Send("DELETE", "/v1/guest/chat/sep-a", "", "").status, 200);
  EXPECT_NE(Get(client, "sep-b").body.find("for b"), std::string::npos);
}

struct BadRequest {
  std::string label;
  std::string method;
  std::string guest;  // appended to /v1/guest/chat/
  std::string body;
  std::string content_type;
  int status;
  std::string code;
  std::string says;  // a piece of the message
};

TEST_F(StowagedTest, BadRequestsGetTheirErrorAndStoreNothing) {
  const std::string json = "application/json";
  const std::vector<BadRequest> cases = {
      {"bad json", "POST", "bad-1", R"({"role":"user",)", json, 400, "bad_json", "not valid JSON"},
      {"array body", "POST", "bad-2", R"(["user","hi"])", json, 400, "bad_json", "not a JSON object"},
      {"missing role", "POST", "bad-3", R"({"content":"hi"})", json, 400, "invalid_field", "'role'"},
      {"invalid role", "POST", "bad-4", R"({"role":"root","content":"hi"})", json, 400, "invalid_field",
       "'root'"},
      {"empty content", "POST", "bad-5", R"({"role":"user","content":""})", json, 400, "invalid_field",
       "'content'"},
      {"invalid utf-8", "POST", "bad-6", "{\"role\":\"user\",\"content\":\"caf\xe9\"}", json, 400, "bad_json",
       "UTF-8"},
      {"content too large", "POST", "bad-7",
       R"({"role":"user","content":")" + std::string(kMaxContent + 1, 'x') + "\"}", json, 413,
       "content_too_large", "1001 bytes"},
      {"bad timestamp", "POST", "bad-8",
       R"({"role":"user","content":"hi","timestamp":"2024-02-30T10:00:00Z"})", json, 400, "invalid_field",
       "'timestamp'"},
      {"unknown field", "POST", "bad-9", R"({"role":"user","content":"hi","mood":"happy"})", json, 400,
       "invalid_field", "'mood'"},
      {"wrong content type", "POST", "bad-10", R"({"role":"user","content":"hi"})", "text/plain", 415,
       "unsupported_media_type", "application/json"},
      {"no content type", "POST", "bad-11", R"({"role":"user","content":"hi"})", "", 415,
       "unsupported_media_type", "Content-Type"},
      {"guest id char", "POST", "bad$12", R"({"role":"user","content":"hi"})", json, 400, "invalid_guest_id",
       "'$'"},
      {"guest id 129 chars", "POST", std::string(129, 'g'), R"({"role":"user","content":"hi"})", json, 400,
       "invalid_guest_id", "129 characters"},
      {"body too large", "POST", "bad-14",
       R"({"role":"user","content":")" + std::string(kBodyLimit, 'x') + "\"}", json, 413, "payload_too_large",
       std::to_string(kBodyLimit) + " bytes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    HttpClient client(server_->port());
    HttpResult result = client.Send(c.method, "/v1/guest/chat/" + c.guest, c.body, c.content_type);
    EXPECT_EQ(result.status, c.status) << result.body;
    EXPECT_EQ(ErrorCode(result), c.code) << result.body;
    EXPECT_NE(result.body.find(c.says), std::string::npos) << result.body;
    EXPECT_EQ(result.header("content-type"), "application/json");
    if (c.guest.size() <= 128 && c.guest.find('$') == std::string::npos) {
      HttpClient reader(server_->port());
      EXPECT_EQ(Get(reader, c.guest).body, "[]");
    }
  }
  // No stage saw any of them (the journal records every write of every stage).
  std::string journal = server_->journal();
  EXPECT_EQ(journal.find(" write bad"), std::string::npos) << journal;
  EXPECT_EQ(journal.find(" write ggg"), std::string::npos) << journal;
}

TEST_F(StowagedTest, UnknownPathIsNotFound) {
  HttpClient client(server_->port());
  for (const char* target : {"/nope", "/v1/guest/chat/g1/", "/healthz/", "/v1/guest/chat/"}) {
    HttpResult result = client.Send("GET", target, "", "");
    EXPECT_EQ(result.status, 404) << target;
    EXPECT_EQ(ErrorCode(result), "not_found") << target;
  }
}

TEST_F(StowagedTest, QueryStringIsIgnored) {
  HttpClient client(server_->port());
  HttpResult result = client.Send("GET", "/healthz?verbose=1", "", "");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, R"({"status":"ok"})");
}

TEST_F(StowagedTest, OtherMethodIsNotAllowedAndSaysWhichAre) {
  HttpClient client(server_->port());
  HttpResult chat = client.Send("PUT", "/v1/guest/chat/g1", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(chat.status, 405);
  EXPECT_EQ(ErrorCode(chat), "method_not_allowed");
  EXPECT_EQ(chat.header("allow"), "GET, POST, DELETE");
  HttpResult health = client.Send("DELETE", "/healthz", "", "");
  EXPECT_EQ(health.status, 405);
  EXPECT_EQ(health.header("allow"), "GET");
}

TEST_F(StowagedTest, HeadAnswersAsGetWithoutTheBody) {
  HttpClient client(server_->port());
  ASSERT_EQ(Post(client, "head-1").status, 200);
  for (const std::string target : {"/healthz", "/v1/guest/chat/head-1", "/metrics"}) {
    HttpResult got = client.Send("GET", target, "", "");
    HttpResult head = client.Send("HEAD", target, "", "");
    ASSERT_EQ(got.status, 200) << target;
    EXPECT_EQ(head.status, 200) << target;
    EXPECT_TRUE(head.body.empty()) << target << ": " << head.body;
    EXPECT_EQ(head.header("content-type"), got.header("content-type")) << target;
    if (target != "/metrics")  // its counters move between the two requests
      EXPECT_EQ(head.header("content-length"), std::to_string(got.body.size())) << target;
  }
  // The connection still serves the next request: no body was left unread.
  EXPECT_EQ(client.Send("GET", "/healthz", "", "").status, 200);
  EXPECT_EQ(client.connections_opened(), 1);
  // HEAD where GET is not allowed is refused as GET would be.
  EXPECT_EQ(client.Send("HEAD", "/v1/guest/chat/head-1/nothing-here", "", "").status, 404);
}

TEST_F(StowagedTest, OptionsSaysWhichMethodsARouteTakes) {
  HttpClient client(server_->port());
  HttpResult chat = client.Send("OPTIONS", "/v1/guest/chat/options-1", "", "");
  EXPECT_EQ(chat.status, 204);
  EXPECT_EQ(chat.header("allow"), "GET, POST, DELETE, HEAD, OPTIONS");
  EXPECT_TRUE(chat.body.empty());
  EXPECT_EQ(client.Send("OPTIONS", "/healthz", "", "").header("allow"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(client.Send("OPTIONS", "/v1/guest/chat/g1/search", "", "").header("allow"), "GET, HEAD, OPTIONS");
  EXPECT_EQ(client.Send("OPTIONS", "/no/such/route", "", "").status, 404);
  // OPTIONS ran nothing: the guest has no messages.
  EXPECT_EQ(Get(client, "options-1").body, "[]");
}

TEST_F(StowagedTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  HttpClient client(server_->port());
  EXPECT_EQ(Post(client, "keep-1").status, 200);
  EXPECT_TRUE(client.connected());
  EXPECT_EQ(Get(client, "keep-1").status, 200);
  EXPECT_EQ(client.Send("GET", "/healthz", "", "").status, 200);
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST_F(StowagedTest, AccessLogHasOneLinePerRequest) {
  HttpClient client(server_->port());
  ASSERT_EQ(client.Send("GET", "/healthz?access-log-probe", "", "").status, 200);
  std::string expected = "http GET /healthz?access-log-probe status=200 bytes=15 ms=";
  EXPECT_TRUE(server_->WaitForLog(expected)) << server_->log();
}

// ---------------------------------------------------------------------------
// Stage failures, each on a pipeline of its own.

TEST(StowagedFailureTest, RequiredStageFailingIsServiceUnavailableAndLeavesNoTrace) {
  Server server(CacheAndStore(R"(write = "fail")"));
  HttpClient client(server.port());
  HttpResult result = Post(client, "fail-1");
  EXPECT_EQ(result.status, 503);
  EXPECT_EQ(ErrorCode(result), "stage_failed");
  EXPECT_NE(result.body.find("stage 'store' could not reach its storage target"), std::string::npos) << result.body;
  EXPECT_EQ(Get(client, "fail-1").body, "[]");
  EXPECT_NE(server.journal().find("redis compensate fail-1 hello"), std::string::npos) << server.journal();
}

TEST(StowagedFailureTest, BestEffortStageFailingIsDegraded) {
  auto stages = CacheAndStore();
  stages.push_back({"metrics", "best_effort", R"(target = "", write = "fail")"});
  Server server(stages);
  HttpClient client(server.port());
  HttpResult result = Post(client, "degraded-1");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(
      result.body,
      R"({"status":"stored","guest_id":"degraded-1","message_id":41,"conversation_id":null,"sequence":null,)"
      R"("stored_in":["redis","postgresql"],"degraded":["metrics"]})");
  EXPECT_NE(Get(client, "degraded-1").body.find("hello"), std::string::npos);
  EXPECT_TRUE(server.WaitForLog("degraded=metrics")) << server.log();
}

TEST(StowagedFailureTest, ThrowingStageIsAnErrorAnswerAndTheServerLivesOn) {
  Server server({{"cache", "required", R"(target = "redis", write = "throw", read = "throw")"}});
  HttpClient client(server.port());
  HttpResult write = Post(client, "throw-1");
  EXPECT_EQ(write.status, 500);
  EXPECT_EQ(ErrorCode(write), "stage_failed");
  EXPECT_NE(write.body.find("stage 'cache' failed"), std::string::npos) << write.body;
  HttpResult read = Get(client, "throw-1");
  EXPECT_EQ(read.status, 500) << read.body;
  HttpClient again(server.port());
  EXPECT_EQ(again.Send("GET", "/healthz", "", "").status, 200);
}

// ---------------------------------------------------------------------------
// Errors that leak nothing, and X-Request-Id.

// What a stage's failure could say: a host, a port, a database, a user, SQL
// and a SQLSTATE message. None of it may reach a client.
constexpr const char* kLeakyFailure =
    "could not connect to server at 127.0.0.1:16432 (database stowage, user stowage_admin): "
    "SQLSTATE 42P01: relation message_cache does not exist: INSERT INTO message_cache VALUES ($1)";
const std::vector<std::string> kLeakyPieces = {"127.0.0.1", "16432",      "stowage", "SQLSTATE",
                                               "relation",  "INSERT INTO", "message_cache"};
constexpr const char* kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

// The log lines that hold `text`.
std::vector<std::string> LinesWith(const std::string& log, const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find(text) != std::string::npos) lines.push_back(line);
  return lines;
}

bool IsGeneratedId(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Sends `raw` bytes on a new connection and returns everything the server
// answered before closing it.
std::string SendRaw(std::uint16_t port, const std::string& raw) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(raw.size())) {
    ::shutdown(fd, SHUT_WR);
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, n);
  }
  ::close(fd);
  return answer;
}

TEST(StowagedErrorTest, RequiredStageFailureAnswerNamesNoAddressAndCarriesTheRequestId) {
  Server server(CacheAndStore(std::string(R"(write = "fail", fail_message = ")") + kLeakyFailure + "\""));
  HttpClient client(server.port());
  HttpResult result = client.Send("POST", "/v1/guest/chat/leak-1", kHello, "application/json",
                                  {{"X-Request-Id", "leak-test-1"}, {"traceparent", kTraceparent}});
  EXPECT_EQ(result.status, 503);
  EXPECT_EQ(ErrorCode(result), "stage_failed");
  EXPECT_NE(result.body.find("stage 'store' could not reach its storage target"), std::string::npos)
      << result.body;
  for (const auto& piece : kLeakyPieces) EXPECT_EQ(result.body.find(piece), std::string::npos) << piece;
  EXPECT_EQ(result.header("x-request-id"), "leak-test-1");
  EXPECT_NE(result.body.find(R"("request_id":"leak-test-1")"), std::string::npos) << result.body;

  // The log keeps the detail, on lines that name the request and its trace.
  ASSERT_TRUE(server.WaitForLog("status=503")) << server.log();
  const std::string tag = std::string("request_id=leak-test-1 trace_id=") + kTraceId;
  const auto access = LinesWith(server.log(), "http POST /v1/guest/chat/leak-1 status=503");
  ASSERT_EQ(access.size(), 1u) << server.log();
  EXPECT_NE(access[0].find(tag), std::string::npos) << access[0];
  // The stage's own line, written on a thread of the CallRunner.
  const auto stage = LinesWith(server.log(), "write for guest leak-1 failed: could not connect");
  ASSERT_EQ(stage.size(), 1u) << server.log();
  EXPECT_NE(stage[0].find(tag), std::string::npos) << stage[0];
  const auto detail = LinesWith(server.log(), "storing the message failed in stage 'store'");
  ASSERT_EQ(detail.size(), 1u) << server.log();
  EXPECT_NE(detail[0].find("SQLSTATE 42P01"), std::string::npos) << detail[0];
  EXPECT_NE(detail[0].find(tag), std::string::npos) << detail[0];
}

TEST_F(StowagedTest, RequestIdIsEchoedWhenSaneElseGenerated) {
  HttpClient client(server_->port());
  HttpResult echoed = client.Send("GET", "/healthz", "", "", {{"X-Request-Id", "client-id_1.2:3/x"}});
  EXPECT_EQ(echoed.header("x-request-id"), "client-id_1.2:3/x");

  for (const std::string bad : {std::string("has space"), std::string(129, 'a'), std::string("quote\"d"),
                                std::string("tab\there"), std::string("caf\xc3\xa9")}) {
    SCOPED_TRACE(bad);
    HttpResult replaced = client.Send("GET", "/healthz", "", "", {{"X-Request-Id", bad}});
    EXPECT_EQ(replaced.status, 200);
    EXPECT_TRUE(IsGeneratedId(replaced.header("x-request-id"))) << replaced.header("x-request-id");
  }
  HttpResult first = client.Send("GET", "/healthz", "", "");
  HttpResult second = client.Send("GET", "/healthz", "", "");
  EXPECT_TRUE(IsGeneratedId(first.header("x-request-id"))) << first.header("x-request-id");
  EXPECT_NE(first.header("x-request-id"), second.header("x-request-id"));

  // Error answers repeat it in the body: 404, 405, a validation error.
  HttpResult missing = client.Send("GET", "/nope", "", "", {{"X-Request-Id", "rid-404"}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("x-request-id"), "rid-404");
  EXPECT_NE(missing.body.find(R"("request_id":"rid-404")"), std::string::npos) << missing.body;
  HttpResult refused = client.Send("PUT", "/healthz", "", "");
  EXPECT_EQ(refused.status, 405);
  EXPECT_NE(refused.body.find(R"("request_id":")" + refused.header("x-request-id") + "\""), std::string::npos)
      << refused.body;
  HttpResult invalid = client.Send("POST", "/v1/guest/chat/rid-bad", R"({"role":"root","content":"x"})",
                                   "application/json", {{"X-Request-Id", "rid-400"}});
  EXPECT_EQ(invalid.status, 400);
  EXPECT_NE(invalid.body.find(R"("request_id":"rid-400")"), std::string::npos) << invalid.body;

  // Refused by the HTTP layer: over the body limit, and not HTTP at all.
  HttpClient big(server_->port());
  HttpResult too_large = big.Send("POST", "/v1/guest/chat/rid-big", std::string(kBodyLimit + 10, 'x'),
                                  "application/json", {{"X-Request-Id", "rid-413"}});
  EXPECT_EQ(too_large.status, 413);
  EXPECT_EQ(too_large.header("x-request-id"), "rid-413");
  EXPECT_NE(too_large.body.find(R"("request_id":"rid-413")"), std::string::npos) << too_large.body;
  std::string malformed = SendRaw(server_->port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(malformed.find(" 400 "), std::string::npos) << malformed;
  EXPECT_NE(malformed.find("X-Request-Id: "), std::string::npos) << malformed;
  EXPECT_NE(malformed.find(R"("request_id":")"), std::string::npos) << malformed;
}

TEST_F(StowagedTest, EveryLogLineOfARequestNamesItsIdAndTrace) {
  HttpClient client(server_->port());
  ASSERT_EQ(client
                .Send("POST", "/v1/guest/chat/rid-log-1", kHello, "application/json",
                      {{"X-Request-Id", "rid-log-1"}, {"traceparent", kTraceparent}})
                .status,
            200);
  ASSERT_TRUE(server_->WaitForLog("http POST /v1/guest/chat/rid-log-1 status=200")) << server_->log();
  const std::string tag = std::string("request_id=rid-log-1 trace_id=") + kTraceId;
  const auto access = LinesWith(server_->log(), "http POST /v1/guest/chat/rid-log-1 status=200");
  ASSERT_EQ(access.size(), 1u);
  EXPECT_NE(access[0].find(tag), std::string::npos) << access[0];
  // Both stages logged the write, each on a CallRunner thread.
  const auto stages = LinesWith(server_->log(), "stored message for guest rid-log-1");
  ASSERT_EQ(stages.size(), 2u) << server_->log();
  for (const auto& line : stages) EXPECT_NE(line.find(tag), std::string::npos) << line;
  // A malformed traceparent is not logged; the request id still is.
  ASSERT_EQ(client
                .Send("GET", "/v1/guest/chat/rid-log-2", "", "",
                      {{"X-Request-Id", "rid-log-2"}, {"traceparent", "00-not-a-trace-01"}})
                .status,
            200);
  ASSERT_TRUE(server_->WaitForLog("http GET /v1/guest/chat/rid-log-2 status=200")) << server_->log();
  const auto read = LinesWith(server_->log(), "http GET /v1/guest/chat/rid-log-2 status=200");
  ASSERT_EQ(read.size(), 1u);
  EXPECT_NE(read[0].find("request_id=rid-log-2"), std::string::npos) << read[0];
  EXPECT_EQ(read[0].find("trace_id="), std::string::npos) << read[0];
}

TEST(StowagedReadyzTest, ABurstRunsOneHealthCheckAndTheBodyNamesNoAddress) {
  const fs::path down = fs::temp_directory_path() / ("stowage_readyz_down_" + std::to_string(::getpid()));
  fs::remove(down);
  Server server({{"cache", "required",
                  std::string(R"(target = "redis", unhealthy_while = ")") + down.string() +
                      R"(", fail_message = ")" + kLeakyFailure + "\""},
                 {"store", "required", R"(target = "postgresql")"}});
  auto health_checks = [&] {
    std::string journal = server.journal();
    std::size_t count = 0;
    for (std::size_t at = journal.find("redis health"); at != std::string::npos;
         at = journal.find("redis health", at + 1))
      ++count;
    return count;
  };
  HttpResult ready = HttpClient(server.port()).Send("GET", "/readyz", "", "");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ready.body, R"({"status":"ready","stages":{"cache":{"status":"ok"},"store":{"status":"ok"}}})");

  std::ofstream(down) << "down\n";
  std::this_thread::sleep_for(milliseconds(1100));  // the cached answer expires
  const std::size_t before = health_checks();
  std::vector<std::future<std::vector<HttpResult>>> callers;
  for (int t = 0; t < 10; ++t) {
    callers.push_back(std::async(std::launch::async, [&] {
      std::vector<HttpResult> results;
      HttpClient client(server.port());
      for (int i = 0; i < 10; ++i) results.push_back(client.Send("GET", "/readyz", "", ""));
      return results;
    }));
  }
  std::vector<HttpResult> results;
  for (auto& caller : callers)
    for (auto& result : caller.get()) results.push_back(std::move(result));
  fs::remove(down);
  ASSERT_EQ(results.size(), 100u);
  EXPECT_LE(health_checks() - before, 2u) << server.journal();
  EXPECT_GE(health_checks() - before, 1u) << server.journal();
  for (const auto& result : results) {
    ASSERT_EQ(result.status, 503) << result.body;
    EXPECT_EQ(result.body,
              R"({"status":"unready","unhealthy":[{"stage":"cache","reason":"unreachable"}],)"
              R"("stages":{"cache":{"status":"unhealthy","reason":"unreachable"},"store":{"status":"ok"}}})");
    for (const auto& piece : kLeakyPieces) EXPECT_EQ(result.body.find(piece), std::string::npos) << piece;
  }
  // The detail is logged once, when the stage turned unhealthy.
  ASSERT_TRUE(server.WaitForLog("readiness: stage 'cache'")) << server.log();
  const auto detail = LinesWith(server.log(), "readiness: stage 'cache' (required) is unhealthy (unreachable)");
  ASSERT_EQ(detail.size(), 1u) << server.log();
  EXPECT_NE(detail[0].find("SQLSTATE 42P01"), std::string::npos) << detail[0];

  // Healthy again: ready within a second or so.
  std::this_thread::sleep_for(milliseconds(1100));
  EXPECT_EQ(HttpClient(server.port()).Send("GET", "/readyz", "", "").status, 200);
}

TEST(StowagedShutdownTest, SigtermLetsARequestInFlightFinishThenExitsZero) {
  Server server(CacheAndStore(R"(write = "hang", hang_ms = 1500)"));
  auto started = std::chrono::steady_clock::now();
  auto post = std::async(std::launch::async, [&] {
    HttpClient client(server.port());
    return Post(client, "slow-1");
  });
  // Let the request reach the hanging stage, then ask the server to stop.
  for (int i = 0; i < 100 && server.journal().find("redis write slow-1") == std::string::npos; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_NE(server.journal().find("redis write slow-1"), std::string::npos);
  // An idle keep-alive connection must not hold the shutdown up.
  HttpClient idle(server.port());
  ASSERT_EQ(idle.Send("GET", "/healthz", "", "").status, 200);
  ASSERT_TRUE(idle.connected());
  server.process().Signal(SIGTERM);

  // New connections are refused while the slow request is still running.
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    refused = !WaitForTcp(server.port(), milliseconds(1));
    if (!refused) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(refused) << "stowaged still accepts connections after SIGTERM";
  EXPECT_EQ(post.wait_for(milliseconds(0)), std::future_status::timeout) << "the slow request ended too soon";

  HttpResult result = post.get();
  EXPECT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.header("connection"), "close");
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(1400));
  // Well within the 10 s grace: the idle connection was closed, not waited for.
  auto exit_code = server.process().Wait(milliseconds(5000));
  ASSERT_TRUE(exit_code.has_value()) << "stowaged did not exit:\n" << server.log();
  EXPECT_EQ(*exit_code, 0) << server.log();
  std::string log = server.log();
  EXPECT_NE(log.find("received SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped accepting connections"), std::string::npos) << log;
  EXPECT_NE(log.find("stowaged stopped"), std::string::npos) << log;
}

TEST(StowagedStartupTest, InvalidConfigExitsTwoWithoutListening) {
  fs::path folder = TempFolder();
  std::uint16_t port = FreePort();
  fs::path file = WritePipeline(folder, port, {{"cache", "sometimes", R"(target = "redis")"}});
  ChildProcess process({STOWAGED_PATH, "--config", file.string()}, folder / "stowaged.log");
  auto exit_code = process.Wait(milliseconds(10000));
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 2);
  std::string log = ReadFile(folder / "stowaged.log");
  EXPECT_NE(log.find(file.string() + ":"), std::string::npos) << log;
  EXPECT_NE(log.find("policy"), std::string::npos) << log;
}

// ---------------------------------------------------------------------------
// stowage validate

TEST(StowageValidateTest, GoodFilePrintsOneLinePerStage) {
  fs::path folder = TempFolder();
  auto stages = CacheAndStore();
  stages.push_back({"metrics", "best_effort", R"(target = "")", 250});
  fs::path file = WritePipeline(folder, 8000, stages);
  // Without the environment check: only the file and the plugins are checked.
  ChildProcess process({STOWAGE_CLI_PATH, "validate", "--no-environment", file.string()}, folder / "out.log");
  auto exit_code = process.Wait(milliseconds(10000));
  ASSERT_TRUE(exit_code.has_value());
  std::string out = ReadFile(folder / "out.log");
  EXPECT_EQ(*exit_code, 0) << out;
  // The plugin's content hash (12 hex digits) names the code each stage runs.
  std::string hash = out.substr(out.find("sha256=") + 7, 12);
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos) << out;
  EXPECT_EQ(out,
            "cache  plugin=test_stage.so v1.0.0 sha256=" + hash + "  policy=required  enabled  timeout=3000ms\n"
            "store  plugin=test_stage.so v1.0.0 sha256=" + hash + "  policy=required  enabled  timeout=3000ms\n"
            "metrics  plugin=test_stage.so v1.0.0 sha256=" + hash + "  policy=best_effort  enabled  timeout=250ms\n");
}

TEST(StowageValidateTest, BadFileNamesFileAndLine) {
  fs::path folder = TempFolder();
  fs::path file = WritePipeline(folder, 8000, {{"cache", "required", R"(target = "redis", wirte = "ok")"}});
  ChildProcess process({STOWAGE_CLI_PATH, "validate", file.string()}, folder / "out.log");
  auto exit_code = process.Wait(milliseconds(10000));
  ASSERT_TRUE(exit_code.has_value());
  std::string out = ReadFile(folder / "out.log");
  EXPECT_EQ(*exit_code, 1) << out;
  // The config table of the stage is on line 16 of the generated file.
  EXPECT_NE(out.find(file.string() + ":16:"), std::string::npos) << out;
  EXPECT_NE(out.find("wirte"), std::string::npos) << out;
  EXPECT_NE(out.find("'write'"), std::string::npos) << out;
}

TEST(StowageValidateTest, UsageErrorExitsTwo) {
  fs::path folder = TempFolder();
  ChildProcess process({STOWAGE_CLI_PATH, "validate"}, folder / "out.log");
  auto exit_code = process.Wait(milliseconds(10000));
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 2);
}

}  // namespace
}  // namespace stowage::testing
