// RedisPool: up to `size` connections to one Redis, opened on demand and
// shared by all the threads of a stage.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "redis_connection.h"
#include "redis_url.h"
#include "stowage/context.h"
#include "stowage/status.h"

namespace stowage::redis {

struct PoolOptions {
  std::size_t size = 8;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  // Certificates for a rediss:// url (required then); null for redis:// and unix://.
  std::shared_ptr<const TlsContext> tls;
};

// Thread-safe. Connections are opened lazily (constructing a pool never
// touches the network, so a stage starts while Redis is down); a connection
// that failed or timed out is closed, never handed out again; an idle one the
// server closed (Redis restarted) is dropped when next taken. So once Redis is
// back, the next call works without restarting anything.
class RedisPool {
 public:
  // One connection, borrowed for one operation. Returns it to the pool when
  // destroyed (or closes it if it broke). Must not outlive the pool.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();

    // Runs one command; it waits at most min(command_timeout,
    // what remains of the deadline). A deadline already passed returns
    // DeadlineExceeded without sending anything.
    Status Command(const std::vector<std::string_view>& argv, ReplyPtr* reply);

    // Where the connection goes.
    const RedisUrl& url() const noexcept { return pool_->url(); }

   private:
    friend class RedisPool;
    Lease(RedisPool* pool, std::unique_ptr<RedisConnection> connection, Deadline deadline)
        : pool_(pool), connection_(std::move(connection)), deadline_(deadline) {}
    void Return() noexcept;

    RedisPool* pool_ = nullptr;
    std::unique_ptr<RedisConnection> connection_;
    Deadline deadline_{Clock::time_point{}};
  };

  RedisPool(RedisUrl url, PoolOptions options);

  // Borrows an idle connection, or opens one if fewer than `size` are open,
  // or waits for one to come back, all before `deadline`. Fails with
  // Unavailable when Redis cannot be reached, DeadlineExceeded when the
  // deadline passes first.
  Status Acquire(Deadline deadline, Lease* lease);

  const RedisUrl& url() const noexcept { return url_; }
  const PoolOptions& options() const noexcept { return options_; }

 private:
  void Release(std::unique_ptr<RedisConnection> connection) noexcept;

  const RedisUrl url_;
  const PoolOptions options_;
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;  // guarded by mu_
  std::size_t open_ = 0;                                // idle or lent out; guarded by mu_
};

}  // namespace stowage::redis
