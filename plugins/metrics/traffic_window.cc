#include "traffic_window.h"

#include <utility>

namespace stowage::metrics {

double TrafficCounts::average_response_ms() const noexcept {
  if (total_requests <= 0) return 0;
  return static_cast<double>(total_elapsed.count()) / 1000.0 / static_cast<double>(total_requests);
}

void TrafficCounts::merge(const TrafficCounts& other) {
  for (const auto& [user_id, user] : other.reads) {
    UserReads& mine = reads[user_id];
    mine.hits += user.hits;
    mine.misses += user.misses;
  }
  cache_hits += other.cache_hits;
  cache_misses += other.cache_misses;
  total_requests += other.total_requests;
  total_elapsed += other.total_elapsed;
}

void TrafficWindow::add_read(const std::string& user_id, bool cache_hit, std::chrono::microseconds elapsed) {
  std::lock_guard lock(mu_);
  UserReads& user = counts_.reads[user_id];
  (cache_hit ? user.hits : user.misses) += 1;
  (cache_hit ? counts_.cache_hits : counts_.cache_misses) += 1;
  counts_.total_requests += 1;
  counts_.total_elapsed += elapsed;
}

void TrafficWindow::add_write(std::chrono::microseconds elapsed) {
  std::lock_guard lock(mu_);
  counts_.cache_misses += 1;
  counts_.total_requests += 1;
  counts_.total_elapsed += elapsed;
}

TrafficCounts TrafficWindow::take() {
  std::lock_guard lock(mu_);
  return std::exchange(counts_, TrafficCounts{});
}

void TrafficWindow::restore(const TrafficCounts& counts) {
  std::lock_guard lock(mu_);
  counts_.merge(counts);
}

}  // namespace stowage::metrics
