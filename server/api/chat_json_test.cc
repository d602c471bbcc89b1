#include "api/chat_json.h"

#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "api/api_error.h"
#include "stowage/chat/attributes.h"
#include "stowage/chat/message_json.h"

namespace stowage::api {
namespace {

std::string Attr(std::optional<std::string> value) {
  return boost::json::serialize(AttributeValue(value));
}

TEST(AttributeValueTest, DecimalIntegersBecomeNumbers) {
  EXPECT_EQ(Attr("41"), "41");
  EXPECT_EQ(Attr("0"), "0");
  EXPECT_EQ(Attr("-7"), "-7");
  EXPECT_EQ(Attr("18446744073709551615"), "18446744073709551615");
}

TEST(AttributeValueTest, EverythingElseStaysAString) {
  EXPECT_EQ(Attr("007"), "\"007\"");
  EXPECT_EQ(Attr("4a"), "\"4a\"");
  EXPECT_EQ(Attr("1.5"), "\"1.5\"");
  EXPECT_EQ(Attr(""), "\"\"");
  EXPECT_EQ(Attr("+3"), "\"+3\"");
  EXPECT_EQ(Attr("99999999999999999999"), "\"99999999999999999999\"");
  EXPECT_EQ(Attr("3f2504e0-4f89"), "\"3f2504e0-4f89\"");
}

TEST(AttributeValueTest, AbsentIsNull) {
  EXPECT_EQ(Attr(std::nullopt), "null");
}

TEST(EncodeTest, Stored) {
  engine::WriteOutcome outcome;
  outcome.attributes.set(stowage::chat::kMessageId, "41");
  outcome.attributes.set(stowage::chat::kConversationId, "c-9");
  outcome.stored_in = {"redis", "postgresql"};
  outcome.degraded = {"embeddings"};
  EXPECT_EQ(EncodeStored("g1", outcome),
            R"({"status":"stored","guest_id":"g1","message_id":41,"conversation_id":"c-9","sequence":null,)"
            R"("stored_in":["redis","postgresql"],"degraded":["embeddings"]})");
}

TEST(EncodeTest, Messages) {
  std::vector<stowage::Message> messages = {{"user", "say \"hi\"\n", "2024-05-01T12:00:00.000000Z"},
                                            {"assistant", "h\xc3\xa9", "2024-05-01T12:00:01.000000Z"}};
  EXPECT_EQ(
      EncodeMessages(messages),
      R"([{"role":"user","content":"say \"hi\"\n","timestamp":"2024-05-01T12:00:00.000000Z"},)"
      "{\"role\":\"assistant\",\"content\":\"h\xc3\xa9\",\"timestamp\":\"2024-05-01T12:00:01.000000Z\"}]");
  EXPECT_EQ(EncodeMessages({}), "[]");
}

// The SDK's writer and Boost.JSON's agree byte for byte, on every ASCII byte,
// on UTF-8, and on the escapes.
TEST(EncodeTest, MessagesJsonWritesWhatBoostJsonWrites) {
  std::string every_ascii;
  for (int c = 1; c < 128; ++c) every_ascii += static_cast<char>(c);
  const std::vector<std::string> texts = {"", "plain", "quote \" and backslash \\", "tab\tnewline\nreturn\r",
                                          "\b\f\x01\x1f\x7f", "caf\xc3\xa9 \xf0\x9f\x99\x82", every_ascii};
  for (const auto& text : texts) {
    std::string mine;
    stowage::chat::AppendJsonString(mine, text);
    EXPECT_EQ(mine, boost::json::serialize(boost::json::string_view(text))) << text;
  }
  std::vector<stowage::Message> messages{{"user", every_ascii, "2026-01-01T00:00:00.000000Z"},
                                         {"assistant", "ok", "2026-01-01T00:00:01.000000Z"}};
  boost::json::array expected;
  for (const auto& m : messages)
    expected.push_back(boost::json::object{{"role", m.role}, {"content", m.content}, {"timestamp", m.timestamp}});
  EXPECT_EQ(EncodeMessages(messages), boost::json::serialize(expected));
  EXPECT_EQ(EncodeMessages({}), "[]");
}

// The writer skips 8 bytes at a time while none needs escaping: every byte
// value, at every position of such a block and across two blocks, and
// several escapes in a row, are written as Boost.JSON writes them.
TEST(EncodeTest, JsonStringEscapesEveryByteAtEveryPosition) {
  for (int c = 0; c < 256; ++c) {
    for (std::size_t position = 0; position < 17; ++position) {
      std::string text(24, 'a');
      text[position] = static_cast<char>(c);
      std::string mine;
      stowage::chat::AppendJsonString(mine, text);
      ASSERT_EQ(mine, boost::json::serialize(boost::json::string_view(text))) << "byte " << c << " at " << position;
    }
  }
  const std::string runs = std::string(13, 'x') + "\"\\\n\x01" + std::string(9, 'y') + "\t" + std::string(8, 'z');
  std::string mine;
  stowage::chat::AppendJsonString(mine, runs);
  EXPECT_EQ(mine, boost::json::serialize(boost::json::string_view(runs)));
}

TEST(EncodeTest, Deleted) {
  engine::EraseOutcome outcome;
  outcome.erased_from = {"redis"};
  EXPECT_EQ(EncodeDeleted("g1", outcome),
            R"({"status":"deleted","guest_id":"g1","deleted_from":["redis"],"degraded":[]})");
}

TEST(ErrorBodyTest, Shape) {
  EXPECT_EQ(ErrorBody("bad_json", "say \"why\""), R"({"error":{"code":"bad_json","message":"say \"why\""}})");
}

TEST(PipelineErrorTest, MapsStatusCodes) {
  struct Case {
    stowage::Status status;
    int http;
    const char* code;
  } cases[] = {
      {stowage::Status::Unavailable("down at 10.0.0.1:6379"), 503, "stage_failed"},
      {stowage::Status::DeadlineExceeded("slow database 'main'"), 503, "stage_failed"},
      {stowage::Status::Internal("bug in SELECT 1"), 500, "stage_failed"},
      {stowage::Status::Rejected("quota of user bob"), 429, "rejected"},
      {stowage::Status::Conflict("dup of SQLSTATE 23505"), 409, "conflict"},
      {stowage::Status::InvalidArgument("no: relation x"), 400, "invalid_field"},
  };
  for (const auto& c : cases) {
    ApiError error = PipelineError(c.status, "redis", "storing the message");
    EXPECT_EQ(error.status, c.http) << c.status.ToString();
    EXPECT_EQ(error.code, c.code) << c.status.ToString();
    EXPECT_NE(error.message.find("stage 'redis'"), std::string::npos) << error.message;
    // The stage's words (hosts, databases, SQL) go to the log, not to the client.
    EXPECT_EQ(error.message.find(c.status.message()), std::string::npos) << error.message;
  }
  EXPECT_EQ(PipelineError(stowage::Status::Unavailable("down"), "redis", "x")
                .message.rfind("stage 'redis' could not reach its storage target; x was not done", 0),
            0u);
  ApiError unnamed = PipelineError(stowage::Status::Internal("bug in SELECT 1"), "", "storing the message");
  EXPECT_EQ(unnamed.status, 500);
  EXPECT_EQ(unnamed.code, "internal");
  EXPECT_EQ(unnamed.message.find("SELECT"), std::string::npos) << unnamed.message;
}

}  // namespace
}  // namespace stowage::api
