#include "chat_store.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <random>

#include "cache_scripts.h"
#include "chat_json.h"

namespace stowage::redis {
namespace {

// How long a read's lease lasts: a refill follows the read of the store at once.
constexpr const char* kLeaseSeconds = "60";

// Most guests remembered by RememberDrop.
constexpr std::size_t kMaxRememberedDrops = 100000;

std::int64_t KeepSeconds(const ChatStoreOptions& options) {
  const auto change = std::chrono::ceil<std::chrono::seconds>(options.change_lifetime) + std::chrono::seconds(1);
  return std::max(options.ttl, change).count();
}

bool IsInteger(const ReplyPtr& reply) {
  return reply->type == REDIS_REPLY_INTEGER;
}

}  // namespace

bool KeyPrefixKeepsGuestKeysInOneSlot(std::string_view key_prefix) {
  const std::size_t open = key_prefix.find('{');
  if (open == std::string_view::npos) return key_prefix.find('}') == std::string_view::npos;
  const std::size_t close = key_prefix.find('}', open + 1);
  return close != std::string_view::npos && close > open + 1;
}

ChatStore::ChatStore(ChatStoreOptions options)
    : options_(std::move(options)),
      ttl_text_(std::to_string(options_.ttl.count())),
      change_lifetime_text_(std::to_string(options_.change_lifetime.count())),
      keep_text_(std::to_string(KeepSeconds(options_))),
      where_(options_.cluster_seeds.empty() ? "Redis at " + options_.url.Address()
                                            : RedisCluster::Describe(options_.cluster_seeds)),
      replica_wait_text_(std::to_string(options_.replica_wait.count())),
      pool_(options_.cluster_seeds.empty() ? std::make_unique<RedisPool>(options_.url, options_.pool) : nullptr),
      cluster_(options_.cluster_seeds.empty() ? nullptr
                                              : std::make_unique<RedisCluster>(options_.cluster_seeds, options_.pool)),
      read_(CacheScript(kReadScript)),
      prepare_(CacheScript(kPrepareScript)),
      apply_(CacheScript(kApplyScript)),
      abandon_(CacheScript(kAbandonScript)),
      refill_(CacheScript(kRefillScript)),
      begin_erase_(CacheScript(kBeginEraseScript)),
      finish_erase_(CacheScript(kFinishEraseScript)),
      remove_(CacheScript(kRemoveScript)),
      drop_(CacheScript(kDropScript)) {}

GuestKeys ChatStore::Keys(std::string_view guest_id) const {
  GuestKeys keys;
  keys.array = options_.key_prefix + std::string(guest_id);
  keys.version = options_.key_prefix + "{" + keys.array + "}:version";
  return keys;
}

std::string ChatStore::NewToken() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kDigits[] = "0123456789abcdef";
  std::uint64_t bits = random();
  std::string token(16, '0');
  for (char& c : token) {
    c = kDigits[bits & 0xf];
    bits >>= 4;
  }
  return token;
}

Status ChatStore::Script(LuaScript& script, const GuestKeys& keys, const std::vector<std::string_view>& args,
                         Deadline deadline, ReplyPtr* reply) {
  if (cluster_ == nullptr) {
    RedisPool::Lease lease;
    if (Status s = pool_->Acquire(deadline, &lease); !s.ok()) return s;
    return script.Run(lease, {keys.array, keys.version}, args, reply);
  }
  const bool changes = &script != &read_ && options_.replica_wait.count() > 0;
  return cluster_->Run(
      keys.array, deadline,
      [&](RedisPool::Lease& lease, const ClusterCall& call, ReplyPtr* answer) {
        Status s = script.Run(lease, {keys.array, keys.version}, args, answer, call.asking);
        if (!s.ok() || !changes || !call.replicated || (*answer)->type == REDIS_REPLY_ERROR) return s;
        return WaitForReplica(lease, keys);
      },
      reply);
}

Status ChatStore::WaitForReplica(RedisPool::Lease& lease, const GuestKeys& keys) {
  ReplyPtr reply;
  if (Status s = lease.Command({"WAIT", "1", replica_wait_text_}, &reply); !s.ok()) return s;
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1) return Status::Ok();
  return Status::Unavailable(
      "Redis at " + lease.url().Address() + " changed key " + keys.array + " but no replica held the change within " +
      replica_wait_text_ + " ms (WAIT 1 answered " +
      (reply->type == REDIS_REPLY_INTEGER ? std::to_string(reply->integer) : std::string(reply->str, reply->len)) +
      "), so a failover could lose it; check the replicas' links (INFO replication), or raise "
      "stage[redis].config.replica_wait_ms");
}

Status ChatStore::Refused(std::string_view what, const std::string& key, const ReplyPtr& reply) const {
  std::string answer = reply->type == REDIS_REPLY_ERROR || reply->type == REDIS_REPLY_STATUS ||
                               reply->type == REDIS_REPLY_STRING
                           ? std::string(reply->str, reply->len)
                           : "an answer of type " + std::to_string(reply->type);
  return Status::Internal(where_ + " refused to " + std::string(what) + " key " +
                          key + ": " + answer);
}

Status ChatStore::DropRemembered(const GuestKeys& keys, Deadline deadline) {
  {
    std::lock_guard lock(drops_mu_);
    if (drops_.empty() || drops_.count(keys.array) == 0) return Status::Ok();
  }
  ReplyPtr reply;
  if (Status s = Script(drop_, keys, {}, deadline, &reply); !s.ok()) {
    return s.WithContext("key " + keys.array + " must be dropped before it is served again (a change of it " +
                         "could not be settled)");
  }
  if (!IsInteger(reply)) return Refused("drop", keys.array, reply);
  std::lock_guard lock(drops_mu_);
  drops_.erase(keys.array);
  return Status::Ok();
}

bool ChatStore::RememberDrop(const GuestKeys& keys) {
  std::lock_guard lock(drops_mu_);
  if (drops_.size() >= kMaxRememberedDrops && drops_.count(keys.array) == 0) return false;
  drops_.insert(keys.array);
  return true;
}

Status ChatStore::Read(const GuestKeys& keys, std::string_view lease, ReadRange* range, Deadline deadline,
                       Found* found, std::vector<Message>* messages) {
  *found = Found::kMiss;
  messages->clear();
  if (Status s = DropRemembered(keys, deadline); !s.ok()) return s;
  const std::string before = range && range->before ? std::to_string(*range->before) : "";
  const std::string limit = range && range->limit ? std::to_string(*range->limit) : "";
  ReplyPtr reply;
  if (Status s = Script(read_, keys, {lease, kLeaseSeconds, before, limit}, deadline, &reply); !s.ok()) return s;
  const redisReply* r = reply.get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER)
    return Refused("read", keys.array, reply);
  switch (r->element[0]->integer) {
    case 0:
      return Status::Ok();
    case 2:
      *found = Found::kBusy;
      return Status::Ok();
    default:
      break;
  }
  if (r->elements < 3 || r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_INTEGER ||
      r->element[2]->integer < 0)
    return Refused("read", keys.array, reply);
  const redisReply* value = r->element[1];
  if (Status s = DecodeArray(std::string_view(value->str, value->len), keys.array, messages); !s.ok()) return s;
  if (range != nullptr) range->total = static_cast<std::uint64_t>(r->element[2]->integer);
  *found = Found::kHit;
  return Status::Ok();
}

Status ChatStore::Prepare(const GuestKeys& keys, std::string_view token, Deadline deadline) {
  ReplyPtr reply;
  if (Status s = Script(prepare_, keys, {token, change_lifetime_text_, keep_text_}, deadline, &reply); !s.ok())
    return s;
  return IsInteger(reply) ? Status::Ok() : Refused("mark a change of", keys.array, reply);
}

Status ChatStore::Apply(const GuestKeys& keys, std::string_view token, std::string_view sequence,
                        std::string_view entry, Deadline deadline, bool* stored, std::int64_t* value_bytes) {
  *stored = false;
  *value_bytes = 0;
  ReplyPtr reply;
  if (Status s = Script(apply_, keys, {token, sequence, entry, ttl_text_, keep_text_}, deadline, &reply); !s.ok())
    return s;
  const redisReply* r = reply.get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
      r->element[1]->type != REDIS_REPLY_INTEGER)
    return Refused("append to", keys.array, reply);
  *stored = r->element[0]->integer == 1;
  *value_bytes = r->element[1]->integer;
  return Status::Ok();
}

Status ChatStore::Abandon(const GuestKeys& keys, std::string_view token, bool outcome_unknown, Deadline deadline) {
  ReplyPtr reply;
  if (Status s = Script(abandon_, keys, {token, outcome_unknown ? "1" : "0"}, deadline, &reply); !s.ok()) return s;
  return IsInteger(reply) ? Status::Ok() : Refused("unmark a change of", keys.array, reply);
}

Status ChatStore::Refill(const GuestKeys& keys, std::string_view lease, const std::vector<Message>& messages,
                         Deadline deadline, bool* stored) {
  *stored = false;
  const std::string value = EncodeArray(messages);
  const std::string count = std::to_string(messages.size());
  ReplyPtr reply;
  if (Status s = Script(refill_, keys, {lease, value, count, ttl_text_, keep_text_}, deadline, &reply); !s.ok())
    return s;
  if (!IsInteger(reply)) return Refused("refill", keys.array, reply);
  *stored = reply->integer == 1;
  return Status::Ok();
}

Status ChatStore::BeginErase(const GuestKeys& keys, std::string_view token, Deadline deadline, bool* held) {
  *held = false;
  ReplyPtr reply;
  if (Status s = Script(begin_erase_, keys, {token, change_lifetime_text_, keep_text_}, deadline, &reply); !s.ok())
    return s;
  if (!IsInteger(reply)) return Refused("begin erasing", keys.array, reply);
  *held = reply->integer == 1;
  return Status::Ok();
}

Status ChatStore::FinishErase(const GuestKeys& keys, std::string_view token, Deadline deadline, bool* held) {
  *held = false;
  ReplyPtr reply;
  if (Status s = Script(finish_erase_, keys, {token}, deadline, &reply); !s.ok()) return s;
  if (!IsInteger(reply)) return Refused("delete", keys.array, reply);
  *held = reply->integer == 1;
  std::lock_guard lock(drops_mu_);
  drops_.erase(keys.array);
  return Status::Ok();
}

Status ChatStore::Remove(const GuestKeys& keys, std::string_view entry, Deadline deadline, bool* removed) {
  *removed = false;
  ReplyPtr reply;
  if (Status s = Script(remove_, keys, {entry}, deadline, &reply); !s.ok()) return s;
  if (!IsInteger(reply)) return Refused("remove an entry from", keys.array, reply);
  *removed = reply->integer == 1;
  return Status::Ok();
}

Status ChatStore::Ping(Deadline deadline) {
  if (cluster_ != nullptr) return cluster_->Ping(deadline);
  RedisPool::Lease lease;
  if (Status s = pool_->Acquire(deadline, &lease); !s.ok()) return s;
  ReplyPtr reply;
  if (Status s = lease.Command({"PING"}, &reply); !s.ok()) return s;
  if (reply->type == REDIS_REPLY_ERROR)
    return Status::Unavailable(where_ + " answered PING with " +
                               std::string(reply->str, reply->len));
  return Status::Ok();
}

}  // namespace stowage::redis
