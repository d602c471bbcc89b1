// Fuzz target: the Redis value decoder, DecodeArray (plugins/redis/chat_json.h).
// The input is the value of a guest's key as GET returns it, e.g.
// [{"role":"user","content":"hi","timestamp":"2024-05-01T12:00:00.000000Z"}].
// A key written by another client, or by an older stowage, is untrusted.
//
// Checks, beyond "no crash, no undefined behaviour":
// - it never throws; a refusal names the key and says what to do, in valid
//   UTF-8; what it accepts is valid UTF-8 (GET answers with it);
// - decode, encode, decode gives the same messages, and encoding those
//   again gives the same bytes (the stage finds an entry in the stored
//   array by its encoding, so one message must have one encoding);
// - each entry's encoding (EncodeEntry) is the element of the array
//   encoding, in order.
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "chat_json.h"
#include "fuzz_check.h"

namespace {

const std::string kKey = "guest:fuzz";

stowage::Status Decode(std::string_view value, std::vector<stowage::Message>* out) {
  try {
    return stowage::redis::DecodeArray(value, kKey, out);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "DecodeArray threw: %s", e.what());
  } catch (...) {
    FUZZ_CHECK(false, "DecodeArray threw something that is not a std::exception");
  }
  return stowage::Status::Ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  std::vector<stowage::Message> messages;
  const stowage::Status status = Decode(value, &messages);
  if (!status.ok()) {
    const std::string& why = status.message();
    FUZZ_CHECK(why.find(kKey) != std::string::npos, "the error does not name the key: %s", why.c_str());
    FUZZ_CHECK(stowage::fuzz::IsValidUtf8(why), "the error is not valid UTF-8: %s", why.c_str());
    return 0;
  }

  // GET answers with these strings as they are, so they must be text.
  for (const stowage::Message& message : messages) {
    FUZZ_CHECK(stowage::fuzz::IsValidUtf8(message.role) && stowage::fuzz::IsValidUtf8(message.content) &&
                   stowage::fuzz::IsValidUtf8(message.timestamp),
               "a decoded string is not valid UTF-8");
  }

  const std::string encoded = stowage::redis::EncodeArray(messages);
  std::vector<stowage::Message> again;
  const stowage::Status status_again = Decode(encoded, &again);
  FUZZ_CHECK(status_again.ok(), "the encoding of a decoded value does not decode: %s\n  %s",
             status_again.message().c_str(), encoded.c_str());
  FUZZ_CHECK(again == messages, "decode, encode, decode changed the messages: %s", encoded.c_str());
  FUZZ_CHECK(stowage::redis::EncodeArray(again) == encoded, "the encoding is not stable: %s",
             encoded.c_str());

  std::string joined = "[";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) joined += ',';
    joined += stowage::redis::EncodeEntry(messages[i]);
  }
  joined += ']';
  FUZZ_CHECK(joined == encoded, "EncodeArray and EncodeEntry disagree:\n  %s\n  %s", encoded.c_str(),
             joined.c_str());
  return 0;
}
