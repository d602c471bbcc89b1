// BuiltinProvider: an offline, deterministic embedding by feature hashing.
//
// It is not a neural model: it maps the lower-cased words of a text and the
// character 3-grams of each word into `dimensions` buckets with signed FNV-1a
// hashes, then scales the vector to unit length. Texts sharing words and
// word pieces get close vectors; meaning beyond that is not captured. The
// same text gives the same vector on every machine and in every release
// that keeps the model name "stowage-hash-v1".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "embedding_provider.h"

namespace stowage::embeddings {

inline constexpr std::string_view kBuiltinModel = "stowage-hash-v1";

// The vector of `text` in `dimensions` (>= 1) buckets, unit length. Letters
// A-Z are lower-cased; other bytes, including every non-ASCII character,
// are kept as they are. A text without any letter or digit is hashed whole.
std::vector<float> HashEmbedding(std::string_view text, std::size_t dimensions);

class BuiltinProvider final : public EmbeddingProvider {
 public:
  explicit BuiltinProvider(std::size_t dimensions) : dimensions_(dimensions) {}

  const std::string& model() const noexcept override { return model_; }
  std::size_t dimensions() const noexcept override { return dimensions_; }
  std::string describe() const override { return "builtin (offline feature hashing)"; }
  // Never fails.
  Status embed(std::string_view text, Deadline deadline, std::vector<float>* out) override;

 private:
  const std::string model_{kBuiltinModel};
  const std::size_t dimensions_;
};

}  // namespace stowage::embeddings
