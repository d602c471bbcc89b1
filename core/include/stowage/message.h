// Message: one chat message as the pipeline carries it.
#pragma once

#include <string>

namespace stowage {

// The host validates a message before any stage sees it: `role` is "user",
// "assistant" or "system"; `content` is non-empty valid UTF-8; `timestamp` is
// in the canonical form "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, six fraction
// digits): the host converts the client's ISO-8601 value to it, or fills in
// the time of receipt when the client sent none. Stages store and return it
// unchanged, so every stage serves the same text.
struct Message {
  std::string role;
  std::string content;
  std::string timestamp;

  friend bool operator==(const Message&, const Message&) = default;
};

}  // namespace stowage
