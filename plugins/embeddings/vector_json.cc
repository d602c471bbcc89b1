#include "vector_json.h"

#include <boost/json.hpp>
#include <charconv>
#include <cmath>

namespace stowage::embeddings {

std::string VectorToJson(const std::vector<float>& vector) {
  std::string out;
  out.reserve(vector.size() * 12 + 2);
  out.push_back('[');
  char buffer[32];
  for (std::size_t i = 0; i < vector.size(); ++i) {
    if (i > 0) out.push_back(',');
    const float value = std::isfinite(vector[i]) ? vector[i] : 0.0f;
    auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general, 6);
    if (error != std::errc()) {
      out.push_back('0');
    } else {
      out.append(buffer, end);
    }
  }
  out.push_back(']');
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
