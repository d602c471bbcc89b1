// TrafficWindow: the requests observed since the last flush, counted in
// memory so that observing a request never touches the database.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace stowage::metrics {

// A user's reads not yet written to usage_metrics.
struct UserReads {
  std::int64_t hits = 0;
  std::int64_t misses = 0;

  friend bool operator==(const UserReads&, const UserReads&) = default;
};

// The counts of one window: what one flush writes.
struct TrafficCounts {
  // Reads per user id (a read served by the cache is a hit).
  std::map<std::string, UserReads> reads;
  // Reads and writes of every user: a write is always a miss.
  std::int64_t cache_hits = 0;
  std::int64_t cache_misses = 0;
  std::int64_t total_requests = 0;
  std::chrono::microseconds total_elapsed{0};
  // Reads counted above but not in `reads`: their user came when `reads`
  // already held the window's most users.
  std::int64_t unattributed_reads = 0;

  bool empty() const noexcept { return total_requests == 0 && reads.empty(); }
  // The mean time of the window's requests, in milliseconds; 0 when empty.
  double average_response_ms() const noexcept;
  // Adds `other` to these counts; `reads` grows to `max_users` users at
  // most, the reads of the others become unattributed.
  void merge(const TrafficCounts& other, std::size_t max_users);
};

// Thread-safe. Every method holds the lock only to update a few counters.
// Memory is bounded: a window keeps the reads of `max_users` users at most
// (a flood of reads of distinct guests, or PostgreSQL down for long while
// restore() keeps the counts, cannot grow it further); the reads of the
// others are counted in the totals and in unattributed_reads.
class TrafficWindow {
 public:
  static constexpr std::size_t kDefaultMaxUsers = 100000;
  explicit TrafficWindow(std::size_t max_users = kDefaultMaxUsers) : max_users_(max_users) {}

  // A read of `user_id`, served by the cache or not, that took `elapsed`.
  void add_read(const std::string& user_id, bool cache_hit, std::chrono::microseconds elapsed);
  // A write (always a cache miss) that took `elapsed`.
  void add_write(std::chrono::microseconds elapsed);

  // Returns the counts so far and starts a new window.
  TrafficCounts take();
  // Puts back counts that could not be flushed, so the next flush writes them.
  void restore(const TrafficCounts& counts);

 private:
  const std::size_t max_users_;
  std::mutex mu_;
  TrafficCounts counts_;
};

}  // namespace stowage::metrics
