// Cosine similarity and choosing the best matches.
#pragma once

#include <cstddef>
#include <vector>

namespace stowage::embeddings {

// The cosine of the angle between `a` and `b`: 1 for the same direction, 0
// when unrelated. 0 when the sizes differ or either vector is all zeros.
double CosineSimilarity(const std::vector<float>& a, const std::vector<float>& b);

// A candidate of a search: its position among the rows read, and its score.
struct Scored {
  std::size_t index = 0;
  double score = 0;
};

// The `k` best of `candidates`: highest score first, ties broken by the
// lower index (the older message), so the order is deterministic.
std::vector<Scored> TopK(std::vector<Scored> candidates, std::size_t k);

}  // namespace stowage::embeddings
