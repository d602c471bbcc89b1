#include "redis_cluster.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <thread>

namespace stowage::redis {
namespace {

using std::chrono::milliseconds;

// Most times one call is redirected (MOVED, ASK) or sent to a replica
// just promoted before it gives up.
constexpr int kMostAttempts = 16;
// The slot map is learned at most this often.
constexpr milliseconds kRefreshInterval(100);
// A map older than this is learned again by the next call that finds no
// other call learning it: replicas that joined since (a killed master back
// as a replica) are then waited for, and moves are found before a MOVED.
constexpr milliseconds kMapMaxAge(1000);
// Pauses before retrying TRYAGAIN and CLUSTERDOWN.
constexpr milliseconds kTryAgainPause(20);
constexpr milliseconds kClusterDownPause(100);

std::string_view Text(const redisReply& reply) {
  return std::string_view(reply.str, reply.len);
}

// A redirection: "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381".
struct Redirection {
  bool ask = false;
  std::string host;
  int port = 0;
};

bool ParseRedirection(std::string_view error, Redirection* out) {
  if (error.substr(0, 6) == "MOVED ") {
    out->ask = false;
  } else if (error.substr(0, 4) == "ASK ") {
    out->ask = true;
  } else {
    return false;
  }
  const std::size_t space = error.find(' ', error.find(' ') + 1);
  if (space == std::string_view::npos) return false;
  const std::string_view endpoint = error.substr(space + 1);
  const std::size_t colon = endpoint.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view port = endpoint.substr(colon + 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out->port);
  if (ec != std::errc() || end != port.data() + port.size() || out->port < 1 || out->port > 65535) return false;
  std::string_view host = endpoint.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  out->host = std::string(host);
  return true;
}

// Sleeps `pause`, or until the deadline if that is sooner; false if the
// deadline has passed by then.
bool PauseWithin(Deadline deadline, milliseconds pause) {
  const milliseconds remaining = deadline.remaining();
  if (remaining <= pause) return false;
  std::this_thread::sleep_for(pause);
  return true;
}

}  // namespace

std::string RedisCluster::Describe(const std::vector<RedisUrl>& seeds) {
  std::string text = "Redis Cluster (seeds ";
  for (std::size_t i = 0; i < seeds.size(); ++i) text += (i == 0 ? "" : ", ") + seeds[i].Address();
  return text + ")";
}

RedisCluster::RedisCluster(std::vector<RedisUrl> seeds, PoolOptions pool)
    : seeds_(std::move(seeds)), pool_options_(std::move(pool)), description_(Describe(seeds_)) {
  std::lock_guard lock(mu_);
  for (const RedisUrl& seed : seeds_) seed_pools_.push_back(PoolLocked(seed.host, seed.port));
}

RedisPool* RedisCluster::PoolLocked(const std::string& host, int port) {
  RedisUrl url = seeds_.front();
  url.host = host;
  url.port = port;
  std::unique_ptr<RedisPool>& pool = pools_[url.Address()];
  if (pool == nullptr) pool = std::make_unique<RedisPool>(url, pool_options_);
  return pool.get();
}

RedisCluster::SlotOwner RedisCluster::OwnerOf(std::uint16_t slot) {
  std::lock_guard lock(mu_);
  return slots_[slot];
}

bool RedisCluster::ParseSlots(const redisReply& reply, const RedisPool& asked,
                              std::array<SlotOwner, kClusterSlots>* map) {
  if (reply.type != REDIS_REPLY_ARRAY) return false;
  map->fill(SlotOwner{});
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < reply.elements; ++i) {
    const redisReply& range = *reply.element[i];
    if (range.type != REDIS_REPLY_ARRAY || range.elements < 3 || range.element[0]->type != REDIS_REPLY_INTEGER ||
        range.element[1]->type != REDIS_REPLY_INTEGER)
      return false;
    const long long first = range.element[0]->integer, last = range.element[1]->integer;
    if (first < 0 || last >= kClusterSlots || first > last) return false;
    const redisReply& master = *range.element[2];
    if (master.type != REDIS_REPLY_ARRAY || master.elements < 2 || master.element[0]->type != REDIS_REPLY_STRING ||
        master.element[1]->type != REDIS_REPLY_INTEGER)
      return false;
    // An empty host is the node that answered; "?" a node whose address is
    // not known yet: its slots stay unserved until the next look.
    std::string host(Text(*master.element[0]));
    if (host == "?") continue;
    if (host.empty()) host = asked.url().host;
    SlotOwner owner;
    owner.master = PoolLocked(host, static_cast<int>(master.element[1]->integer));
    owner.replicated = range.elements > 3;  // the healthy replicas follow the master
    for (long long slot = first; slot <= last; ++slot) (*map)[slot] = owner;
  }
  return true;
}

void RedisCluster::RefreshIfOld(Deadline deadline) {
  std::unique_lock refresh_lock(refresh_mu_, std::try_to_lock);
  if (!refresh_lock.owns_lock()) return;  // another call is learning it now
  if (std::chrono::steady_clock::now() - refreshed_at_ < kMapMaxAge) return;
  (void)RefreshLocked(deadline, nullptr);
}

Status RedisCluster::Refresh(Deadline deadline, const RedisPool* avoid, bool force) {
  std::lock_guard refresh_lock(refresh_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - refreshed_at_ < kRefreshInterval) return refreshed_;
  return RefreshLocked(deadline, avoid);
}

Status RedisCluster::RefreshLocked(Deadline deadline, const RedisPool* avoid) {
  // The seeds, then every node seen since; `avoid` last.
  std::vector<RedisPool*> candidates;
  {
    std::lock_guard lock(mu_);
    candidates = seed_pools_;
    for (const auto& [address, pool] : pools_) {
      if (std::find(candidates.begin(), candidates.end(), pool.get()) == candidates.end())
        candidates.push_back(pool.get());
    }
  }
  std::stable_partition(candidates.begin(), candidates.end(), [avoid](RedisPool* pool) { return pool != avoid; });
  Status last = Status::Unavailable("no node to ask");
  for (RedisPool* pool : candidates) {
    RedisPool::Lease lease;
    ReplyPtr reply;
    Status s = pool->Acquire(deadline, &lease);
    if (s.ok()) s = lease.Command({"CLUSTER", "SLOTS"}, &reply);
    if (s.ok()) {
      auto map = std::make_unique<std::array<SlotOwner, kClusterSlots>>();
      if (!ParseSlots(*reply, *pool, map.get())) {
        s = Status::Unavailable("Redis at " + pool->url().Address() + " answered CLUSTER SLOTS with " +
                                (reply->type == REDIS_REPLY_ERROR ? std::string(Text(*reply))
                                                                  : "something that is not a slot map") +
                                "; is it a Redis Cluster node (cluster-enabled yes)?");
      } else {
        {
          std::lock_guard lock(mu_);
          slots_ = *map;
          mapped_ = true;
        }
        refreshed_at_ = std::chrono::steady_clock::now();
        refreshed_ = Status::Ok();
        return refreshed_;
      }
    }
    if (s.code() == StatusCode::kDeadlineExceeded) return s.WithContext("learning the slot map of " + description_);
    last = s;
  }
  refreshed_at_ = std::chrono::steady_clock::now();
  refreshed_ = last.WithContext("no node of " + description_ + " answered CLUSTER SLOTS; check that the cluster runs "
                          "and that stage[redis].config.url names some of its nodes");
  return refreshed_;
}

Status RedisCluster::Run(std::string_view key, Deadline deadline, const Operation& operation, ReplyPtr* reply) {
  const std::uint16_t slot = KeySlot(key);
  bool mapped;
  {
    std::lock_guard lock(mu_);
    mapped = mapped_;
  }
  if (!mapped) {
    if (Status s = Refresh(deadline, nullptr, /*force=*/false); !s.ok()) return s;
  } else {
    RefreshIfOld(deadline);
  }
  SlotOwner owner = OwnerOf(slot);
  ClusterCall call;
  for (int attempt = 0; attempt < kMostAttempts; ++attempt) {
    if (owner.master == nullptr) {
      if (Status s = Refresh(deadline, nullptr, /*force=*/false); !s.ok()) return s;
      owner = OwnerOf(slot);
      if (owner.master == nullptr)
        return Status::Unavailable("no node of " + description_ + " serves slot " + std::to_string(slot) +
                                   " (key " + std::string(key) +
                                   "); the cluster is not whole: check CLUSTER SLOTS and its nodes' logs");
    }
    call.replicated = owner.replicated;
    RedisPool::Lease lease;
    if (Status s = owner.master->Acquire(deadline, &lease); !s.ok()) {
      if (s.code() == StatusCode::kDeadlineExceeded) return s;
      // The master cannot be reached: learn whether a replica took over.
      RedisPool* failed = owner.master;
      if (Refresh(deadline, failed, /*force=*/false).ok()) {
        owner = OwnerOf(slot);
        if (owner.master != nullptr && owner.master != failed && !call.asking) continue;
      }
      return s.WithContext("slot " + std::to_string(slot) + " of " + description_ +
                           " (key " + std::string(key) + "); until the cluster promotes a replica of " +
                           failed->url().Address() + ", this slot's keys cannot be written");
    }
    if (Status s = operation(lease, call, reply); !s.ok()) return s;
    const redisReply& answer = **reply;
    if (answer.type != REDIS_REPLY_ERROR) return Status::Ok();
    const std::string_view error = Text(answer);
    Redirection redirection;
    if (ParseRedirection(error, &redirection)) {
      RedisPool* target;
      {
        std::lock_guard lock(mu_);
        target = PoolLocked(redirection.host, redirection.port);
        if (!redirection.ask) slots_[slot].master = target;
      }
      if (redirection.ask) {
        owner.master = target;
        call.asking = true;
      } else {
        // Moved for good (resharding, failover): the other slots may have
        // moved too.
        (void)Refresh(deadline, nullptr, /*force=*/false);
        owner = OwnerOf(slot);
        owner.master = target;
        call.asking = false;
      }
      continue;
    }
    const bool try_again = error.substr(0, 8) == "TRYAGAIN", down = error.substr(0, 11) == "CLUSTERDOWN";
    if (try_again || down) {
      // Not a redirection: waits as long as the deadline allows.
      --attempt;
      if (!PauseWithin(deadline, try_again ? kTryAgainPause : kClusterDownPause))
        return Status::Unavailable(
            description_ + " answered '" + std::string(error) + "' for key " + std::string(key) + " (slot " +
            std::to_string(slot) + ") until the request's deadline" +
            (try_again ? ": the slot is being moved and the key is on neither side yet; it is written once the "
                         "move ends"
                       : ": the cluster is not whole; check CLUSTER INFO on its nodes"));
      if (down) {
        (void)Refresh(deadline, nullptr, /*force=*/false);
        owner = OwnerOf(slot);
        call.asking = false;
      }
      continue;
    }
    return Status::Ok();  // any other error reply is the caller's to read
  }
  return Status::Unavailable(description_ + " redirected the command for key " + std::string(key) + " (slot " +
                             std::to_string(slot) + ") " + std::to_string(kMostAttempts) +
                             " times; is a slot being moved back and forth?");
}

Status RedisCluster::Ping(Deadline deadline) {
  if (Status s = Refresh(deadline, nullptr, /*force=*/true); !s.ok()) return s;
  std::set<RedisPool*> masters;
  {
    std::lock_guard lock(mu_);
    for (int slot = 0; slot < kClusterSlots; ++slot) {
      if (slots_[slot].master == nullptr)
        return Status::Unavailable("slot " + std::to_string(slot) + " of " + description_ +
                                   " has no master; the cluster is not whole (a master failed with no replica "
                                   "to promote?): check CLUSTER SLOTS and its nodes' logs");
      masters.insert(slots_[slot].master);
    }
  }
  for (RedisPool* master : masters) {
    RedisPool::Lease lease;
    ReplyPtr reply;
    Status s = master->Acquire(deadline, &lease);
    if (s.ok()) s = lease.Command({"PING"}, &reply);
    if (!s.ok()) return s.WithContext("a master of " + description_);
    if (reply->type == REDIS_REPLY_ERROR)
      return Status::Unavailable("Redis at " + master->url().Address() + " (a master of " + description_ +
                                 ") answered PING with " + std::string(Text(*reply)));
  }
  return Status::Ok();
}

}  // namespace stowage::redis
