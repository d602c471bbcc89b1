// ChatStore: guests' chat messages in Redis, one string key per guest whose
// value is a JSON array of entries (chat_json.h). The Redis stage's logic,
// with no SDK plumbing: the stage maps its contexts and logs onto it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lua_script.h"
#include "redis_pool.h"
#include "redis_url.h"
#include "stowage/context.h"
#include "stowage/message.h"
#include "stowage/status.h"

namespace stowage::redis {

struct ChatStoreOptions {
  RedisUrl url;
  std::string key_prefix = "guest:";
  std::chrono::seconds ttl{86400};
  PoolOptions pool;
};

// Thread-safe. Every call finishes by its deadline, and reports a Redis that
// cannot be reached as Unavailable naming its address. Each call is a single
// atomic step on the server.
class ChatStore {
 public:
  // Does not connect: connections are opened by the first calls.
  explicit ChatStore(ChatStoreOptions options);

  // The key that holds `guest_id`'s messages: key_prefix + guest_id.
  std::string Key(std::string_view guest_id) const { return options_.key_prefix + std::string(guest_id); }
  const ChatStoreOptions& options() const noexcept { return options_; }

  // Appends `entry` (an EncodeEntry() result) to the array at `key`, creating
  // it if absent, and sets the key's TTL to the full ttl. *value_bytes gets
  // the value's length after the append.
  Status Append(const std::string& key, std::string_view entry, Deadline deadline, std::int64_t* value_bytes);

  // Removes the last copy of `entry` from `key`, whatever was appended after
  // it; deletes the key if it was the only entry. *removed is false when the
  // entry was not there (nothing to undo).
  Status Remove(const std::string& key, std::string_view entry, Deadline deadline, bool* removed);

  // Reads the array at `key`. *found is false when the key does not exist.
  Status Load(const std::string& key, Deadline deadline, bool* found, std::vector<Message>* messages);

  // Stores `messages` as the whole array at `key` with the TTL, only if the
  // key does not exist, so a newer write is never replaced by older data.
  // *stored says whether it did.
  Status StoreIfAbsent(const std::string& key, const std::vector<Message>& messages, Deadline deadline,
                       bool* stored);

  // Deletes `key`; *existed says whether it was there.
  Status Delete(const std::string& key, Deadline deadline, bool* existed);

  // PING: whether Redis answers now.
  Status Ping(Deadline deadline);

 private:
  // Runs one plain command on a pooled connection.
  Status Run(const std::vector<std::string_view>& argv, Deadline deadline, ReplyPtr* reply);
  // An error reply as a Status naming the key and what was being done.
  Status Refused(std::string_view what, const std::string& key, const ReplyPtr& reply) const;

  const ChatStoreOptions options_;
  const std::string ttl_text_;
  RedisPool pool_;
  LuaScript append_{kAppendScript};
  LuaScript remove_{kRemoveScript};
};

}  // namespace stowage::redis
