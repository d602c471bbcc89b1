#include "latency_summary.h"

#include <algorithm>
#include <cmath>

namespace stowage::bench {
namespace {

double NearestRankMs(const std::vector<std::uint32_t>& sorted, double fraction) {
  auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1] / 1000.0;
}

}  // namespace

LatencySummary Summarize(std::vector<std::uint32_t>* latencies_us) {
  LatencySummary summary;
  if (latencies_us->empty()) return summary;
  std::sort(latencies_us->begin(), latencies_us->end());
  summary.count = static_cast<std::int64_t>(latencies_us->size());
  summary.p50_ms = NearestRankMs(*latencies_us, 0.50);
  summary.p99_ms = NearestRankMs(*latencies_us, 0.99);
  summary.p999_ms = NearestRankMs(*latencies_us, 0.999);
  summary.max_ms = latencies_us->back() / 1000.0;
  return summary;
}

}  // namespace stowage::bench
