// The library's entry points: exports RedisStage as the "redis" stage.
#include "stowage/plugin.h"

#include "redis_stage.h"

using stowage::redis::RedisStage;

STOWAGE_STAGE(RedisStage, "redis", "Redis", "1.0.0")
