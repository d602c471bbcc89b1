// OpenAiProvider: the OpenAI-compatible embeddings API, as served by OpenAI,
// Ollama, vLLM, TEI and LocalAI.
//
//   POST {base_url}/embeddings
//   Authorization: Bearer <the value of environment variable api_key_env>   (only when it is set)
//   {"model":"...","input":"..."}          (+ "dimensions": N when send_dimensions)
// answers {"data":[{"embedding":[...]}], ...}.
#pragma once

#include <string>

#include "embedding_provider.h"
#include "http_client.h"

namespace stowage::embeddings {

struct OpenAiSettings {
  std::string base_url = "https://api.openai.com/v1";
  std::string model;  // required
  std::string api_key_env = "OPENAI_API_KEY";
  std::size_t dimensions = 1408;
  bool send_dimensions = false;
  HttpTimeouts timeouts;
};

class OpenAiProvider final : public EmbeddingProvider {
 public:
  // Throws std::invalid_argument naming the config key when a setting is
  // missing or malformed.
  explicit OpenAiProvider(OpenAiSettings settings);

  const std::string& model() const noexcept override { return settings_.model; }
  std::size_t dimensions() const noexcept override { return settings_.dimensions; }
  std::string describe() const override { return "openai at " + url_.text; }
  Status embed(std::string_view text, Deadline deadline, std::vector<float>* out) override;

 private:
  OpenAiSettings settings_;
  Url url_;
  HttpClient client_;
};

}  // namespace stowage::embeddings
