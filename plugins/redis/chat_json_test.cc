// The stored value format: entries with exactly role, content, timestamp in
// that order, JSON escaping, and the refusal of anything else on read.
#include "chat_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace stowage::redis {
namespace {

const Message kTricky{"user", "say \"hi\" \\ back\nslash/ tab\t bell\x07 caf\xc3\xa9 \xf0\x9f\x98\x80",
                      "2026-01-02T03:04:05.000006Z"};

TEST(ChatJsonTest, EntryHasTheThreeKeysInOrder) {
  EXPECT_EQ(EncodeEntry({"user", "hello", "2026-01-02T03:04:05.000006Z"}),
            R"({"role":"user","content":"hello","timestamp":"2026-01-02T03:04:05.000006Z"})");
}

TEST(ChatJsonTest, EntryEscapesWhatJsonRequires) {
  std::string entry = EncodeEntry(kTricky);
  EXPECT_NE(entry.find(R"(say \"hi\" \\ back\nslash/ tab\t bell\u0007)"), std::string::npos) << entry;
  EXPECT_NE(entry.find("caf\xc3\xa9 \xf0\x9f\x98\x80"), std::string::npos) << entry;  // UTF-8 kept
  boost::json::value parsed = boost::json::parse(entry);
  EXPECT_EQ(parsed.at("content").as_string(), kTricky.content);
}

TEST(ChatJsonTest, ArrayRoundTrips) {
  std::vector<Message> messages = {kTricky, {"assistant", "ok", "2026-01-02T03:04:06.000000Z"}};
  std::string value = EncodeArray(messages);
  std::vector<Message> decoded;
  ASSERT_TRUE(DecodeArray(value, "guest:g", &decoded).ok());
  EXPECT_EQ(decoded, messages);
  EXPECT_EQ(EncodeArray({}), "[]");
  ASSERT_TRUE(DecodeArray("[]", "guest:g", &decoded).ok());
  EXPECT_TRUE(decoded.empty());
}

// Every ASCII byte in content, at several positions, reads back as written
// (UTF-8 is in kTricky; a lone byte above 0x7f is not valid UTF-8).
TEST(ChatJsonTest, EveryAsciiByteRoundTrips) {
  std::vector<Message> messages;
  for (int c = 1; c < 128; ++c) {
    for (std::size_t position : {0, 5, 9, 16}) {
      std::string content(18, 'a');
      content[position] = static_cast<char>(c);
      messages.push_back({"user", content, "2026-01-02T03:04:05.000006Z"});
    }
  }
  std::vector<Message> decoded;
  ASSERT_TRUE(DecodeArray(EncodeArray(messages), "guest:g", &decoded).ok());
  EXPECT_EQ(decoded, messages);
}

// JSON this stage does not write (whitespace, another key order, escapes of
// non-ASCII characters) still reads as JSON does.
TEST(ChatJsonTest, ReadsOtherValidJson) {
  const std::string value =
      "[ {\"timestamp\": \"t1\", \"content\": \"caf\\u00e9 \\ud83d\\ude00 \\/\", \"role\": \"user\"},\n"
      "  {\"role\":\"assistant\",\"content\":\"\\u0041\\u0009\",\"timestamp\":\"t2\"} ]";
  std::vector<Message> decoded;
  Status status = DecodeArray(value, "guest:g", &decoded);
  ASSERT_TRUE(status.ok()) << status.message();
  const std::vector<Message> expected = {{"user", "caf\xc3\xa9 \xf0\x9f\x98\x80 /", "t1"},
                                         {"assistant", "A\t", "t2"}};
  EXPECT_EQ(decoded, expected);
}

TEST(ChatJsonTest, RefusesOtherShapesNamingTheKey) {
  for (const char* bad : {"", "not json", "{}", "[1]", R"([{"role":"user","content":"x"}])",
                          R"([{"role":"user","content":"x","timestamp":5}])",
                          R"([{"role":"user","content":"x","timestamp":"t","extra":1}])", "[{\"role\":",
                          R"([{"role":"user","content":"x\)", R"([{"role":"user","content":"x\u00)",
                          "[{\"role\":\"user\",\"content\":\"raw\ttab\",\"timestamp\":\"t\"}]",
                          R"([{"role":"user","content":"x","timestamp":"t"}]])",
                          R"([{"role":"user","content":"x","timestamp":"t"},])"}) {
    std::vector<Message> decoded;
    Status status = DecodeArray(bad, "guest:broken", &decoded);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_NE(status.message().find("guest:broken"), std::string::npos) << status.message();
  }
}

}  // namespace
}  // namespace stowage::redis
