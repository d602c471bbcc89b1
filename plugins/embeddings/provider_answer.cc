#include "provider_answer.h"

#include <boost/json.hpp>

#include "vector_json.h"

namespace stowage::embeddings {

std::string PathText(const std::vector<JsonStep>& path) {
  std::string out;
  for (const JsonStep& step : path) {
    if (const std::string* key = std::get_if<std::string>(&step)) {
      out += (out.empty() ? "" : ".") + *key;
    } else {
      out += "[" + std::to_string(std::get<std::size_t>(step)) + "]";
    }
  }
  return out;
}

Status ExtractVector(std::string_view answer, const std::vector<JsonStep>& path, std::size_t dimensions,
                     const std::string& url, std::vector<float>* out) {
  out->clear();
  const std::string where = PathText(path);
  boost::system::error_code ec;
  boost::json::value document = boost::json::parse(answer, ec);
  if (ec) {
    return Status::Unavailable("the answer of " + url + " is not valid JSON (" + ec.message() +
                               "); check that the URL points at the provider's API");
  }
  const boost::json::value* node = &document;
  std::string walked;
  for (const JsonStep& step : path) {
    if (const std::string* key = std::get_if<std::string>(&step)) {
      const boost::json::object* object = node->if_object();
      const boost::json::value* next = object ? object->if_contains(*key) : nullptr;
      if (next == nullptr) {
        return Status::Unavailable("the answer of " + url + " has no " + where + " (missing '" + *key + "'" +
                                   (walked.empty() ? "" : " in " + walked) +
                                   "); check that the URL and the model are right");
      }
      node = next;
      walked += (walked.empty() ? "" : ".") + *key;
    } else {
      const std::size_t index = std::get<std::size_t>(step);
      const boost::json::array* array = node->if_array();
      if (array == nullptr || index >= array->size()) {
        return Status::Unavailable("the answer of " + url + " has no " + where + " (" +
                                   (walked.empty() ? "the document" : walked) + " is " +
                                   (array ? "an empty array" : "not an array") + ")");
      }
      node = &(*array)[index];
      walked += "[" + std::to_string(index) + "]";
    }
  }
  std::string error;
  std::optional<std::vector<float>> vector = VectorFromJsonValue(*node, &error);
  if (!vector) return Status::Unavailable("the answer of " + url + " has a bad " + where + ": " + error);
  if (vector->empty()) {
    return Status::Unavailable("the answer of " + url + " has an empty " + where +
                               ": the provider gave no embedding for the text");
  }
  if (vector->size() != dimensions) {
    return Status::Unavailable("the answer of " + url + " has a vector of " + std::to_string(vector->size()) +
                               " dimensions, but the stage expects " + std::to_string(dimensions) +
                               "; set the stage's `dimensions` to the model's size (" +
                               std::to_string(vector->size()) + ")");
  }
  *out = std::move(*vector);
  return Status::Ok();
}

}  // namespace stowage::embeddings
