// RedisStage: the "redis" stage, a cache of the store. Keeps each guest's
// messages under `{key_prefix}{guest_id}` as a JSON array that any client can
// GET, with a TTL renewed on every write, and a version record beside it that
// keeps the array coherent with the store (cache_scripts.h): the array is
// served only while it is exactly the store's history of the guest.
//
// It runs after the COMMIT (kAfterCommit): prepare() marks the change before
// the COMMIT, write() extends the array after it (or drops it when it is not
// exactly the history before the message), abandon() settles a COMMIT that
// did not happen. A read that misses takes a lease, and the refill that
// follows stores the store's history only if no change came in between. In
// a pipeline without a database, Redis is the store: write() appends,
// creating the array, and compensate() removes the entry.
//
// Glue between the Stage SDK and ChatStore: it reads the config, maps
// contexts to store calls, and logs.
#pragma once

#include <string>
#include <vector>

#include "chat_store.h"
#include "stowage/sdk.h"

namespace stowage::redis {

class RedisStage final : public Stage {
 public:
  // The attribute write() sets to the exact entry it appended, so that
  // compensate() removes that entry and no other.
  static constexpr std::string_view kEntryAttribute = "redis.entry";
  // The token of the change prepare() or prepare_erase() marked.
  static constexpr std::string_view kChangeAttribute = "redis.change";
  // Whether prepare_erase() found the guest's array.
  static constexpr std::string_view kHeldAttribute = "redis.held";
  // The lease a read that missed took for its refill.
  static constexpr std::string_view kLeaseAttribute = "redis.lease";
  // Every wait of a call (for a pooled connection, a connect, a command's
  // socket reads and writes) is bounded by the context's deadline, so the
  // host may call the stage on the request's own thread.
  static constexpr bool kKeepsDeadlines = true;
  // A copy of what the store holds: written after its COMMIT.
  static constexpr bool kAfterCommit = true;

  static ConfigSchema config_schema();

  // Turns validated config values into store options. Throws
  // std::invalid_argument naming the key for a value out of range or a bad
  // url (the password is never shown).
  static ChatStoreOptions OptionsFromConfig(const StageConfig& config);

  // Does not connect: a Redis that is down does not stop construction.
  // `log` must outlive the stage.
  RedisStage(const StageConfig& config, stowage::StageEnvironment& env)
      : RedisStage(OptionsFromConfig(config), env.log) {}
  RedisStage(ChatStoreOptions options, Logger& log);

  std::string target() const override { return "redis"; }
  Status prepare(WriteContext& ctx) override;
  Status write(WriteContext& ctx) override;
  Status abandon(WriteContext& ctx, Uncommitted why) override;
  Status compensate(WriteContext& ctx) override;
  ReadResult read(GuestContext& ctx) override;
  Status refill(GuestContext& ctx, const std::vector<Message>& messages) override;
  Status prepare_erase(GuestContext& ctx) override;
  EraseResult erase(GuestContext& ctx) override;
  Status health(Deadline deadline) override;

 private:
  // Remembers that the guest's array must be dropped before it is served
  // again (a change could not be settled), and logs it.
  void MustDrop(const GuestKeys& keys, const std::string& guest_id, const Status& why);

  ChatStore store_;
  Logger& log_;
};

}  // namespace stowage::redis
