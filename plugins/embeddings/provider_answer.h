// Reading the vector out of an HTTP embedding provider's JSON answer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "stowage/status.h"

namespace stowage::embeddings {

// A step into a JSON document: an object's key or an array's index.
using JsonStep = std::variant<std::string, std::size_t>;

// Finds the array of numbers at `path` in `answer` (e.g. predictions, 0,
// textEmbedding) and puts it in `*out`. Fails with kUnavailable naming `url`
// and what is wrong: not JSON, no such field, not an array of numbers, an
// empty vector, or one of another size than `dimensions`.
Status ExtractVector(std::string_view answer, const std::vector<JsonStep>& path, std::size_t dimensions,
                     const std::string& url, std::vector<float>* out);

// "predictions[0].textEmbedding" for messages.
std::string PathText(const std::vector<JsonStep>& path);

}  // namespace stowage::embeddings
