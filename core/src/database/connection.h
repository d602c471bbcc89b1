// PgConnection: one soci session to PostgreSQL, the statements prepared on
// it, and the SqlSession that stages use.
#pragma once

#include <libpq-fe.h>
#include <soci/soci.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "database/cancel_watchdog.h"
#include "database/endpoint.h"
#include "database/postgres_database.h"
#include "database/sql_errors.h"
#include "stowage/logger.h"

namespace stowage::database {

// Used by one thread at a time (the pool lends it out); only the watchdog
// touches it from another thread, through its cancel handle.
class PgConnection final : public Connection {
 public:
  // Connects with the endpoint's connection string. Throws soci::soci_error
  // whose text holds libpq's reason. `target`, `watchdog` and `log` must
  // outlive the connection; server notices go to `log`.
  PgConnection(const Endpoint& endpoint, const Target& target, CancelWatchdog& watchdog,
               stowage::Logger& log);
  ~PgConnection() override;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Without parameters, transaction control, DDL and text holding several
  // statements go through the simple protocol; everything else is prepared
  // once (as s1, s2, ...) and executed with text parameters and results.
  stowage::Status execute(std::string_view statement, const std::vector<stowage::SqlValue>& params,
                          stowage::SqlResult* result = nullptr) noexcept override;
  const std::string& database() const noexcept override { return target_.name; }
  void set_deadline(stowage::Deadline deadline) noexcept override { deadline_ = deadline; }
  bool broken() const noexcept override;

  // Whether the idle connection can still be used, without a round trip:
  // false once the server has closed it (restart, shutdown, idle kill) or
  // it is broken. Call only between statements.
  bool Usable() noexcept;

  // libpq's view of the transaction (PQTRANS_IDLE outside one).
  PGTransactionStatusType TransactionStatus() const noexcept;

  // The number of statements prepared on this connection.
  std::size_t prepared() const noexcept { return prepared_.size(); }

  soci::session& session() noexcept { return session_; }

 private:
  PGconn* native() const noexcept;

  const Target& target_;
  CancelWatchdog& watchdog_;
  soci::session session_;
  PGcancel* cancel_ = nullptr;
  stowage::Deadline deadline_{stowage::Clock::time_point::max()};
  bool broken_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
  std::uint64_t next_statement_ = 1;
};

// Whether `statement`, run without parameters, goes through PQexec rather
// than being prepared: transaction control, DDL, session commands, or text
// holding more than one statement.
bool UsesSimpleProtocol(std::string_view statement);

}  // namespace stowage::database
