#include "traffic_window.h"

#include <utility>

namespace stowage::metrics {

double TrafficCounts::average_response_ms() const noexcept {
  if (total_requests <= 0) return 0;
  return static_cast<double>(total_elapsed.count()) / 1000.0 / static_cast<double>(total_requests);
}

void TrafficCounts::merge(const TrafficCounts& other, std::size_t max_users) {
  for (const auto& [user_id, user] : other.reads) {
    auto mine = reads.find(user_id);
    if (mine == reads.end()) {
      if (reads.size() >= max_users) {
        unattributed_reads += user.hits + user.misses;
        continue;
      }
      mine = reads.emplace(user_id, UserReads{}).first;
    }
    mine->second.hits += user.hits;
    mine->second.misses += user.misses;
  }
  unattributed_reads += other.unattributed_reads;
  cache_hits += other.cache_hits;
  cache_misses += other.cache_misses;
  total_requests += other.total_requests;
  total_elapsed += other.total_elapsed;
}

void TrafficWindow::add_read(const std::string& user_id, bool cache_hit, std::chrono::microseconds elapsed) {
  std::lock_guard lock(mu_);
  auto user = counts_.reads.find(user_id);
  if (user == counts_.reads.end() && counts_.reads.size() < max_users_)
    user = counts_.reads.emplace(user_id, UserReads{}).first;
  if (user != counts_.reads.end()) {
    (cache_hit ? user->second.hits : user->second.misses) += 1;
  } else {
    counts_.unattributed_reads += 1;
  }
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
  counts_.merge(counts, max_users_);
}

}  // namespace stowage::metrics
