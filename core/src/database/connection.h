// PgConnection: one soci session to PostgreSQL, the statements prepared on
// it, and the SqlSession that stages use.
#pragma once

#include <libpq-fe.h>
#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
  // whose text holds libpq's reason. `target`, `watchdog`, `log` and
  // `round_trips` (when given: every round trip adds one to it too) must
  // outlive the connection; server notices go to `log`. With
  // `named_statements` false, nothing is prepared under a name: see execute().
  PgConnection(const Endpoint& endpoint, const Target& target, CancelWatchdog& watchdog, stowage::Logger& log,
               std::atomic<std::uint64_t>* round_trips = nullptr, bool named_statements = true);
  ~PgConnection() override;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Without parameters, transaction control, DDL and text holding several
  // statements go through the simple protocol; everything else is prepared
  // once (as s1, s2, ...) and executed with text parameters and results.
  //
  // With commands deferred, they and the statement go in one pipeline
  // (extended protocol, one sync): the commands, then the statement's
  // PREPARE when it is new on this connection, then the statement (a
  // parameterless one of the simple kind as an unnamed statement). Text
  // holding several statements cannot join a pipeline: the commands go in
  // a round trip of their own before it. The deadline covers the whole.
  //
  // Without named statements ([[database]] prepared_statements = false),
  // what would be prepared is sent as the unnamed statement instead (parse,
  // bind, describe and execute in one message group, PQexecParams or, in a
  // pipeline, PQsendQueryParams): no server-side state outlives the
  // statement, at the cost of parsing and planning it every time.
  stowage::Status execute(std::string_view statement, const std::vector<stowage::SqlValue>& params,
                          stowage::SqlResult* result = nullptr) noexcept override;
  const std::string& database() const noexcept override { return target_.name; }
  void set_deadline(stowage::Deadline deadline) noexcept override { deadline_ = deadline; }
  bool broken() const noexcept override;
  TransactionState transaction_state() const noexcept override;

  DeferredId Defer(std::string command, std::vector<stowage::SqlValue> params = {}) override;
  DeferredState deferred_state(DeferredId id) const noexcept override;
  bool Withdraw(DeferredId id) noexcept override;
  void ClearDeferred() noexcept override;
  std::uint64_t round_trips() const noexcept override { return round_trips_; }

  // Whether the idle connection can still be used, without a round trip:
  // false once the server has closed it (restart, shutdown, idle kill) or
  // it is broken. Call only between statements.
  bool Usable() noexcept;

  // libpq's view of the transaction (PQTRANS_IDLE outside one).
  PGTransactionStatusType TransactionStatus() const noexcept;

  // The number of named statements prepared on this connection (always 0
  // without named statements).
  std::size_t prepared() const noexcept { return prepared_.size(); }

  soci::session& session() noexcept { return session_; }

 private:
  struct Deferred {
    DeferredId id;
    std::string command;
    std::vector<stowage::SqlValue> params;
    DeferredState state;
  };
  // Owns a libpq result: PQclear when it goes.
  struct ClearResult {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
  };
  using ResultPtr = std::unique_ptr<PGresult, ClearResult>;
  // A statement's result, and the prepared statement's name when it ran as one.
  struct Ran {
    ResultPtr result;
    std::string prepared_name;
  };

  PGconn* native() const noexcept;
  void CountRoundTrip() noexcept;
  // The next result of what was sent (PQgetResult), reading the socket
  // only while the server answers by give_up_at_. When it does not, the
  // connection is given up (unanswered_ and broken_ are set) and null is
  // returned, as at the end of the results.
  PGresult* NextResult();
  // Every result of what was sent, to the end: the last one, or the first
  // error (as PQexec keeps it); a COPY ends it. Null when given up.
  ResultPtr Collect();
  bool HasWaiting() const noexcept;
  // The statement alone: as PQexec, or PQprepare when new and
  // PQexecPrepared, each sent and then waited for until give_up_at_.
  Ran RunAlone(const std::string& text, bool simple, const std::vector<const char*>& values);
  // The waiting deferred commands, then `text` when not null, in one
  // pipeline. Fills `*ran` with the statement's result; returns the error of
  // a deferred command that failed, or of the pipeline itself.
  stowage::Status RunPipeline(const std::string* text, bool simple, const std::vector<const char*>& values,
                              stowage::Clock::time_point start, Ran* ran);
  // The Status of the statement's result; fills `result` on success.
  stowage::Status Finish(const std::string& text, Ran& ran, std::chrono::milliseconds elapsed,
                         stowage::SqlResult* result);

  const Target& target_;
  CancelWatchdog& watchdog_;
  soci::session session_;
  std::shared_ptr<PGcancel> cancel_;  // shared with the watchdog while it sends
  stowage::Deadline deadline_{stowage::Clock::time_point::max()};
  // The statement's deadline and kCancelGrace: past it, the server answered
  // neither the statement nor its cancel request.
  stowage::Clock::time_point give_up_at_ = stowage::Clock::time_point::max();
  bool unanswered_ = false;  // the statement was given up at give_up_at_
  bool broken_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
  std::uint64_t next_statement_ = 1;
  std::vector<Deferred> deferred_;  // in the order deferred, until ClearDeferred
  DeferredId next_deferred_ = 1;
  std::uint64_t round_trips_ = 0;
  std::atomic<std::uint64_t>* total_round_trips_;  // may be null
  const bool named_statements_;  // [[database]] prepared_statements
};

// Whether `statement`, run without parameters, goes through PQexec rather
// than being prepared: transaction control, DDL, session commands, or text
// holding more than one statement.
bool UsesSimpleProtocol(std::string_view statement);

// Whether `statement` holds more than one statement (text after a `;` that
// is not blank or a comment). Such text goes only through the simple protocol.
bool HoldsSeveralStatements(std::string_view statement);

}  // namespace stowage::database
