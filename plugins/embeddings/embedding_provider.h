// EmbeddingProvider: turns a text into a vector of floats.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/context.h"
#include "stowage/status.h"

namespace stowage::embeddings {

// One embedding model. Implementations are thread-safe: the stage calls
// embed() from several requests at once.
class EmbeddingProvider {
 public:
  virtual ~EmbeddingProvider() = default;

  // The name stored in cache_embeddings.embedding_model, e.g.
  // "stowage-hash-v1" or "multimodalembedding@001".
  virtual const std::string& model() const noexcept = 0;
  // The length of every vector embed() returns.
  virtual std::size_t dimensions() const noexcept = 0;
  // For log lines: the provider and where it answers, e.g.
  // "vertex at https://us-central1-aiplatform.googleapis.com" (never a token).
  virtual std::string describe() const = 0;

  // Embeds `text` into `*out` (exactly dimensions() values), finishing by
  // `deadline`. On failure `*out` is left empty and the Status says what
  // failed: kUnavailable when the provider cannot be reached or refuses,
  // kDeadlineExceeded on a timeout, kInternal for an answer that is not an
  // embedding of the expected size.
  virtual Status embed(std::string_view text, Deadline deadline, std::vector<float>* out) = 0;
};

}  // namespace stowage::embeddings
