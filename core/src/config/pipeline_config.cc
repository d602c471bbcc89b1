// pipeline.toml: parsing, environment expansion and validation.
//
// Every check records a ConfigError and goes on, so one run reports every
// problem of the file; errors are returned in file order. Nothing here throws
// to the caller: toml++ parse errors, unreadable files and exceptions from an
// Environment all become ConfigErrors.
#include "config/pipeline_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

#include "database/endpoint.h"

namespace stowage::config {

namespace {

// ---------------------------------------------------------------------------
// Text helpers

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

// "unknown key; did you mean 'x'?" or, with no close key, the list of valid
// keys. `always_list` adds the list even when there is a suggestion.
std::string UnknownKeyMessage(const std::string& key, const std::vector<std::string>& known,
                              bool always_list) {
  std::string suggestion = SuggestKey(key, known);
  if (known.empty()) return "unknown key; this table takes no keys, remove it";
  if (suggestion.empty()) return "unknown key; valid keys: " + JoinKeys(known);
  std::string message = "unknown key; did you mean '" + suggestion + "'?";
  if (always_list) message += " (valid keys: " + JoinKeys(known) + ")";
  return message;
}

// ---------------------------------------------------------------------------
// Scalar conversion of strings left by ${VAR} expansion

std::optional<std::int64_t> SpellsInteger(std::string_view text) {
  std::int64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (begin != end && *begin == '+') ++begin;
  if (begin == end) return std::nullopt;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::optional<double> SpellsFloat(std::string_view text) {
  double value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (begin != end && *begin == '+') ++begin;
  if (begin == end) return std::nullopt;
  auto [ptr, ec] = std::from_chars(begin, end, value, std::chars_format::general);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::optional<bool> SpellsBoolean(std::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return std::nullopt;
}

const char* Article(ConfigType type) {
  return type == ConfigType::kInteger ? "an" : "a";
}

// "string \"abc\"", "integer 5", ... A secret's value is left out.
std::string DescribeValue(const ConfigValue& value, bool secret) {
  static const char* const kNames[] = {"string", "integer", "float", "boolean"};
  std::string out = kNames[value.index()];
  if (secret) return out + " (value hidden: the key is secret)";
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out += " " + Quote(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? " true" : " false";
        } else {
          std::ostringstream text;
          text << v;
          out += " " + text.str();
        }
      },
      value);
  return out;
}

// Converts `value` to `type`: a value of that type as is, an integer where a
// float is declared, a string that spells the type. Sets `error` otherwise.
std::optional<ConfigValue> ConvertTo(const ConfigValue& value, ConfigType type, bool secret,
                                     std::string* error) {
  if (static_cast<ConfigType>(value.index()) == type) return value;
  const std::string* text = std::get_if<std::string>(&value);
  switch (type) {
    case ConfigType::kString:
      break;
    case ConfigType::kInteger:
      if (text)
        if (auto v = SpellsInteger(*text)) return ConfigValue{*v};
      break;
    case ConfigType::kFloat:
      if (const auto* i = std::get_if<std::int64_t>(&value)) return ConfigValue{static_cast<double>(*i)};
      if (text)
        if (auto v = SpellsFloat(*text)) return ConfigValue{*v};
      break;
    case ConfigType::kBoolean:
      if (text)
        if (auto v = SpellsBoolean(*text)) return ConfigValue{*v};
      break;
  }
  *error = std::string("expected ") + Article(type) + " " + ConfigTypeName(type) + ", got " +
           DescribeValue(value, secret);
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// ${VAR} expansion

bool IsVariableStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool IsVariableChar(char c) {
  return IsVariableStart(c) || (c >= '0' && c <= '9');
}

constexpr const char* kExpansionHelp = "write ${NAME} or ${NAME:-default}, and $$ for a literal $";

// Expands ${VAR}, ${VAR:-default} and $$ in `text`. A `$` followed by
// anything else is kept as is. Returns nullopt and appends to `errors` (one
// message per unset variable, or one for a malformed reference).
std::optional<std::string> Expand(std::string_view text, const Environment& env,
                                  std::vector<std::string>* errors) {
  std::string out;
  bool failed = false;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size() || (text[i + 1] != '$' && text[i + 1] != '{')) {
      out += c;
      ++i;
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    const std::size_t start = i;
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      errors->push_back("unterminated " + Quote(text.substr(start)) + ": a ${ has no closing }; " +
                        kExpansionHelp);
      return std::nullopt;
    }
    std::string_view inner = text.substr(i + 2, close - i - 2);
    std::size_t name_end = 0;
    while (name_end < inner.size() && IsVariableChar(inner[name_end])) ++name_end;
    std::string name(inner.substr(0, name_end));
    std::string_view rest = inner.substr(name_end);
    std::optional<std::string_view> fallback;
    if (rest.substr(0, 2) == ":-") fallback = rest.substr(2);
    std::string_view reference = text.substr(start, close - start + 1);
    if (name.empty() || !IsVariableStart(name[0]) || (!rest.empty() && !fallback)) {
      errors->push_back("malformed " + Quote(reference) +
                        ": a variable name is letters, digits and _, not starting with a digit; " +
                        kExpansionHelp);
      return std::nullopt;
    }
    if (fallback && fallback->find("${") != std::string_view::npos) {
      errors->push_back("malformed " + Quote(text.substr(start)) +
                        ": a default cannot contain another ${...}; write the default value itself");
      return std::nullopt;
    }
    std::optional<std::string> value = env(name);
    if (value && !(fallback && value->empty())) {
      out += *value;
    } else if (fallback) {
      out += *fallback;
    } else {
      errors->push_back("environment variable " + name + " is not set; set " + name + " or write ${" + name +
                        ":-default}");
      failed = true;
    }
    i = close + 1;
  }
  if (failed) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------
// The parser of one file

const std::vector<std::string> kTopKeys = {"server", "log", "database", "stage"};
const std::vector<std::string> kServerKeys = {
    "listen",       "io_threads",      "workers",      "body_limit",         "max_content_bytes",
    "max_connections", "max_queue",    "queue_timeout_ms", "max_history",    "plugin_path",
    "admin_token_env", "admin_listen", "startup_timeout_ms"};
const std::vector<std::string> kLogKeys = {"level"};
const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error"};
const std::vector<std::string> kDatabaseKeys = {"name", "url", "pool_size", "connect_timeout_ms",
                                                "prepared_statements"};
const std::vector<std::string> kStageKeys = {"name",
                                             "plugin",
                                             "policy",
                                             "enabled",
                                             "timeout_ms",
                                             "database",
                                             "config",
                                             "circuit_threshold",
                                             "circuit_cooldown_ms",
                                             "journal",
                                             "replay_max_attempts",
                                             "replay_max_age"};
const std::vector<std::string> kPolicies = {"required", "best_effort"};

bool IsStageName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!IsVariableChar(c) && c != '-') return false;
  return true;
}

class Parser {
 public:
  Parser(std::string file, const Environment& env) : file_(std::move(file)), env_(env) {}

  void Parse(const toml::table& root, PipelineConfig* config) {
    for (auto&& [key, node] : root) {
      const std::string name(key.str());
      if (name == "server") {
        ParseServer(node, &config->server);
      } else if (name == "log") {
        ParseLog(node, &config->log);
      } else if (name == "database") {
        ParseDatabases(node, &config->databases);
      } else if (name == "stage") {
        ParseStages(node, &config->stages);
      } else {
        Error(key.source(), name, UnknownKeyMessage(name, kTopKeys, false));
      }
    }
    if (!root.contains("stage")) {
      Error(toml::source_region{{1, 1}, {1, 1}, nullptr}, "stage",
            "no stages: declare at least one [[stage]] with a name and a plugin");
    }
    CheckStageDatabases();
  }

  std::vector<ConfigError> TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
    return std::move(errors_);
  }

 private:
  SourceLocation Where(const toml::source_region& region) const {
    return {file_, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
  }

  void Error(const toml::source_region& region, std::string key, std::string message) {
    errors_.push_back({Where(region), std::move(key), std::move(message)});
  }

  // "integer 5", "string \"x\"", "table", ...
  static std::string Describe(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string:
        return "string " + Quote(node.as_string()->get());
      case toml::node_type::integer:
        return "integer " + std::to_string(node.as_integer()->get());
      case toml::node_type::floating_point: {
        std::ostringstream text;
        text << node.as_floating_point()->get();
        return "float " + text.str();
      }
      case toml::node_type::boolean:
        return node.as_boolean()->get() ? "boolean true" : "boolean false";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::table:
        return "a table";
      case toml::node_type::date:
        return "a date";
      case toml::node_type::time:
        return "a time";
      case toml::node_type::date_time:
        return "a date-time";
      default:
        return "nothing";
    }
  }

  // A table, or an error saying what was expected instead.
  const toml::table* Table(const toml::node& node, const std::string& key, const std::string& how) {
    if (const toml::table* table = node.as_table()) return table;
    Error(node.source(), key, "expected a table, got " + Describe(node) + "; " + how);
    return nullptr;
  }

  std::optional<std::string> ExpandAt(std::string_view text, const toml::node& node, const std::string& key) {
    std::vector<std::string> messages;
    std::optional<std::string> out;
    try {
      out = Expand(text, env_, &messages);
    } catch (const std::exception& e) {
      messages.push_back(std::string("reading the environment failed: ") + e.what());
    }
    for (auto& message : messages) Error(node.source(), key, std::move(message));
    return messages.empty() ? out : std::nullopt;
  }

  // The node as a ConfigValue, strings expanded; nullopt (error recorded) for
  // other TOML types or a failed expansion.
  std::optional<ConfigValue> Scalar(const toml::node& node, const std::string& key, const char* what) {
    switch (node.type()) {
      case toml::node_type::string: {
        auto text = ExpandAt(node.as_string()->get(), node, key);
        if (!text) return std::nullopt;
        return ConfigValue{std::move(*text)};
      }
      case toml::node_type::integer:
        return ConfigValue{node.as_integer()->get()};
      case toml::node_type::floating_point:
        return ConfigValue{node.as_floating_point()->get()};
      case toml::node_type::boolean:
        return ConfigValue{node.as_boolean()->get()};
      default:
        Error(node.source(), key, std::string(what) + ", got " + Describe(node));
        return std::nullopt;
    }
  }

  std::optional<ConfigValue> Typed(const toml::node& node, const std::string& key, ConfigType type) {
    std::string expected = std::string("expected ") + Article(type) + " " + ConfigTypeName(type);
    auto value = Scalar(node, key, expected.c_str());
    if (!value) return std::nullopt;
    std::string error;
    auto converted = ConvertTo(*value, type, false, &error);
    if (!converted) Error(node.source(), key, error);
    return converted;
  }

  std::optional<std::string> String(const toml::node& node, const std::string& key) {
    auto value = Typed(node, key, ConfigType::kString);
    return value ? std::optional(std::get<std::string>(*value)) : std::nullopt;
  }

  std::optional<bool> Boolean(const toml::node& node, const std::string& key) {
    auto value = Typed(node, key, ConfigType::kBoolean);
    return value ? std::optional(std::get<bool>(*value)) : std::nullopt;
  }

  // An integer in [min, max].
  std::optional<std::int64_t> Integer(const toml::node& node, const std::string& key, std::int64_t min,
                                      std::int64_t max) {
    auto value = Typed(node, key, ConfigType::kInteger);
    if (!value) return std::nullopt;
    std::int64_t v = std::get<std::int64_t>(*value);
    if (v < min) {
      Error(node.source(), key, "must be at least " + std::to_string(min) + ", got " + std::to_string(v));
      return std::nullopt;
    }
    if (v > max) {
      Error(node.source(), key, "must be at most " + std::to_string(max) + ", got " + std::to_string(v));
      return std::nullopt;
    }
    return v;
  }

  // A duration of at least one second: an integer of seconds, or a string
  // of digits and one unit: "90s", "30m", "24h", "7d".
  std::optional<std::chrono::seconds> Duration(const toml::node& node, const std::string& key) {
    constexpr std::int64_t kMaxSeconds = std::int64_t{100} * 365 * 86400;
    if (node.is_integer()) {
      auto v = Integer(node, key, 1, kMaxSeconds);
      return v ? std::optional(std::chrono::seconds(*v)) : std::nullopt;
    }
    const std::string advice = "; write seconds as an integer, or a string such as \"90s\", \"30m\", \"24h\" or \"7d\"";
    if (!node.is_string()) {
      Error(node.source(), key, "expected a duration" + advice);
      return std::nullopt;
    }
    const std::string text = *node.value<std::string>();
    std::int64_t amount = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), amount);
    const std::string unit(end, text.data() + text.size());
    const std::int64_t scale = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
    if (error != std::errc() || end == text.data() || scale == 0 || amount < 1 || amount > kMaxSeconds / scale) {
      Error(node.source(), key, "invalid duration " + Quote(text) + advice);
      return std::nullopt;
    }
    return std::chrono::seconds(amount * scale);
  }

  // One of `allowed`, with a suggestion for a near miss.
  std::optional<std::string> OneOf(const toml::node& node, const std::string& key,
                                   const std::vector<std::string>& allowed) {
    auto value = String(node, key);
    if (!value) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *value) != allowed.end()) return value;
    std::string message = "expected one of " + JoinKeys(allowed) + ", got " + Quote(*value);
    std::string suggestion = SuggestKey(*value, allowed);
    if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
    Error(node.source(), key, message);
    return std::nullopt;
  }

  void ParseServer(const toml::node& node, ServerSettings* server) {
    const toml::table* table = Table(node, "server", "write the settings under a [server] header");
    if (!table) return;
    constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
    constexpr std::int64_t kSizeMax = std::numeric_limits<std::int64_t>::max();
    for (auto&& [k, value] : *table) {
      const std::string name(k.str());
      const std::string key = "server." + name;
      if (name == "listen") {
        if (auto v = String(value, key)) {
          if (ValidListen(*v)) {
            server->listen = *v;
          } else {
            Error(value.source(), key,
                  "expected \"host:port\" with a port from 0 to 65535 (e.g. \"127.0.0.1:8000\"), got " +
                      Quote(*v));
          }
        }
      } else if (name == "io_threads") {
        if (auto v = Integer(value, key, 1, kIntMax)) server->io_threads = static_cast<int>(*v);
      } else if (name == "workers") {
        if (auto v = Integer(value, key, 1, kIntMax)) server->workers = static_cast<int>(*v);
      } else if (name == "body_limit") {
        if (auto v = Integer(value, key, 1, kSizeMax)) server->body_limit = static_cast<std::size_t>(*v);
      } else if (name == "max_content_bytes") {
        if (auto v = Integer(value, key, 1, kSizeMax))
          server->max_content_bytes = static_cast<std::size_t>(*v);
      } else if (name == "max_connections") {
        if (auto v = Integer(value, key, 1, kIntMax)) server->max_connections = static_cast<std::size_t>(*v);
      } else if (name == "max_queue") {
        if (auto v = Integer(value, key, 1, kIntMax)) server->max_queue = static_cast<std::size_t>(*v);
      } else if (name == "queue_timeout_ms") {
        if (auto v = Integer(value, key, 1, kSizeMax / 1000000))
          server->queue_timeout = std::chrono::milliseconds(*v);
      } else if (name == "max_history") {
        if (auto v = Integer(value, key, 1, kIntMax)) server->max_history = static_cast<std::size_t>(*v);
      } else if (name == "plugin_path") {
        ParsePluginPath(value, key, &server->plugin_path);
      } else if (name == "admin_token_env") {
        if (auto v = String(value, key)) {
          if (v->empty()) {
            Error(value.source(), key,
                  "empty variable name; name the environment variable holding the admin token "
                  "(e.g. \"STOWAGE_ADMIN_TOKEN\") or remove the key");
          } else {
            server->admin_token_env = *v;
          }
        }
      } else if (name == "admin_listen") {
        if (auto v = String(value, key)) {
          if (ValidListen(*v)) {
            server->admin_listen = *v;
          } else {
            Error(value.source(), key,
                  "expected \"host:port\" with a port from 0 to 65535 (e.g. \"127.0.0.1:8001\"), got " +
                      Quote(*v));
          }
        }
      } else if (name == "startup_timeout_ms") {
        if (auto v = Integer(value, key, 0, kSizeMax / 1000000))
          server->startup_timeout = std::chrono::milliseconds(*v);
      } else {
        Error(k.source(), key, UnknownKeyMessage(name, kServerKeys, false));
      }
    }
  }

  static bool ValidListen(const std::string& listen) {
    std::size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    auto port = SpellsInteger(std::string_view(listen).substr(colon + 1));
    return port && *port >= 0 && *port <= 65535 && listen[colon + 1] != '+' && listen[colon + 1] != '-';
  }

  void ParsePluginPath(const toml::node& node, const std::string& key,
                       std::vector<std::filesystem::path>* out) {
    const toml::array* array = node.as_array();
    if (!array) {
      Error(node.source(), key, "expected an array of strings (e.g. [\"plugins\"]), got " + Describe(node));
      return;
    }
    const std::filesystem::path folder = std::filesystem::path(file_).parent_path();
    std::vector<std::filesystem::path> paths;
    bool ok = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = *array->get(i);
      const std::string entry_key = key + "[" + std::to_string(i) + "]";
      auto text = String(entry, entry_key);
      if (!text) {
        ok = false;
        continue;
      }
      if (text->empty()) {
        Error(entry.source(), entry_key, "empty folder name; remove the entry or name a folder");
        ok = false;
        continue;
      }
      std::filesystem::path path(*text);
      paths.push_back(path.is_absolute() ? path : (folder / path).lexically_normal());
    }
    if (ok) *out = std::move(paths);
  }

  void ParseLog(const toml::node& node, LogSettings* log) {
    const toml::table* table = Table(node, "log", "write the settings under a [log] header");
    if (!table) return;
    for (auto&& [k, value] : *table) {
      const std::string name(k.str());
      const std::string key = "log." + name;
      if (name == "level") {
        if (auto v = OneOf(value, key, kLogLevels)) log->level = *v;
      } else {
        Error(k.source(), key, UnknownKeyMessage(name, kLogKeys, false));
      }
    }
  }

  void ParseDatabases(const toml::node& node, std::vector<DatabaseSettings>* databases) {
    const toml::array* array = node.as_array();
    if (!array) {
      Error(node.source(), "database",
            "expected an array of tables, got " + Describe(node) +
                "; declare each database under its own [[database]]");
      return;
    }
    std::map<std::string, int> first_line;  // database name -> line of its header
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = *array->get(i);
      const std::string fallback_key = "database[#" + std::to_string(i + 1) + "]";
      const toml::table* table =
          Table(entry, fallback_key, "declare each database under its own [[database]]");
      if (!table) continue;
      if (auto database = ParseDatabase(*table, fallback_key, &first_line)) {
        databases->push_back(std::move(*database));
      }
    }
  }

  std::optional<DatabaseSettings> ParseDatabase(const toml::table& table, const std::string& fallback_key,
                                                std::map<std::string, int>* first_line) {
    const std::size_t errors_before = errors_.size();
    DatabaseSettings database;
    database.where = Where(table.source());

    std::string label = fallback_key;
    if (const toml::node* name_node = table.get("name")) {
      if (auto name = String(*name_node, fallback_key + ".name")) {
        if (!IsStageName(*name)) {
          Error(name_node->source(), fallback_key + ".name",
                "invalid database name " + Quote(*name) + "; use letters, digits, _ and - only");
        } else {
          label = "database[" + *name + "]";
          database.name = *name;
          declared_databases_.push_back(*name);
          auto [it, inserted] = first_line->emplace(*name, database.where.line);
          if (!inserted) {
            Error(name_node->source(), label + ".name",
                  "duplicate database name; the [[database]] at line " + std::to_string(it->second) +
                      " already uses it, give each database a unique name");
          }
        }
      }
    } else {
      Error(
          table.source(), fallback_key + ".name",
          "missing required key 'name'; add name = \"...\" (letters, digits, _ and -) to this [[database]]");
    }

    if (!table.contains("url")) {
      Error(table.source(), label + ".url",
            "missing required key 'url'; add url = \"postgresql://user@host:5432/db\" to this [[database]]");
    }
    const toml::node* url_node = nullptr;
    for (auto&& [k, value] : table) {
      const std::string name(k.str());
      const std::string key = label + "." + name;
      if (name == "name") {
        continue;
      } else if (name == "url") {
        if (auto v = String(value, key)) {
          if (v->empty()) {
            Error(value.source(), key,
                  "empty url; write postgresql://user[:password]@host[:port]/db (e.g. \"${DATABASE_URL}\")");
          } else {
            database.url = *v;
            url_node = &value;
          }
        }
      } else if (name == "pool_size") {
        if (auto v = Integer(value, key, 1, std::numeric_limits<int>::max())) {
          database.pool_size = static_cast<int>(*v);
        }
      } else if (name == "connect_timeout_ms") {
        if (auto v = Integer(value, key, 1, std::numeric_limits<std::int64_t>::max() / 1000000)) {
          database.connect_timeout = std::chrono::milliseconds(*v);
        }
      } else if (name == "prepared_statements") {
        if (auto v = Boolean(value, key)) database.prepared_statements = *v;
      } else {
        Error(k.source(), key, UnknownKeyMessage(name, kDatabaseKeys, false));
      }
    }
    if (url_node != nullptr) {
      try {
        stowage::database::ParseEndpoint(database.url, database.name.empty() ? label : database.name,
                                         database.connect_timeout);
      } catch (const std::exception& e) {
        // The message names what is wrong, never the password.
        Error(url_node->source(), label + ".url", e.what());
      }
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return database;
  }

  // A stage's `database` must name a [[database]] of the file, declared
  // before or after the stage.
  void CheckStageDatabases() {
    for (const auto& reference : database_references_) {
      if (std::find(declared_databases_.begin(), declared_databases_.end(), reference.name) !=
          declared_databases_.end()) {
        continue;
      }
      if (declared_databases_.empty()) {
        Error(reference.where, reference.key,
              "no [[database]] is declared; add a [[database]] with name = " + Quote(reference.name) +
                  " and a url, or remove this key");
        continue;
      }
      std::string message = "no [[database]] named " + Quote(reference.name);
      std::string suggestion = SuggestKey(reference.name, declared_databases_);
      if (!suggestion.empty()) {
        message += "; did you mean '" + suggestion + "'? (declared: " + JoinKeys(declared_databases_) + ")";
      } else {
        message += "; declared: " + JoinKeys(declared_databases_) + "; name one of them or declare it";
      }
      Error(reference.where, reference.key, message);
    }
  }

  void ParseStages(const toml::node& node, std::vector<StageSettings>* stages) {
    const toml::array* array = node.as_array();
    if (!array) {
      Error(node.source(), "stage",
            "expected an array of tables, got " + Describe(node) +
                "; declare each stage under its own [[stage]]");
      return;
    }
    if (array->empty()) {
      Error(node.source(), "stage", "no stages: declare at least one [[stage]] with a name and a plugin");
      return;
    }
    std::map<std::string, int> first_line;  // stage name -> line of its header
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = *array->get(i);
      const std::string fallback_key = "stage[#" + std::to_string(i + 1) + "]";
      const toml::table* table = Table(entry, fallback_key, "declare each stage under its own [[stage]]");
      if (!table) continue;
      if (auto stage = ParseStage(*table, fallback_key, &first_line)) stages->push_back(std::move(*stage));
    }
  }

  std::optional<StageSettings> ParseStage(const toml::table& table, const std::string& fallback_key,
                                          std::map<std::string, int>* first_line) {
    const std::size_t errors_before = errors_.size();
    StageSettings stage;
    stage.where = Where(table.source());

    // The name comes first: it labels every other error of the stage.
    std::string label = fallback_key;
    if (const toml::node* name_node = table.get("name")) {
      if (auto name = String(*name_node, fallback_key + ".name")) {
        if (!IsStageName(*name)) {
          Error(name_node->source(), fallback_key + ".name",
                "invalid stage name " + Quote(*name) + "; use letters, digits, _ and - only");
        } else {
          label = "stage[" + *name + "]";
          stage.name = *name;
          auto [it, inserted] = first_line->emplace(*name, stage.where.line);
          if (!inserted) {
            Error(name_node->source(), label + ".name",
                  "duplicate stage name; the stage at line " + std::to_string(it->second) +
                      " already uses it, give each stage a unique name");
          }
        }
      }
    } else {
      Error(table.source(), fallback_key + ".name",
            "missing required key 'name'; add name = \"...\" (letters, digits, _ and -) to this [[stage]]");
    }

    const toml::node* journal_node = nullptr;  // the `journal` key, when set
    if (!table.contains("plugin")) {
      Error(table.source(), label + ".plugin",
            "missing required key 'plugin'; add plugin = \"<name>\" or the path of a .so to this [[stage]]");
    }
    for (auto&& [k, value] : table) {
      const std::string name(k.str());
      const std::string key = label + "." + name;
      if (name == "name") {
        continue;
      } else if (name == "plugin") {
        if (auto v = String(value, key)) {
          if (v->empty()) {
            Error(value.source(), key,
                  "empty plugin; give a plugin name (e.g. \"redis\") or the path of a .so");
          } else {
            stage.plugin = *v;
          }
        }
      } else if (name == "policy") {
        if (auto v = OneOf(value, key, kPolicies)) {
          stage.policy = *v == "required" ? Policy::kRequired : Policy::kBestEffort;
        }
      } else if (name == "enabled") {
        if (auto v = Boolean(value, key)) stage.enabled = *v;
      } else if (name == "timeout_ms") {
        if (auto v = Integer(value, key, 1, std::numeric_limits<std::int64_t>::max() / 1000000)) {
          stage.timeout = std::chrono::milliseconds(*v);
        }
      } else if (name == "database") {
        if (auto v = String(value, key)) {
          if (v->empty()) {
            Error(value.source(), key, "empty database name; name a declared [[database]] or remove the key");
          } else {
            stage.database = *v;
            database_references_.push_back({key, *v, value.source()});
          }
        }
      } else if (name == "config") {
        ParseStageConfig(value, key, &stage.config);
      } else if (name == "circuit_threshold") {
        if (auto v = Integer(value, key, 0, std::numeric_limits<int>::max()))
          stage.circuit_threshold = static_cast<int>(*v);
      } else if (name == "circuit_cooldown_ms") {
        if (auto v = Integer(value, key, 1, std::numeric_limits<std::int64_t>::max() / 1000000))
          stage.circuit_cooldown = std::chrono::milliseconds(*v);
      } else if (name == "journal") {
        if (auto v = Boolean(value, key)) {
          stage.journal = *v;
          journal_node = &value;
        }
      } else if (name == "replay_max_attempts") {
        if (auto v = Integer(value, key, 1, 1000000)) stage.replay_max_attempts = static_cast<int>(*v);
      } else if (name == "replay_max_age") {
        if (auto v = Duration(value, key)) stage.replay_max_age = *v;
      } else {
        Error(k.source(), key, UnknownKeyMessage(name, kStageKeys, false));
      }
    }
    if (journal_node && *stage.journal && stage.policy == Policy::kRequired) {
      Error(journal_node->source(), label + ".journal",
            "a required stage is never journaled: its failure fails the request and nothing is stored; "
            "remove journal = true or make the stage best_effort");
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return stage;
  }

  void ParseStageConfig(const toml::node& node, const std::string& key,
                        std::map<std::string, RawValue>* out) {
    const toml::table* table =
        Table(node, key, "write config = { key = value, ... } or the keys under a [stage.config] header");
    if (!table) return;
    for (auto&& [k, value] : *table) {
      const std::string name(k.str());
      auto v =
          Scalar(value, key + "." + name, "stage config values must be a string, integer, float or boolean");
      if (v) (*out)[name] = RawValue{std::move(*v), Where(value.source())};
    }
  }

  // A stage's `database` key, checked once every [[database]] is known.
  struct DatabaseReference {
    std::string key;
    std::string name;
    toml::source_region where;
  };

  std::string file_;
  const Environment& env_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> declared_databases_;  // every valid name, in file order
  std::vector<DatabaseReference> database_references_;
};

}  // namespace

std::string ConfigError::ToString() const {
  std::string out = where.file;
  if (where.line > 0) out += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

std::string FormatErrors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& error : errors) {
    if (!out.empty()) out += '\n';
    out += error.ToString();
  }
  return out;
}

Environment ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
  };
}

LoadResult ParsePipelineConfig(std::string_view text, const std::string& file, const Environment& env) {
  LoadResult result;
  try {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(file));
    } catch (const toml::parse_error& e) {
      const auto& begin = e.source().begin;
      result.errors.push_back(
          {{file, static_cast<int>(begin.line), static_cast<int>(begin.column)},
           "",
           "TOML syntax error: " + std::string(e.description()) + "; fix the file at this place"});
      return result;
    }
    PipelineConfig config;
    config.file = file;
    Parser parser(file, env);
    parser.Parse(root, &config);
    result.errors = parser.TakeErrors();
    if (result.errors.empty()) result.config = std::move(config);
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors.push_back({{file, 0, 0}, "", std::string("reading the config failed: ") + e.what()});
  }
  return result;
}

LoadResult LoadPipelineConfig(const std::filesystem::path& file, const Environment& env) {
  LoadResult result;
  const std::string name = file.string();
  auto fail = [&](const std::string& reason) {
    result.errors.push_back(
        {{name, 0, 0},
         "",
         "cannot read the config file: " + reason + "; check the path and its permissions"});
    return result;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return fail("it is a directory");
  std::FILE* stream = std::fopen(name.c_str(), "rb");
  if (!stream) return fail(std::generic_category().message(errno));
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, stream)) > 0) text.append(buffer, n);
  const bool read_failed = std::ferror(stream);
  const int read_errno = errno;
  std::fclose(stream);
  if (read_failed) return fail(std::generic_category().message(read_errno));
  result = ParsePipelineConfig(text, name, env);
  if (result.config) result.config->file = file;
  return result;
}

std::vector<ConfigError> ValidateStageConfig(const StageSettings& stage, const std::string& config_file,
                                             const stowage::ConfigSchema& schema, stowage::StageConfig* out) {
  std::vector<ConfigError> errors;
  const std::string prefix = "stage[" + (stage.name.empty() ? std::string("?") : stage.name) + "].config.";
  std::vector<std::string> known;
  for (const auto& key : schema.keys()) known.push_back(key.name);

  std::map<std::string, ConfigValue> values;
  for (const auto& [name, raw] : stage.config) {
    SourceLocation where = raw.where;
    if (where.file.empty()) where.file = config_file;
    const stowage::ConfigKey* key = schema.find(name);
    if (!key) {
      errors.push_back({where, prefix + name, UnknownKeyMessage(name, known, true)});
      continue;
    }
    std::string error;
    if (auto value = ConvertTo(raw.value, key->type, key->secret, &error)) {
      values[name] = std::move(*value);
    } else {
      errors.push_back({where, prefix + name, error});
    }
  }
  for (const auto& key : schema.keys()) {
    if (stage.config.count(key.name)) continue;
    if (key.default_value) {
      values[key.name] = *key.default_value;
      continue;
    }
    SourceLocation where = stage.where;
    if (where.file.empty()) where.file = config_file;
    std::string message = "missing required key '" + key.name + "' (" + ConfigTypeName(key.type);
    if (!key.description.empty()) message += ": " + key.description;
    message += "); add " + key.name + " = ... to this stage's config table";
    errors.push_back({where, prefix + key.name, message});
  }
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  if (errors.empty() && out) *out = stowage::StageConfig(std::move(values));
  return errors;
}

bool SameSettings(const StageSettings& a, const StageSettings& b) {
  if (a.name != b.name || a.plugin != b.plugin || a.policy != b.policy || a.enabled != b.enabled ||
      a.timeout != b.timeout || a.database != b.database || a.circuit_threshold != b.circuit_threshold ||
      a.circuit_cooldown != b.circuit_cooldown || a.journal != b.journal ||
      a.replay_max_attempts != b.replay_max_attempts || a.replay_max_age != b.replay_max_age ||
      a.config.size() != b.config.size())
    return false;
  for (auto i = a.config.begin(), j = b.config.begin(); i != a.config.end(); ++i, ++j)
    if (i->first != j->first || !(i->second.value == j->second.value)) return false;
  return true;
}

bool SameSettings(const DatabaseSettings& a, const DatabaseSettings& b) {
  return a.name == b.name && a.url == b.url && a.pool_size == b.pool_size &&
         a.connect_timeout == b.connect_timeout && a.prepared_statements == b.prepared_statements;
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

}  // namespace stowage::config
