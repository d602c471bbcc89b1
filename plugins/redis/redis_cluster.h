// RedisCluster: the nodes of one Redis Cluster, and which of them serves a
// key: a pool of connections per node, the slot map learned from the
// cluster (CLUSTER SLOTS) and corrected by its redirections.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cluster_slot.h"
#include "redis_pool.h"
#include "redis_url.h"
#include "stowage/context.h"
#include "stowage/status.h"

namespace stowage::redis {

// What RedisCluster::Run tells the operation it runs on a node.
struct ClusterCall {
  // The slot is being moved to this node (an ASK redirection): every command
  // that names a key must be preceded by ASKING on the same connection.
  bool asking = false;
  // The node had at least one healthy replica at the last look at the
  // cluster: a WAIT for one replica can be answered.
  bool replicated = false;
};

// Thread-safe. Connects lazily, as RedisPool does: constructing it touches
// no network, and a cluster that is down stops no one from starting.
//
// A key's commands go to the master of its slot (cluster_slot.h) as the
// last slot map says. The map is learned with CLUSTER SLOTS from any node
// that answers (the seeds first, then every node seen since), at the first
// call, by one call a second (so replicas that joined since are known), and
// again:
//   - on MOVED (the slot was moved, or its master failed over): the command
//     is sent again to the node named, and the whole map is learned again;
//   - when the slot's master cannot be reached (killed, its host down): the
//     map is learned from another node, and if the slot has a new master
//     (a replica was promoted) the command is sent there; until the cluster
//     promotes one, calls for that slot fail as Unavailable, fast;
//   - on CLUSTERDOWN, after a short pause.
// ASK (a slot half-way through a move, the key already gone from the
// source) sends that one command to the node named, preceded by ASKING,
// without changing the map. TRYAGAIN (our scripts name two keys: during a
// move, a guest whose keys are on neither side yet, a new one, cannot be
// written until the move ends) is retried every 20 ms. Every wait ends by
// the call's deadline. The map is learned at most once per
// 100 ms, however many calls fail at once.
class RedisCluster {
 public:
  // Runs a key's commands on a connection to the node serving its slot.
  // Returns the reply the cluster checks for redirections (an error reply
  // is still an ok Status). Run may call it several times, on different
  // nodes, but only after it was redirected before doing anything.
  using Operation = std::function<Status(RedisPool::Lease& lease, const ClusterCall& call, ReplyPtr* reply)>;

  // `seeds`: at least one node; their user, password, TLS and db are those of
  // every node. `pool`: the options of each node's pool.
  RedisCluster(std::vector<RedisUrl> seeds, PoolOptions pool);

  // Runs `operation` for `key` on its slot's master, following redirections.
  // Unavailable when the slot's master cannot be reached and no other has
  // taken its place, or no node answers at all.
  Status Run(std::string_view key, Deadline deadline, const Operation& operation, ReplyPtr* reply);

  // Learns the slot map again and PINGs every master: ok when every slot
  // has a master and all of them answer.
  Status Ping(Deadline deadline);

  // "Redis Cluster (seeds h1:p1, h2:p2)", for messages.
  static std::string Describe(const std::vector<RedisUrl>& seeds);
  const std::string& description() const noexcept { return description_; }

 private:
  struct SlotOwner {
    RedisPool* master = nullptr;  // null: no node serves the slot
    bool replicated = false;
  };

  // The pool of node host:port, made on first use. Needs mu_ held.
  RedisPool* PoolLocked(const std::string& host, int port);
  SlotOwner OwnerOf(std::uint16_t slot);
  // Learns the slot map with CLUSTER SLOTS, asking `avoid` (a node that just
  // failed; may be null) last. Unless `force`, does nothing when the map was
  // looked at less than 100 ms ago, and returns how that look went.
  Status Refresh(Deadline deadline, const RedisPool* avoid, bool force);
  // Refresh's work; needs refresh_mu_ held.
  Status RefreshLocked(Deadline deadline, const RedisPool* avoid);
  // Learns the map again when it is older than a second, unless another
  // call is learning it (that call's callers do not wait).
  void RefreshIfOld(Deadline deadline);
  // Reads a CLUSTER SLOTS reply from `asked` into a new map. False if it is
  // not one.
  bool ParseSlots(const redisReply& reply, const RedisPool& asked, std::array<SlotOwner, kClusterSlots>* map);

  const std::vector<RedisUrl> seeds_;
  const PoolOptions pool_options_;
  const std::string description_;

  std::mutex refresh_mu_;  // one Refresh at a time; taken before mu_
  std::chrono::steady_clock::time_point refreshed_at_{};  // guarded by refresh_mu_
  Status refreshed_;  // how the last look went; guarded by refresh_mu_

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<RedisPool>> pools_;  // by host:port; never erased; guarded by mu_
  std::vector<RedisPool*> seed_pools_;                      // guarded by mu_
  std::array<SlotOwner, kClusterSlots> slots_{};            // guarded by mu_
  bool mapped_ = false;                                     // guarded by mu_: slots_ was learned once
};

}  // namespace stowage::redis
