#include "lua_script.h"

#include <hiredis/hiredis.h>

#include <string>

namespace stowage::redis {

Status LuaScript::Eval(RedisPool::Lease& lease, std::string_view command, std::string_view script,
                       const std::vector<std::string_view>& keys, const std::vector<std::string_view>& args,
                       bool asking, ReplyPtr* reply) {
  if (asking) {
    if (Status s = lease.Command({"ASKING"}, reply); !s.ok()) return s;
  }
  const std::string key_count = std::to_string(keys.size());
  std::vector<std::string_view> argv = {command, script, key_count};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return lease.Command(argv, reply);
}

Status LuaScript::Run(RedisPool::Lease& lease, const std::vector<std::string_view>& keys,
                      const std::vector<std::string_view>& args, ReplyPtr* reply, bool asking) {
  std::string sha1;
  {
    std::lock_guard lock(mu_);
    sha1 = sha1_;
  }
  if (sha1.empty()) {
    ReplyPtr loaded;
    if (Status s = lease.Command({"SCRIPT", "LOAD", source_}, &loaded); !s.ok()) return s;
    if (loaded->type == REDIS_REPLY_STRING) {
      sha1.assign(loaded->str, loaded->len);
      std::lock_guard lock(mu_);
      sha1_ = sha1;
    }
  }
  if (!sha1.empty()) {
    if (Status s = Eval(lease, "EVALSHA", sha1, keys, args, asking, reply); !s.ok()) return s;
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ERROR || std::string_view(r->str, r->len).substr(0, 8) != "NOSCRIPT")
      return Status::Ok();
  }
  // EVAL also puts the script back into the server's cache for EVALSHA.
  return Eval(lease, "EVAL", source_, keys, args, asking, reply);
}

}  // namespace stowage::redis
