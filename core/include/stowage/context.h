// The contexts a stage receives for each operation.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "stowage/logger.h"
#include "stowage/message.h"

namespace stowage {

class SqlSession;

using Clock = std::chrono::steady_clock;

// The time by which an operation must finish. A stage passes what remains to
// its own I/O (socket and statement timeouts) so that it returns in time; the
// host stops waiting at the deadline either way and counts the call failed.
class Deadline {
 public:
  explicit Deadline(Clock::time_point at) : at_(at) {}
  static Deadline After(std::chrono::milliseconds ms) { return Deadline(Clock::now() + ms); }

  Clock::time_point at() const noexcept { return at_; }
  bool expired() const noexcept { return Clock::now() >= at_; }
  // What remains, never negative.
  std::chrono::milliseconds remaining() const noexcept {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at_ - Clock::now());
    return left.count() > 0 ? left : std::chrono::milliseconds(0);
  }

 private:
  Clock::time_point at_;
};

// String values that earlier stages set for later ones during one write, e.g.
// "message_id", "conversation_id" and "sequence" set by the chat store (their
// names are in stowage/chat/attributes.h, which the host's chat API shows in
// its answer). The host copies the attributes into each stage call and keeps
// what a stage set only when that stage succeeded.
class Attributes {
 public:
  void set(std::string_view key, std::string value) { values_[std::string(key)] = std::move(value); }
  std::optional<std::string> get(std::string_view key) const {
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  bool contains(std::string_view key) const { return values_.find(key) != values_.end(); }
  const std::map<std::string, std::string, std::less<>>& all() const noexcept { return values_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

// One message going through the pipeline. The references stay valid for the
// whole call, including a call the host has stopped waiting for.
struct WriteContext {
  const std::string& guest_id;
  const Message& message;
  Deadline deadline;
  Logger& log;
  // Set by earlier stages; a stage may add its own (prefix keys with the
  // stage's plugin name, e.g. "redis.entry", unless they are the chat
  // store's, stowage/chat/attributes.h).
  // In compensate(), holds what this stage's write() set.
  Attributes& attributes;
  // The stage's database, in this write's transaction (a best_effort stage's
  // statements inside a SAVEPOINT of its own); null when the stage names no
  // database. A stage with a database is not compensated: the transaction
  // is rolled back instead.
  SqlSession* sql = nullptr;
  // SDK 1.3: true when the host replays this message from its journal: the
  // stage failed (or was skipped) when the message was written, the message
  // was stored without it, and the host now redoes the stage's part. The
  // message and the attributes are the original ones (message_id,
  // conversation_id, sequence, and what this stage's admit() had set is not
  // kept: admit() runs again). The host calls admit() then write(), both
  // with replay set. The stage stores its part once: a replay of work that
  // was in fact done stores nothing new (e.g. INSERT ... ON CONFLICT DO
  // NOTHING keyed by message_id), and admit() must not refuse the message
  // for a reason that applied only to new ones (a quota): the message is
  // already stored. A stage with a database runs a replay in a transaction
  // that also removes the journal entry, so its statements and the removal
  // commit together.
  bool replay = false;
};

// SDK 1.5: the part of a guest's history a read asks for (GuestContext::range).
// A guest's messages are numbered by `sequence`: 0 for its first, then 1, 2,
// ... without gaps (the store's sequence, as the PostgreSQL stage sets it; a
// message's position in a stage that is the store). The page asked for is
// the newest `limit` messages whose sequence is below `before`, oldest first.
//
// A stage may honour the range: it returns exactly that page (`found` still
// says whether it holds the guest at all) and sets `total`. A stage that
// leaves `total` unset returns the guest's whole history, as before SDK 1.5,
// and the host takes the page from it; so an older plugin gives the right
// answer, only with more work. The host checks an honoured page's size
// against `total` and fails the read of a stage whose page does not match.
struct ReadRange {
  std::optional<std::uint64_t> before;  // none: up to the newest message
  std::optional<std::uint64_t> limit;   // none: every message below `before`
  // Set by a stage that honoured the range: how many messages the guest has
  // in all, which is the sequence its next message will get.
  std::optional<std::uint64_t> total;

  // The sequences [first(total), end(total)) of the page, for a guest that
  // has `total` messages.
  std::uint64_t end(std::uint64_t total_messages) const noexcept {
    return before ? std::min(*before, total_messages) : total_messages;
  }
  std::uint64_t first(std::uint64_t total_messages) const noexcept {
    const std::uint64_t last = end(total_messages);
    return limit && *limit < last ? last - *limit : 0;
  }
  // Whether the range bounds the read at all (sets `before` or `limit`).
  bool bounded() const noexcept { return before.has_value() || limit.has_value(); }
};

// A read or erase of one guest's messages.
struct GuestContext {
  const std::string& guest_id;
  Deadline deadline;
  Logger& log;
  // The stage's database, null when it names none: in one transaction for
  // an erase, in autocommit for a read or a search.
  SqlSession* sql = nullptr;
  // SDK 1.2: values a stage keeps between its calls of one request: the same
  // object for its read() and its refill() of one GET (e.g. a lease the read
  // took for the refill), and for its prepare_erase() and erase() of one
  // DELETE. Null when the host gives none (a search, a health check).
  Attributes* attributes = nullptr;
  // SDK 1.5: in read(), the part of the history asked for (see ReadRange);
  // null when the whole history is asked for, and in every other call. A
  // refill() is only ever given a whole history. The field comes last, and
  // the host builds the context, so plugins built against older minor
  // versions load unchanged (they never see it and return everything).
  ReadRange* range = nullptr;
};

}  // namespace stowage
