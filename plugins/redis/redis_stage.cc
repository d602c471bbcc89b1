#include "redis_stage.h"

#include <cstdint>
#include <stdexcept>

#include "chat_json.h"

namespace stowage::redis {
namespace {

std::int64_t InRange(const StageConfig& config, const std::string& key, std::int64_t min, std::int64_t max) {
  std::int64_t value = config.integer(key);
  if (value < min || value > max)
    throw std::invalid_argument("stage[redis].config." + key + " must be from " + std::to_string(min) +
                                " to " + std::to_string(max) + ", not " + std::to_string(value));
  return value;
}


}  // namespace

ConfigSchema RedisStage::config_schema() {
  return ConfigSchema()
      .required(
          "url", ConfigType::kString,
          "where Redis listens: redis://[[user]:password@]host[:port][/db] or unix:///path/to/socket[?db=N]")
      .secret()
      .optional("key_prefix", std::string("guest:"),
                "each guest's key is key_prefix followed by the guest id")
      .optional("ttl_seconds", std::int64_t{86400}, "time to live of a guest's key, renewed on every write")
      .optional("pool_size", std::int64_t{8}, "most connections kept open to Redis")
      .optional("connect_timeout_ms", std::int64_t{1000},
                "longest wait to open a connection, in milliseconds")
      .optional("command_timeout_ms", std::int64_t{1000},
                "longest wait for one command's answer, in milliseconds");
}

ChatStoreOptions RedisStage::OptionsFromConfig(const StageConfig& config) {
  ChatStoreOptions options;
  options.url = ParseRedisUrl(config.string("url"));
  options.key_prefix = config.string("key_prefix");
  options.ttl = std::chrono::seconds(InRange(config, "ttl_seconds", 1, std::int64_t{1} << 31));
  options.pool.size = static_cast<std::size_t>(InRange(config, "pool_size", 1, 1024));
  options.pool.connect_timeout = std::chrono::milliseconds(InRange(config, "connect_timeout_ms", 1, 600000));
  options.pool.command_timeout = std::chrono::milliseconds(InRange(config, "command_timeout_ms", 1, 600000));
  return options;
}

RedisStage::RedisStage(ChatStoreOptions options, Logger& log) : store_(std::move(options)), log_(log) {}

Status RedisStage::write(WriteContext& ctx) {
  const std::string key = store_.Key(ctx.guest_id);
  std::string entry = EncodeEntry(ctx.message);
  std::int64_t bytes = 0;
  Status status = store_.Append(key, entry, ctx.deadline, &bytes);
  if (!status.ok())
    return status.WithContext("could not store message for guest " + ctx.guest_id + " in key " + key);
  ctx.attributes.set(kEntryAttribute, std::move(entry));
  log_.info("stored message for guest " + ctx.guest_id + " in key " + key + " (value now " +
            std::to_string(bytes) + " bytes, ttl " + std::to_string(store_.options().ttl.count()) + "s)");
  return Status::Ok();
}

Status RedisStage::compensate(WriteContext& ctx) {
  const std::string key = store_.Key(ctx.guest_id);
  // A write that failed on the way back may still have landed; its entry is
  // the same bytes, so it is found by encoding the message again.
  std::string entry = ctx.attributes.get(kEntryAttribute).value_or(EncodeEntry(ctx.message));
  bool removed = false;
  Status status = store_.Remove(key, entry, ctx.deadline, &removed);
  if (!status.ok()) {
    return status.WithContext("could not remove the message of guest " + ctx.guest_id + " from key " + key +
                                   " to undo its write; it stays until the key expires or is deleted");
  }
  log_.info(removed
                ? "removed the message of guest " + ctx.guest_id + " from key " + key + " to undo its write"
                : "nothing to undo for guest " + ctx.guest_id + ": key " + key + " did not hold the message");
  return Status::Ok();
}

ReadResult RedisStage::read(GuestContext& ctx) {
  const std::string key = store_.Key(ctx.guest_id);
  ReadResult result;
  result.status = store_.Load(key, ctx.deadline, &result.found, &result.messages);
  if (!result.status.ok()) {
    result.status = result.status.WithContext(
                                "could not read the messages of guest " + ctx.guest_id + " from key " + key);
    result.found = false;
    result.messages.clear();
  } else if (log_.enabled(LogLevel::kDebug)) {
    log_.debug(result.found ? "read " + std::to_string(result.messages.size()) + " messages of guest " +
                                  ctx.guest_id + " from key " + key
                            : "no key " + key + " for guest " + ctx.guest_id + " (cache miss)");
  }
  return result;
}

Status RedisStage::refill(GuestContext& ctx, const std::vector<Message>& messages) {
  const std::string key = store_.Key(ctx.guest_id);
  if (messages.empty()) return Status::Ok();  // nothing to cache; a read keeps missing, as it should
  bool stored = false;
  Status status = store_.StoreIfAbsent(key, messages, ctx.deadline, &stored);
  if (!status.ok()) return status.WithContext("could not refill key " + key + " of guest " + ctx.guest_id);
  log_.info(stored
                ? "refilled key " + key + " with " + std::to_string(messages.size()) + " messages of guest " +
                      ctx.guest_id + " (ttl " + std::to_string(store_.options().ttl.count()) + "s)"
                : "left key " + key + " as it is: a write created it since the read missed");
  return Status::Ok();
}

EraseResult RedisStage::erase(GuestContext& ctx) {
  const std::string key = store_.Key(ctx.guest_id);
  EraseResult result;
  result.status = store_.Delete(key, ctx.deadline, &result.held);
  if (!result.status.ok()) {
    result.status = result.status.WithContext("could not delete key " + key + " of guest " + ctx.guest_id);
  } else {
    log_.info(result.held ? "deleted key " + key + " of guest " + ctx.guest_id
                          : "no key " + key + " to delete for guest " + ctx.guest_id);
  }
  return result;
}

Status RedisStage::health(Deadline deadline) {
  return store_.Ping(deadline);
}

}  // namespace stowage::redis
