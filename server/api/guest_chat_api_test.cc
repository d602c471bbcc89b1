#include "api/guest_chat_api.h"

#include "logging/logging.h"

#include "idempotency/fingerprint.h"

#include <gtest/gtest.h>

#include <mutex>
#include <stdexcept>
#include <vector>

namespace stowage::api {
namespace {

// Records the calls the API makes and answers with preset outcomes.
class RecordingService final : public ChatService {
 public:
  engine::WriteOutcome Write(const std::string& guest_id, const stowage::Message& message,
                             const engine::IdempotencyClaim* claim) override {
    std::lock_guard lock(mu);
    calls.push_back("write " + guest_id);
    if (claim) {
      claims.push_back(claim->key + " " + claim->fingerprint);
      recorded_answers.push_back(claim->answer(write));
    }
    written.push_back(message);
    if (throw_on_call) throw std::runtime_error("storage exploded");
    return write;
  }
  engine::ReadOutcome Read(const std::string& guest_id, const stowage::ReadRange& range) override {
    std::lock_guard lock(mu);
    calls.push_back("read " + guest_id);
    ranges.push_back(range);
    if (throw_on_call) throw std::runtime_error("storage exploded");
    return read;
  }
  engine::EraseOutcome Erase(const std::string& guest_id) override {
    std::lock_guard lock(mu);
    calls.push_back("erase " + guest_id);
    return erase;
  }
  engine::SearchOutcome Search(const std::string& guest_id, const std::string& query, std::size_t k) override {
    std::lock_guard lock(mu);
    calls.push_back("search " + guest_id + " " + query + " " + std::to_string(k));
    return search;
  }

  std::mutex mu;
  std::vector<std::string> calls;
  std::vector<stowage::Message> written;
  std::vector<stowage::ReadRange> ranges;  // what each read asked for
  std::vector<std::string> claims;            // "key fingerprint" of each write with a claim
  std::vector<std::string> recorded_answers;  // what each claim would record
  engine::WriteOutcome write;
  engine::ReadOutcome read;
  engine::EraseOutcome erase;
  engine::SearchOutcome search;
  bool throw_on_call = false;
};

class GuestChatApiTest : public ::testing::Test {
 protected:
  http::Response Call(std::string method, std::string target, std::string body = "",
                      std::string content_type = "application/json") {
    return api_.Handle({std::move(method), std::move(target), std::move(content_type), std::move(body), {}});
  }

  RecordingService service_;
  GuestChatApi api_{service_, {100, [] { return std::string("2030-01-01T00:00:00.000000Z"); }}};
};

std::string Header(const http::Response& response, const std::string& name) {
  for (const auto& [key, value] : response.headers)
    if (key == name) return value;
  return "";
}

bool HasCode(const http::Response& response, const std::string& code) {
  return response.body.find("\"code\":\"" + code + "\"") != std::string::npos;
}

TEST_F(GuestChatApiTest, Health) {
  auto response = Call("GET", "/healthz");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, R"({"status":"ok"})");
}

TEST_F(GuestChatApiTest, PostStoresTheValidatedMessage) {
  service_.write.attributes.set("message_id", "41");
  service_.write.stored_in = {"redis", "postgresql"};
  auto response = Call("POST", "/v1/guest/chat/g-1?trace=1", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body,
            R"({"status":"stored","guest_id":"g-1","message_id":41,"conversation_id":null,"sequence":null,)"
            R"("stored_in":["redis","postgresql"],"degraded":[]})");
  ASSERT_EQ(service_.calls, std::vector<std::string>{"write g-1"});
  EXPECT_EQ(service_.written[0], (stowage::Message{"user", "hi", "2030-01-01T00:00:00.000000Z"}));
}

TEST_F(GuestChatApiTest, DegradedStagesReachTheAccessLog) {
  service_.write.degraded = {"metrics", "embeddings"};
  auto response = Call("POST", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.log_note, "degraded=metrics,embeddings");
}

TEST_F(GuestChatApiTest, UnknownPathsAreNotFound) {
  for (const char* target : {"/", "/v1/guest/chat", "/v1/guest/chat/", "/v1/guest/chat/g/",
                             "/v1/guest/chat/a/b", "/healthz/", "/v2/guest/chat/g"}) {
    auto response = Call("GET", target);
    EXPECT_EQ(response.status, 404) << target;
    EXPECT_TRUE(HasCode(response, "not_found")) << target;
  }
  EXPECT_TRUE(service_.calls.empty());
}

TEST_F(GuestChatApiTest, OtherMethodsAreNotAllowed) {
  auto chat = Call("PUT", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(chat.status, 405);
  EXPECT_TRUE(HasCode(chat, "method_not_allowed"));
  EXPECT_EQ(Header(chat, "Allow"), "GET, POST, DELETE");
  auto health = Call("POST", "/healthz");
  EXPECT_EQ(health.status, 405);
  EXPECT_EQ(Header(health, "Allow"), "GET");
  EXPECT_TRUE(service_.calls.empty());
}

TEST_F(GuestChatApiTest, BadRequestsNeverReachTheService) {
  struct Case {
    const char* method;
    std::string target;
    std::string body;
    const char* content_type;
    int status;
    const char* code;
  } cases[] = {
      {"POST", "/v1/guest/chat/" + std::string(129, 'g'), R"({"role":"user","content":"hi"})",
       "application/json", 400, "invalid_guest_id"},
      {"GET", "/v1/guest/chat/bad$id", "", "", 400, "invalid_guest_id"},
      {"DELETE", "/v1/guest/chat/bad%2Fid", "", "", 400, "invalid_guest_id"},
      {"POST", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})", "text/plain", 415,
       "unsupported_media_type"},
      {"POST", "/v1/guest/chat/g", "{nope", "application/json", 400, "bad_json"},
      {"POST", "/v1/guest/chat/g", R"({"role":"robot","content":"hi"})", "application/json", 400,
       "invalid_field"},
      {"POST", "/v1/guest/chat/g", R"({"role":"user","content":")" + std::string(101, 'x') + "\"}",
       "application/json", 413, "content_too_large"},
  };
  for (const auto& c : cases) {
    auto response = Call(c.method, c.target, c.body, c.content_type);
    EXPECT_EQ(response.status, c.status) << c.method << " " << c.target << " " << c.body;
    EXPECT_TRUE(HasCode(response, c.code)) << response.body;
  }
  EXPECT_TRUE(service_.calls.empty());
}

TEST_F(GuestChatApiTest, RequiredStageFailureNamesTheStage) {
  service_.write.status = stowage::Status::Unavailable(
      "cannot reach PostgreSQL database 'stowage' at 10.0.0.7:5432 as user admin: SQLSTATE 08006");
  service_.write.failed_stage = "store";
  auto response = Call("POST", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(response.status, 503);
  EXPECT_TRUE(HasCode(response, "stage_failed"));
  EXPECT_NE(response.body.find("stage 'store' could not reach its storage target"), std::string::npos)
      << response.body;
  // The stage's own words stay in the log.
  for (const char* piece : {"10.0.0.7", "5432", "'stowage'", "admin", "SQLSTATE"})
    EXPECT_EQ(response.body.find(piece), std::string::npos) << piece << " in " << response.body;
}

TEST_F(GuestChatApiTest, NoStageMessageReachesTheClient) {
  const std::string leak = "relation message_cache of database stowage at 10.0.0.7:5432: guest other-guest";
  using stowage::Status;
  for (const Status& status : {Status::Rejected(leak), Status::Conflict(leak), Status::InvalidArgument(leak),
                               Status::NotFound(leak), Status::DeadlineExceeded(leak), Status::Internal(leak)}) {
    SCOPED_TRACE(status.ToString());
    service_.write.status = status;
    service_.write.failed_stage = "store";
    auto response = Call("POST", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})");
    EXPECT_GE(response.status, 400);
    EXPECT_NE(response.body.find("stage 'store'"), std::string::npos) << response.body;
    EXPECT_EQ(response.body.find("10.0.0.7"), std::string::npos) << response.body;
    EXPECT_EQ(response.body.find("message_cache"), std::string::npos) << response.body;
    EXPECT_EQ(response.body.find("other-guest"), std::string::npos) << response.body;
  }
  service_.write.failed_stage = "";
  service_.write.status = Status::Internal(leak);
  auto internal = Call("POST", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(internal.status, 500);
  EXPECT_EQ(internal.body.find("10.0.0.7"), std::string::npos) << internal.body;
}

TEST_F(GuestChatApiTest, ErrorBodyCarriesTheRequestIdOfItsRequest) {
  {
    logging::RequestScope scope(logging::RequestTag("rid-unit-1", ""));
    auto response = Call("GET", "/v1/guest/chat/bad$id");
    EXPECT_EQ(response.status, 400);
    EXPECT_NE(response.body.find(R"("request_id":"rid-unit-1")"), std::string::npos) << response.body;
  }
  auto outside = Call("GET", "/v1/guest/chat/bad$id");
  EXPECT_EQ(outside.body.find("request_id"), std::string::npos) << outside.body;
}

TEST_F(GuestChatApiTest, RejectionIsTooManyRequests) {
  service_.write.status = stowage::Status::Rejected("monthly quota used");
  service_.write.failed_stage = "metrics";
  auto response = Call("POST", "/v1/guest/chat/g", R"({"role":"user","content":"hi"})");
  EXPECT_EQ(response.status, 429);
  EXPECT_TRUE(HasCode(response, "rejected"));
}

TEST_F(GuestChatApiTest, AnExceptionBecomesInternal) {
  service_.throw_on_call = true;
  auto response = Call("GET", "/v1/guest/chat/g");
  EXPECT_EQ(response.status, 500);
  EXPECT_TRUE(HasCode(response, "internal"));
  EXPECT_EQ(response.body.find("storage exploded"), std::string::npos) << response.body;  // logged only
}

TEST_F(GuestChatApiTest, GetAnswersTheMessages) {
  service_.read.messages = {{"user", "a", "t1"}, {"assistant", "b", "t2"}};
  auto response = Call("GET", "/v1/guest/chat/g");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(
      response.body,
      R"([{"role":"user","content":"a","timestamp":"t1"},{"role":"assistant","content":"b","timestamp":"t2"}])");
  service_.read.status = stowage::Status::DeadlineExceeded("took 2000 ms");
  service_.read.failed_stage = "store";
  auto failed = Call("GET", "/v1/guest/chat/g");
  EXPECT_EQ(failed.status, 503);
  EXPECT_NE(failed.body.find("stage 'store' did not answer in time"), std::string::npos) << failed.body;
  EXPECT_EQ(failed.body.find("2000 ms"), std::string::npos) << failed.body;
}

TEST_F(GuestChatApiTest, GetWithoutParametersAsksForTheNewestMaxHistoryMessages) {
  service_.read.messages = {{"user", "a", "t1"}};
  service_.read.total = 1;
  auto response = Call("GET", "/v1/guest/chat/g");
  EXPECT_EQ(response.status, 200);
  ASSERT_EQ(service_.ranges.size(), 1u);
  EXPECT_EQ(service_.ranges[0].limit, 10000u) << "server.max_history's default";
  EXPECT_FALSE(service_.ranges[0].before.has_value());
  EXPECT_EQ(Header(response, "Link"), "") << "the whole history has no older page";
  EXPECT_EQ(Header(response, "X-History-Truncated"), "");
}

TEST_F(GuestChatApiTest, GetPassesTheLimitAndBeforeItWasGiven) {
  auto response = Call("GET", "/v1/guest/chat/g?limit=50&before=120");
  EXPECT_EQ(response.status, 200) << response.body;
  auto reversed = Call("GET", "/v1/guest/chat/g?before=7&limit=10000");
  EXPECT_EQ(reversed.status, 200) << reversed.body;
  auto before_only = Call("GET", "/v1/guest/chat/g?before=1");
  EXPECT_EQ(before_only.status, 200) << before_only.body;
  ASSERT_EQ(service_.ranges.size(), 3u);
  EXPECT_EQ(service_.ranges[0].limit, 50u);
  EXPECT_EQ(service_.ranges[0].before, 120u);
  EXPECT_EQ(service_.ranges[1].limit, 10000u);
  EXPECT_EQ(service_.ranges[1].before, 7u);
  EXPECT_EQ(service_.ranges[2].limit, 10000u);
  EXPECT_EQ(service_.ranges[2].before, 1u);
}

TEST_F(GuestChatApiTest, APageWithOlderMessagesLinksThePageBeforeIt) {
  service_.read.messages = {{"user", "m5", "t5"}, {"user", "m6", "t6"}};
  service_.read.first_sequence = 5;
  service_.read.total = 9;
  auto response = Call("GET", "/v1/guest/chat/g:1?limit=2&before=7");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(Header(response, "Link"), R"(</v1/guest/chat/g:1?limit=2&before=5>; rel="next")");
  EXPECT_EQ(Header(response, "X-History-Truncated"), "") << "the client asked for a page and got it";

  service_.read.first_sequence = 0;
  auto first_page = Call("GET", "/v1/guest/chat/g:1?limit=2&before=2");
  EXPECT_EQ(Header(first_page, "Link"), "") << "nothing is older than sequence 0";
}

TEST_F(GuestChatApiTest, AHistoryLongerThanMaxHistoryIsTruncatedToTheNewestAndSaysHowToFetchTheRest) {
  GuestChatApi api(service_, {.max_content_bytes = 100, .max_history = 3});
  service_.read.messages = {{"user", "m2", "t2"}, {"user", "m3", "t3"}, {"user", "m4", "t4"}};
  service_.read.first_sequence = 2;
  service_.read.total = 5;
  auto response = api.Handle({"GET", "/v1/guest/chat/g", "", "", {}});
  EXPECT_EQ(response.status, 200) << response.body;
  ASSERT_EQ(service_.ranges.size(), 1u);
  EXPECT_EQ(service_.ranges[0].limit, 3u);
  EXPECT_EQ(Header(response, "Link"), R"(</v1/guest/chat/g?limit=3&before=2>; rel="next")");
  EXPECT_EQ(Header(response, "X-History-Truncated"), "true");

  auto too_many = api.Handle({"GET", "/v1/guest/chat/g?limit=4", "", "", {}});
  EXPECT_EQ(too_many.status, 400);
  EXPECT_NE(too_many.body.find("parameter 'limit' must be a whole number from 1 to 3 (server.max_history)"),
            std::string::npos)
      << too_many.body;
  EXPECT_EQ(service_.ranges.size(), 1u);
}

TEST_F(GuestChatApiTest, BadPageParametersAreRefusedNamingTheParameterAndNeverReachTheService) {
  struct Case {
    std::string query;
    std::string says;
  } cases[] = {
      {"limit=0", "parameter 'limit' must be a whole number from 1 to 10000 (server.max_history)"},
      {"limit=10001", "parameter 'limit' must be a whole number from 1 to 10000"},
      {"limit=-1", "parameter 'limit'"},
      {"limit=2.5", "parameter 'limit'"},
      {"limit=", "parameter 'limit'"},
      {"limit=%2B3", "parameter 'limit'"},
      {"limit=99999999999999999999999", "parameter 'limit'"},
      {"before=0", "parameter 'before' must be a whole number from 1 to 9223372036854775807"},
      {"before=abc", "it is 'abc'"},
      {"before=9223372036854775808", "parameter 'before'"},
      {"before=-5&limit=2", "parameter 'before'"},
      {"limit=2&offset=4", "unknown parameter 'offset'; this route takes limit and before"},
      {"Limit=2", "unknown parameter 'Limit'"},
      {"limit=%zz", "malformed %-escape"},
  };
  for (const auto& c : cases) {
    auto response = Call("GET", "/v1/guest/chat/g?" + c.query);
    EXPECT_EQ(response.status, 400) << c.query;
    EXPECT_TRUE(HasCode(response, "invalid_field")) << c.query << ": " << response.body;
    EXPECT_NE(response.body.find(c.says), std::string::npos) << c.query << ": " << response.body;
  }
  EXPECT_TRUE(service_.calls.empty());
}

TEST_F(GuestChatApiTest, DeleteAnswersWhereItDeleted) {
  service_.erase.erased_from = {"redis", "postgresql"};
  auto response = Call("DELETE", "/v1/guest/chat/g");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body,
            R"({"status":"deleted","guest_id":"g","deleted_from":["redis","postgresql"],"degraded":[]})");
  EXPECT_EQ(service_.calls, std::vector<std::string>{"erase g"});
}

TEST_F(GuestChatApiTest, RefusedBodiesAreTooLarge) {
  auto response = api_.Refuse(http::Refusal::kBodyTooLarge, {"POST", "/v1/guest/chat/g", "", ""}, 1024);
  EXPECT_EQ(response.status, 413);
  EXPECT_TRUE(HasCode(response, "payload_too_large"));
  EXPECT_NE(response.body.find("1024 bytes"), std::string::npos);
}

http::Request PostWithKey(const std::string& guest, const std::string& key, const std::string& body) {
  http::Request request{"POST", "/v1/guest/chat/" + guest, "application/json", body, {}};
  request.headers.emplace_back("idempotency-key", key);
  return request;
}

TEST_F(GuestChatApiTest, ARetryWithTheSameIdempotencyKeyAndBodyReplaysTheAnswerAndStoresOnce) {
  service_.write.attributes.set("message_id", "7");
  const std::string body = R"({"role":"user","content":"hi"})";
  auto first = api_.Handle(PostWithKey("g1", "k-1", body));
  ASSERT_EQ(first.status, 200) << first.body;
  service_.write.attributes.set("message_id", "8");  // a second store would answer differently
  auto retry = api_.Handle(PostWithKey("g1", "k-1", body));
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(Header(retry, "Idempotent-Replayed"), "true");
  EXPECT_EQ(service_.calls, (std::vector<std::string>{"write g1"}));
}

TEST_F(GuestChatApiTest, TheSameIdempotencyKeyWithAnotherBodyIsAConflict) {
  ASSERT_EQ(api_.Handle(PostWithKey("g1", "k-1", R"({"role":"user","content":"hi"})")).status, 200);
  auto other = api_.Handle(PostWithKey("g1", "k-1", R"({"role":"user","content":"bye"})"));
  EXPECT_EQ(other.status, 409);
  EXPECT_TRUE(HasCode(other, "idempotency_conflict")) << other.body;
  EXPECT_EQ(service_.calls.size(), 1u);
}

TEST_F(GuestChatApiTest, IdempotencyKeysAreScopedByGuest) {
  const std::string body = R"({"role":"user","content":"hi"})";
  ASSERT_EQ(api_.Handle(PostWithKey("g1", "k-1", body)).status, 200);
  ASSERT_EQ(api_.Handle(PostWithKey("g2", "k-1", body)).status, 200);
  EXPECT_EQ(service_.calls, (std::vector<std::string>{"write g1", "write g2"}));
}

TEST_F(GuestChatApiTest, AFailedPostWithAnIdempotencyKeyCanBeRetriedForReal) {
  service_.write.status = stowage::Status::Unavailable("down");
  service_.write.failed_stage = "redis";
  const std::string body = R"({"role":"user","content":"hi"})";
  EXPECT_EQ(api_.Handle(PostWithKey("g1", "k-1", body)).status, 503);
  service_.write = {};
  EXPECT_EQ(api_.Handle(PostWithKey("g1", "k-1", body)).status, 200);
  EXPECT_EQ(service_.calls.size(), 2u);
}

TEST_F(GuestChatApiTest, AKeyIsHandedToTheServiceWithTheBodysFingerprintAndTheAnswerToRecord) {
  service_.write.attributes.set("message_id", "7");
  service_.write.stored_in = {"redis", "postgresql"};
  const std::string body = R"({"role":"user","content":"hi"})";
  auto answered = api_.Handle(PostWithKey("g1", "k-1", body));
  ASSERT_EQ(answered.status, 200) << answered.body;
  ASSERT_EQ(service_.claims.size(), 1u);
  EXPECT_EQ(service_.claims[0], "k-1 " + idempotency::Fingerprint(body));
  // What is recorded is what the client is answered.
  EXPECT_EQ(service_.recorded_answers[0], answered.body);
}

TEST_F(GuestChatApiTest, AKeyRecordedByAnotherInstanceIsReplayedWithTheRecordedAnswer) {
  service_.write.claim = engine::WriteOutcome::Claim::kReplay;
  service_.write.replay = R"({"status":"stored","guest_id":"g1","message_id":3})";
  auto replayed = api_.Handle(PostWithKey("g1", "k-1", R"({"role":"user","content":"hi"})"));
  EXPECT_EQ(replayed.status, 200);
  EXPECT_EQ(replayed.body, service_.write.replay);
  EXPECT_EQ(Header(replayed, "Idempotent-Replayed"), "true");
}

// Both kinds of replay are counted: from this server's memory and from the store.
TEST(GuestChatApiReplayCountTest, EveryReplayIsCounted) {
  observability::Registry registry;
  observability::Counter& replayed = registry.counter("stowage_idempotent_replays_total", "");
  RecordingService service;
  ApiOptions options;
  options.replayed = &replayed;
  GuestChatApi api(service, options);
  const std::string body = R"({"role":"user","content":"hi"})";
  ASSERT_EQ(api.Handle(PostWithKey("g1", "k-1", body)).status, 200);
  EXPECT_EQ(replayed.value(), 0) << "a first answer is no replay";
  ASSERT_EQ(Header(api.Handle(PostWithKey("g1", "k-1", body)), "Idempotent-Replayed"), "true");
  EXPECT_EQ(replayed.value(), 1) << "answered from this server's memory";
  service.write.claim = engine::WriteOutcome::Claim::kReplay;
  service.write.replay = R"({"status":"stored","guest_id":"g1","message_id":3})";
  ASSERT_EQ(Header(api.Handle(PostWithKey("g1", "k-2", body)), "Idempotent-Replayed"), "true");
  EXPECT_EQ(replayed.value(), 2) << "answered from the store";
}

TEST_F(GuestChatApiTest, AKeyRecordedByAnotherInstanceWithAnotherBodyIsAConflict) {
  service_.write.claim = engine::WriteOutcome::Claim::kConflict;
  service_.write.status = stowage::Status::Conflict("Idempotency-Key 'k-1' was already used for guest g1 with another body");
  auto refused = api_.Handle(PostWithKey("g1", "k-1", R"({"role":"user","content":"hi"})"));
  EXPECT_EQ(refused.status, 409);
  EXPECT_TRUE(HasCode(refused, "idempotency_conflict")) << refused.body;
}

TEST_F(GuestChatApiTest, ACommitWhoseOutcomeIsUnknownSaysSoAndIsNotRemembered) {
  service_.write.status = stowage::Status::Unavailable("the COMMIT of database 'main' got no answer");
  service_.write.failed_stage = "postgres";
  service_.write.outcome_unknown = true;
  const std::string body = R"({"role":"user","content":"hi"})";
  auto unknown = api_.Handle(PostWithKey("g1", "k-1", body));
  EXPECT_EQ(unknown.status, 503);
  EXPECT_TRUE(HasCode(unknown, "outcome_unknown")) << unknown.body;
  EXPECT_NE(unknown.body.find("stage 'postgres'"), std::string::npos) << unknown.body;
  // The retry goes to the service, which settles it from the database.
  service_.write = {};
  EXPECT_EQ(api_.Handle(PostWithKey("g1", "k-1", body)).status, 200);
  EXPECT_EQ(service_.calls.size(), 2u);
}

TEST_F(GuestChatApiTest, AMalformedIdempotencyKeyIsRefused) {
  auto response = api_.Handle(PostWithKey("g1", std::string(256, 'k'), R"({"role":"user","content":"hi"})"));
  EXPECT_EQ(response.status, 400);
  EXPECT_TRUE(HasCode(response, "invalid_idempotency_key")) << response.body;
  EXPECT_TRUE(service_.calls.empty());
}

TEST_F(GuestChatApiTest, SearchDecodesTheQueryAndAnswersTheHitsBestFirst) {
  service_.search.supported = true;
  service_.search.hits = {{{"user", "opening hours?", "2030-01-01T00:00:00.000000Z"}, 0.5}};
  auto response = Call("GET", "/v1/guest/chat/g1/search?q=opening+hours%3F&k=3", "", "");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.body,
            R"({"guest_id":"g1","query":"opening hours?","results":[{"role":"user","content":"opening hours?",)"
            R"("timestamp":"2030-01-01T00:00:00.000000Z","score":5E-1}]})");
  EXPECT_EQ(service_.calls, (std::vector<std::string>{"search g1 opening hours? 3"}));
}

TEST_F(GuestChatApiTest, SearchRefusesAMissingQueryOrABadK) {
  service_.search.supported = true;
  EXPECT_TRUE(HasCode(Call("GET", "/v1/guest/chat/g1/search", "", ""), "invalid_field"));
  EXPECT_TRUE(HasCode(Call("GET", "/v1/guest/chat/g1/search?q=x&k=0", "", ""), "invalid_field"));
  EXPECT_TRUE(HasCode(Call("GET", "/v1/guest/chat/g1/search?q=x&k=abc", "", ""), "invalid_field"));
  EXPECT_TRUE(HasCode(Call("GET", "/v1/guest/chat/g1/search?q=%zz", "", ""), "invalid_field"));
  EXPECT_TRUE(HasCode(Call("GET", "/v1/guest/chat/bad$id/search?q=x", "", ""), "invalid_guest_id"));
  EXPECT_EQ(Call("POST", "/v1/guest/chat/g1/search?q=x").status, 405);
  EXPECT_TRUE(service_.calls.empty());
}

TEST_F(GuestChatApiTest, SearchWithNoSearchingStageIsNotFoundAndSaysWhatToEnable) {
  auto response = Call("GET", "/v1/guest/chat/g1/search?q=x", "", "");
  EXPECT_EQ(response.status, 404);
  EXPECT_NE(response.body.find("enable the embeddings stage"), std::string::npos) << response.body;
}

}  // namespace
}  // namespace stowage::api
