// ConnectionPool: up to pool_size connections to one server, opened on
// demand and replaced when broken.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connection.h"
#include "endpoint.h"
#include "stowage/context.h"
#include "stowage/logger.h"
#include "stowage/status.h"

namespace stowage::postgres {

class ConnectionPool;

// Exclusive use of one pooled connection; returns it to the pool when
// destroyed, or closes it when it is broken or was discarded.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept
      : pool_(other.pool_), conn_(std::move(other.conn_)), discard_(other.discard_) {
    other.pool_ = nullptr;
  }
  Lease& operator=(Lease&& other) noexcept;
  ~Lease();

  explicit operator bool() const { return conn_ != nullptr; }
  Connection& operator*() const { return *conn_; }
  Connection* operator->() const { return conn_.get(); }

  // Closes the connection instead of returning it.
  void Discard() { discard_ = true; }

 private:
  friend class ConnectionPool;
  Lease(ConnectionPool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
  void Release();

  ConnectionPool* pool_ = nullptr;
  std::unique_ptr<Connection> conn_;
  bool discard_ = false;
};

// Thread-safe. Must outlive every Lease it hands out.
class ConnectionPool {
 public:
  // `log` receives server notices and must outlive the pool.
  ConnectionPool(Endpoint endpoint, std::size_t size, stowage::Logger& log);
  ~ConnectionPool();

  struct Acquired {
    Lease lease;  // set when `status` is ok
    stowage::Status status;
  };

  // A usable connection: an idle one that the server has not closed, else a
  // new one while fewer than `size` are open, else the first one returned
  // before `deadline`. Fails with kUnavailable naming the server's address
  // when no connection can be opened, and with kDeadlineExceeded when every
  // connection stays busy until the deadline.
  Acquired Acquire(stowage::Deadline deadline);

  const Endpoint& endpoint() const { return endpoint_; }

  // The kUnavailable status for the server, with libpq's `reason`.
  stowage::Status Unreachable(const std::string& reason) const;

 private:
  friend class Lease;
  void Return(std::unique_ptr<Connection> conn, bool keep);

  const Endpoint endpoint_;
  const std::size_t size_;
  stowage::Logger& log_;

  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  std::size_t open_ = 0;                           // idle + leased + being opened; guarded by mu_
};

// Collapses libpq/soci error text (several lines, tabs) into one line.
std::string OneLine(const std::string& text);

// The reason an exception gives, on one line. For a soci error, without the
// statement and parameter values soci appends: those hold guests' messages,
// which must not reach logs or API answers.
std::string ErrorText(const std::exception& e);

}  // namespace stowage::postgres
