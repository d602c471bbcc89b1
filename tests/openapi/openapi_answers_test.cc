// Real answers of stowaged against its description (docs/openapi.yaml, as
// GET /openapi.json serves it): every success and every error the server
// can be made to answer is requested and checked (status, headers, body).
//
// Three servers:
//   main     Redis, PostgreSQL (a scratch database), the embeddings and
//            metrics stages (a monthly limit of 3 requests per guest), and a
//            best_effort test stage `side` that fails while a file exists
//            (its failures are journaled); admin token set; small limits.
//   failing  test stages: `store` (required) whose write hangs past its
//            timeout, read and erase throw, and health fails while a file
//            exists; `side`, postgres and embeddings (best_effort) on a
//            private PostgreSQL stopped once the server runs (journal and
//            search unreachable); one worker, a short queue timeout
//            (overload); admin token set.
//   clashing test stages on the scratch database: `store` (required)
//            inserts the guest into a table with one guest already there
//            (a conflict), and fails reads and erases; `bomb` (required)
//            throws on every write; no admin token (the admin routes off).
//
// Each checked answer is recorded as an outcome (operation, status key,
// error code). The last test fails on any outcome the description lists
// that no test saw, unless kNotProvoked names it with the reason.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>
#include <tuple>

#include "api/openapi.h"
#include "http_client.h"
#include "openapi/openapi_description.h"
#include "scratch_database.h"
#include "stores.h"
#include "stowaged_process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "openapi-admin-token";
constexpr std::size_t kBodyLimit = 8192;
constexpr std::size_t kMaxContent = 1000;
constexpr const char* kChat = "/v1/guest/chat/{guest_id}";
constexpr const char* kSearch = "/v1/guest/chat/{guest_id}/search";

// An outcome the description lists that no request here provokes, and why.
// "*" matches any method or path.
struct NotProvoked {
  const char* method;
  const char* path;
  const char* status_key;
  const char* code;
  const char* why;
};
constexpr NotProvoked kNotProvoked[] = {
    {"*", "*", "500", "internal",
     "only an exception escaping a route's handler (a bug) is answered 500 internal; no request provokes "
     "one"},
    {"*", "*", "5XX", "internal", "as 500 internal above, for OPTIONS"},
    {"*", kChat, "404", "not_found",
     "no stage (bundled or test) answers not-found to a write, a read or an erase"},
    {"GET", kChat, "409", "conflict", "no stage refuses a read as a conflict"},
    {"DELETE", kChat, "409", "conflict", "no stage refuses an erase as a conflict"},
    {"GET", kSearch, "409", "conflict", "no stage refuses a search as a conflict"},
    {"GET", kChat, "429", "rejected", "only a write is refused by policy (the metrics stage's quota)"},
    {"DELETE", kChat, "429", "rejected", "only a write is refused by policy (the metrics stage's quota)"},
    {"GET", kSearch, "429", "rejected", "only a write is refused by policy (the metrics stage's quota)"},
    {"DELETE", kChat, "400", "invalid_field",
     "DELETE takes no input, and no stage refuses an erase as invalid"},
    {"GET", kSearch, "500", "stage_failed",
     "the searching stage (embeddings) fails a search as unavailable when its database or provider is down "
     "(503, provoked above); an internal error of a search needs a bug in the stage"},
};

bool Explained(const std::string& method, const std::string& path, const Outcome& outcome, std::string* why) {
  for (const auto& entry : kNotProvoked) {
    if ((std::string_view(entry.method) == "*" || entry.method == method) &&
        (std::string_view(entry.path) == "*" || entry.path == path) && entry.status_key == outcome.first &&
        entry.code == outcome.second) {
      *why = entry.why;
      return true;
    }
  }
  return false;
}

// `path_template` with {guest_id} made `guest`.
std::string Target(std::string path_template, const std::string& guest = "openapi-guest") {
  if (auto at = path_template.find("{guest_id}"); at != std::string::npos)
    path_template.replace(at, std::string_view("{guest_id}").size(), guest);
  return path_template;
}

ReceivedAnswer FromHttp(const HttpResult& result) {
  return {result.status, result.headers, result.body};
}

std::string UniqueGuest(const std::string& prefix) {
  static int counter = 0;
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

// Sends `raw` bytes on a connection of their own and reads the answer up to
// its end (the server closes the connection after a refusal). Throws
// std::runtime_error naming what failed.
ReceivedAnswer SendRaw(std::uint16_t port, const std::string& raw, bool head = false) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string received;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    ::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
    char buffer[8192];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
      received.append(buffer, static_cast<std::size_t>(n));
      const std::size_t end = received.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      // Stop once the whole answer is in: a refused request's connection is closed,
      // another one's is kept alive.
      std::string lower = received.substr(0, end);
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const std::size_t length_at = lower.find("\r\ncontent-length:");
      const std::size_t length =
          length_at == std::string::npos || head ? 0 : std::stoul(lower.substr(length_at + 17));
      if (received.size() >= end + 4 + length) break;
    }
  }
  ::close(fd);
  ReceivedAnswer answer;
  const std::size_t end = received.find("\r\n\r\n");
  if (received.size() < 12 || end == std::string::npos)
    throw std::runtime_error("no whole HTTP answer to the raw request; got '" + received + "'");
  answer.status = std::stoi(received.substr(9, 3));
  std::size_t at = received.find("\r\n") + 2;
  while (at < end) {
    const std::size_t line_end = received.find("\r\n", at);
    const std::string line = received.substr(at, line_end - at);
    const std::size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    answer.headers[name] = value;
    at = line_end + 2;
  }
  answer.body = received.substr(end + 4);
  return answer;
}

std::string Body(const std::string& content, const std::string& role = "user") {
  return json::serialize(json::object{{"role", role}, {"content", content}});
}

class OpenApiAnswersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    description_ = new OpenApiDescription(api::OpenApiJson());
    const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
    if (redis_url.empty() || RequireEnv("STOWAGE_TEST_DATABASE_URL").empty()) return;
    folder_ = fs::temp_directory_path() / ("stowage_openapi_test_" + std::to_string(::getpid()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    scratch_ = new ScratchDatabase("openapi");
    if (!scratch_->ok()) return;
    scratch_->Query("CREATE TABLE openapi_taken (guest_id text PRIMARY KEY, content text)");
    scratch_->Query("INSERT INTO openapi_taken VALUES ('taken-guest', 'first')");

    const std::string plugins = "plugin_path = [\"" STOWAGE_PLUGIN_DIR "\"]\n";
    const std::string limits = "body_limit = " + std::to_string(kBodyLimit) +
                               "\nmax_content_bytes = " + std::to_string(kMaxContent) + "\n";
    std::ofstream(folder_ / "side_fails");  // `side` of main fails while this file exists
    main_ =
        StowagedProcess::FromText(
            "[server]\nlisten = \"${STOWAGE_LISTEN}\"\nworkers = 8\nmax_history = 2\n" + limits + plugins +
                "[log]\nlevel = \"info\"\n"
                "[[database]]\nname = \"main\"\nurl = \"" +
                scratch_->url() +
                "\"\nconnect_timeout_ms = 1000\n"
                "[[stage]]\nname = \"redis\"\nplugin = \"redis\"\npolicy = \"required\"\ntimeout_ms = 2000\n"
                "config = { url = \"" +
                redis_url +
                "\", connect_timeout_ms = 300 }\n"
                "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\npolicy = \"required\"\n"
                "timeout_ms = 3000\ndatabase = \"main\"\n"
                "[[stage]]\nname = \"embeddings\"\nplugin = \"embeddings\"\npolicy = \"best_effort\"\n"
                "database = \"main\"\nconfig = { provider = \"builtin\" }\n"
                "[[stage]]\nname = \"metrics\"\nplugin = \"metrics\"\npolicy = \"best_effort\"\n"
                "database = \"main\"\nconfig = { guest_monthly_limit = 3 }\n"
                "[[stage]]\nname = \"side\"\nplugin = \"" TEST_STAGE_PATH
                "\"\npolicy = \"best_effort\"\n"
                "database = \"main\"\nconfig = { fail_while = \"" +
                (folder_ / "side_fails").string() + "\" }\n",
            {{"STOWAGE_ADMIN_TOKEN", kToken}})
            .release();

    failing_postgres_ = new ServiceInstance(Service::kPostgres);
    if (!failing_postgres_->running()) return;
    failing_ =
        StowagedProcess::FromText(
            "[server]\nlisten = \"${STOWAGE_LISTEN}\"\nworkers = 1\nmax_queue = 8\nqueue_timeout_ms = 250\n" +
                limits + plugins +
                "[log]\nlevel = \"info\"\n"
                "[[database]]\nname = \"main\"\nurl = \"" +
                failing_postgres_->url() +
                "\"\nconnect_timeout_ms = 500\n"
                "[[stage]]\nname = \"store\"\nplugin = \"" TEST_STAGE_PATH
                "\"\npolicy = \"required\"\n"
                "timeout_ms = 400\nconfig = { write = \"hang\", hang_ms = 1500, read = \"throw\", "
                "erase = \"throw\", unhealthy_while = \"" +
                (folder_ / "store_unhealthy").string() +
                "\" }\n"
                "[[stage]]\nname = \"side\"\nplugin = \"" TEST_STAGE_PATH
                "\"\npolicy = \"best_effort\"\n"
                "database = \"main\"\n"
                "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\npolicy = \"best_effort\"\n"
                "database = \"main\"\n"
                "[[stage]]\nname = \"embeddings\"\nplugin = \"embeddings\"\npolicy = \"best_effort\"\n"
                "timeout_ms = 2000\ndatabase = \"main\"\nconfig = { provider = \"builtin\" }\n",
            {{"STOWAGE_ADMIN_TOKEN", kToken}})
            .release();
    if (failing_->running()) EXPECT_TRUE(failing_postgres_->Stop());

    clashing_ = StowagedProcess::FromText(
                    "[server]\nlisten = \"${STOWAGE_LISTEN}\"\n" + limits +
                        "[log]\nlevel = \"info\"\n"
                        "[[database]]\nname = \"main\"\nurl = \"" +
                        scratch_->url() +
                        "\"\nconnect_timeout_ms = 1000\n"
                        "[[stage]]\nname = \"store\"\nplugin = \"" TEST_STAGE_PATH
                        "\"\npolicy = \"required\"\n"
                        "database = \"main\"\nconfig = { write_sql = \"INSERT INTO openapi_taken (guest_id, "
                        "content) VALUES ($1, $2)\", read = \"fail\", erase = \"fail\" }\n"
                        "[[stage]]\nname = \"bomb\"\nplugin = \"" TEST_STAGE_PATH
                        "\"\npolicy = \"required\"\n"
                        "config = { write = \"throw\" }\n",
                    {{"STOWAGE_ADMIN_TOKEN", ""}})
                    .release();
  }

  static void TearDownTestSuite() {
    for (StowagedProcess** server : {&main_, &failing_, &clashing_}) {
      delete *server;
      *server = nullptr;
    }
    delete failing_postgres_;
    failing_postgres_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
    delete description_;
    description_ = nullptr;
    if (!folder_.empty()) fs::remove_all(folder_);
  }

  void SetUp() override {
    ++tests_run_;
    for (StowagedProcess* server : {main_, failing_, clashing_}) {
      if (server == nullptr || !server->running())
        GTEST_FAIL() << "the servers did not start; these tests run against the Redis and PostgreSQL that "
                        "scripts/test starts: run scripts/test -R openapi_answers"
                     << (server != nullptr ? "\n" + server->log() : "");
    }
  }

  // Checks `answer` as the answer of `method path_template`: the status and
  // error code expected (code "-": not an Error), and the description.
  // Records the outcome.
  static void Expect(const std::string& method, const std::string& path_template,
                     const ReceivedAnswer& answer, int status, const std::string& code) {
    SCOPED_TRACE(method + " " + path_template);
    EXPECT_EQ(answer.status, status) << answer.body;
    const std::string got = OpenApiDescription::CodeOf(answer);
    EXPECT_EQ(got, code) << answer.body;
    const std::vector<std::string> problems = description_->Check(method, path_template, answer);
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
    if (problems.empty() && answer.status == status && got == code) {
      if (auto key = description_->StatusKey(method, path_template, answer.status))
        seen_.emplace(method, path_template, *key, got);
    }
  }

  // Sends the request to `server` and checks it (Expect).
  static ReceivedAnswer Call(StowagedProcess* server, const std::string& method,
                             const std::string& path_template, const std::string& target, int status,
                             const std::string& code, const std::string& body = "",
                             const std::string& content_type = "",
                             std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpClient client(server->port());
    client.set_timeout(20s);
    ReceivedAnswer answer = FromHttp(client.Send(method, target, body, content_type, headers));
    Expect(method, path_template, answer, status, code);
    return answer;
  }

  static std::vector<std::pair<std::string, std::string>> Bearer() {
    return {{"Authorization", std::string("Bearer ") + kToken}};
  }
  static bool IsAdmin(const std::string& path) { return path.starts_with("/v1/admin/"); }

  static inline OpenApiDescription* description_ = nullptr;
  static inline fs::path folder_;
  static inline ScratchDatabase* scratch_ = nullptr;
  static inline ServiceInstance* failing_postgres_ = nullptr;
  static inline StowagedProcess* main_ = nullptr;
  static inline StowagedProcess* failing_ = nullptr;
  static inline StowagedProcess* clashing_ = nullptr;
  // {METHOD, path template, status key, code}
  static inline std::set<std::tuple<std::string, std::string, std::string, std::string>> seen_;
  static inline int tests_run_ = 0;
};

TEST_F(OpenApiAnswersTest, ProbesMetricsAndTheDescriptionItself) {
  Call(main_, "GET", "/healthz", "/healthz", 200, "-");
  Call(main_, "GET", "/readyz", "/readyz", 200, "-");
  Call(main_, "GET", "/metrics", "/metrics", 200, "-");
  ReceivedAnswer served = Call(main_, "GET", "/openapi.json", "/openapi.json", 200, "-");
  EXPECT_EQ(served.body, api::OpenApiJson()) << "GET /openapi.json is not the description built in";
}

TEST_F(OpenApiAnswersTest, TheChatRoutesSucceed) {
  const std::string guest = UniqueGuest("openapi-chat");
  const std::string target = Target(kChat, guest);
  const auto key = std::vector<std::pair<std::string, std::string>>{{"Idempotency-Key", "key-" + guest}};
  ReceivedAnswer first = Call(main_, "POST", kChat, target, 200, "-", Body("What are your opening hours?"),
                              "application/json", key);
  EXPECT_EQ(first.headers.count("idempotent-replayed"), 0u);
  ReceivedAnswer replayed = Call(main_, "POST", kChat, target, 200, "-", Body("What are your opening hours?"),
                                 "application/json", key);
  EXPECT_EQ(replayed.headers["idempotent-replayed"], "true");
  Call(main_, "POST", kChat, target, 200, "-",
       R"({"role":"assistant","content":"From nine to five.","timestamp":"2024-05-01T14:00:00+02:00"})",
       "application/json; charset=utf-8");
  Call(main_, "POST", kChat, target, 200, "-", R"({"role":"system","content":"Be brief.","timestamp":null})",
       "application/json");

  // max_history is 2: the whole history is cut, with Link and X-History-Truncated.
  ReceivedAnswer whole = Call(main_, "GET", kChat, target, 200, "-");
  EXPECT_EQ(whole.headers["x-history-truncated"], "true");
  EXPECT_EQ(whole.headers["link"], "<" + target + "?limit=2&before=1>; rel=\"next\"");
  ReceivedAnswer page = Call(main_, "GET", kChat, target + "?limit=1&before=2", 200, "-");
  EXPECT_EQ(json::parse(page.body).as_array().size(), 1u);
  EXPECT_EQ(page.headers["link"], "<" + target + "?limit=1&before=1>; rel=\"next\"");
  EXPECT_EQ(page.headers.count("x-history-truncated"), 0u);
  EXPECT_EQ(Call(main_, "GET", kChat, Target(kChat, UniqueGuest("openapi-nobody")), 200, "-").body, "[]");

  ReceivedAnswer found =
      Call(main_, "GET", kSearch, Target(kSearch, guest) + "?q=opening+hours&k=2", 200, "-");
  EXPECT_EQ(json::parse(found.body).at("results").as_array().size(), 2u) << found.body;

  Call(main_, "DELETE", kChat, target, 200, "-");
}

TEST_F(OpenApiAnswersTest, HeadAndOptionsOfEveryRoute) {
  const std::string guest = UniqueGuest("openapi-head");
  ASSERT_EQ(HttpClient(main_->port()).Send("POST", Target(kChat, guest), Body("hello")).status, 200);
  for (const auto& [method, path] : description_->Operations()) {
    const auto headers = IsAdmin(path) ? Bearer() : std::vector<std::pair<std::string, std::string>>{};
    std::string target = Target(path, guest);
    if (path == kSearch) target += "?q=hello";
    if (method == "HEAD") {
      ReceivedAnswer answer = Call(main_, "HEAD", path, target, 200, "-", "", "", headers);
      // HEAD has GET's Content-Length.
      ReceivedAnswer get = FromHttp(HttpClient(main_->port()).Send("GET", target, "", "", headers));
      // Not where the body changes between two requests (counters, ages).
      if (path != "/metrics" && path != "/v1/admin/pipeline" && path != "/v1/admin/journal")
        EXPECT_EQ(answer.headers["content-length"], std::to_string(get.body.size())) << path;
    } else if (method == "OPTIONS") {
      ReceivedAnswer answer = Call(main_, "OPTIONS", path, target, 204, "-", "", "", headers);
      // The route's methods, then HEAD (beside GET) and OPTIONS: the router's order.
      std::string allow;
      for (const char* other : {"GET", "POST", "DELETE"})
        if (description_->Operation(other, path) != nullptr)
          allow += (allow.empty() ? "" : ", ") + std::string(other);
      if (description_->Operation("HEAD", path) != nullptr) allow += ", HEAD";
      EXPECT_EQ(answer.headers["allow"], allow + ", OPTIONS") << path;
    }
  }
}

TEST_F(OpenApiAnswersTest, TheAdminRoutesSucceedWithTheToken) {
  // `side` fails while its file exists: a POST is degraded and journaled.
  const std::string guest = UniqueGuest("openapi-journal");
  ReceivedAnswer posted =
      Call(main_, "POST", kChat, Target(kChat, guest), 200, "-", Body("journaled"), "application/json");
  EXPECT_NE(posted.body.find(R"("degraded":["side"])"), std::string::npos) << posted.body;

  ReceivedAnswer listed = Call(main_, "GET", "/v1/admin/journal", "/v1/admin/journal?stage=side&limit=10",
                               200, "-", "", "", Bearer());
  EXPECT_FALSE(json::parse(listed.body).at("entries").as_array().empty()) << listed.body;
  Call(main_, "GET", "/v1/admin/pipeline", "/v1/admin/pipeline", 200, "-", "", "", Bearer());
  Call(main_, "POST", "/v1/admin/journal/replay", "/v1/admin/journal/replay?stage=side", 200, "-", "", "",
       Bearer());
  Call(main_, "POST", "/v1/admin/journal/drop", "/v1/admin/journal/drop?stage=side&parked=false", 200, "-",
       "", "", Bearer());
  Call(main_, "POST", "/v1/admin/reload", "/v1/admin/reload", 200, "-", "", "", Bearer());
}

TEST_F(OpenApiAnswersTest, AReloadOfABrokenFileIsRefused) {
  std::string text;
  {
    std::ifstream in(main_->config());
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(main_->config()) << text << "\n[[stage]]\nname = \"redis\"\nplugin = \"nowhere\"\n";
  Call(main_, "POST", "/v1/admin/reload", "/v1/admin/reload", 400, "-", "", "", Bearer());
  std::ofstream(main_->config()) << text;
}

TEST_F(OpenApiAnswersTest, RequestsRefusedForWhatTheySent) {
  const std::string guest = UniqueGuest("openapi-refused");
  const std::string target = Target(kChat, guest);
  Call(main_, "POST", kChat, target, 400, "bad_json", "not json", "application/json");
  Call(main_, "POST", kChat, target, 400, "invalid_field", R"({"role":"admin","content":"x"})",
       "application/json");
  Call(main_, "POST", kChat, Target(kChat, "a$b"), 400, "invalid_guest_id", Body("x"), "application/json");
  Call(main_, "POST", kChat, target, 400, "invalid_idempotency_key", Body("x"), "application/json",
       {{"Idempotency-Key", "has a space"}});
  Call(main_, "POST", kChat, target, 413, "content_too_large", Body(std::string(kMaxContent + 1, 'x')),
       "application/json");
  Call(main_, "POST", kChat, target, 415, "unsupported_media_type", Body("x"), "text/plain");
  const auto key = std::vector<std::pair<std::string, std::string>>{{"Idempotency-Key", "conflict-" + guest}};
  Call(main_, "POST", kChat, target, 200, "-", Body("one"), "application/json", key);
  Call(main_, "POST", kChat, target, 409, "idempotency_conflict", Body("another"), "application/json", key);
  // The metrics stage's monthly limit is 3 requests.
  Call(main_, "POST", kChat, target, 200, "-", Body("two"), "application/json");
  Call(main_, "POST", kChat, target, 200, "-", Body("three"), "application/json");
  Call(main_, "POST", kChat, target, 429, "rejected", Body("four"), "application/json");

  Call(main_, "GET", kChat, target + "?limit=0", 400, "invalid_field");
  Call(main_, "GET", kChat, Target(kChat, "a$b"), 400, "invalid_guest_id");
  Call(main_, "DELETE", kChat, Target(kChat, "a$b"), 400, "invalid_guest_id");
  Call(main_, "GET", kSearch, Target(kSearch, guest), 400, "invalid_field");
  Call(main_, "GET", kSearch, Target(kSearch, "a$b") + "?q=x", 400, "invalid_guest_id");
  Call(main_, "GET", kSearch, Target(kSearch, guest) + "?q=" + std::string(kMaxContent + 1, 'x'), 413,
       "content_too_large");
  Call(main_, "GET", "/v1/admin/journal", "/v1/admin/journal?limit=0", 400, "invalid_field", "", "",
       Bearer());
  Call(main_, "POST", "/v1/admin/journal/replay", "/v1/admin/journal/replay?parked=maybe", 400,
       "invalid_field", "", "", Bearer());
  Call(main_, "POST", "/v1/admin/journal/drop", "/v1/admin/journal/drop", 400, "invalid_field", "", "",
       Bearer());
}

TEST_F(OpenApiAnswersTest, TheAdminRoutesWithoutTheTokenOrWhenOff) {
  for (const auto& [method, path] : description_->Operations()) {
    if (!IsAdmin(path)) continue;
    Call(main_, method, path, path, 401, method == "HEAD" ? "-" : "unauthorized");
    Call(main_, method, path, path, 401, method == "HEAD" ? "-" : "unauthorized", "", "",
         {{"Authorization", "Bearer wrong"}});
    Call(clashing_, method, path, path, 404, method == "HEAD" ? "-" : "not_found", "", "", Bearer());
  }
}

TEST_F(OpenApiAnswersTest, TheHttpLayerRefusesMalformedOversizedAndOverlongRequests) {
  for (const auto& [method, path] : description_->Operations()) {
    SCOPED_TRACE(method + " " + path);
    const std::string line = method + " " + Target(path) + (path == kSearch ? "?q=x" : "") + " HTTP/1.1\r\n";
    const bool head = method == "HEAD";
    Expect(method, path,
           SendRaw(main_->port(), line + "Host: x\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n", head),
           431, head ? "-" : "header_too_large");
    Expect(method, path,
           SendRaw(main_->port(),
                   line + "Host: x\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(kBodyLimit * 4) + "\r\n\r\n",
                   head),
           413, head ? "-" : "payload_too_large");
    Expect(method, path, SendRaw(main_->port(), line + "Host: x\r\nContent-Length: nope\r\n\r\n", head), 400,
           head ? "-" : "bad_request");
  }
}

TEST_F(OpenApiAnswersTest, UnknownPathsAndMethodsAnswerAnErrorAsDescribed) {
  HttpClient client(main_->port());
  ReceivedAnswer unknown = FromHttp(client.Send("GET", "/v1/guest/chat/g1/", "", ""));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(OpenApiDescription::CodeOf(unknown), "not_found");
  EXPECT_EQ(description_->CheckAgainstSchema("NotFoundError", unknown), std::vector<std::string>{});
  EXPECT_NE(unknown.body.find("/openapi.json"), std::string::npos)
      << "the 404 names the routes: " << unknown.body;

  ReceivedAnswer not_allowed = FromHttp(client.Send("PUT", Target(kChat), Body("x")));
  EXPECT_EQ(not_allowed.status, 405);
  EXPECT_EQ(OpenApiDescription::CodeOf(not_allowed), "method_not_allowed");
  EXPECT_EQ(description_->CheckAgainstSchema("Error", not_allowed), std::vector<std::string>{});
  EXPECT_EQ(not_allowed.headers["allow"], "GET, POST, DELETE");
  JsonSchemaValidator validator(description_->document());
  EXPECT_EQ(validator.Validate(
                json::string(not_allowed.headers["allow"]),
                description_->Deref(description_->document().at("components").at("headers").at("Allow"))
                    .at("schema")),
            std::vector<std::string>{});
}

TEST_F(OpenApiAnswersTest, FailingStagesAnswerAsDescribed) {
  const std::string guest = UniqueGuest("openapi-failing");
  Call(failing_, "POST", kChat, Target(kChat, guest), 503, "stage_failed", Body("x"), "application/json");
  Call(failing_, "GET", kChat, Target(kChat, guest), 500, "stage_failed");
  Call(failing_, "HEAD", kChat, Target(kChat, guest), 500, "-");
  Call(failing_, "DELETE", kChat, Target(kChat, guest), 500, "stage_failed");
  Call(failing_, "GET", kSearch, Target(kSearch, guest) + "?q=x", 503, "stage_failed");
  Call(failing_, "HEAD", kSearch, Target(kSearch, guest) + "?q=x", 503, "-");
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/admin/journal"},
                                                        {"HEAD", "/v1/admin/journal"},
                                                        {"POST", "/v1/admin/journal/replay"},
                                                        {"POST", "/v1/admin/journal/drop?stage=side"}}) {
    const std::string pattern = path.substr(0, path.find('?'));
    Call(failing_, method, pattern, path, 503, method == "HEAD" ? "-" : "journal_unavailable", "", "",
         Bearer());
  }

  // /readyz: unready while the required stage's health fails (checked at most once a second).
  std::ofstream(folder_ / "store_unhealthy");
  std::this_thread::sleep_for(1100ms);
  Call(failing_, "GET", "/readyz", "/readyz", 503, "-");
  Call(failing_, "HEAD", "/readyz", "/readyz", 503, "-");
  fs::remove(folder_ / "store_unhealthy");

  const std::string clash = UniqueGuest("openapi-clash");
  Call(clashing_, "POST", kChat, Target(kChat, "taken-guest"), 409, "conflict", Body("again"),
       "application/json");
  Call(clashing_, "POST", kChat, Target(kChat, clash), 500, "stage_failed", Body("boom"), "application/json");
  Call(clashing_, "GET", kChat, Target(kChat, clash), 503, "stage_failed");
  Call(clashing_, "DELETE", kChat, Target(kChat, clash), 503, "stage_failed");
  Call(clashing_, "GET", kSearch, Target(kSearch, clash) + "?q=x", 404, "not_found");
}

TEST_F(OpenApiAnswersTest, ACommitWhoseAnswerIsLostIsOutcomeUnknown) {
  // The COMMIT of this message sleeps (a deferred trigger), and its session
  // is terminated meanwhile: stowaged sent the COMMIT and never got its answer.
  scratch_->Query(
      "CREATE OR REPLACE FUNCTION openapi_slow_commit() RETURNS trigger AS $$ BEGIN "
      "IF NEW.content = 'slow commit' THEN PERFORM pg_sleep(5); END IF; RETURN NULL; END $$ LANGUAGE "
      "plpgsql");
  scratch_->Query(
      "CREATE CONSTRAINT TRIGGER openapi_slow_commit AFTER INSERT ON message_cache DEFERRABLE INITIALLY "
      "DEFERRED FOR EACH ROW EXECUTE FUNCTION openapi_slow_commit()");
  std::atomic<bool> terminated{false};
  std::thread killer([&] {
    PostgresProbe pg(scratch_->url());
    for (int attempt = 0; attempt < 100 && !terminated; ++attempt) {
      std::this_thread::sleep_for(50ms);
      terminated = !pg.Query(
                          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'COMMIT' "
                          "AND state = 'active' AND datname = $1 AND pid <> pg_backend_pid()",
                          scratch_->name())
                        .empty();
    }
  });
  Call(main_, "POST", kChat, Target(kChat, UniqueGuest("openapi-unknown")), 503, "outcome_unknown",
       Body("slow commit"), "application/json", {{"Idempotency-Key", UniqueGuest("unknown-key")}});
  killer.join();
  EXPECT_TRUE(terminated) << "no COMMIT was seen running";
  scratch_->Query("DROP TRIGGER openapi_slow_commit ON message_cache");
}

TEST_F(OpenApiAnswersTest, AnOverloadedServerAnswers503WithRetryAfterButHealthzAnswers) {
  // `failing` has one worker and a queue timeout of 250 ms; its POST holds the
  // worker for the store's timeout (400 ms), so a request sent meanwhile waits
  // too long and is answered overloaded without running.
  for (const auto& [method, path] : description_->Operations()) {
    if (path == "/healthz" && method != "OPTIONS") continue;  // answered at once, whatever the workers do
    SCOPED_TRACE(method + " " + path);
    auto holder = std::async(std::launch::async, [] {
      HttpClient client(failing_->port());
      client.set_timeout(20s);
      return client.Send("POST", Target(kChat, "openapi-holder"), Body("hold the worker")).status;
    });
    std::this_thread::sleep_for(60ms);
    std::string target = Target(path);
    if (path == kSearch) target += "?q=x";
    const auto headers = IsAdmin(path) ? Bearer() : std::vector<std::pair<std::string, std::string>>{};
    ReceivedAnswer answer =
        Call(failing_, method, path, target, 503, method == "HEAD" ? "-" : "overloaded", "", "", headers);
    EXPECT_EQ(answer.headers["retry-after"], "1");
    EXPECT_EQ(holder.get(), 503);
  }
}

// Last: every outcome the description lists was seen above, or kNotProvoked
// says why not.
TEST_F(OpenApiAnswersTest, ZzEveryOutcomeTheDescriptionListsWasProvokedOrIsExplained) {
  const int total = ::testing::UnitTest::GetInstance()->current_test_suite()->total_test_count();
  if (tests_run_ < total) GTEST_SKIP() << "needs every test of the suite to have run before it";
  int listed = 0, provoked = 0, not_provoked = 0;
  for (const auto& [method, path] : description_->Operations()) {
    for (const Outcome& outcome : description_->Outcomes(method, path)) {
      const bool seen = seen_.contains({method, path, outcome.first, outcome.second});
      std::string why;
      const bool explained = Explained(method, path, outcome, &why);
      ++listed;
      provoked += seen ? 1 : 0;
      not_provoked += explained ? 1 : 0;
      EXPECT_TRUE(seen || explained)
          << method << " " << path << " " << outcome.first << " " << outcome.second
          << ": listed by docs/openapi.yaml, but no test here provoked it; provoke it "
             "(and check it), or add it to kNotProvoked with the reason";
      EXPECT_FALSE(seen && explained)
          << method << " " << path << " " << outcome.first << " " << outcome.second
          << " was provoked: remove it from kNotProvoked (" << why << ")";
    }
  }
  std::printf(
      "[ outcomes ] the description lists %d: %d provoked and checked, %d not provoked (kNotProvoked)\n",
      listed, provoked, not_provoked);
}

}  // namespace
}  // namespace stowage::testing
