// LuaScript: a server-side script run atomically by Redis.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "redis_pool.h"

namespace stowage::redis {

// Thread-safe. Runs by EVALSHA; the first run loads the script with SCRIPT
// LOAD, and a server that lost it (restarted, SCRIPT FLUSH) gets it again
// through EVAL, so callers never see NOSCRIPT.
class LuaScript {
 public:
  explicit LuaScript(std::string source) : source_(std::move(source)) {}

  // Runs the script on `lease` with KEYS = `keys`, ARGV = `args`. An error
  // the script raises comes back as an error reply with an ok Status.
  // `asking`: the keys' slot is being moved to the node (Redis Cluster ASK),
  // so each EVALSHA or EVAL is preceded by ASKING.
  Status Run(RedisPool::Lease& lease, const std::vector<std::string_view>& keys,
             const std::vector<std::string_view>& args, ReplyPtr* reply, bool asking = false);

 private:
  Status Eval(RedisPool::Lease& lease, std::string_view command, std::string_view script,
              const std::vector<std::string_view>& keys, const std::vector<std::string_view>& args,
              bool asking, ReplyPtr* reply);

  const std::string source_;
  std::mutex mu_;
  std::string sha1_;  // guarded by mu_; empty until SCRIPT LOAD answered
};

}  // namespace stowage::redis
