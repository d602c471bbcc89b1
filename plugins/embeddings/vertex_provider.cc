#include "vertex_provider.h"

#include <boost/json.hpp>
#include <cstdlib>
#include <stdexcept>

#include "provider_answer.h"

namespace stowage::embeddings {
namespace {

Url ParseSetting(const std::string& text, const std::string& key) {
  std::string error;
  std::optional<Url> url = ParseUrl(text, &error);
  if (!url) throw std::invalid_argument("stage config `" + key + "`: " + error);
  return *url;
}

std::string StripSlash(std::string text) {
  while (!text.empty() && text.back() == '/') text.pop_back();
  return text;
}

}  // namespace

VertexProvider::VertexProvider(VertexSettings settings)
    : settings_(std::move(settings)), client_(settings_.timeouts) {
  if (settings_.project.empty()) {
    throw std::invalid_argument(
        "provider \"vertex\" needs `project`: set it to the Google Cloud project id in the stage's config");
  }
  if (settings_.location.empty())
    throw std::invalid_argument("provider \"vertex\" needs a non-empty `location`");
  if (settings_.model.empty()) settings_.model = "multimodalembedding@001";
  if (settings_.endpoint.empty())
    settings_.endpoint = "https://" + settings_.location + "-aiplatform.googleapis.com";
  // The endpoint alone first: its errors then quote it as written (masked
  // from "://" to the last '@', which the model's path below holds).
  ParseSetting(StripSlash(settings_.endpoint), "endpoint");
  url_ = ParseSetting(StripSlash(settings_.endpoint) + "/v1/projects/" + settings_.project + "/locations/" +
                          settings_.location + "/publishers/google/models/" + settings_.model + ":predict",
                      "endpoint");
}

Status VertexProvider::embed(std::string_view text, Deadline deadline, std::vector<float>* out) {
  out->clear();
  const char* token = std::getenv(settings_.token_env.c_str());
  if (token == nullptr || *token == '\0') {
    return Status::Unavailable(
        "environment variable " + settings_.token_env + " holds no access token for " + url_.text +
        "; set it (e.g. from `gcloud auth print-access-token`) in stowaged's environment, "
        "or name another variable with `token_env`");
  }
  boost::json::object instance;
  instance["text"] = text;
  boost::json::object body;
  body["instances"] = boost::json::array{instance};
  std::string answer;
  Status status = client_.PostJson(url_, {{"Authorization", std::string("Bearer ") + token}},
                                   boost::json::serialize(body), deadline, &answer);
  if (!status.ok()) return status;
  return ExtractVector(answer, {std::string("predictions"), std::size_t{0}, std::string("textEmbedding")},
                       settings_.dimensions, url_.text, out);
}

}  // namespace stowage::embeddings
