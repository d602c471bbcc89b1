#include "idempotency/idempotency_cache.h"

#include "idempotency/fingerprint.h"

namespace stowage::idempotency {

IdempotencyCache::IdempotencyCache(std::chrono::seconds ttl, std::size_t max_entries)
    : ttl_(ttl), max_entries_(max_entries == 0 ? 1 : max_entries) {}

void IdempotencyCache::EvictLocked(Clock::time_point now) {
  // order_ runs oldest first, so the walk stops at the first entry that is
  // neither expired nor needed to get back under capacity. Entries whose
  // request still runs are kept.
  for (auto it = order_.begin(); it != order_.end();) {
    auto entry = entries_.find(*it);
    bool expired = entry->second.expires <= now;
    bool over = entries_.size() > max_entries_;
    if (!expired && !over) break;
    if (!entry->second.done) {
      ++it;
      continue;
    }
    entries_.erase(entry);
    it = order_.erase(it);
  }
}

IdempotencyCache::Lookup IdempotencyCache::Begin(const std::string& key, std::string_view request,
                                                 Clock::time_point wait_until) {
  const std::uint64_t hash = RequestHash(request);
  std::unique_lock lock(mu_);
  EvictLocked(Clock::now());
  while (true) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      order_.push_back(key);
      Entry entry;
      entry.request_hash = hash;
      entry.expires = Clock::now() + ttl_;
      entry.order = std::prev(order_.end());
      entries_.emplace(key, std::move(entry));
      return {Verdict::kNew, 0, {}};
    }
    Entry& entry = it->second;
    if (entry.request_hash != hash) return {Verdict::kConflict, 0, {}};
    if (entry.done) return {Verdict::kReplay, entry.status, entry.body};
    if (finished_.wait_until(lock, wait_until) == std::cv_status::timeout) {
      auto again = entries_.find(key);
      if (again != entries_.end() && !again->second.done) return {Verdict::kBusy, 0, {}};
    }
  }
}

void IdempotencyCache::Complete(const std::string& key, int status, std::string body) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  it->second.done = true;
  it->second.status = status;
  it->second.body = std::move(body);
  it->second.expires = Clock::now() + ttl_;
  order_.splice(order_.end(), order_, it->second.order);
  finished_.notify_all();
}

void IdempotencyCache::Abandon(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_.erase(it->second.order);
  entries_.erase(it);
  finished_.notify_all();
}

std::size_t IdempotencyCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace stowage::idempotency
