#include "redis_pool.h"

#include <algorithm>
#include <string>
#include <utility>

namespace stowage::redis {

RedisPool::Lease& RedisPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Return();
    pool_ = std::exchange(other.pool_, nullptr);
    connection_ = std::move(other.connection_);
    deadline_ = other.deadline_;
  }
  return *this;
}

RedisPool::Lease::~Lease() {
  Return();
}

void RedisPool::Lease::Return() noexcept {
  if (pool_ != nullptr && connection_ != nullptr) pool_->Release(std::move(connection_));
  pool_ = nullptr;
}

Status RedisPool::Lease::Command(const std::vector<std::string_view>& argv, ReplyPtr* reply) {
  if (connection_ == nullptr) return Status::Internal("a Redis command was run without a connection");
  std::chrono::milliseconds remaining = deadline_.remaining();
  if (remaining.count() <= 0)
    return Status::DeadlineExceeded("the request's deadline passed before " + std::string(argv.front()) +
                                    " could be sent to Redis at " + pool_->url_.Address());
  const bool deadline_bound = remaining < pool_->options_.command_timeout;
  // A wait bound by the deadline is cut to whole 10 ms, so that the calls of
  // one request mostly ask the socket for the same timeout (the connection
  // sets it only when it changes); it ends at most 10 ms early.
  if (deadline_bound && remaining >= std::chrono::milliseconds(20))
    remaining = remaining / 10 * 10;
  return connection_->Command(argv, std::min(remaining, pool_->options_.command_timeout), deadline_bound,
                              reply);
}

namespace {

PoolOptions AtLeastOneConnection(PoolOptions options) {
  options.size = std::max<std::size_t>(options.size, 1);
  return options;
}

}  // namespace

RedisPool::RedisPool(RedisUrl url, PoolOptions options)
    : url_(std::move(url)), options_(AtLeastOneConnection(options)) {}

Status RedisPool::Acquire(Deadline deadline, Lease* lease) {
  std::unique_ptr<RedisConnection> stale;  // closed outside the lock
  {
    std::unique_lock lock(mu_);
    while (true) {
      while (!idle_.empty()) {
        std::unique_ptr<RedisConnection> connection = std::move(idle_.back());
        idle_.pop_back();
        if (connection->LooksAlive()) {
          *lease = Lease(this, std::move(connection), deadline);
          return Status::Ok();
        }
        --open_;
        stale = std::move(connection);
        lock.unlock();
        stale.reset();
        lock.lock();
      }
      if (open_ < options_.size) break;
      if (returned_.wait_until(lock, deadline.at()) == std::cv_status::timeout && idle_.empty() &&
          open_ >= options_.size)
        return Status::DeadlineExceeded("all " + std::to_string(options_.size) + " connections to Redis at " +
                                        url_.Address() +
                                        " stayed busy until the request's deadline; raise pool_size if this "
                                        "happens under normal load");
    }
    ++open_;  // reserve a slot, then connect without holding the lock
  }
  const std::chrono::milliseconds remaining = deadline.remaining();
  std::unique_ptr<RedisConnection> connection;
  Status status =
      remaining.count() <= 0
          ? Status::DeadlineExceeded("the request's deadline passed before connecting to Redis at " +
                                     url_.Address())
          : RedisConnection::Open(url_, std::min(remaining, options_.connect_timeout), &connection,
                                  options_.tls.get());
  if (!status.ok()) {
    std::lock_guard lock(mu_);
    --open_;
    returned_.notify_one();
    return status;
  }
  *lease = Lease(this, std::move(connection), deadline);
  return Status::Ok();
}

void RedisPool::Release(std::unique_ptr<RedisConnection> connection) noexcept {
  if (connection->broken()) {
    connection.reset();
    std::lock_guard lock(mu_);
    --open_;
  } else {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(connection));
  }
  returned_.notify_one();
}

}  // namespace stowage::redis
