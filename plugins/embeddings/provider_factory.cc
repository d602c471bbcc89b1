#include "provider_factory.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "builtin_provider.h"
#include "openai_provider.h"
#include "vertex_provider.h"

namespace stowage::embeddings {
std::size_t DefaultDimensions(std::string_view provider) {
  if (provider == "builtin") return kBuiltinDefaultDimensions;
  if (provider == "vertex") return kVertexDefaultDimensions;
  if (provider == "openai") return kOpenAiDefaultDimensions;
  return 0;
}

ConfigSchema& AddProviderKeys(ConfigSchema& schema) {
  return schema
      .optional(
          "provider", std::string("builtin"),
          "\"builtin\" (offline feature hashing, model stowage-hash-v1), \"vertex\" (Vertex AI predict) or "
          "\"openai\" (OpenAI-compatible /embeddings: OpenAI, Ollama, vLLM, TEI, LocalAI)")
      .one_of({"builtin", "vertex", "openai"})
      .optional("dimensions", std::int64_t{0},
                "the length of every vector (1 to 65536); 0, the default, means the provider's own: 256 for "
                "builtin, 1408 for vertex (multimodalembedding@001) and openai; an HTTP provider's answer of "
                "another size is refused")
      .range(std::int64_t{0}, std::int64_t{kMaxDimensions})
      .optional(
          "connect_timeout_ms", std::int64_t{2000},
          "HTTP providers: how long resolving, connecting and the TLS handshake may take, in milliseconds")
      .range(std::int64_t{1}, std::int64_t{3600000})
      .optional("request_timeout_ms", std::int64_t{10000},
                "HTTP providers: how long one embedding call may take in all, in milliseconds (the stage's "
                "timeout_ms bounds it too)")
      .range(std::int64_t{1}, std::int64_t{3600000})
      .optional("model", std::string(""),
                "vertex: the model (default multimodalembedding@001); openai: the model, required")
      .optional("project", std::string(""), "vertex: the Google Cloud project id, required")
      .optional("location", std::string("us-central1"), "vertex: the region")
      .optional("endpoint", std::string(""),
                "vertex: the API's base URL (default https://{location}-aiplatform.googleapis.com)")
      .optional("token_env", std::string("GOOGLE_ACCESS_TOKEN"),
                "vertex: the environment variable holding the OAuth access token")
      .optional("base_url", std::string("https://api.openai.com/v1"),
                "openai: the API's base URL, e.g. http://localhost:11434/v1 for Ollama")
      .optional("api_key_env", std::string("OPENAI_API_KEY"),
                "openai: the environment variable holding the API key (no Authorization header when unset)")
      .optional("send_dimensions", false,
                "openai: send `dimensions` in the request (models that can shorten)");
}

std::unique_ptr<EmbeddingProvider> MakeProvider(const StageConfig& config) {
  const std::string& provider = config.string("provider");
  const std::int64_t configured = config.integer("dimensions");  // 0..kMaxDimensions: the schema's bounds
  // 0 (the default) is the provider's own size.
  const std::size_t dimensions =
      configured == 0 ? DefaultDimensions(provider) : static_cast<std::size_t>(configured);
  HttpTimeouts timeouts;
  timeouts.connect = std::chrono::milliseconds(config.integer("connect_timeout_ms"));
  timeouts.request = std::chrono::milliseconds(config.integer("request_timeout_ms"));

  if (provider == "builtin") return std::make_unique<BuiltinProvider>(dimensions);
  if (provider == "vertex") {
    VertexSettings settings;
    settings.project = config.string("project");
    settings.location = config.string("location");
    settings.model = config.string("model");
    settings.endpoint = config.string("endpoint");
    settings.token_env = config.string("token_env");
    settings.dimensions = dimensions;
    settings.timeouts = timeouts;
    return std::make_unique<VertexProvider>(std::move(settings));
  }
  if (provider == "openai") {
    OpenAiSettings settings;
    settings.base_url = config.string("base_url");
    settings.model = config.string("model");
    settings.api_key_env = config.string("api_key_env");
    settings.send_dimensions = config.boolean("send_dimensions");
    settings.dimensions = dimensions;
    settings.timeouts = timeouts;
    return std::make_unique<OpenAiProvider>(std::move(settings));
  }
  throw std::invalid_argument("stage config `provider` is \"" + provider +
                              "\"; use \"builtin\", \"vertex\" or \"openai\"");
}

}  // namespace stowage::embeddings
