// End-to-end tests of the journal's admin routes: the real stowaged on a
// pipeline whose [[database]] is a scratch database of the suite's
// PostgreSQL, with entries put in its stowage_journal by the test. The
// entries belong to stages that are not in the pipeline, so the running
// stowaged never replays them: what the routes show is what the test put.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "journal/journal_store.h"
#include "scratch_database.h"
#include "support/process.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::milliseconds;

constexpr const char* kToken = "journal-test-token";
constexpr const char* kContent = "the guest's secret words";

fs::path TempFolder() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "suite";
  fs::path folder =
      fs::temp_directory_path() / ("stowage_http_journal_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(folder);
  fs::create_directories(folder);
  return folder;
}

// stowaged with the admin routes on, a [[database]] `main` at `database_url`,
// a required stage `store` and a journaled best_effort stage `side` on it.
class Server {
 public:
  explicit Server(const std::string& database_url) : folder_(TempFolder()), port_(FreePort()) {
    fs::path config = folder_ / "pipeline.toml";
    std::ofstream(config) << "[server]\nlisten = \"127.0.0.1:" << port_
                          << "\"\nio_threads = 2\nworkers = 4\n\n"
                          << "[log]\nlevel = \"info\"\n\n"
                          << "[[database]]\nname = \"main\"\nurl = \"" << database_url
                          << "\"\nconnect_timeout_ms = 1000\n\n"
                          << "[[stage]]\nname = \"store\"\nplugin = \"" << TEST_STAGE_PATH
                          << "\"\npolicy = \"required\"\ndatabase = \"main\"\n"
                          << "config = { target = \"postgresql\" }\n\n"
                          << "[[stage]]\nname = \"side\"\nplugin = \"" << TEST_STAGE_PATH
                          << "\"\npolicy = \"best_effort\"\ndatabase = \"main\"\n";
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{STOWAGED_PATH, "--config", config.string()}, folder_ / "stowaged.log",
        std::map<std::string, std::string>{{"STOWAGE_ADMIN_TOKEN", kToken}});
    if (!WaitForTcp(port_, milliseconds(10000))) {
      ADD_FAILURE() << "stowaged did not listen on port " << port_ << ":\n" << log();
    }
  }

  std::uint16_t port() const { return port_; }
  std::string log() const { return ReadFile(folder_ / "stowaged.log"); }

 private:
  fs::path folder_;
  std::uint16_t port_;
  std::unique_ptr<ChildProcess> process_;
};

std::vector<std::pair<std::string, std::string>> Bearer(const std::string& token = kToken) {
  return {{"Authorization", "Bearer " + token}};
}

std::string ErrorCode(const HttpResult& result) {
  auto at = result.body.find("\"code\":\"");
  if (at == std::string::npos) return "<no code in " + result.body + ">";
  at += 8;
  return result.body.substr(at, result.body.find('"', at) - at);
}

json::object Parse(const HttpResult& result) {
  try {
    return json::parse(result.body).as_object();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a JSON object (" << e.what() << "): " << result.body;
    return {};
  }
}

// ---------------------------------------------------------------------------
// One stowaged on one scratch database for the suite; each test starts from
// an empty journal.
class JournalRoutesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDatabase("journal_http");
    if (!scratch_->ok()) return;
    // The table, as stowaged creates it (which it does too, at start).
    auto log = std::make_shared<CapturingLogger>();
    journal::JournalStore store(
        std::shared_ptr<database::PostgresDatabase>(std::shared_ptr<void>(), &scratch_->database()), log);
    Status ready = store.EnsureSchema(Deadline::After(std::chrono::seconds(10)));
    ASSERT_TRUE(ready.ok()) << ready.ToString() << "\n" << log->All();
    server_ = new Server(scratch_->url());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(scratch_ && scratch_->ok() && server_);
    scratch_->Query("DELETE FROM stowage_journal");
  }

  // Journals a message of `guest` for `stage` as the engine does, `age_s`
  // seconds ago; parked when `parked`. Returns its id.
  static std::int64_t Insert(const std::string& stage, const std::string& guest, int age_s,
                             bool parked = false) {
    Message message{"user", kContent, "2024-05-01T12:00:00.000000Z"};
    Attributes attributes;
    attributes.set("message_id", "41");
    auto statement =
        journal::JournalStore::Record(stage, guest, message, attributes, "unavailable: target down");
    std::string id = scratch_->Scalar(statement.text + " RETURNING id", statement.params);
    scratch_->Query(
        "UPDATE stowage_journal SET created_at = now() - make_interval(secs => $2::integer)," +
            std::string(parked ? " parked_at = now(), attempts = 5, last_error = 'still down'," : "") +
            " next_attempt_at = now() + interval '1 hour' WHERE id = $1::bigint",
        {id, std::to_string(age_s)});
    return std::stoll(id);
  }

  static HttpResult Admin(const std::string& method, const std::string& target) {
    HttpClient client(server_->port());
    client.set_timeout(milliseconds(20000));
    return client.Send(method, target, "", "", Bearer());
  }

  static std::string Rows() {
    auto result = scratch_->Query(
        "SELECT string_agg(stage || ':' || guest_id || ':' || (parked_at IS NOT NULL) || ':' || attempts, ' '"
        " ORDER BY id) FROM stowage_journal");
    return result.value(0, 0).value_or("");
  }

  static ScratchDatabase* scratch_;
  static Server* server_;
};
ScratchDatabase* JournalRoutesTest::scratch_ = nullptr;
Server* JournalRoutesTest::server_ = nullptr;

TEST_F(JournalRoutesTest, ListShowsTheEntriesOldestFirstWithoutTheirContent) {
  // (JournalStore::List goes by id: entries are journaled in the order of their creation.)
  const std::int64_t oldest = Insert("retired", "g-old", 600);
  const std::int64_t parked = Insert("gone", "g-parked", 300, true);
  const std::int64_t newest = Insert("gone", "g-new", 10);

  HttpResult result = Admin("GET", "/v1/admin/journal");
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.header("content-type"), "application/json");
  EXPECT_EQ(result.body.find("secret"), std::string::npos) << "the content leaked: " << result.body;
  json::object body = Parse(result);
  const json::array& entries = body.at("entries").as_array();
  ASSERT_EQ(entries.size(), 3u) << result.body;
  EXPECT_EQ(entries[0].at("id").as_int64(), oldest);
  EXPECT_EQ(entries[1].at("id").as_int64(), parked);
  EXPECT_EQ(entries[2].at("id").as_int64(), newest);

  const json::object& first = entries[0].as_object();
  EXPECT_EQ(first.at("stage").as_string(), "retired");
  EXPECT_EQ(first.at("guest_id").as_string(), "g-old");
  EXPECT_EQ(first.at("role").as_string(), "user");
  EXPECT_EQ(first.at("timestamp").as_string(), "2024-05-01T12:00:00.000000Z");
  EXPECT_EQ(first.at("content_bytes").to_number<std::int64_t>(),
            static_cast<std::int64_t>(std::strlen(kContent)));
  EXPECT_EQ(first.at("reason").as_string(), "unavailable: target down");
  EXPECT_EQ(first.at("attempts").to_number<int>(), 0);
  EXPECT_EQ(first.at("last_error").as_string(), "");
  EXPECT_FALSE(first.at("parked").as_bool());
  EXPECT_TRUE(first.at("created_at").as_string().ends_with("Z"));
  EXPECT_TRUE(first.at("next_attempt_at").as_string().ends_with("Z"));
  EXPECT_EQ(first.at("attributes").at("message_id").as_string(), "41");
  EXPECT_FALSE(first.contains("content"));
  const json::object& second = entries[1].as_object();
  EXPECT_TRUE(second.at("parked").as_bool());
  EXPECT_EQ(second.at("attempts").to_number<int>(), 5);
  EXPECT_EQ(second.at("last_error").as_string(), "still down");

  const json::array& backlog = body.at("backlog").as_array();
  ASSERT_EQ(backlog.size(), 2u) << result.body;
  EXPECT_EQ(backlog[0].at("stage").as_string(), "gone");
  EXPECT_EQ(backlog[0].at("pending").to_number<int>(), 1);
  EXPECT_EQ(backlog[0].at("parked").to_number<int>(), 1);
  EXPECT_GT(backlog[0].at("oldest_pending_age_s").to_number<double>(), 5.0);
  EXPECT_EQ(backlog[1].at("stage").as_string(), "retired");
  EXPECT_EQ(backlog[1].at("pending").to_number<int>(), 1);
  EXPECT_GT(backlog[1].at("oldest_pending_age_s").to_number<double>(), 500.0);

  // The selections.
  json::object gone = Parse(Admin("GET", "/v1/admin/journal?stage=gone"));
  EXPECT_EQ(gone.at("entries").as_array().size(), 2u);
  ASSERT_EQ(gone.at("backlog").as_array().size(), 1u);
  EXPECT_EQ(gone.at("backlog").as_array()[0].at("stage").as_string(), "gone");
  json::object only_parked = Parse(Admin("GET", "/v1/admin/journal?parked=true"));
  ASSERT_EQ(only_parked.at("entries").as_array().size(), 1u);
  EXPECT_EQ(only_parked.at("entries").as_array()[0].at("id").as_int64(), parked);
  json::object one = Parse(Admin("GET", "/v1/admin/journal?id=" + std::to_string(newest)));
  ASSERT_EQ(one.at("entries").as_array().size(), 1u);
  EXPECT_EQ(one.at("entries").as_array()[0].at("id").as_int64(), newest);
  json::object limited = Parse(Admin("GET", "/v1/admin/journal?limit=1&parked=false"));
  ASSERT_EQ(limited.at("entries").as_array().size(), 1u);
  EXPECT_EQ(limited.at("entries").as_array()[0].at("id").as_int64(), oldest);
  json::object none = Parse(Admin("GET", "/v1/admin/journal?stage=nobody"));
  EXPECT_TRUE(none.at("entries").as_array().empty());
  EXPECT_TRUE(none.at("backlog").as_array().empty());
}

TEST_F(JournalRoutesTest, ReplayMakesAParkedEntryPendingWithNoAttemptsAndDueNow) {
  const std::int64_t parked = Insert("gone", "g-1", 60, true);
  const std::int64_t other = Insert("gone", "g-2", 30, true);
  HttpResult replayed = Admin("POST", "/v1/admin/journal/replay?id=" + std::to_string(parked));
  ASSERT_EQ(replayed.status, 200) << replayed.body;
  EXPECT_EQ(replayed.body, R"({"requeued":1})");
  EXPECT_EQ(
      scratch_->Scalar("SELECT (parked_at IS NULL) || ':' || attempts || ':' || (next_attempt_at <= now())"
                       " FROM stowage_journal WHERE id = $1::bigint",
                       {std::to_string(parked)}),
      "true:0:true");
  EXPECT_EQ(Rows(), "gone:g-1:false:0 gone:g-2:true:5");
  json::object listed = Parse(Admin("GET", "/v1/admin/journal?id=" + std::to_string(parked)));
  ASSERT_EQ(listed.at("entries").as_array().size(), 1u);
  EXPECT_FALSE(listed.at("entries").as_array()[0].at("parked").as_bool());

  // By stage, parked only: the other one.
  EXPECT_EQ(Admin("POST", "/v1/admin/journal/replay?stage=gone&parked=true").body, R"({"requeued":1})");
  EXPECT_EQ(Rows(), "gone:g-1:false:0 gone:g-2:false:0");
  EXPECT_EQ(Admin("POST", "/v1/admin/journal/replay?stage=nobody").body, R"({"requeued":0})");
  EXPECT_EQ(
      scratch_->Scalar("SELECT attempts FROM stowage_journal WHERE id = $1::bigint", {std::to_string(other)}),
      "0");
}

TEST_F(JournalRoutesTest, DropRemovesExactlyTheSelectedEntries) {
  Insert("gone", "g-pending", 60);
  Insert("gone", "g-parked", 50, true);
  const std::int64_t retired = Insert("retired", "g-retired", 40);
  Insert("retired", "g-kept", 30);

  HttpResult dropped = Admin("POST", "/v1/admin/journal/drop?stage=gone&parked=true");
  ASSERT_EQ(dropped.status, 200) << dropped.body;
  EXPECT_EQ(dropped.body, R"({"dropped":1})");
  EXPECT_EQ(Rows(), "gone:g-pending:false:0 retired:g-retired:false:0 retired:g-kept:false:0");

  EXPECT_EQ(Admin("POST", "/v1/admin/journal/drop?id=" + std::to_string(retired)).body, R"({"dropped":1})");
  EXPECT_EQ(Rows(), "gone:g-pending:false:0 retired:g-kept:false:0");

  EXPECT_EQ(Admin("POST", "/v1/admin/journal/drop?stage=gone").body, R"({"dropped":1})");
  EXPECT_EQ(Rows(), "retired:g-kept:false:0");
}

TEST_F(JournalRoutesTest, BadParametersAre400NamingTheParameterAndChangeNothing) {
  Insert("gone", "g-1", 60, true);
  struct Case {
    std::string method, target, names;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/admin/journal?limit=0", "'limit'"},
      {"GET", "/v1/admin/journal?limit=1001", "'limit'"},
      {"GET", "/v1/admin/journal?limit=ten", "'limit'"},
      {"GET", "/v1/admin/journal?parked=yes", "'parked'"},
      {"GET", "/v1/admin/journal?id=abc", "'id'"},
      {"GET", "/v1/admin/journal?id=0", "'id'"},
      {"GET", "/v1/admin/journal?stage=a%24b", "'stage'"},
      {"GET", "/v1/admin/journal?stage=", "'stage'"},
      {"GET", "/v1/admin/journal?stag=gone", "'stag'"},
      {"GET", "/v1/admin/journal?stage=%zz", "%-escape"},
      {"POST", "/v1/admin/journal/replay?limit=5", "'limit'"},
      {"POST", "/v1/admin/journal/replay?parked=1", "'parked'"},
      {"POST", "/v1/admin/journal/drop", "name a stage or an id"},
      {"POST", "/v1/admin/journal/drop?parked=true", "name a stage or an id"},
      {"POST", "/v1/admin/journal/drop?stage=gone&id=x", "'id'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target);
    HttpResult result = Admin(c.method, c.target);
    EXPECT_EQ(result.status, 400) << result.body;
    EXPECT_EQ(ErrorCode(result), "invalid_field") << result.body;
    EXPECT_NE(result.body.find(c.names), std::string::npos) << result.body;
  }
  EXPECT_EQ(Rows(), "gone:g-1:true:5");

  HttpResult wrong_method = Admin("POST", "/v1/admin/journal");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("allow"), "GET");
  HttpResult wrong_method_too = Admin("GET", "/v1/admin/journal/drop?stage=gone");
  EXPECT_EQ(wrong_method_too.status, 405);
  EXPECT_EQ(wrong_method_too.header("allow"), "POST");
  EXPECT_EQ(Admin("GET", "/v1/admin/journal/").status, 404);
  EXPECT_EQ(Rows(), "gone:g-1:true:5");
}

TEST_F(JournalRoutesTest, WithoutTheTokenIs401AndChangesNothing) {
  Insert("gone", "g-1", 60, true);
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/admin/journal"},
                                                        {"POST", "/v1/admin/journal/replay?stage=gone"},
                                                        {"POST", "/v1/admin/journal/drop?stage=gone"}}) {
    SCOPED_TRACE(method + " " + target);
    HttpClient client(server_->port());
    HttpResult anonymous = client.Send(method, target, "", "");
    EXPECT_EQ(anonymous.status, 401) << anonymous.body;
    EXPECT_EQ(anonymous.header("www-authenticate"), "Bearer");
    EXPECT_EQ(anonymous.body.find("secret"), std::string::npos);
    HttpClient other(server_->port());
    HttpResult wrong = other.Send(method, target, "", "", Bearer("not-the-token"));
    EXPECT_EQ(wrong.status, 401) << wrong.body;
  }
  EXPECT_EQ(Rows(), "gone:g-1:true:5");
}

TEST_F(JournalRoutesTest, PipelineRouteShowsEachStagesJournalAndTheStagesNoLongerThere) {
  Insert("gone", "g-1", 60);
  Insert("gone", "g-2", 30, true);
  // The replayer counts the entries every second: wait for a count made
  // after this test's entries (an earlier one may show another test's).
  json::object body;
  auto counted = [&] {
    if (!body.contains("journal_other_stages")) return false;
    const json::array& others = body.at("journal_other_stages").as_array();
    return others.size() == 1 && others[0].at("stage") == "gone" && others[0].at("pending") == 1 &&
           others[0].at("parked") == 1;
  };
  for (int i = 0; i < 100 && !counted(); ++i) {
    if (i > 0) std::this_thread::sleep_for(milliseconds(100));
    body = Parse(Admin("GET", "/v1/admin/pipeline"));
  }
  ASSERT_TRUE(body.contains("journal_other_stages")) << json::serialize(body);
  const json::array& others = body.at("journal_other_stages").as_array();
  ASSERT_EQ(others.size(), 1u) << json::serialize(body);
  EXPECT_EQ(others[0].at("stage").as_string(), "gone");
  EXPECT_EQ(others[0].at("pending").to_number<int>(), 1);
  EXPECT_EQ(others[0].at("parked").to_number<int>(), 1);
  EXPECT_GT(others[0].at("oldest_pending_age_s").to_number<double>(), 10.0);

  const json::array& stages = body.at("stages").as_array();
  ASSERT_EQ(stages.size(), 2u);
  const json::object& store = stages[0].at("journal").as_object();
  EXPECT_FALSE(store.at("enabled").as_bool());  // required: never journaled
  EXPECT_EQ(store.at("pending").to_number<int>(), 0);
  EXPECT_EQ(store.at("parked").to_number<int>(), 0);
  EXPECT_EQ(store.at("oldest_pending_age_s").to_number<double>(), 0.0);
  const json::object& side = stages[1].at("journal").as_object();
  EXPECT_TRUE(side.at("enabled").as_bool());
  EXPECT_EQ(side.at("pending").to_number<int>(), 0);
}

// ---------------------------------------------------------------------------

TEST(JournalRoutesDownTest, ADatabaseThatDoesNotAnswerIs503NamingItWithoutItsAddress) {
  const std::uint16_t nothing = FreePort();
  Server server("postgresql://stowage@127.0.0.1:" + std::to_string(nothing) + "/stowage");
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/admin/journal"},
                                                        {"POST", "/v1/admin/journal/replay"},
                                                        {"POST", "/v1/admin/journal/drop?stage=gone"}}) {
    SCOPED_TRACE(method + " " + target);
    HttpClient client(server.port());
    client.set_timeout(milliseconds(20000));
    HttpResult result = client.Send(method, target, "", "", Bearer());
    EXPECT_EQ(result.status, 503) << result.body;
    EXPECT_EQ(ErrorCode(result), "journal_unavailable") << result.body;
    EXPECT_NE(result.body.find("database 'main'"), std::string::npos) << result.body;
    EXPECT_EQ(result.body.find("127.0.0.1"), std::string::npos) << result.body;
    EXPECT_EQ(result.body.find(std::to_string(nothing)), std::string::npos) << result.body;
  }
  // The pipeline route still answers: the backlog is the replayer's last count.
  HttpClient client(server.port());
  HttpResult pipeline = client.Send("GET", "/v1/admin/pipeline", "", "", Bearer());
  EXPECT_EQ(pipeline.status, 200) << pipeline.body;
  EXPECT_NE(pipeline.body.find("\"journal_other_stages\":[]"), std::string::npos) << pipeline.body;
}

}  // namespace
}  // namespace stowage::testing
