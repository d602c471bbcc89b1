// VertexProvider: Vertex AI's predict API for an embedding model, e.g.
// multimodalembedding@001 (1408 dimensions).
//
//   POST {endpoint}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict
//   Authorization: Bearer <the value of environment variable token_env>
//   {"instances":[{"text":"..."}]}
// answers {"predictions":[{"textEmbedding":[...]}], ...}.
#pragma once

#include <string>

#include "embedding_provider.h"
#include "http_client.h"

namespace stowage::embeddings {

struct VertexSettings {
  std::string project;  // required
  std::string location = "us-central1";
  std::string model = "multimodalembedding@001";
  std::string endpoint;  // default https://{location}-aiplatform.googleapis.com
  std::string token_env = "GOOGLE_ACCESS_TOKEN";
  std::size_t dimensions = 1408;
  HttpTimeouts timeouts;
};

class VertexProvider final : public EmbeddingProvider {
 public:
  // Throws std::invalid_argument naming the config key when a setting is
  // missing or malformed.
  explicit VertexProvider(VertexSettings settings);

  const std::string& model() const noexcept override { return settings_.model; }
  std::size_t dimensions() const noexcept override { return settings_.dimensions; }
  std::string describe() const override { return "vertex at " + url_.text; }
  // Reads the token from the environment on every call, so a refreshed
  // token is picked up; an unset one is kUnavailable naming the variable.
  Status embed(std::string_view text, Deadline deadline, std::vector<float>* out) override;

 private:
  VertexSettings settings_;
  Url url_;
  HttpClient client_;
};

}  // namespace stowage::embeddings
