#include "database/postgres_database.h"

#include <exception>
#include <utility>

#include "database/connection_pool.h"
#include "database/migrations.h"

namespace stowage::database {

Lease::Lease(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Connection> connection)
    : pool_(std::move(pool)), connection_(std::move(connection)) {}

Lease::~Lease() {
  if (pool_ && connection_) pool_->Return(std::move(connection_));
}

Lease::Lease(Lease&& other) noexcept
    : pool_(std::move(other.pool_)), connection_(std::move(other.connection_)) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ && connection_) pool_->Return(std::move(connection_));
    pool_ = std::move(other.pool_);
    connection_ = std::move(other.connection_);
  }
  return *this;
}

PostgresDatabase::PostgresDatabase(config::DatabaseSettings settings, std::shared_ptr<stowage::Logger> log)
    : settings_(std::move(settings)),
      log_(std::move(log)),
      pool_(std::make_shared<ConnectionPool>(settings_, log_)) {}

PostgresDatabase::~PostgresDatabase() = default;

const std::string& PostgresDatabase::address() const noexcept {
  return pool_->target().address;
}

PostgresDatabase::Acquired PostgresDatabase::Acquire(stowage::Deadline deadline) {
  return pool_->Acquire(deadline);
}

stowage::Status PostgresDatabase::with_session(
    stowage::Deadline deadline, const std::function<stowage::Status(stowage::SqlSession&)>& work) noexcept {
  try {
    Acquired acquired = Acquire(deadline);
    if (!acquired.status.ok()) return acquired.status;
    acquired.lease->set_deadline(deadline);
    return work(*acquired.lease);
  } catch (const std::exception& e) {
    return stowage::Status::Internal("work on PostgreSQL database '" + settings_.name +
                                     "' threw: " + CleanText(pool_->target(), e.what()));
  } catch (...) {
    return stowage::Status::Internal("work on PostgreSQL database '" + settings_.name +
                                     "' threw an unknown exception");
  }
}

stowage::Status PostgresDatabase::apply_migrations(std::string_view component,
                                                   const std::vector<stowage::Migration>& migrations,
                                                   stowage::Deadline deadline,
                                                   std::vector<int>* applied) noexcept {
  return with_session(deadline, [&](stowage::SqlSession& session) {
    return ApplyMigrations(session, component, migrations, applied);
  });
}

std::uint64_t PostgresDatabase::round_trips() const noexcept {
  return pool_->round_trips();
}

stowage::Status PostgresDatabase::Health(stowage::Deadline deadline) {
  return with_session(deadline, [](stowage::SqlSession& session) { return session.execute("SELECT 1", {}); });
}

}  // namespace stowage::database
