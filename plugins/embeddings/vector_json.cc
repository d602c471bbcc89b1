#include "vector_json.h"

#include <boost/json.hpp>
#include <charconv>
#include <cmath>

namespace stowage::embeddings {
namespace {

// The longest shortest form of a float is 15 characters (a sign, 9 digits,
// the point and an exponent such as "e-38"); plus the comma after it.
constexpr std::size_t kMaxFloatChars = 16;

}  // namespace

std::string VectorToJson(const std::vector<float>& vector) {
  // Written in place into one buffer sized for the worst case, then cut to
  // what was used: no temporary, no stream, no locale.
  std::string out(vector.size() * kMaxFloatChars + 2, '\0');
  char* const begin = out.data();
  char* const end = begin + out.size();
  char* cursor = begin;
  *cursor++ = '[';
  for (std::size_t i = 0; i < vector.size(); ++i) {
    if (i > 0) *cursor++ = ',';
    const float value = vector[i];
    // Zero (and -0) is the most common value of a sparse vector: one byte.
    // Non-finite values have no JSON form and are written as 0 too.
    if (value == 0.0f || !std::isfinite(value)) {
      *cursor++ = '0';
      continue;
    }
    // The shortest text that reads back as exactly this float.
    auto [next, error] = std::to_chars(cursor, end, value);
    if (error != std::errc()) {
      *cursor++ = '0';  // cannot happen: the buffer holds the longest form
    } else {
      cursor = next;
    }
  }
  *cursor++ = ']';
  out.resize(static_cast<std::size_t>(cursor - begin));
  return out;
}

std::optional<std::vector<float>> VectorFromJsonValue(const boost::json::value& value, std::string* error) {
  const boost::json::array* array = value.if_array();
  if (array == nullptr) {
    *error = std::string("expected a JSON array of numbers, found a JSON ") +
             std::string(boost::json::to_string(value.kind()));
    return std::nullopt;
  }
  std::vector<float> out;
  out.reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    const boost::json::value& item = (*array)[i];
    if (!item.is_number()) {
      *error = "element " + std::to_string(i) + " of the array is a JSON " +
               std::string(boost::json::to_string(item.kind())) + ", not a number";
      return std::nullopt;
    }
    boost::system::error_code ec;
    const double number = item.to_number<double>(ec);
    if (ec) {
      *error = "element " + std::to_string(i) + " of the array is not a number: " + ec.message();
      return std::nullopt;
    }
    out.push_back(static_cast<float>(number));
  }
  return out;
}

std::optional<std::vector<float>> VectorFromJson(std::string_view json, std::string* error) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(json, ec);
  if (ec) {
    *error = "not valid JSON: " + ec.message();
    return std::nullopt;
  }
  return VectorFromJsonValue(value, error);
}

}  // namespace stowage::embeddings
