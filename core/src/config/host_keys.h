// The keys of the host's own tables of pipeline.toml ([server], [log],
// [[database]], [[stage]]), declared once each: name, type, bounds, allowed
// values, and where the checked value goes in the settings. The parser
// (pipeline_config.cc) checks every table against these lists, and a
// reload's "what changed" is derived from them, so a key added here is
// parsed, checked and compared without another line elsewhere.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "stowage/config.h"

namespace stowage::config {

// What a reload does with a changed value of a key.
enum class OnReload {
  kApplies,  // the new value is used from the new generation on
  kRestart,  // read at start only: the change is reported as needing a restart
};

// One key of a host table whose settings are of type `Settings`.
template <typename Settings>
struct HostKey {
  // Name, type, bounds, allowed values, description. `key.default_value` is
  // the default of `Settings` where a ConfigValue can hold it; a required
  // key has none (`required` below).
  ConfigKey key;
  bool required = false;
  OnReload on_reload = OnReload::kApplies;
  // Stores a value that passed CheckValue; null for a key the parser reads
  // itself (server.plugin_path, stage.config: not a scalar; the `name` of a
  // [[database]] or [[stage]]: it labels the other errors, so it comes first).
  std::function<void(Settings&, const ConfigValue&)> set;
  // Whether two settings hold the same value of the key.
  std::function<bool(const Settings&, const Settings&)> same;
  // A rule beyond type and bounds, e.g. "host:port": "" when `value` keeps
  // it, else what is wrong and what to write. Null: none.
  std::function<std::string(const ConfigValue&)> rule;
};

const std::vector<HostKey<ServerSettings>>& ServerKeys();
const std::vector<HostKey<LogSettings>>& LogKeys();
const std::vector<HostKey<DatabaseSettings>>& DatabaseKeys();
const std::vector<HostKey<StageSettings>>& StageKeys();

// The names of `keys`, in declaration order.
template <typename Settings>
std::vector<std::string> NamesOf(const std::vector<HostKey<Settings>>& keys) {
  std::vector<std::string> names;
  for (const auto& k : keys) names.push_back(k.key.name);
  return names;
}

// The keys of `keys` whose values differ between `a` and `b`, limited to
// those that take effect as `on_reload` says.
template <typename Settings>
std::vector<std::string> ChangedKeys(const std::vector<HostKey<Settings>>& keys, const Settings& a,
                                     const Settings& b, OnReload on_reload) {
  std::vector<std::string> changed;
  for (const auto& k : keys)
    if (k.on_reload == on_reload && !k.same(a, b)) changed.push_back(k.key.name);
  return changed;
}

}  // namespace stowage::config
