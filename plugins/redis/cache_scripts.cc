#include "cache_scripts.h"

namespace stowage::redis {

// What every script runs after. An entry is found by its exact encoding
// (kRemoveScript): that cannot match inside another entry's strings, where
// every '"' is escaped as '\"', so `{"` only occurs where an entry starts.
const char* const kCachePrelude = R"lua(
local array, version = KEYS[1], KEYS[2]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function is_mark(field)
  local kind = string.sub(field, 1, 2)
  return kind == 'w:' or kind == 't:' or kind == 'e:'
end
-- The version record as a table, field -> value (one HGETALL). The scripts
-- keep it in step with what they change.
local function record()
  local fields = redis.call('HGETALL', version)
  local rec = {}
  for i = 1, #fields, 2 do rec[fields[i]] = fields[i + 1] end
  return rec
end
-- Unmarks the lapsed changes of `rec` (the clock is asked only when it holds
-- a mark); returns how many are in flight and how many lapsed.
local function sweep(rec)
  local live, lapsed, now = 0, 0, nil
  for field, value in pairs(rec) do
    if is_mark(field) then
      now = now or now_ms()
      if tonumber(value) > now then
        live = live + 1
      else
        redis.call('HDEL', version, field)
        rec[field] = nil
        lapsed = lapsed + 1
      end
    end
  end
  return live, lapsed
end
-- The next read misses and refills from the store. Until a refill (or an
-- erase) the array is known to be behind the store ('d'), so a late write of
-- the guest's first message may not recreate it (kApplyScript). A record
-- that does not exist holds no mark: no write can settle into it.
local function drop(rec)
  redis.call('DEL', array)
  if rec.v then
    redis.call('HDEL', version, 'v')
    rec.v = nil
  end
  if next(rec) ~= nil then
    redis.call('HSET', version, 'd', 1)
    rec.d = '1'
  end
end
-- The array's length in bytes: 0 when there is none, -1 when the key holds
-- something else than a string shaped "[...]".
local function array_length()
  local kind = redis.call('TYPE', array).ok
  if kind == 'none' then return 0 end
  if kind ~= 'string' then return -1 end
  if redis.call('GETRANGE', array, 0, 0) ~= '[' or redis.call('GETRANGE', array, -1, -1) ~= ']' then return -1 end
  return redis.call('STRLEN', array)
end
)lua";

std::string CacheScript(const char* body) {
  return std::string(kCachePrelude) + body;
}

// Each script asks Redis as little as its common path allows: a read that
// hits is one HGETALL and one GET; a write that extends the array is
// HGETALL, HDEL, STRLEN, GETRANGE, SETRANGE, HSET and EXPIRE (its prepare,
// HGETALL, TIME, HSET and EXPIRE, renewed the version record's TTL).

const char* const kReadScript = R"lua(
local lease, lease_seconds = ARGV[1], tonumber(ARGV[2])
local before, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
-- The offsets (0-based) at which entries `first` and `last` begin, `last`
-- == count meaning the end of the array (offset n, one past its ']'): entry
-- i begins at the i-th '{"' from the start, the (count - i)-th from the end,
-- since '{"' occurs nowhere else (inside strings every '"' is escaped).
-- Counted from the nearer end, `chunk` bytes at a time: the array is never
-- copied whole. nil when the array holds fewer entries than `count`.
local chunk = 65536
local function starts(n, count, first, last)
  local at = {}
  if last == count then at[last] = n end
  if count - first <= last then
    local index, pos = count, n - 1
    while pos >= 0 and not (at[first] and at[last]) do
      local from = math.max(0, pos - chunk + 1)
      local text = redis.call('GETRANGE', array, from, pos + 1)
      local found, i = {}, 1
      while true do
        local s = string.find(text, '{"', i, true)
        if not s then break end
        found[#found + 1] = from + s - 1
        i = s + 1
      end
      for j = #found, 1, -1 do
        index = index - 1
        if index == first or index == last then at[index] = found[j] end
      end
      pos = from - 1
    end
  else
    local index, pos = 0, 0
    while pos < n and not (at[first] and at[last]) do
      local to = math.min(n - 1, pos + chunk - 1)
      local text = redis.call('GETRANGE', array, pos, to + 1)
      local i = 1
      while true do
        local s = string.find(text, '{"', i, true)
        if not s or pos + s - 1 > to then break end
        if index == first or index == last then at[index] = pos + s - 1 end
        index = index + 1
        i = s + 1
      end
      pos = to + 1
    end
  end
  return at[first], at[last]
end
-- The page [first, last) of the `count` entries as a JSON array; nil when
-- the key is gone or does not hold `count` entries.
local function page(count, first, last)
  local n = redis.call('STRLEN', array)
  if n < 2 then return nil end
  if first == 0 and last == count then return redis.call('GET', array) end
  if first >= last then return '[]' end
  local from, to = starts(n, count, first, last)
  if not from or not to then return nil end
  return '[' .. redis.call('GETRANGE', array, from, to - 2) .. ']'
end
local rec = record()
local live, lapsed = sweep(rec)
if lapsed > 0 then drop(rec) end
if live > 0 then return {2} end
if rec.v then
  local count = tonumber(rec.v)
  local last = count
  if before and before < last then last = before end
  local first = 0
  if limit and limit < last then first = last - limit end
  local value = page(count, first, last)
  if value then return {1, value, count} end
  -- `v` vouches for an array that is not there or not whole: drop it, so the
  -- store refills it.
  if redis.call('EXISTS', array) == 1 then drop(rec) end
end
redis.call('HSET', version, 'l', lease)
if redis.call('TTL', version) < lease_seconds then redis.call('EXPIRE', version, lease_seconds) end
return {0}
)lua";

const char* const kPrepareScript = R"lua(
local token, lifetime, keep = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rec = record()
local now = now_ms()
local kind = 'w:'
for field, value in pairs(rec) do
  if string.sub(field, 1, 2) == 'e:' and tonumber(value) > now then kind = 't:' end
end
redis.call('HSET', version, kind .. token, now + lifetime)
if rec.l then redis.call('HDEL', version, 'l') end
redis.call('EXPIRE', version, keep)
return 1
)lua";

const char* const kApplyScript = R"lua(
local token, sequence, entry, ttl, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if sequence == '' then
  -- Redis is the store: nothing to follow.
  local n = array_length()
  if n < 0 then
    return redis.error_reply('the value of key ' .. array .. ' is not a JSON array; fix or delete it (DEL ' .. array .. ')')
  end
  if token ~= '' then redis.call('HDEL', version, 'w:' .. token, 't:' .. token) end
  redis.call('HINCRBY', version, 'v', 1)
  if n <= 2 then
    redis.call('SET', array, '[' .. entry .. ']')
  else
    redis.call('SETRANGE', array, n - 1, ',' .. entry .. ']')
  end
  redis.call('EXPIRE', array, ttl)
  redis.call('EXPIRE', version, keep)
  return {1, redis.call('STRLEN', array)}
end
local rec = record()
local mine, tainted = 'w:' .. token, 't:' .. token
local marked = rec[mine] ~= nil
if marked or rec[tainted] then
  redis.call('HDEL', version, mine, tainted)
  rec[mine], rec[tainted] = nil, nil
end
local live, lapsed = sweep(rec)
if marked and lapsed == 0 then
  local seq = tonumber(sequence)
  if rec.v and tonumber(rec.v) == seq then
    -- The array holds exactly the messages before this one: extend it.
    local n = redis.pcall('STRLEN', array)
    if type(n) == 'number' and n > 2 and redis.call('GETRANGE', array, -1, -1) == ']' then
      redis.call('SETRANGE', array, n - 1, ',' .. entry .. ']')
      redis.call('HSET', version, 'v', seq + 1)
      -- The version record's TTL was renewed by this write's prepare.
      redis.call('EXPIRE', array, ttl)
      return {1, n + #entry + 1}
    end
  elseif seq == 0 and not rec.d then
    -- The guest's first message: the store holds exactly this one, unless a
    -- later message settled first and dropped the array ('d').
    redis.call('SET', array, '[' .. entry .. ']', 'EX', ttl)
    redis.call('HSET', version, 'v', 1)
    return {1, #entry + 2}
  end
end
drop(rec)
return {0, 0}
)lua";

const char* const kAbandonScript = R"lua(
local token, unknown = ARGV[1], ARGV[2]
if unknown == '1' then
  drop(record())
else
  redis.call('HDEL', version, 'w:' .. token, 't:' .. token)
end
return 1
)lua";

const char* const kRefillScript = R"lua(
local lease, value, count, ttl, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rec = record()
if rec.l ~= lease then return 0 end
local live, lapsed = sweep(rec)
if live > 0 or lapsed > 0 then return 0 end
redis.call('SET', array, value, 'EX', ttl)
redis.call('HSET', version, 'v', count)
redis.call('HDEL', version, 'l', 'd')
redis.call('EXPIRE', version, keep)
return 1
)lua";

const char* const kBeginEraseScript = R"lua(
local token, lifetime, keep = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local held = redis.call('EXISTS', array)
local rec = record()
for field in pairs(rec) do
  local kind = string.sub(field, 1, 2)
  if kind == 'w:' or kind == 't:' or field == 'l' then
    redis.call('HDEL', version, field)
    rec[field] = nil
  end
end
local mark = 'e:' .. token
redis.call('HSET', version, mark, now_ms() + lifetime)
rec[mark] = '1'
drop(rec)
redis.call('EXPIRE', version, keep)
return held
)lua";

const char* const kFinishEraseScript = R"lua(
local token = ARGV[1]
local held = redis.call('EXISTS', array)
drop(record())
-- Every write begun before the erase lost its 'w:' mark, so none of them
-- settles into the array; a first message marked from now on is the whole
-- history of the guest (a rolled-back erase leaves no first message to come).
redis.call('HDEL', version, 'd')
if token ~= '' then redis.call('HDEL', version, 'e:' .. token) end
if redis.call('HLEN', version) == 0 then redis.call('DEL', version) end
return held
)lua";

const char* const kRemoveScript = R"lua(
local entry = ARGV[1]
local value = redis.call('GET', array)
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
  -- No message left (Redis is the store): as if none was ever written (a
  -- hash whose last field goes is deleted).
  redis.call('DEL', array)
  redis.call('HDEL', version, 'v')
  return 1
end
local pttl = redis.call('PTTL', array)
if pttl > 0 then
  redis.call('SET', array, rest, 'PX', pttl)
else
  redis.call('SET', array, rest)
end
if redis.call('HEXISTS', version, 'v') == 1 then redis.call('HINCRBY', version, 'v', -1) end
return 1
)lua";

const char* const kDropScript = R"lua(
drop(record())
return 1
)lua";

}  // namespace stowage::redis
