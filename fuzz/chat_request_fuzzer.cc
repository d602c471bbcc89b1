// Fuzz target: the chat request parser, ParseChatMessage
// (server/api/chat_request.h). The input is a POST body such as
// {"role":"user","content":"hello","timestamp":"2024-05-01T12:00:00Z"}.
//
// Checks, beyond "no crash, no undefined behaviour":
// - it never throws and sets exactly one of message and error;
// - an error is a 400 or 413 with a known code and a non-empty message of
//   valid UTF-8 (it goes into the JSON answer);
// - an accepted message holds what the pipeline is promised
//   (stowage/message.h): a known role, non-empty valid UTF-8 content within
//   the limit, a canonical timestamp;
// - the message written back as JSON (stowage/chat/message_json.h, as GET
//   answers it) parses to the same message;
// - with a smaller content limit, the same body gives the same message when
//   the content fits and content_too_large when it does not.
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "api/chat_request.h"
#include "api/timestamp.h"
#include "fuzz_check.h"
#include "stowage/chat/message_json.h"

namespace {

using stowage::api::ParsedMessage;

constexpr std::size_t kLimit = 32768;  // server.max_content_bytes's default
const std::string kNow = "2024-05-01T12:00:00.000000Z";

ParsedMessage Parse(std::string_view body, std::size_t limit) {
  try {
    return stowage::api::ParseChatMessage(body, limit, [] { return kNow; });
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "ParseChatMessage threw: %s", e.what());
  } catch (...) {
    FUZZ_CHECK(false, "ParseChatMessage threw something that is not a std::exception");
  }
  return {};
}

void CheckOne(const ParsedMessage& parsed, std::size_t limit) {
  FUZZ_CHECK(parsed.message.has_value() != parsed.error.has_value(), "message %d, error %d",
             parsed.message.has_value(), parsed.error.has_value());
  if (parsed.error) {
    const auto& error = *parsed.error;
    FUZZ_CHECK((error.status == 400 && (error.code == "bad_json" || error.code == "invalid_field")) ||
                   (error.status == 413 && error.code == "content_too_large"),
               "unexpected error %d %s", error.status, error.code.c_str());
    FUZZ_CHECK(!error.message.empty(), "error %s has no message", error.code.c_str());
    FUZZ_CHECK(stowage::fuzz::IsValidUtf8(error.message), "error message is not valid UTF-8: %s",
               error.message.c_str());
    return;
  }
  const stowage::Message& message = *parsed.message;
  FUZZ_CHECK(message.role == "user" || message.role == "assistant" || message.role == "system", "role '%s'",
             message.role.c_str());
  FUZZ_CHECK(!message.content.empty() && message.content.size() <= limit, "content of %zu bytes, limit %zu",
             message.content.size(), limit);
  FUZZ_CHECK(stowage::fuzz::IsValidUtf8(message.content), "content is not valid UTF-8");
  std::string why;
  auto canonical = stowage::api::CanonicalTimestamp(message.timestamp, &why);
  FUZZ_CHECK(canonical && *canonical == message.timestamp, "timestamp '%s' is not canonical",
             message.timestamp.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const ParsedMessage parsed = Parse(body, kLimit);
  CheckOne(parsed, kLimit);

  // A small limit, chosen by the input's size: same answer when the content fits.
  const std::size_t small = size % 17 + 1;
  const ParsedMessage limited = Parse(body, small);
  CheckOne(limited, small);
  if (parsed.message) {
    if (parsed.message->content.size() <= small) {
      FUZZ_CHECK(limited.message == parsed.message, "the result depends on a limit the content is within");
    } else {
      FUZZ_CHECK(limited.error && limited.error->code == "content_too_large",
                 "content of %zu bytes passed a limit of %zu", parsed.message->content.size(), small);
    }
  } else if (parsed.error->code != "content_too_large") {
    // The content is checked before the timestamp, so a smaller limit may
    // turn a bad timestamp into content_too_large, and nothing else.
    FUZZ_CHECK(limited.error &&
                   (limited.error->code == parsed.error->code ||
                    (parsed.error->code == "invalid_field" && limited.error->code == "content_too_large")),
               "a smaller limit changed error %s", parsed.error->code.c_str());
  }

  if (parsed.message) {
    std::string json;
    stowage::chat::AppendMessageJson(json, *parsed.message);
    const ParsedMessage again = Parse(json, kLimit);
    FUZZ_CHECK(again.message == parsed.message, "the message written as JSON does not parse back: %s",
               json.c_str());
  }
  return 0;
}
