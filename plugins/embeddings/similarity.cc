#include "similarity.h"

#include <algorithm>
#include <cmath>

namespace stowage::embeddings {

double CosineSimilarity(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return 0;
  double dot = 0, norm_a = 0, norm_b = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    norm_a += static_cast<double>(a[i]) * a[i];
    norm_b += static_cast<double>(b[i]) * b[i];
  }
  if (norm_a == 0 || norm_b == 0) return 0;
  return dot / (std::sqrt(norm_a) * std::sqrt(norm_b));
}

std::vector<Scored> TopK(std::vector<Scored> candidates, std::size_t k) {
  auto better = [](const Scored& x, const Scored& y) {
    if (x.score != y.score) return x.score > y.score;
    return x.index < y.index;
  };
  const std::size_t n = std::min(k, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(n), candidates.end(),
                    better);
  candidates.resize(n);
  return candidates;
}

}  // namespace stowage::embeddings
