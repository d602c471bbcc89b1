// Vectors as JSON arrays of numbers, the form cache_embeddings.embedding
// keeps them in.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::embeddings {

// "[0.012345679,-0.5,0,1e-07,...]": each value in the shortest form that
// reads back as exactly the same float (at most 9 significant digits, in
// plain or exponent notation, whichever is shorter), zeros as `0`, no
// spaces, independent of the locale. Non-finite values are written as 0.
std::string VectorToJson(const std::vector<float>& vector);

// The numbers of a JSON array, or nullopt (with `*error` saying why) when
// `json` is not an array of numbers.
std::optional<std::vector<float>> VectorFromJson(std::string_view json, std::string* error);

// The same for an already parsed value (e.g. a field of a provider's answer).
std::optional<std::vector<float>> VectorFromJsonValue(const boost::json::value& value, std::string* error);

}  // namespace stowage::embeddings
