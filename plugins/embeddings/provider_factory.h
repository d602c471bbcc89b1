// Choosing and building the embedding provider from the stage's config.
#pragma once

#include <memory>

#include "embedding_provider.h"
#include "stowage/config.h"

namespace stowage::embeddings {

// The provider keys of the stage's config table (all of them, for every
// provider: the keys of a provider not chosen are accepted and unused).
ConfigSchema& AddProviderKeys(ConfigSchema& schema);

// The provider named by `provider` ("builtin", "vertex" or "openai"),
// configured from `config`. Throws std::invalid_argument naming the key
// when the provider is unknown or a setting is missing or out of range.
std::unique_ptr<EmbeddingProvider> MakeProvider(const StageConfig& config);

}  // namespace stowage::embeddings
