// Percentiles of a set of request latencies.
#pragma once

#include <cstdint>
#include <vector>

namespace stowage::bench {

struct LatencySummary {
  std::int64_t count = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double p999_ms = 0;
  double max_ms = 0;
};

// Summarizes latencies given in microseconds, in any order (the vector is
// sorted in place). A percentile is the nearest-rank value: the smallest
// latency that at least that share of the requests did not exceed. All
// figures are 0 for an empty set.
LatencySummary Summarize(std::vector<std::uint32_t>* latencies_us);

}  // namespace stowage::bench
