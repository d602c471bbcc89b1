#include "openai_provider.h"

#include <boost/json.hpp>
#include <cstdlib>
#include <stdexcept>

#include "provider_answer.h"

namespace stowage::embeddings {

OpenAiProvider::OpenAiProvider(OpenAiSettings settings)
    : settings_(std::move(settings)), client_(settings_.timeouts) {
  if (settings_.model.empty()) {
    throw std::invalid_argument(
        "provider \"openai\" needs `model`: set it to the embedding model's name (e.g. "
        "\"text-embedding-3-small\", or \"nomic-embed-text\" on Ollama) in the stage's config");
  }
  std::string base = settings_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string error;
  std::optional<Url> url = ParseUrl(base + "/embeddings", &error);
  if (!url) throw std::invalid_argument("stage config `base_url`: " + error);
  url_ = *url;
}

Status OpenAiProvider::embed(std::string_view text, Deadline deadline, std::vector<float>* out) {
  out->clear();
  boost::json::object body;
  body["model"] = settings_.model;
  body["input"] = text;
  if (settings_.send_dimensions) body["dimensions"] = static_cast<std::int64_t>(settings_.dimensions);
  HttpHeaders headers;
  // Local servers (Ollama, vLLM) need no key: send one only when it is set.
  if (const char* key = std::getenv(settings_.api_key_env.c_str()); key != nullptr && *key != '\0') {
    headers.emplace_back("Authorization", std::string("Bearer ") + key);
  }
  std::string answer;
  Status status = client_.PostJson(url_, headers, boost::json::serialize(body), deadline, &answer);
  if (!status.ok()) return status;
  return ExtractVector(answer, {std::string("data"), std::size_t{0}, std::string("embedding")},
                       settings_.dimensions, url_.text, out);
}

}  // namespace stowage::embeddings
