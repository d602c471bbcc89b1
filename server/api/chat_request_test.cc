#include "api/chat_request.h"

#include <gtest/gtest.h>

namespace stowage::api {
namespace {

const auto kNow = [] { return std::string("2030-01-02T03:04:05.000006Z"); };

ParsedMessage Parse(std::string_view body, std::size_t max = 100) {
  return ParseChatMessage(body, max, kNow);
}

// The error of a body that must be refused.
ApiError Refused(std::string_view body, std::size_t max = 100) {
  ParsedMessage parsed = Parse(body, max);
  EXPECT_FALSE(parsed.message.has_value()) << body;
  return parsed.error.value_or(ApiError{0, "accepted", ""});
}

TEST(CheckGuestIdTest, AcceptsTheAllowedCharacters) {
  EXPECT_FALSE(CheckGuestId("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
  EXPECT_FALSE(CheckGuestId("a.b_c:d-E9"));
  EXPECT_FALSE(CheckGuestId(std::string(128, 'x')));
  EXPECT_FALSE(CheckGuestId("x"));
}

TEST(CheckGuestIdTest, RefusesOtherCharactersAndLengths) {
  for (std::string bad : {std::string(), std::string(129, 'x'), std::string("a b"), std::string("a/b"),
                          std::string("caf\xc3\xa9"), std::string("a%20b")}) {
    auto error = CheckGuestId(bad);
    ASSERT_TRUE(error.has_value()) << bad;
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->code, "invalid_guest_id");
    EXPECT_NE(error->message.find("1 to 128 characters"), std::string::npos) << error->message;
  }
  EXPECT_NE(CheckGuestId(std::string(129, 'x'))->message.find("129 characters"), std::string::npos);
}

TEST(CheckJsonContentTypeTest, AcceptsJsonWithUtf8) {
  EXPECT_FALSE(CheckJsonContentType("application/json"));
  EXPECT_FALSE(CheckJsonContentType("application/json; charset=utf-8"));
  EXPECT_FALSE(CheckJsonContentType("Application/JSON;charset=\"UTF-8\""));
}

TEST(CheckJsonContentTypeTest, RefusesOtherMediaTypes) {
  for (const char* bad : {"", "text/plain", "application/jsonx", "application/x-www-form-urlencoded",
                          "application/json; charset=latin1"}) {
    auto error = CheckJsonContentType(bad);
    ASSERT_TRUE(error.has_value()) << bad;
    EXPECT_EQ(error->status, 415);
    EXPECT_EQ(error->code, "unsupported_media_type");
    EXPECT_NE(error->message.find("application/json"), std::string::npos);
  }
}

TEST(FindInvalidUtf8Test, FindsTheFirstBadByte) {
  EXPECT_FALSE(FindInvalidUtf8("plain ascii"));
  EXPECT_FALSE(FindInvalidUtf8("h\xc3\xa9llo \xf0\x9f\x98\x80"));
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);     // a UTF-16 surrogate
  EXPECT_EQ(FindInvalidUtf8("xy\xe2\x82"), 2u);        // truncated
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
}

TEST(ParseChatMessageTest, AcceptsAMessageAndCanonicalizesItsTimestamp) {
  ParsedMessage parsed = Parse(R"({"role":"user","content":"hi","timestamp":"2024-05-01T14:00:00+02:00"})");
  ASSERT_TRUE(parsed.message.has_value()) << parsed.error->message;
  EXPECT_EQ(parsed.message->role, "user");
  EXPECT_EQ(parsed.message->content, "hi");
  EXPECT_EQ(parsed.message->timestamp, "2024-05-01T12:00:00.000000Z");
}

TEST(ParseChatMessageTest, FillsInAMissingOrNullTimestamp) {
  for (const char* body :
       {R"({"role":"assistant","content":"x"})", R"({"role":"system","content":"x","timestamp":null})"}) {
    ParsedMessage parsed = Parse(body);
    ASSERT_TRUE(parsed.message.has_value()) << body;
    EXPECT_EQ(parsed.message->timestamp, kNow());
  }
}

TEST(ParseChatMessageTest, RefusesBadJson) {
  for (const char* body : {"", "{", "{\"role\":\"user\",}", "role=user"}) {
    ApiError error = Refused(body);
    EXPECT_EQ(error.status, 400) << body;
    EXPECT_EQ(error.code, "bad_json") << body;
  }
}

TEST(ParseChatMessageTest, RefusesNonObjects) {
  for (const char* body : {"[]", "\"text\"", "42", "null"}) {
    ApiError error = Refused(body);
    EXPECT_EQ(error.code, "bad_json") << body;
    EXPECT_NE(error.message.find("not a JSON object"), std::string::npos) << error.message;
  }
}

TEST(ParseChatMessageTest, RefusesInvalidUtf8InsideAString) {
  ApiError error = Refused("{\"role\":\"user\",\"content\":\"bad \xff byte\"}");
  EXPECT_EQ(error.code, "bad_json");
  EXPECT_NE(error.message.find("UTF-8"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("0xff"), std::string::npos) << error.message;
}

TEST(ParseChatMessageTest, RefusesABadRole) {
  for (const char* body : {R"({"content":"x"})", R"({"role":"admin","content":"x"})",
                           R"({"role":1,"content":"x"})", R"({"role":"User","content":"x"})"}) {
    ApiError error = Refused(body);
    EXPECT_EQ(error.code, "invalid_field") << body;
    EXPECT_NE(error.message.find("'role'"), std::string::npos) << error.message;
  }
}

TEST(ParseChatMessageTest, RefusesABadContent) {
  for (const char* body :
       {R"({"role":"user"})", R"({"role":"user","content":""})", R"({"role":"user","content":["x"]})"}) {
    ApiError error = Refused(body);
    EXPECT_EQ(error.code, "invalid_field") << body;
    EXPECT_NE(error.message.find("'content'"), std::string::npos) << error.message;
  }
}

TEST(ParseChatMessageTest, LimitsContentInBytes) {
  EXPECT_TRUE(Parse(R"({"role":"user","content":"abcde"})", 5).message.has_value());
  ApiError error = Refused("{\"role\":\"user\",\"content\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", 5);
  EXPECT_EQ(error.status, 413);
  EXPECT_EQ(error.code, "content_too_large");
  EXPECT_NE(error.message.find("6 bytes"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("5 bytes"), std::string::npos) << error.message;
}

TEST(ParseChatMessageTest, RefusesABadTimestamp) {
  for (const char* body : {R"({"role":"user","content":"x","timestamp":"yesterday"})",
                           R"({"role":"user","content":"x","timestamp":1714564800})",
                           R"({"role":"user","content":"x","timestamp":"2024-02-30T00:00:00Z"})"}) {
    ApiError error = Refused(body);
    EXPECT_EQ(error.code, "invalid_field") << body;
    EXPECT_NE(error.message.find("'timestamp'"), std::string::npos) << error.message;
  }
}

// Caught by fuzz/chat_request_fuzzer (errors must be valid UTF-8): a
// timestamp with a non-ASCII character after the time gave an error message,
// and so a JSON answer, that was not valid UTF-8.
TEST(ParseChatMessageTest, TimestampErrorIsValidUtf8) {
  ApiError error =
      Refused("{\"role\":\"user\",\"content\":\"x\",\"timestamp\":\"2024-05-01T12:00:00\xc3\xa9\"}");
  EXPECT_EQ(error.code, "invalid_field");
  EXPECT_EQ(FindInvalidUtf8(error.message), std::nullopt) << error.message;
}

// PostgreSQL's text cannot hold U+0000: the API refuses it before any stage
// (Redis would take it) stores anything.
TEST(ParseChatMessageTest, RefusesANulInTheContent) {
  ApiError error = Refused(R"({"role":"user","content":"a\u0000b"})");
  EXPECT_EQ(error.code, "invalid_field");
  EXPECT_NE(error.message.find("U+0000"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("byte 1"), std::string::npos) << error.message;
}

TEST(ParseChatMessageTest, RefusesATimestampPostgreSQLCannotStore) {
  for (const char* timestamp : {"0000-06-01T00:00:00Z", "9999-12-31T23:30:00-01:00"}) {
    ApiError error =
        Refused(std::string(R"({"role":"user","content":"x","timestamp":")") + timestamp + "\"}");
    EXPECT_EQ(error.code, "invalid_field") << timestamp;
    EXPECT_NE(error.message.find("0001-9999"), std::string::npos) << error.message;
  }
}

TEST(ParseChatMessageTest, NamesUnknownFields) {
  ApiError error = Refused(R"({"role":"user","content":"x","mood":"ok","user_id":7})");
  EXPECT_EQ(error.code, "invalid_field");
  EXPECT_NE(error.message.find("'mood'"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("'user_id'"), std::string::npos) << error.message;
}

}  // namespace
}  // namespace stowage::api
