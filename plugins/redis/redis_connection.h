// RedisConnection: one blocking hiredis connection, ready for commands
// (authenticated, database selected). Over rediss:// the socket carries TLS
// (OpenSSL) and hiredis only encodes and decodes the protocol (redisReader);
// redis:// and unix:// use hiredis's own I/O, unchanged.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>
#include <vector>

#include "redis_tls.h"
#include "redis_url.h"
#include "stowage/status.h"

struct redisContext;
struct redisReply;

namespace stowage::redis {

struct ReplyDeleter {
  void operator()(redisReply* reply) const noexcept;
};
// A reply the caller owns. Error replies (e.g. NOSCRIPT) are replies, not
// failed commands: the connection stays usable after them.
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Not thread-safe: one user at a time (RedisPool hands it out).
class RedisConnection {
 public:
  // Connects to `url`, then (rediss://) makes the TLS handshake with `tls`,
  // verifying the server's certificate and host name, then sends AUTH and
  // SELECT as the url asks, each step bounded by `timeout`. On failure
  // returns a non-ok Status naming the address (never the password) and
  // leaves *out empty. `tls` is required for a rediss:// url, unused otherwise.
  static Status Open(const RedisUrl& url, std::chrono::milliseconds timeout,
                     std::unique_ptr<RedisConnection>* out, const TlsContext* tls = nullptr);

  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends `argv` and waits at most `timeout` (at least 1 ms) for the reply
  // (over TLS: for the whole exchange, sending included).
  // The socket's timeout is set only when it differs from the last one (two
  // system calls saved per command), and SIGPIPE is blocked around the write
  // only when the process does not ignore it (stowaged does).
  // On an I/O error or a timeout, returns Unavailable naming the address and
  // the command, and the connection becomes broken(): a late reply could
  // still arrive on it, so it must be closed, never reused.
  // `deadline_bound` says the timeout came from the request's deadline; a
  // timeout then returns DeadlineExceeded.
  Status Command(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout,
                 bool deadline_bound, ReplyPtr* reply);

  bool broken() const noexcept { return broken_; }

  // False when the server closed the connection or sent something unasked
  // while it sat idle (e.g. Redis restarted). A cheap non-blocking check.
  bool LooksAlive() const noexcept;

 private:
  struct Tls;  // the TLS session and the protocol reader of a rediss:// connection

  RedisConnection(redisContext* context, std::string address);
  Status TlsCommand(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout,
                    bool deadline_bound, ReplyPtr* reply);
  bool TlsLooksAlive() const noexcept;
  Status TimedOut(const std::string& name, std::chrono::milliseconds timeout, bool deadline_bound) const;

  redisContext* context_;
  std::string address_;
  bool broken_ = false;
  std::chrono::milliseconds socket_timeout_{-1};  // the one set last; -1: none yet
  bool sigpipe_ignored_ = false;                  // by the process, when the connection opened
  std::unique_ptr<Tls> tls_;                      // rediss:// only; null for redis:// and unix://
};

}  // namespace stowage::redis
