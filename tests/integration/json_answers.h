// Reading stowaged's JSON answers in integration tests.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace stowage::testing {

// The answer as a JSON object; records a test failure (and gives an empty
// object) when it is not one.
inline boost::json::object ParseObject(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  EXPECT_TRUE(ec || value.is_object()) << "not a JSON object: " << text;
  return !ec && value.is_object() ? value.as_object() : boost::json::object{};
}

// The strings of the array `key` of `answer` (e.g. "kept", "reconfigured");
// empty when it has no such key.
inline std::vector<std::string> NamesIn(const boost::json::object& answer, const char* key) {
  std::vector<std::string> names;
  if (const auto* list = answer.if_contains(key))
    for (const auto& name : list->as_array()) names.emplace_back(name.as_string());
  return names;
}

}  // namespace stowage::testing
