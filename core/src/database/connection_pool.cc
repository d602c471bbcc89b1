#include "database/connection_pool.h"

#include <exception>
#include <stdexcept>
#include <utility>

namespace stowage::database {

ConnectionPool::ConnectionPool(const config::DatabaseSettings& settings, std::shared_ptr<stowage::Logger> log)
    : size_(settings.pool_size < 1 ? 1 : static_cast<std::size_t>(settings.pool_size)),
      connect_timeout_(settings.connect_timeout),
      named_statements_(settings.prepared_statements),
      log_(std::move(log)) {
  target_.name = settings.name;
  try {
    endpoint_ = ParseEndpoint(settings.url, settings.name, settings.connect_timeout);
    target_.address = endpoint_->address;
    target_.password = endpoint_->password;
  } catch (const std::exception& e) {
    url_error_ = e.what();
    target_.address = "(invalid url)";
  }
}

ConnectionPool::~ConnectionPool() = default;

std::size_t ConnectionPool::open() const {
  std::lock_guard lock(mu_);
  return open_;
}

PostgresDatabase::Acquired ConnectionPool::Acquire(stowage::Deadline deadline) {
  if (!endpoint_) {
    return {stowage::Status::Unavailable("PostgreSQL database '" + target_.name +
                                         "' has an invalid url: " + url_error_),
            Lease()};
  }
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<PgConnection> connection = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      if (connection->Usable())
        return {stowage::Status::Ok(), Lease(shared_from_this(), std::move(connection))};
      log_->info("replacing a connection to PostgreSQL database '" + target_.name + "' at " +
                 target_.address + " that the server closed");
      connection.reset();
      lock.lock();
      --open_;
    }
    if (open_ < size_) break;
    if (returned_.wait_until(lock, deadline.at()) == std::cv_status::timeout && idle_.empty() &&
        open_ >= size_) {
      return {stowage::Status::Unavailable("no connection to PostgreSQL database '" + target_.name + "' at " +
                                           target_.address + " was free by the deadline: all " +
                                           std::to_string(size_) +
                                           " connections are in use; raise [[database]] " + target_.name +
                                           "'s pool_size or look for slow statements"),
              Lease()};
    }
  }
  ++open_;
  lock.unlock();
  try {
    auto connection = std::make_unique<PgConnection>(*endpoint_, target_, watchdog_, *log_, &round_trips_,
                                                   named_statements_);
    return {stowage::Status::Ok(), Lease(shared_from_this(), std::move(connection))};
  } catch (const std::exception& e) {
    {
      std::lock_guard relock(mu_);
      --open_;
    }
    returned_.notify_one();
    std::string reason = e.what();
    if (const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e)) {
      reason = soci_error->get_error_message();
    }
    // soci puts its own first line before libpq's reason.
    const std::string prefix = "Cannot establish connection to the database.";
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
    return {Unreachable(target_, reason), Lease()};
  }
}

void ConnectionPool::Return(std::unique_ptr<Connection> lent) noexcept {
  std::unique_ptr<PgConnection> connection(static_cast<PgConnection*>(lent.release()));
  connection->ClearDeferred();  // what was deferred and never sent began nothing
  bool keep = !connection->broken();
  if (keep && connection->TransactionStatus() != PQTRANS_IDLE) {
    log_->warn("a connection to PostgreSQL database '" + target_.name +
               "' came back inside a transaction; rolling it back (work must COMMIT what it keeps)");
    connection->set_deadline(stowage::Deadline::After(connect_timeout_));
    keep = connection->execute("ROLLBACK", {}).ok() && connection->TransactionStatus() == PQTRANS_IDLE;
  }
  if (keep) connection->set_deadline(stowage::Deadline(stowage::Clock::time_point::max()));
  if (!keep) connection.reset();  // closed outside the lock
  {
    std::lock_guard lock(mu_);
    if (keep) {
      idle_.push_back(std::move(connection));
    } else {
      --open_;
    }
  }
  returned_.notify_one();
}

}  // namespace stowage::database
