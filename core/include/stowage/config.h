// Stage configuration: the keys a stage declares, and the values it receives.
//
// A stage declares its keys in a ConfigSchema: each key's type, default (none
// for a required key), description and, since SDK 2.0, what values it allows
// (a range, a list of words) and whether it names a file. The host checks
// the stage's `config` table in pipeline.toml against it before constructing
// the stage, with the same checker it uses for its own tables ([server],
// [log], [[database]], [[stage]]): unknown keys, wrong types, values out of
// range or not allowed and missing required keys are refused with the file,
// the line, the column and the key, and the range or values allowed. The
// stage then receives a StageConfig that holds a valid value of the declared
// type for every key, so it need not check them again.
//
// Across the plugin boundary the schema travels as these structs, built in
// the plugin and read by the host: their layout belongs to the SDK major
// version (docs/sdk.md, "Configuration").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace stowage {

enum class ConfigType {
  kString,
  kInteger,
  kFloat,
  kBoolean,
  // A length of time: an integer of seconds, or a string of digits and a
  // unit: "250ms", "90s", "30m", "24h", "7d". Held as milliseconds.
  kDuration,
  // A file or folder: a string; a relative one is resolved against the
  // folder of the config file that names it. Held as a string; "" stays "".
  kPath,
};

inline const char* ConfigTypeName(ConfigType type) noexcept {
  switch (type) {
    case ConfigType::kString:
      return "string";
    case ConfigType::kInteger:
      return "integer";
    case ConfigType::kFloat:
      return "float";
    case ConfigType::kBoolean:
      return "boolean";
    case ConfigType::kDuration:
      return "duration";
    case ConfigType::kPath:
      return "path";
  }
  return "unknown";
}

// A value of a key: kPath keys hold a std::string, kDuration keys a
// std::chrono::milliseconds; the other types hold the alternative of their
// name.
using ConfigValue = std::variant<std::string, std::int64_t, double, bool, std::chrono::milliseconds>;

// The alternative of ConfigValue that holds a value of `type`.
inline std::size_t ConfigValueIndex(ConfigType type) noexcept {
  switch (type) {
    case ConfigType::kString:
    case ConfigType::kPath:
      return 0;
    case ConfigType::kInteger:
      return 1;
    case ConfigType::kFloat:
      return 2;
    case ConfigType::kBoolean:
      return 3;
    case ConfigType::kDuration:
      return 4;
  }
  return 0;
}

struct ConfigKey {
  std::string name;
  ConfigType type = ConfigType::kString;
  // Absent for a required key.
  std::optional<ConfigValue> default_value;
  std::string description;
  // A secret's value is never logged or shown by `stowage validate`.
  bool secret = false;
  // The smallest and largest value allowed, of the key's type (integer,
  // float or duration keys); absent: no bound.
  std::optional<ConfigValue> min;
  std::optional<ConfigValue> max;
  // The values a string key allows; empty: any string.
  std::vector<std::string> allowed;

  bool required() const noexcept { return !default_value.has_value(); }
};

// The keys a stage accepts. Built once per plugin, e.g.:
//   return ConfigSchema()
//       .required("url", ConfigType::kString, "redis://host:port/db")
//       .optional("pool_size", std::int64_t{8}, "connections kept open").range(1, 1024)
//       .optional("mode", std::string("fast"), "fast | safe").one_of({"fast", "safe"})
//       .optional("flush_every", std::chrono::milliseconds(1000), "how often to flush").at_least(10ms)
//       .optional("ca_file", std::string(""), "CA certificates (PEM)").path();
// The modifiers (secret, range, at_least, one_of, path) apply to the key
// added last.
class ConfigSchema {
 public:
  ConfigSchema& required(std::string name, ConfigType type, std::string description) {
    ConfigKey key;
    key.name = std::move(name);
    key.type = type;
    key.description = std::move(description);
    keys_.push_back(std::move(key));
    return *this;
  }
  ConfigSchema& optional(std::string name, ConfigValue default_value, std::string description) {
    ConfigKey key;
    key.name = std::move(name);
    key.type = default_value.index() == 4 ? ConfigType::kDuration : static_cast<ConfigType>(default_value.index());
    key.default_value = std::move(default_value);
    key.description = std::move(description);
    keys_.push_back(std::move(key));
    return *this;
  }
  ConfigSchema& secret() {
    if (!keys_.empty()) keys_.back().secret = true;
    return *this;
  }
  // Values from `min` to `max`, both included; of the key's type.
  ConfigSchema& range(ConfigValue min, ConfigValue max) {
    if (!keys_.empty()) {
      keys_.back().min = std::move(min);
      keys_.back().max = std::move(max);
    }
    return *this;
  }
  ConfigSchema& at_least(ConfigValue min) {
    if (!keys_.empty()) keys_.back().min = std::move(min);
    return *this;
  }
  // One of `values` (a string key).
  ConfigSchema& one_of(std::vector<std::string> values) {
    if (!keys_.empty()) keys_.back().allowed = std::move(values);
    return *this;
  }
  // The string key names a file or folder (ConfigType::kPath).
  ConfigSchema& path() {
    if (!keys_.empty() && keys_.back().type == ConfigType::kString) keys_.back().type = ConfigType::kPath;
    return *this;
  }

  const std::vector<ConfigKey>& keys() const noexcept { return keys_; }
  const ConfigKey* find(const std::string& name) const noexcept {
    for (const auto& key : keys_)
      if (key.name == name) return &key;
    return nullptr;
  }

 private:
  std::vector<ConfigKey> keys_;
};

// The validated values of a stage's config table: every declared key is
// present with its declared type (defaults filled in). Asking for a key the
// schema does not declare, or with another type, throws std::logic_error: a
// bug in the stage, turned into an error result at the plugin boundary.
class StageConfig {
 public:
  StageConfig() = default;
  explicit StageConfig(std::map<std::string, ConfigValue> values) : values_(std::move(values)) {}

  // A kString or kPath key (a path comes resolved: absolute, or "").
  const std::string& string(const std::string& key) const { return get<std::string>(key); }
  std::int64_t integer(const std::string& key) const { return get<std::int64_t>(key); }
  double floating(const std::string& key) const { return get<double>(key); }
  bool boolean(const std::string& key) const { return get<bool>(key); }
  std::chrono::milliseconds duration(const std::string& key) const { return get<std::chrono::milliseconds>(key); }

  const std::map<std::string, ConfigValue>& values() const noexcept { return values_; }

 private:
  template <typename T>
  const T& get(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::logic_error("config key '" + key + "' is not declared by the stage");
    if (const T* value = std::get_if<T>(&it->second)) return *value;
    throw std::logic_error("config key '" + key + "' is read with a type other than its declared one");
  }

  std::map<std::string, ConfigValue> values_;
};

// A stage's config as the host makes it from a valid table: `values`, and
// every optional key of `schema` they leave out at its default. For tests
// and tools that make a stage without the host; `values` must hold the
// required keys, and are taken as they are (not checked, paths not resolved).
inline StageConfig ConfigWithDefaults(const ConfigSchema& schema,
                                      std::map<std::string, ConfigValue> values = {}) {
  for (const ConfigKey& key : schema.keys())
    if (key.default_value) values.emplace(key.name, *key.default_value);
  return StageConfig(std::move(values));
}

}  // namespace stowage
