#include "lua_script.h"

#include <hiredis/hiredis.h>

#include <string>

namespace stowage::redis {

// An entry is found by its exact encoding. That cannot match inside another
// entry's strings: there every '"' is escaped as '\"', so `{"` only occurs
// where an entry starts.
const char* const kAppendScript = R"lua(
local key, entry, ttl = KEYS[1], ARGV[1], ARGV[2]
local n = redis.call('STRLEN', key)
if n > 0 and (redis.call('GETRANGE', key, 0, 0) ~= '[' or redis.call('GETRANGE', key, -1, -1) ~= ']') then
  return redis.error_reply('the value of key ' .. key .. ' is not a JSON array; fix or delete it (DEL ' .. key .. ')')
end
if n <= 2 then
  redis.call('SET', key, '[' .. entry .. ']')
else
  redis.call('SETRANGE', key, n - 1, ',' .. entry .. ']')
end
redis.call('EXPIRE', key, ttl)
return redis.call('STRLEN', key)
)lua";

const char* const kRemoveScript = R"lua(
local key, entry = KEYS[1], ARGV[1]
local value = redis.call('GET', key)
if not value then return 0 end
local at, from = nil, 1
while true do
  local found = string.find(value, entry, from, true)
  if not found then break end
  at, from = found, found + 1
end
if not at then return 0 end
local after = at + #entry
local rest
if string.sub(value, at - 1, at - 1) == ',' then
  rest = string.sub(value, 1, at - 2) .. string.sub(value, after)
elseif string.sub(value, after, after) == ',' then
  rest = string.sub(value, 1, at - 1) .. string.sub(value, after + 1)
else
  rest = string.sub(value, 1, at - 1) .. string.sub(value, after)
end
if rest == '[]' then
  redis.call('DEL', key)
  return 1
end
local pttl = redis.call('PTTL', key)
if pttl > 0 then
  redis.call('SET', key, rest, 'PX', pttl)
else
  redis.call('SET', key, rest)
end
return 1
)lua";

Status LuaScript::Eval(RedisPool::Lease& lease, std::string_view command, std::string_view script,
                       const std::vector<std::string_view>& keys, const std::vector<std::string_view>& args,
                       ReplyPtr* reply) {
  const std::string key_count = std::to_string(keys.size());
  std::vector<std::string_view> argv = {command, script, key_count};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return lease.Command(argv, reply);
}

Status LuaScript::Run(RedisPool::Lease& lease, const std::vector<std::string_view>& keys,
                      const std::vector<std::string_view>& args, ReplyPtr* reply) {
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
    if (Status s = Eval(lease, "EVALSHA", sha1, keys, args, reply); !s.ok()) return s;
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ERROR || std::string_view(r->str, r->len).substr(0, 8) != "NOSCRIPT")
      return Status::Ok();
  }
  // EVAL also puts the script back into the server's cache for EVALSHA.
  return Eval(lease, "EVAL", source_, keys, args, reply);
}

}  // namespace stowage::redis
