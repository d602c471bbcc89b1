// ConnectionPool: up to pool_size connections to one [[database]], opened on
// demand and replaced when broken.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "database/cancel_watchdog.h"
#include "database/connection.h"
#include "database/endpoint.h"
#include "database/postgres_database.h"
#include "database/sql_errors.h"
#include "stowage/context.h"
#include "stowage/logger.h"

namespace stowage::database {

// Thread-safe. Held by shared_ptr: every Lease keeps its pool alive.
class ConnectionPool : public std::enable_shared_from_this<ConnectionPool> {
 public:
  // Parses the url (a bad one is reported by every Acquire); connects nothing.
  ConnectionPool(const config::DatabaseSettings& settings, std::shared_ptr<stowage::Logger> log);
  ~ConnectionPool();

  // A usable connection: an idle one that the server has not closed, else a
  // new one while fewer than pool_size are open, else the first one returned
  // before `deadline`. kUnavailable naming the database and its address
  // when the server cannot be reached or every connection stays busy.
  PostgresDatabase::Acquired Acquire(stowage::Deadline deadline);

  // Takes back a lent connection: forgets its deferred commands, closes it
  // when broken (or left in pipeline mode), rolls back a transaction left
  // open (closing it if that fails), and keeps it idle with no deadline
  // otherwise.
  void Return(std::unique_ptr<Connection> connection) noexcept;

  const Target& target() const noexcept { return target_; }
  // Connections open now, idle or lent.
  std::size_t open() const;
  // Round trips made by every connection of the pool so far.
  std::uint64_t round_trips() const noexcept { return round_trips_.load(std::memory_order_relaxed); }

 private:
  std::optional<Endpoint> endpoint_;  // unset when the url is invalid
  std::string url_error_;
  Target target_;
  const std::size_t size_;
  const std::chrono::milliseconds connect_timeout_;
  const bool named_statements_;  // [[database]] prepared_statements
  std::shared_ptr<stowage::Logger> log_;
  CancelWatchdog watchdog_;  // outlives the connections below
  std::atomic<std::uint64_t> round_trips_{0};

  mutable std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<PgConnection>> idle_;  // guarded by mu_
  std::size_t open_ = 0;                             // idle + lent + being opened; guarded by mu_
};

}  // namespace stowage::database
