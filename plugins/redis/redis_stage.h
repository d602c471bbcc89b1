// RedisStage: the "redis" stage. Keeps each guest's messages under
// `{key_prefix}{guest_id}` as a JSON array that any client can GET, with a
// TTL renewed on every write. Glue between the Stage SDK and ChatStore: it
// reads the config, maps contexts to store calls, and logs.
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
  // Every wait of a call (for a pooled connection, a connect, a command's
  // socket reads and writes) is bounded by the context's deadline, so the
  // host may call the stage on the request's own thread.
  static constexpr bool kKeepsDeadlines = true;

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
  Status write(WriteContext& ctx) override;
  Status compensate(WriteContext& ctx) override;
  ReadResult read(GuestContext& ctx) override;
  Status refill(GuestContext& ctx, const std::vector<Message>& messages) override;
  EraseResult erase(GuestContext& ctx) override;
  Status health(Deadline deadline) override;

 private:
  ChatStore store_;
  Logger& log_;
};

}  // namespace stowage::redis
