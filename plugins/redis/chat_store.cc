#include "chat_store.h"

#include <hiredis/hiredis.h>

#include "chat_json.h"

namespace stowage::redis {

ChatStore::ChatStore(ChatStoreOptions options)
    : options_(std::move(options)),
      ttl_text_(std::to_string(options_.ttl.count())),
      pool_(options_.url, options_.pool) {}

Status ChatStore::Run(const std::vector<std::string_view>& argv, Deadline deadline, ReplyPtr* reply) {
  RedisPool::Lease lease;
  if (Status s = pool_.Acquire(deadline, &lease); !s.ok()) return s;
  return lease.Command(argv, reply);
}

Status ChatStore::Refused(std::string_view what, const std::string& key, const ReplyPtr& reply) const {
  std::string answer = reply->type == REDIS_REPLY_ERROR || reply->type == REDIS_REPLY_STATUS ||
                               reply->type == REDIS_REPLY_STRING
                           ? std::string(reply->str, reply->len)
                           : "an answer of type " + std::to_string(reply->type);
  return Status::Internal("Redis at " + options_.url.Address() + " refused to " + std::string(what) +
                          " key " + key + ": " + answer);
}

Status ChatStore::Append(const std::string& key, std::string_view entry, Deadline deadline,
                         std::int64_t* value_bytes) {
  RedisPool::Lease lease;
  if (Status s = pool_.Acquire(deadline, &lease); !s.ok()) return s;
  ReplyPtr reply;
  if (Status s = append_.Run(lease, {key}, {entry, ttl_text_}, &reply); !s.ok()) return s;
  if (reply->type != REDIS_REPLY_INTEGER) return Refused("append to", key, reply);
  *value_bytes = reply->integer;
  return Status::Ok();
}

Status ChatStore::Remove(const std::string& key, std::string_view entry, Deadline deadline, bool* removed) {
  RedisPool::Lease lease;
  if (Status s = pool_.Acquire(deadline, &lease); !s.ok()) return s;
  ReplyPtr reply;
  if (Status s = remove_.Run(lease, {key}, {entry}, &reply); !s.ok()) return s;
  if (reply->type != REDIS_REPLY_INTEGER) return Refused("remove an entry from", key, reply);
  *removed = reply->integer == 1;
  return Status::Ok();
}

Status ChatStore::Load(const std::string& key, Deadline deadline, bool* found,
                       std::vector<Message>* messages) {
  *found = false;
  messages->clear();
  ReplyPtr reply;
  if (Status s = Run({"GET", key}, deadline, &reply); !s.ok()) return s;
  if (reply->type == REDIS_REPLY_NIL) return Status::Ok();
  if (reply->type != REDIS_REPLY_STRING) return Refused("read", key, reply);
  if (Status s = DecodeArray(std::string_view(reply->str, reply->len), key, messages); !s.ok()) return s;
  *found = true;
  return Status::Ok();
}

Status ChatStore::StoreIfAbsent(const std::string& key, const std::vector<Message>& messages,
                                Deadline deadline, bool* stored) {
  *stored = false;
  const std::string value = EncodeArray(messages);
  ReplyPtr reply;
  if (Status s = Run({"SET", key, value, "NX", "EX", ttl_text_}, deadline, &reply); !s.ok()) return s;
  if (reply->type == REDIS_REPLY_NIL) return Status::Ok();
  if (reply->type != REDIS_REPLY_STATUS) return Refused("set", key, reply);
  *stored = true;
  return Status::Ok();
}

Status ChatStore::Delete(const std::string& key, Deadline deadline, bool* existed) {
  *existed = false;
  ReplyPtr reply;
  if (Status s = Run({"DEL", key}, deadline, &reply); !s.ok()) return s;
  if (reply->type != REDIS_REPLY_INTEGER) return Refused("delete", key, reply);
  *existed = reply->integer > 0;
  return Status::Ok();
}

Status ChatStore::Ping(Deadline deadline) {
  ReplyPtr reply;
  if (Status s = Run({"PING"}, deadline, &reply); !s.ok()) return s;
  if (reply->type == REDIS_REPLY_ERROR)
    return Status::Unavailable("Redis at " + options_.url.Address() + " answered PING with " +
                               std::string(reply->str, reply->len));
  return Status::Ok();
}

}  // namespace stowage::redis
