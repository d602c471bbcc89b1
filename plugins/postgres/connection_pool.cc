#include "connection_pool.h"

#include <exception>
#include <utility>

namespace stowage::postgres {

std::string OneLine(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string ErrorText(const std::exception& e) {
  if (const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e)) {
    return OneLine(soci_error->get_error_message());
  }
  return OneLine(e.what());
}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = other.pool_;
    conn_ = std::move(other.conn_);
    discard_ = other.discard_;
    other.pool_ = nullptr;
  }
  return *this;
}

Lease::~Lease() {
  Release();
}

void Lease::Release() {
  if (pool_ != nullptr && conn_ != nullptr) {
    bool keep = !discard_ && !conn_->Broken();
    pool_->Return(std::move(conn_), keep);
  }
  pool_ = nullptr;
}

ConnectionPool::ConnectionPool(Endpoint endpoint, std::size_t size, stowage::Logger& log)
    : endpoint_(std::move(endpoint)), size_(size == 0 ? 1 : size), log_(log) {}

ConnectionPool::~ConnectionPool() = default;

stowage::Status ConnectionPool::Unreachable(const std::string& reason) const {
  return stowage::Status::Unavailable("cannot reach PostgreSQL at " + endpoint_.address + ": " + reason +
                                      "; check that it runs and that stage[postgres].config.url is right");
}

ConnectionPool::Acquired ConnectionPool::Acquire(stowage::Deadline deadline) {
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      if (conn->Usable()) return {Lease(this, std::move(conn)), stowage::Status::Ok()};
      log_.info("replacing a connection to " + endpoint_.address + " that the server closed");
      conn.reset();
      lock.lock();
      --open_;
    }
    if (open_ < size_) break;
    if (returned_.wait_until(lock, deadline.at()) == std::cv_status::timeout && idle_.empty() &&
        open_ >= size_) {
      return {Lease(), stowage::Status::DeadlineExceeded(
                           "every one of the " + std::to_string(size_) + " connections to PostgreSQL at " +
                           endpoint_.address +
                           " stayed busy until the deadline; raise stage[postgres].config.pool_size or "
                           "check for slow statements")};
    }
  }
  ++open_;
  lock.unlock();
  try {
    auto conn = std::make_unique<Connection>(endpoint_.conninfo, log_);
    return {Lease(this, std::move(conn)), stowage::Status::Ok()};
  } catch (const std::exception& e) {
    {
      std::lock_guard relock(mu_);
      --open_;
    }
    returned_.notify_one();
    // soci prefixes libpq's reason with its own first line.
    std::string reason = ErrorText(e);
    const std::string prefix = "Cannot establish connection to the database.";
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
    return {Lease(), Unreachable(OneLine(reason))};
  }
}

void ConnectionPool::Return(std::unique_ptr<Connection> conn, bool keep) {
  if (!keep) conn.reset();  // closed outside the lock
  {
    std::lock_guard lock(mu_);
    if (keep) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
  }
  returned_.notify_one();
}

}  // namespace stowage::postgres
