#include "redis_stage.h"

#include <cstdint>
#include <optional>
#include <stdexcept>

#include "chat_json.h"
#include "stowage/chat/attributes.h"

namespace stowage::redis {
namespace {

// A key added with TLS: the host fills in its default, but a config built
// by hand before it existed (tools, tests) may lack it.
std::string StringOrEmpty(const StageConfig& config, const std::string& key) {
  return config.values().count(key) != 0 ? config.string(key) : std::string();
}

}  // namespace

ConfigSchema RedisStage::config_schema() {
  return ConfigSchema()
      .required(
          "url", ConfigType::kString,
          "where Redis listens: redis://[[user]:password@]host[:port][/db], rediss://... for TLS, or "
          "unix:///path/to/socket[?db=N]; with cluster = true, one or more nodes of the cluster: "
          "redis://host1:port1,host2:port2")
      .secret()
      .optional("cluster", false,
                "url names nodes of a Redis Cluster: keys go to their slot's master, the slot map is learned "
                "from the cluster and follows its redirections and failovers")
      .optional("replica_wait_ms", std::int64_t{100},
                "cluster only: after a change, how long to wait for a replica to hold it (WAIT 1) before the "
                "change counts as failed; 0: do not wait (a failover may then lose recent changes); below "
                "command_timeout_ms")
      .range(std::int64_t{0}, std::int64_t{599999})
      .optional("ca_file", std::string(""),
                "rediss:// only: PEM file of the CA(s) that Redis's certificate must chain to; empty: the "
                "system's trusted certificates. The certificate must also name the url's host")
      .path()
      .optional("cert_file", std::string(""),
                "rediss:// only: PEM client certificate (chain) for a Redis that asks for one "
                "(tls-auth-clients); needs key_file")
      .path()
      .optional("key_file", std::string(""),
                "rediss:// only: unencrypted PEM private key of cert_file; needs cert_file")
      .path()
      .optional("key_prefix", std::string("guest:"),
                "each guest's key is key_prefix followed by the guest id; its version record is "
                "key_prefix{key}:version")
      .optional("ttl_seconds", std::int64_t{86400}, "time to live of a guest's key, renewed on every write")
      .range(std::int64_t{1}, std::int64_t{1} << 31)
      .optional("pool_size", std::int64_t{8}, "most connections kept open to Redis")
      .range(std::int64_t{1}, std::int64_t{1024})
      .optional("connect_timeout_ms", std::int64_t{1000},
                "longest wait to open a connection, in milliseconds")
      .range(std::int64_t{1}, std::int64_t{600000})
      .optional("command_timeout_ms", std::int64_t{1000},
                "longest wait for one command's answer, in milliseconds")
      .range(std::int64_t{1}, std::int64_t{600000})
      .optional("change_lifetime_ms", std::int64_t{30000},
                "how long a change in flight keeps a guest's history from being served from Redis when its "
                "writer never settles it (killed, or its COMMIT's answer lost); longer than any write lasts")
      .range(std::int64_t{1000}, std::int64_t{3600000});
}

ChatStoreOptions RedisStage::OptionsFromConfig(const StageConfig& config) {
  ChatStoreOptions options;
  const bool cluster = config.values().count("cluster") != 0 && config.boolean("cluster");
  if (cluster) {
    options.cluster_seeds = ParseRedisUrls(config.string("url"));
    options.url = options.cluster_seeds.front();
    if (options.url.kind != RedisUrl::Kind::kTcp)
      throw std::invalid_argument(
          "stage[redis].config.url must be redis:// or rediss:// with cluster = true: a Redis Cluster's nodes "
          "announce TCP addresses; name one or more of them (redis://host1:port1,host2:port2)");
    if (options.url.db != 0)
      throw std::invalid_argument("stage[redis].config.url selects database " + std::to_string(options.url.db) +
                                  ", but a Redis Cluster has only database 0; remove /" +
                                  std::to_string(options.url.db) + " from the url");
  } else {
    options.url = ParseRedisUrl(config.string("url"));
  }
  options.key_prefix = config.string("key_prefix");
  if (!KeyPrefixKeepsGuestKeysInOneSlot(options.key_prefix))
    throw std::invalid_argument(
        "stage[redis].config.key_prefix must hold no '{' or '}', or a whole Redis Cluster hash tag such as "
        "\"{chat}:\", not \"" +
        options.key_prefix + "\": a guest's version record must share its array's slot");
  // The bounds of each key are the schema's, checked by the host.
  options.ttl = std::chrono::seconds(config.integer("ttl_seconds"));
  options.pool.size = static_cast<std::size_t>(config.integer("pool_size"));
  options.pool.connect_timeout = std::chrono::milliseconds(config.integer("connect_timeout_ms"));
  options.pool.command_timeout = std::chrono::milliseconds(config.integer("command_timeout_ms"));
  options.change_lifetime = std::chrono::milliseconds(config.integer("change_lifetime_ms"));
  if (config.values().count("replica_wait_ms") != 0) {
    options.replica_wait = std::chrono::milliseconds(config.integer("replica_wait_ms"));
    if (options.replica_wait >= options.pool.command_timeout)
      throw std::invalid_argument("stage[redis].config.replica_wait_ms (" +
                                  std::to_string(options.replica_wait.count()) +
                                  ") must be below command_timeout_ms (" +
                                  std::to_string(options.pool.command_timeout.count()) +
                                  "): the WAIT is one command; lower it or raise command_timeout_ms");
  }
  TlsOptions tls;
  tls.ca_file = StringOrEmpty(config, "ca_file");
  tls.cert_file = StringOrEmpty(config, "cert_file");
  tls.key_file = StringOrEmpty(config, "key_file");
  if (options.url.tls) {
    options.pool.tls = TlsContext::Create(tls);
  } else {
    for (const char* key : {"ca_file", "cert_file", "key_file"}) {
      if (!StringOrEmpty(config, key).empty())
        throw std::invalid_argument(std::string("stage[redis].config.") + key +
                                    " is set but url is not rediss://; use a rediss:// url for TLS, or remove " +
                                    key);
    }
  }
  return options;
}

RedisStage::RedisStage(ChatStoreOptions options, Logger& log) : store_(std::move(options)), log_(log) {}

void RedisStage::MustDrop(const GuestKeys& keys, const std::string& guest_id, const Status& why) {
  if (store_.RememberDrop(keys)) {
    log_.warn("key " + keys.array + " of guest " + guest_id + " will be dropped before it is served again: " +
              why.ToString());
  } else {
    log_.error("key " + keys.array + " of guest " + guest_id + " could not be dropped (" + why.ToString() +
               ") and too many keys wait to be dropped to remember it; its mark lapses after change_lifetime_ms");
  }
}

Status RedisStage::prepare(WriteContext& ctx) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  const std::string token = ChatStore::NewToken();
  // Set before the call: abandon() unmarks it even when the answer was lost.
  ctx.attributes.set(kChangeAttribute, token);
  Status status = store_.Prepare(keys, token, ctx.deadline);
  if (!status.ok()) return status.WithContext("could not mark the coming change of guest " + ctx.guest_id);
  return Status::Ok();
}

Status RedisStage::write(WriteContext& ctx) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  const std::string token = ctx.attributes.get(kChangeAttribute).value_or("");
  const std::string sequence = ctx.attributes.get(chat::kSequence).value_or("");
  std::string entry = EncodeEntry(ctx.message);
  bool stored = false;
  std::int64_t bytes = 0;
  Status status = store_.Apply(keys, token, sequence, entry, ctx.deadline, &stored, &bytes);
  if (!status.ok()) {
    if (!token.empty()) MustDrop(keys, ctx.guest_id, status);
    return status.WithContext("could not store message for guest " + ctx.guest_id + " in key " + keys.array);
  }
  ctx.attributes.set(kEntryAttribute, std::move(entry));
  if (stored) {
    // The operators' checklist looks for these words.
    log_.info("Message stored successfully! guest " + ctx.guest_id + ", key " + keys.array + " (value now " +
              std::to_string(bytes) + " bytes, ttl " + std::to_string(store_.options().ttl.count()) + "s)");
  } else {
    log_.info("dropped key " + keys.array + " of guest " + ctx.guest_id + ": it did not hold exactly the " +
              "messages before sequence " + sequence + "; the next read refills it from the store");
  }
  return Status::Ok();
}

Status RedisStage::abandon(WriteContext& ctx, Uncommitted why) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  const std::string token = ctx.attributes.get(kChangeAttribute).value_or("");
  const bool unknown = why == Uncommitted::kOutcomeUnknown;
  Status status = store_.Abandon(keys, token, unknown, ctx.deadline);
  if (!status.ok()) {
    if (unknown) MustDrop(keys, ctx.guest_id, status);
    return status.WithContext("could not settle the abandoned change of guest " + ctx.guest_id + " in key " +
                              keys.array);
  }
  if (unknown) {
    log_.info("dropped key " + keys.array + " of guest " + ctx.guest_id + ": the store may or may not hold " +
              "the message; the guest is read from the store until the change's mark lapses");
  }
  return Status::Ok();
}

Status RedisStage::compensate(WriteContext& ctx) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  // A write that failed on the way back may still have landed; its entry is
  // the same bytes, so it is found by encoding the message again.
  std::string entry = ctx.attributes.get(kEntryAttribute).value_or(EncodeEntry(ctx.message));
  bool removed = false;
  Status status = store_.Remove(keys, entry, ctx.deadline, &removed);
  if (!status.ok()) {
    return status.WithContext("could not remove the message of guest " + ctx.guest_id + " from key " +
                              keys.array + " to undo its write; it stays until the key expires or is deleted");
  }
  log_.info(removed ? "removed the message of guest " + ctx.guest_id + " from key " + keys.array +
                          " to undo its write"
                    : "nothing to undo for guest " + ctx.guest_id + ": key " + keys.array +
                          " did not hold the message");
  return Status::Ok();
}

ReadResult RedisStage::read(GuestContext& ctx) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  const std::string lease = ChatStore::NewToken();
  ReadResult result;
  ChatStore::Found found = ChatStore::Found::kMiss;
  // A page (SDK 1.5) is cut in Redis from the array, which is the guest's
  // whole history whenever it is served.
  result.status = store_.Read(keys, lease, ctx.range, ctx.deadline, &found, &result.messages);
  if (!result.status.ok()) {
    result.status =
        result.status.WithContext("could not read the messages of guest " + ctx.guest_id + " from key " + keys.array);
    result.messages.clear();
    return result;
  }
  result.found = found == ChatStore::Found::kHit;
  if (found == ChatStore::Found::kMiss && ctx.attributes != nullptr)
    ctx.attributes->set(kLeaseAttribute, lease);
  if (log_.enabled(LogLevel::kDebug)) {
    log_.debug(found == ChatStore::Found::kHit
                   ? "read " + std::to_string(result.messages.size()) + " messages of guest " + ctx.guest_id +
                         " from key " + keys.array
               : found == ChatStore::Found::kMiss
                   ? "key " + keys.array + " of guest " + ctx.guest_id + " is not cached (cache miss)"
                   : "key " + keys.array + " of guest " + ctx.guest_id +
                         " is not served: a change of the guest is in flight (cache miss)");
  }
  return result;
}

Status RedisStage::refill(GuestContext& ctx, const std::vector<Message>& messages) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  if (messages.empty()) return Status::Ok();  // nothing to cache; a read keeps missing, as it should
  std::optional<std::string> lease = ctx.attributes ? ctx.attributes->get(kLeaseAttribute) : std::nullopt;
  if (!lease) return Status::Ok();  // the read took no lease: a change of the guest was in flight
  bool stored = false;
  Status status = store_.Refill(keys, *lease, messages, ctx.deadline, &stored);
  if (!status.ok()) return status.WithContext("could not refill key " + keys.array + " of guest " + ctx.guest_id);
  log_.info(stored ? "refilled key " + keys.array + " with " + std::to_string(messages.size()) +
                         " messages of guest " + ctx.guest_id + " (ttl " +
                         std::to_string(store_.options().ttl.count()) + "s)"
                   : "left key " + keys.array + " as it is: the guest changed since the read missed");
  return Status::Ok();
}

Status RedisStage::prepare_erase(GuestContext& ctx) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  const std::string token = ChatStore::NewToken();
  bool held = false;
  Status status = store_.BeginErase(keys, token, ctx.deadline, &held);
  if (!status.ok())
    return status.WithContext("could not begin erasing key " + keys.array + " of guest " + ctx.guest_id);
  if (ctx.attributes != nullptr) {
    ctx.attributes->set(kChangeAttribute, token);
    ctx.attributes->set(kHeldAttribute, held ? "1" : "0");
  }
  return Status::Ok();
}

EraseResult RedisStage::erase(GuestContext& ctx) {
  const GuestKeys keys = store_.Keys(ctx.guest_id);
  const std::string token =
      ctx.attributes ? ctx.attributes->get(kChangeAttribute).value_or("") : std::string();
  EraseResult result;
  result.status = store_.FinishErase(keys, token, ctx.deadline, &result.held);
  if (!result.status.ok()) {
    result.status = result.status.WithContext("could not delete key " + keys.array + " of guest " + ctx.guest_id);
    return result;
  }
  if (ctx.attributes && ctx.attributes->get(kHeldAttribute) == "1") result.held = true;
  log_.info(result.held ? "deleted key " + keys.array + " of guest " + ctx.guest_id
                        : "no key " + keys.array + " to delete for guest " + ctx.guest_id);
  return result;
}

Status RedisStage::health(Deadline deadline) {
  return store_.Ping(deadline);
}

}  // namespace stowage::redis
