// For the Redis stage's tests: the stage's config as the host makes it.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "redis_stage.h"
#include "stowage/config.h"

namespace stowage::redis {

// The config of a stage on `url`: `overrides`, and every other optional key
// of RedisStage::config_schema() at its default.
inline StageConfig ConfigFor(const std::string& url, std::map<std::string, ConfigValue> overrides = {}) {
  overrides.emplace("url", url);
  return ConfigWithDefaults(RedisStage::config_schema(), std::move(overrides));
}

}  // namespace stowage::redis
