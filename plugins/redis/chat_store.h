// ChatStore: guests' chat messages in Redis, one string key per guest whose
// value is a JSON array of entries (chat_json.h), kept coherent with the
// store behind it by a version record beside it (cache_scripts.h). The
// Redis stage's logic, with no SDK plumbing: the stage maps its contexts
// and logs onto it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "lua_script.h"
#include "redis_cluster.h"
#include "redis_pool.h"
#include "redis_url.h"
#include "stowage/context.h"
#include "stowage/message.h"
#include "stowage/status.h"

namespace stowage::redis {

struct ChatStoreOptions {
  RedisUrl url;
  // Not empty: `url` is one node of a Redis Cluster and these are all the
  // nodes the config named (`url` among them): the seeds of its slot map.
  std::vector<RedisUrl> cluster_seeds;
  // Redis Cluster only: after a script that changed a guest's keys, how long
  // to wait for a replica of the node to hold the change too (WAIT 1), so
  // that a failover cannot lose it. 0: no WAIT.
  std::chrono::milliseconds replica_wait{100};
  std::string key_prefix = "guest:";
  std::chrono::seconds ttl{86400};
  // How long a change in flight keeps the guest's array from being served
  // when its writer never settles it: longer than any write can last.
  std::chrono::milliseconds change_lifetime{30000};
  PoolOptions pool;
};

// The two keys of one guest, both under the key prefix (a Redis user
// granted `~{key_prefix}*` may use them) and in one Redis Cluster slot.
struct GuestKeys {
  std::string array;    // key_prefix + guest id: the JSON array
  std::string version;  // key_prefix + "{" + array + "}:version": its version record
};

// Whether every guest's two keys share a Redis Cluster slot with this key
// prefix: it has no braces (the version key's hash tag is then the array's
// whole name, and guest ids hold no braces), or it holds a hash tag of its
// own (its first '{' is followed by a '}' with something between), which
// every key of the stage shares.
bool KeyPrefixKeepsGuestKeysInOneSlot(std::string_view key_prefix);

// Thread-safe. Every call finishes by its deadline, reports a Redis that
// cannot be reached as Unavailable naming its address, and is a single
// atomic step on the server (in a cluster: on the master of the guest's
// slot, and copied to a replica before it is reported done).
class ChatStore {
 public:
  // Does not connect: connections are opened by the first calls.
  explicit ChatStore(ChatStoreOptions options);

  GuestKeys Keys(std::string_view guest_id) const;
  const ChatStoreOptions& options() const noexcept { return options_; }

  // A random token naming one change or one lease.
  static std::string NewToken();

  enum class Found {
    kHit,   // *messages is the guest's history
    kMiss,  // nothing to serve; the lease is taken, a refill may follow
    kBusy,  // a change of the guest is in flight: nothing to serve, no refill
  };
  // Reads the guest's array, taking `lease` on a miss. With `range` (SDK
  // 1.5), only the page it asks for leaves Redis, and on a hit
  // range->total is set to the guest's message count.
  Status Read(const GuestKeys& keys, std::string_view lease, ReadRange* range, Deadline deadline, Found* found,
              std::vector<Message>* messages);

  // Marks a write of the guest in flight (before its COMMIT), as `token`.
  Status Prepare(const GuestKeys& keys, std::string_view token, Deadline deadline);

  // Settles the write `token` after its COMMIT: appends `entry` (an
  // EncodeEntry() result) when the array holds exactly the messages before
  // `sequence`, else drops the array. Without a sequence (Redis is the
  // store) appends, creating the array. *stored says whether the entry was
  // stored; *value_bytes is then the array's length.
  Status Apply(const GuestKeys& keys, std::string_view token, std::string_view sequence, std::string_view entry,
               Deadline deadline, bool* stored, std::int64_t* value_bytes);

  // Settles the write `token` whose COMMIT did not happen (or whose
  // outcome is unknown: then drops the array and leaves the mark to lapse).
  Status Abandon(const GuestKeys& keys, std::string_view token, bool outcome_unknown, Deadline deadline);

  // Stores `messages`, read from the store after a miss that took `lease`,
  // as the guest's array, unless a change came since. *stored says whether.
  Status Refill(const GuestKeys& keys, std::string_view lease, const std::vector<Message>& messages,
                Deadline deadline, bool* stored);

  // Begins an erase of the guest (`token`): the array is dropped and not
  // served again until FinishErase. *held: the array existed.
  Status BeginErase(const GuestKeys& keys, std::string_view token, Deadline deadline, bool* held);
  // Finishes the erase `token` (empty: none was begun, Redis is the store).
  Status FinishErase(const GuestKeys& keys, std::string_view token, Deadline deadline, bool* held);

  // Removes the last copy of `entry` from the array, whatever was appended
  // after it (compensation, when Redis is the store). *removed is false when
  // the entry was not there.
  Status Remove(const GuestKeys& keys, std::string_view entry, Deadline deadline, bool* removed);

  // Remembers that the guest's array must be dropped (a change this process
  // could not settle: Redis was unreachable). Until it is, Read drops it
  // first, and refuses to serve when it cannot. False when too many are
  // remembered already (the guest's mark in Redis, if any, still holds).
  bool RememberDrop(const GuestKeys& keys);

  // PING: whether Redis answers now.
  Status Ping(Deadline deadline);

 private:
  // Runs `script` on a pooled connection with the guest's two keys (in a
  // cluster: to the master of their slot, and waits for a replica to hold
  // what a script other than read_ changed).
  Status Script(LuaScript& script, const GuestKeys& keys, const std::vector<std::string_view>& args,
                Deadline deadline, ReplyPtr* reply);
  // WAIT 1 replica_wait on `lease`, after `script` changed `keys`.
  Status WaitForReplica(RedisPool::Lease& lease, const GuestKeys& keys);
  // An error reply as a Status naming the key and what was being done.
  Status Refused(std::string_view what, const std::string& key, const ReplyPtr& reply) const;
  // Drops the array of `keys` if RememberDrop asked for it.
  Status DropRemembered(const GuestKeys& keys, Deadline deadline);

  const ChatStoreOptions options_;
  const std::string ttl_text_;
  const std::string change_lifetime_text_;
  const std::string keep_text_;  // the version record's TTL: at least ttl and a change's lifetime
  const std::string where_;                // "Redis at host:port" or "Redis Cluster (seeds ...)"
  const std::string replica_wait_text_;    // WAIT's timeout
  std::unique_ptr<RedisPool> pool_;        // one Redis: null in a cluster
  std::unique_ptr<RedisCluster> cluster_;  // a cluster: null for one Redis
  LuaScript read_;
  LuaScript prepare_;
  LuaScript apply_;
  LuaScript abandon_;
  LuaScript refill_;
  LuaScript begin_erase_;
  LuaScript finish_erase_;
  LuaScript remove_;
  LuaScript drop_;
  std::mutex drops_mu_;
  std::unordered_set<std::string> drops_;  // array keys; guarded by drops_mu_
};

}  // namespace stowage::redis
