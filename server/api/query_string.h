// The query string of a request target, decoded.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::api {

// Decodes "q=hello+world&k=5" into {"k":"5","q":"hello world"}: '+' is a
// space and %XX a byte. Returns nullopt for a malformed escape. A repeated
// name keeps its first value.
std::optional<std::map<std::string, std::string>> ParseQueryString(std::string_view query);

}  // namespace stowage::api
