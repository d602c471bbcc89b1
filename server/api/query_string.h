// The query string of a request target, decoded.
#pragma once

#include <charconv>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace stowage::api {

// Decodes "q=hello+world&k=5" into {"k":"5","q":"hello world"}: '+' is a
// space, %XX a byte and any other byte itself (Boost.URL splits and
// decodes). Returns nullopt for a malformed escape. A repeated name keeps its
// first value; empty items ("a=1&&b=2") are skipped.
std::optional<std::map<std::string, std::string>> ParseQueryString(std::string_view query);

// A parameter's name or value as an error message quotes it: at most 64
// bytes, then "...".
std::string ShownParameter(const std::string& value);

// Parses all of `text` as a decimal whole number of type T ("42"; no sign
// for an unsigned T, no spaces, no fraction); false when it is not one or
// does not fit in T.
template <typename T>
bool ParseWholeNumber(std::string_view text, T* out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

}  // namespace stowage::api
