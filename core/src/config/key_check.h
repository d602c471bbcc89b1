// Checking one configured value against the key that declares it: the one
// checker behind every table of pipeline.toml, the host's own ([server],
// [log], [[database]], [[stage]]) and each stage's `config` table.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/config.h"

namespace stowage::config {

// `value` as written (strings have ${VAR} expanded), made a value of `key`:
// converted to its type (a string that spells the type, as ${VAR} leaves it,
// is accepted; an integer is accepted for a float; a duration is an integer
// of seconds or a string such as "250ms", "90s", "30m", "24h", "7d"), a
// path resolved against `folder`, then checked against the key's bounds and
// allowed values. On failure returns nullopt and sets `error` to what is
// wrong and what is allowed, e.g. "must be from 1 to 65535, got 0". A
// secret key's value is never put in the message.
std::optional<ConfigValue> CheckValue(const ConfigValue& value, const ConfigKey& key,
                                      const std::filesystem::path& folder, std::string* error);

// "string \"abc\"", "integer 5", "duration 90s"; a secret's value is left out.
std::string DescribeValue(const ConfigValue& value, bool secret = false);

// `text` in double quotes, escaped, cut at 80 bytes (before a UTF-8
// character, never inside one).
std::string Quote(std::string_view text);

// "a, b, c"
std::string JoinKeys(const std::vector<std::string>& keys);

// The known key closest to `unknown` by edit distance, if close enough to be
// a likely typo; empty otherwise.
std::string SuggestKey(const std::string& unknown, const std::vector<std::string>& known);

// "unknown key; did you mean 'x'?" or, with no close key, the list of valid
// keys. `always_list` adds the list even when there is a suggestion.
std::string UnknownKeyMessage(const std::string& key, const std::vector<std::string>& known, bool always_list);

// "expected one of a, b, got \"c\"; did you mean 'b'?"
std::string NotAllowedMessage(const std::string& value, const std::vector<std::string>& allowed);

}  // namespace stowage::config
