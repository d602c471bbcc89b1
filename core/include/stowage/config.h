// Stage configuration: the keys a stage declares, and the values it receives.
//
// A stage declares its keys in a ConfigSchema. The host checks the stage's
// `config` table in pipeline.toml against it before constructing the stage:
// unknown keys, wrong types and missing required keys are refused with the
// file, the line and the key. The stage then receives a StageConfig that
// holds a value of the declared type for every key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace stowage {

enum class ConfigType { kString, kInteger, kFloat, kBoolean };

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
  }
  return "unknown";
}

using ConfigValue = std::variant<std::string, std::int64_t, double, bool>;

struct ConfigKey {
  std::string name;
  ConfigType type = ConfigType::kString;
  // Absent for a required key.
  std::optional<ConfigValue> default_value;
  std::string description;
  // A secret's value is never logged or shown by `stowage validate`.
  bool secret = false;

  bool required() const noexcept { return !default_value.has_value(); }
};

// The keys a stage accepts. Built once per plugin, e.g.:
//   return ConfigSchema()
//       .required("url", ConfigType::kString, "redis://host:port/db")
//       .optional("pool_size", std::int64_t{8}, "connections kept open");
class ConfigSchema {
 public:
  ConfigSchema& required(std::string name, ConfigType type, std::string description) {
    keys_.push_back({std::move(name), type, std::nullopt, std::move(description), false});
    return *this;
  }
  ConfigSchema& optional(std::string name, ConfigValue default_value, std::string description) {
    ConfigType type = static_cast<ConfigType>(default_value.index());
    keys_.push_back({std::move(name), type, std::move(default_value), std::move(description), false});
    return *this;
  }
  // Marks the most recently added key as secret.
  ConfigSchema& secret() {
    if (!keys_.empty()) keys_.back().secret = true;
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

  const std::string& string(const std::string& key) const { return get<std::string>(key); }
  std::int64_t integer(const std::string& key) const { return get<std::int64_t>(key); }
  double floating(const std::string& key) const { return get<double>(key); }
  bool boolean(const std::string& key) const { return get<bool>(key); }

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
// required keys.
inline StageConfig ConfigWithDefaults(const ConfigSchema& schema,
                                      std::map<std::string, ConfigValue> values = {}) {
  for (const ConfigKey& key : schema.keys())
    if (key.default_value) values.emplace(key.name, *key.default_value);
  return StageConfig(std::move(values));
}

}  // namespace stowage
