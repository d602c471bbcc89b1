// Choosing and building the embedding provider from the stage's config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "embedding_provider.h"
#include "stowage/config.h"

namespace stowage::embeddings {

// The vector length of each provider when `dimensions` is left out (or 0).
// builtin: feature hashing into 256 buckets ranks chat-sized messages much
// as 1408 does, for a fifth of the jsonb PostgreSQL parses and stores.
// vertex: the size multimodalembedding@001 answers. openai: models differ,
// so configurations set `dimensions` to the model's size (e.g. 1536 for
// text-embedding-3-small, 768 for nomic-embed-text); 1408 otherwise.
inline constexpr std::size_t kBuiltinDefaultDimensions = 256;
inline constexpr std::size_t kVertexDefaultDimensions = 1408;
inline constexpr std::size_t kOpenAiDefaultDimensions = 1408;
// The largest `dimensions` accepted.
inline constexpr std::int64_t kMaxDimensions = 65536;

// The default vector length of `provider` ("builtin", "vertex", "openai"),
// or 0 for a provider name that is not one of them.
std::size_t DefaultDimensions(std::string_view provider);

// The provider keys of the stage's config table (all of them, for every
// provider: the keys of a provider not chosen are accepted and unused).
ConfigSchema& AddProviderKeys(ConfigSchema& schema);

// The provider named by `provider` ("builtin", "vertex" or "openai"),
// configured from `config`: `dimensions` 0 means DefaultDimensions(provider),
// a value from 1 to kMaxDimensions is used as it is. Throws
// std::invalid_argument naming the key when the provider is unknown or a
// setting is missing or out of range.
std::unique_ptr<EmbeddingProvider> MakeProvider(const StageConfig& config);

}  // namespace stowage::embeddings
