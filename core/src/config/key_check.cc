#include "config/key_check.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <sstream>
#include <system_error>
#include <type_traits>

namespace stowage::config {

namespace {

using std::chrono::milliseconds;

// Optimal string alignment distance: insertions, deletions, substitutions and
// swaps of two adjacent characters each cost one.
std::size_t EditDistance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string Lowercase(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

// A number of the whole text, with an optional leading '+'.
template <typename T>
std::optional<T> Spells(std::string_view text) {
  T value{};
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (begin != end && *begin == '+') ++begin;
  if (begin == end) return std::nullopt;
  std::from_chars_result result;
  if constexpr (std::is_floating_point_v<T>) {
    result = std::from_chars(begin, end, value, std::chars_format::general);
  } else {
    result = std::from_chars(begin, end, value);
  }
  if (result.ec != std::errc() || result.ptr != end) return std::nullopt;
  return value;
}

std::optional<bool> SpellsBoolean(std::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return std::nullopt;
}

// "250ms", "90s", "30m", "24h", "7d": the largest unit that divides it.
std::string FormatDuration(milliseconds d) {
  const std::int64_t ms = d.count();
  struct Unit {
    std::int64_t ms;
    const char* name;
  };
  for (Unit unit : {Unit{86400000, "d"}, Unit{3600000, "h"}, Unit{60000, "m"}, Unit{1000, "s"}})
    if (ms != 0 && ms % unit.ms == 0) return std::to_string(ms / unit.ms) + unit.name;
  return std::to_string(ms) + "ms";
}

constexpr std::int64_t kMaxDurationMs = std::numeric_limits<std::int64_t>::max() / 1000000;

// A duration written as an integer of seconds or as digits and a unit.
std::optional<milliseconds> SpellsDuration(const ConfigValue& value) {
  if (const auto* ms = std::get_if<milliseconds>(&value)) return *ms;
  if (const auto* seconds = std::get_if<std::int64_t>(&value)) {
    if (*seconds < 0 || *seconds > kMaxDurationMs / 1000) return std::nullopt;
    return milliseconds(*seconds * 1000);
  }
  const auto* text = std::get_if<std::string>(&value);
  if (!text) return std::nullopt;
  std::int64_t amount = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), amount);
  if (error != std::errc() || end == text->data() || amount < 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text->data() + text->size() - end));
  const std::int64_t scale = unit == "ms" ? 1
                             : unit == "s" ? 1000
                             : unit == "m" ? 60000
                             : unit == "h" ? 3600000
                             : unit == "d" ? 86400000
                                           : 0;
  if (scale == 0 || amount > kMaxDurationMs / scale) return std::nullopt;
  return milliseconds(amount * scale);
}

const char* Article(ConfigType type) {
  return type == ConfigType::kInteger ? "an" : "a";
}

// The value as a bound is written in a message.
std::string Shown(const ConfigValue& value) {
  if (const auto* d = std::get_if<milliseconds>(&value)) return FormatDuration(*d);
  std::string text = DescribeValue(value);
  return text.substr(text.find(' ') + 1);
}

// Converts `value` to the type of `key`; nullopt when it is of another type.
std::optional<ConfigValue> Convert(const ConfigValue& value, ConfigType type) {
  if (value.index() == ConfigValueIndex(type) && type != ConfigType::kDuration) return value;
  const std::string* text = std::get_if<std::string>(&value);
  switch (type) {
    case ConfigType::kString:
    case ConfigType::kPath:
      break;
    case ConfigType::kInteger:
      if (text)
        if (auto v = Spells<std::int64_t>(*text)) return ConfigValue{*v};
      break;
    case ConfigType::kFloat:
      if (const auto* i = std::get_if<std::int64_t>(&value)) return ConfigValue{static_cast<double>(*i)};
      if (text)
        if (auto v = Spells<double>(*text)) return ConfigValue{*v};
      break;
    case ConfigType::kBoolean:
      if (text)
        if (auto v = SpellsBoolean(*text)) return ConfigValue{*v};
      break;
    case ConfigType::kDuration:
      if (auto v = SpellsDuration(value)) return ConfigValue{*v};
      break;
  }
  return std::nullopt;
}

// -1, 0 or 1 as a is below, equal to or above b (both of one alternative).
int Compare(const ConfigValue& a, const ConfigValue& b) {
  return std::visit(
      [&b](const auto& x) -> int {
        using T = std::decay_t<decltype(x)>;
        const T* y = std::get_if<T>(&b);
        if (!y) return 0;  // a bound of another type than the key: a schema bug, not the operator's
        return x < *y ? -1 : (*y < x ? 1 : 0);
      },
      a);
}

}  // namespace

std::string Quote(std::string_view text) {
  constexpr std::size_t kMaxShown = 80;
  // A long text is cut before a UTF-8 character, not inside one: the message
  // may be sent as JSON (POST /v1/admin/reload).
  std::size_t shown = std::min(text.size(), kMaxShown);
  while (shown > 0 && shown < text.size() && (static_cast<unsigned char>(text[shown]) & 0xC0) == 0x80)
    --shown;
  std::string out = "\"";
  for (std::size_t i = 0; i < shown; ++i) {
    char c = text[i];
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  if (text.size() > shown) out += "...";
  return out + "\"";
}

std::string JoinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& key : keys) out += (out.empty() ? "" : ", ") + key;
  return out;
}

std::string SuggestKey(const std::string& unknown, const std::vector<std::string>& known) {
  const std::string lower = Lowercase(unknown);
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& candidate : known) {
    // A typo is at most about a third of the word: 1 edit for short keys, up to 3 for long ones.
    const std::size_t allowed = std::clamp<std::size_t>(candidate.size() / 3, 1, 3);
    const std::size_t distance = EditDistance(lower, Lowercase(candidate));
    if (distance <= allowed && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string UnknownKeyMessage(const std::string& key, const std::vector<std::string>& known, bool always_list) {
  std::string suggestion = SuggestKey(key, known);
  if (known.empty()) return "unknown key; this table takes no keys, remove it";
  if (suggestion.empty()) return "unknown key; valid keys: " + JoinKeys(known);
  std::string message = "unknown key; did you mean '" + suggestion + "'?";
  if (always_list) message += " (valid keys: " + JoinKeys(known) + ")";
  return message;
}

std::string NotAllowedMessage(const std::string& value, const std::vector<std::string>& allowed) {
  std::string message = "expected one of " + JoinKeys(allowed) + ", got " + Quote(value);
  std::string suggestion = SuggestKey(value, allowed);
  if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
  return message;
}

std::string DescribeValue(const ConfigValue& value, bool secret) {
  static const char* const kNames[] = {"string", "integer", "float", "boolean", "duration"};
  std::string out = kNames[value.index()];
  if (secret) return out + " (value hidden: the key is secret)";
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out += " " + Quote(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? " true" : " false";
        } else if constexpr (std::is_same_v<T, milliseconds>) {
          out += " " + FormatDuration(v);
        } else {
          std::ostringstream text;
          text << v;
          out += " " + text.str();
        }
      },
      value);
  return out;
}

std::optional<ConfigValue> CheckValue(const ConfigValue& value, const ConfigKey& key,
                                      const std::filesystem::path& folder, std::string* error) {
  std::optional<ConfigValue> converted = Convert(value, key.type);
  if (!converted) {
    if (key.type == ConfigType::kDuration) {
      *error = "invalid duration " + (key.secret ? DescribeValue(value, true) : Shown(value)) +
               "; write seconds as an integer, or a string such as \"250ms\", \"90s\", \"30m\", \"24h\" or \"7d\"";
    } else {
      *error = std::string("expected ") + Article(key.type) + " " + ConfigTypeName(key.type) + ", got " +
               DescribeValue(value, key.secret);
    }
    return std::nullopt;
  }
  if (key.type == ConfigType::kPath) {
    const std::string& text = std::get<std::string>(*converted);
    std::filesystem::path path(text);
    if (!text.empty() && path.is_relative()) converted = (folder / path).lexically_normal().string();
  }
  const bool below = key.min && Compare(*converted, *key.min) < 0;
  const bool above = key.max && Compare(*converted, *key.max) > 0;
  if (below || above) {
    const std::string got = key.secret ? "a value out of range (hidden: the key is secret)" : Shown(*converted);
    // A maximum at the limit of the setting's type (2^31 - 1 and beyond) is
    // no advice to an operator who wrote too little.
    const auto* max_integer = key.max ? std::get_if<std::int64_t>(&*key.max) : nullptr;
    const bool technical_max = max_integer && *max_integer >= std::numeric_limits<std::int32_t>::max();
    if (key.min && key.max && !(below && technical_max)) {
      *error = "must be from " + Shown(*key.min) + " to " + Shown(*key.max) + ", got " + got;
    } else if (below) {
      *error = "must be at least " + Shown(*key.min) + ", got " + got;
    } else {
      *error = "must be at most " + Shown(*key.max) + ", got " + got;
    }
    return std::nullopt;
  }
  if (!key.allowed.empty()) {
    const std::string& text = std::get<std::string>(*converted);
    if (std::find(key.allowed.begin(), key.allowed.end(), text) == key.allowed.end()) {
      *error = NotAllowedMessage(text, key.allowed);
      return std::nullopt;
    }
  }
  return converted;
}

}  // namespace stowage::config
