#include "database/connection.h"

#include <poll.h>
#include <soci/postgresql/soci-postgresql.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stowage::database {
namespace {

// Logs a notice of level WARNING or INFO (INFO always reaches the client).
// The server sends no lower level (the connection asks for
// client_min_messages=warning) unless that startup option was dropped on
// the way (pgbouncer's ignore_startup_parameters): those are left out here.
void ForwardNotice(void* arg, const PGresult* notice) {
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity != nullptr) {
    const std::string_view level(severity);
    if (level == "NOTICE" || level == "LOG" || level == "DEBUG") return;
  }
  std::string text(PQresultErrorMessage(notice));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  static_cast<stowage::Logger*>(arg)->warn("server notice: " + text);
}

// Skips whitespace and SQL comments from `at`.
std::size_t SkipBlank(std::string_view text, std::size_t at) {
  while (at < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[at]))) {
      ++at;
    } else if (text.substr(at, 2) == "--") {
      at = text.find('\n', at);
      if (at == std::string_view::npos) return text.size();
    } else if (text.substr(at, 2) == "/*") {
      at = text.find("*/", at + 2);
      if (at == std::string_view::npos) return text.size();
      at += 2;
    } else {
      break;
    }
  }
  return at;
}

// How long after a statement's deadline the server has to answer, the
// cancel request sent at the deadline included, before the connection is
// given up: a live server ends a cancelled statement within milliseconds; one
// that is stopped, overloaded past answering or cut off by the network would
// otherwise hold the request until it comes back (or TCP gives up, minutes
// later).
constexpr std::chrono::milliseconds kCancelGrace{200};

// The armed deadline of one statement; disarmed when it goes out of scope.
class ArmedDeadline {
 public:
  ArmedDeadline(CancelWatchdog& watchdog, stowage::Deadline deadline, std::shared_ptr<PGcancel> cancel)
      : watchdog_(watchdog), armed_(cancel != nullptr && deadline.at() != stowage::Clock::time_point::max()) {
    if (armed_) token_ = watchdog_.Arm(deadline.at(), std::move(cancel));
  }
  ~ArmedDeadline() { Disarm(); }
  void Disarm() noexcept {
    if (armed_) watchdog_.Disarm(token_);
    armed_ = false;
  }
  // For a connection given up: no waiting for a cancel request in flight.
  void Abandon() noexcept {
    if (armed_) watchdog_.Abandon(token_);
    armed_ = false;
  }

 private:
  CancelWatchdog& watchdog_;
  bool armed_;
  CancelWatchdog::Token token_;
};

}  // namespace

bool UsesSimpleProtocol(std::string_view statement) {
  static const std::array<std::string_view, 30> kSimple = {
      "ABORT",    "ALTER",      "ANALYZE",  "BEGIN",   "CHECKPOINT", "CLUSTER", "COMMENT", "COMMIT",
      "CREATE",   "DEALLOCATE", "DISCARD",  "DO",      "DROP",       "END",     "GRANT",   "LISTEN",
      "LOCK",     "NOTIFY",     "REASSIGN", "REFRESH", "REINDEX",    "RELEASE", "RESET",   "REVOKE",
      "ROLLBACK", "SAVEPOINT",  "SECURITY", "SET",     "START",      "TRUNCATE"};
  std::size_t at = SkipBlank(statement, 0);
  std::string word;
  while (at < statement.size() && std::isalpha(static_cast<unsigned char>(statement[at]))) {
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(statement[at])));
    ++at;
  }
  for (std::string_view simple : kSimple)
    if (word == simple) return true;
  return HoldsSeveralStatements(statement);
}

bool HoldsSeveralStatements(std::string_view statement) {
  // Text after a ';' that is not blank or a comment.
  for (std::size_t semicolon = statement.find(';'); semicolon != std::string_view::npos;
       semicolon = statement.find(';', semicolon + 1)) {
    std::size_t next = SkipBlank(statement, semicolon + 1);
    if (next < statement.size() && statement[next] != ';') return true;
  }
  return false;
}

PgConnection::PgConnection(const Endpoint& endpoint, const Target& target, CancelWatchdog& watchdog,
                           stowage::Logger& log, std::atomic<std::uint64_t>* round_trips,
                           bool named_statements)
    : target_(target),
      watchdog_(watchdog),
      session_(soci::postgresql, endpoint.conninfo),
      total_round_trips_(round_trips),
      named_statements_(named_statements) {
  PQsetNoticeReceiver(native(), ForwardNotice, &log);
  if (PGcancel* cancel = PQgetCancel(native())) cancel_ = std::shared_ptr<PGcancel>(cancel, PQfreeCancel);
}

PgConnection::~PgConnection() = default;

// Not checked by UBSan's vptr check: it needs the typeinfo of
// soci::postgresql_session_backend, which libsoci_postgresql does not export
// (the link fails). The session was opened with soci::postgresql, so its
// backend is one.
__attribute__((no_sanitize("vptr")))
PGconn* PgConnection::native() const noexcept {
  auto* backend =
      static_cast<soci::postgresql_session_backend*>(const_cast<soci::session&>(session_).get_backend());
  return backend ? backend->conn_ : nullptr;
}

bool PgConnection::broken() const noexcept {
  PGconn* conn = native();
  return broken_ || conn == nullptr || PQstatus(conn) != CONNECTION_OK ||
         PQpipelineStatus(conn) != PQ_PIPELINE_OFF;
}

PGTransactionStatusType PgConnection::TransactionStatus() const noexcept {
  PGconn* conn = native();
  return conn ? PQtransactionStatus(conn) : PQTRANS_UNKNOWN;
}

TransactionState PgConnection::transaction_state() const noexcept {
  switch (TransactionStatus()) {
    case PQTRANS_IDLE:
      return TransactionState::kIdle;
    case PQTRANS_INTRANS:
      return TransactionState::kInTransaction;
    case PQTRANS_INERROR:
      return TransactionState::kFailed;
    default:  // PQTRANS_ACTIVE, PQTRANS_UNKNOWN
      return TransactionState::kUnknown;
  }
}

bool PgConnection::Usable() noexcept {
  if (broken()) return false;
  PGconn* conn = native();
  // An idle connection has nothing to read unless the server has sent
  // something unasked: usually a FATAL, then the end of the stream. libpq
  // notices the end only on a read that returns nothing, so read until the
  // socket is drained.
  for (int reads = 0; reads < 8; ++reads) {
    pollfd fd{PQsocket(conn), POLLIN, 0};
    int ready = poll(&fd, 1, 0);
    if (ready == 0) return true;
    if (ready < 0 || PQconsumeInput(conn) == 0) return false;
    while (PGnotify* notify = PQnotifies(conn)) PQfreemem(notify);
    if (PQstatus(conn) != CONNECTION_OK) return false;
  }
  return false;  // still talking unasked: do not trust it
}

DeferredId PgConnection::Defer(std::string command, std::vector<stowage::SqlValue> params) {
  deferred_.push_back({next_deferred_, std::move(command), std::move(params), DeferredState::kWaiting});
  return next_deferred_++;
}

DeferredState PgConnection::deferred_state(DeferredId id) const noexcept {
  for (const Deferred& deferred : deferred_)
    if (deferred.id == id) return deferred.state;
  return DeferredState::kUnknown;
}

bool PgConnection::Withdraw(DeferredId id) noexcept {
  for (auto it = deferred_.begin(); it != deferred_.end(); ++it) {
    if (it->id != id) continue;
    if (it->state != DeferredState::kWaiting) return false;
    deferred_.erase(it);
    return true;
  }
  return false;
}

void PgConnection::ClearDeferred() noexcept {
  deferred_.clear();
}

bool PgConnection::HasWaiting() const noexcept {
  for (const Deferred& deferred : deferred_)
    if (deferred.state == DeferredState::kWaiting) return true;
  return false;
}

void PgConnection::CountRoundTrip() noexcept {
  ++round_trips_;
  if (total_round_trips_ != nullptr) total_round_trips_->fetch_add(1, std::memory_order_relaxed);
}

PGresult* PgConnection::NextResult() {
  PGconn* conn = native();
  while (PQisBusy(conn) == 1) {
    int wait_ms = -1;
    if (give_up_at_ != stowage::Clock::time_point::max()) {
      const auto left = give_up_at_ - stowage::Clock::now();
      if (left <= stowage::Clock::duration::zero()) {
        unanswered_ = true;
        broken_ = true;
        return nullptr;
      }
      wait_ms = static_cast<int>(
          std::min<std::int64_t>(std::chrono::ceil<std::chrono::milliseconds>(left).count(), 60'000));
    }
    pollfd fd{PQsocket(conn), POLLIN, 0};
    const int ready = poll(&fd, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;                                  // PQgetResult waits and reports
    if (ready > 0 && PQconsumeInput(conn) == 0) break;  // the connection failed: PQgetResult reports it
  }
  return PQgetResult(conn);
}

PgConnection::ResultPtr PgConnection::Collect() {
  ResultPtr kept;
  while (PGresult* got = NextResult()) {
    ResultPtr owned(got);
    const ExecStatusType status = PQresultStatus(got);
    if (!kept || PQresultStatus(kept.get()) != PGRES_FATAL_ERROR) kept = std::move(owned);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) break;
  }
  if (unanswered_) kept.reset();
  return kept;
}

PgConnection::Ran PgConnection::RunAlone(const std::string& text, bool simple,
                                         const std::vector<const char*>& values) {
  PGconn* conn = native();
  Ran ran;
  if (simple) {
    CountRoundTrip();
    if (PQsendQuery(conn, text.c_str()) == 1) ran.result = Collect();
    return ran;
  }
  if (!named_statements_) {
    CountRoundTrip();
    if (PQsendQueryParams(conn, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                          nullptr, 0) == 1)
      ran.result = Collect();
    return ran;
  }
  auto it = prepared_.find(text);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(next_statement_);
    CountRoundTrip();
    if (PQsendPrepare(conn, name.c_str(), text.c_str(), 0, nullptr) != 1) return ran;
    auto prepare = Collect();
    if (!prepare || PQresultStatus(prepare.get()) != PGRES_COMMAND_OK) {
      ran.result = std::move(prepare);
      return ran;
    }
    ++next_statement_;
    it = prepared_.emplace(text, std::move(name)).first;
  }
  ran.prepared_name = it->second;
  CountRoundTrip();
  if (PQsendQueryPrepared(conn, ran.prepared_name.c_str(), static_cast<int>(values.size()), values.data(),
                          nullptr, nullptr, 0) == 1)
    ran.result = Collect();
  return ran;
}

stowage::Status PgConnection::RunPipeline(const std::string* text, bool simple,
                                          const std::vector<const char*>& values,
                                          stowage::Clock::time_point start, Ran* ran) {
  PGconn* conn = native();
  auto elapsed = [start] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(stowage::Clock::now() - start);
  };
  std::vector<std::size_t> batch;  // indexes in deferred_ of the commands to send
  for (std::size_t i = 0; i < deferred_.size(); ++i)
    if (deferred_[i].state == DeferredState::kWaiting) batch.push_back(i);

  // Each part sent answers with its results then a null; the sync ends all.
  std::size_t parts = 0;
  std::string new_name;  // the statement's name when this pipeline prepares it
  bool sent = PQenterPipelineMode(conn) == 1;
  for (std::size_t i : batch) {
    std::vector<const char*> deferred_values;
    deferred_values.reserve(deferred_[i].params.size());
    for (const auto& param : deferred_[i].params) deferred_values.push_back(param ? param->c_str() : nullptr);
    sent = sent && PQsendQueryParams(conn, deferred_[i].command.c_str(), static_cast<int>(deferred_values.size()),
                                     nullptr, deferred_values.data(), nullptr, nullptr, 0) == 1;
    if (sent) ++parts;
  }
  if (sent && text != nullptr) {
    if (simple) {
      sent = PQsendQueryParams(conn, text->c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    } else if (!named_statements_) {
      sent = PQsendQueryParams(conn, text->c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                               nullptr, nullptr, 0) == 1;
    } else {
      auto it = prepared_.find(*text);
      if (it == prepared_.end()) {
        new_name = "s" + std::to_string(next_statement_);
        sent = PQsendPrepare(conn, new_name.c_str(), text->c_str(), 0, nullptr) == 1;
        if (sent) ++parts;
      }
      ran->prepared_name = new_name.empty() ? it->second : new_name;
      sent = sent && PQsendQueryPrepared(conn, ran->prepared_name.c_str(), static_cast<int>(values.size()),
                                         values.data(), nullptr, nullptr, 0) == 1;
    }
    if (sent) ++parts;
  }
  sent = sent && PQpipelineSync(conn) == 1;
  if (!sent) {
    // libpq could not queue or send: the connection cannot go on.
    broken_ = true;
    ran->prepared_name.clear();
    for (std::size_t i : batch) deferred_[i].state = DeferredState::kFailed;
    return StatementError(target_, nullptr, conn, true, elapsed());
  }

  CountRoundTrip();
  std::vector<ResultPtr> results(parts);
  bool lost = false;
  for (std::size_t p = 0; p < parts && !lost; ++p) {
    while (PGresult* got = NextResult()) {
      ResultPtr owned(got);
      const ExecStatusType status = PQresultStatus(got);
      if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
        // Only the statement can start a COPY; the connection is left in
        // its middle. Finish reports it.
        broken_ = true;
        for (std::size_t i : batch) deferred_[i].state = DeferredState::kRan;
        ran->prepared_name.clear();
        ran->result = std::move(owned);
        return stowage::Status::Ok();
      }
      if (!results[p] || status == PGRES_FATAL_ERROR) results[p] = std::move(owned);
    }
    if (!results[p] || PQstatus(conn) != CONNECTION_OK) lost = true;
  }
  if (!lost) {
    ResultPtr sync(NextResult());
    lost = !sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC || PQexitPipelineMode(conn) != 1;
  }
  if (lost) broken_ = true;  // the server is gone, or the connection is left in pipeline mode

  auto succeeded = [&](std::size_t p) {
    if (!results[p]) return false;
    const ExecStatusType status = PQresultStatus(results[p].get());
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY;
  };
  for (std::size_t b = 0; b < batch.size(); ++b) {
    if (succeeded(b)) {
      deferred_[batch[b]].state = DeferredState::kRan;
      continue;
    }
    const std::string command = deferred_[batch[b]].command;
    // A BEGIN that failed opened no transaction and nothing after it ran:
    // the connection is as it was, so they all wait for the next statement.
    const bool begin_again = !broken_ && command == "BEGIN" && TransactionStatus() == PQTRANS_IDLE;
    if (!begin_again)
      for (std::size_t rest = b; rest < batch.size(); ++rest)
        deferred_[batch[rest]].state = DeferredState::kFailed;
    ran->prepared_name.clear();
    return StatementError(target_, results[b].get(), conn, broken_, elapsed(),
                          "'" + command + "', sent ahead of the statement (which did not run),");
  }
  std::size_t p = batch.size();
  if (!new_name.empty() && !lost) {
    if (!succeeded(p)) {
      // The statement did not run: its PREPARE's error is the one to report.
      ran->prepared_name.clear();
      ran->result = std::move(results[p]);
      return stowage::Status::Ok();
    }
    ++next_statement_;
    prepared_.emplace(*text, new_name);
    ++p;
  }
  if (lost) {
    // The statement's answer or the sync that ends it did not come: it
    // cannot be counted as done (a sync ends an implicit transaction).
    ran->prepared_name.clear();
    const PGresult* failed = nullptr;
    for (std::size_t q = p; q < parts && failed == nullptr; ++q)
      if (!succeeded(q)) failed = results[q].get();
    return StatementError(target_, failed, conn, true, elapsed());
  }
  if (text != nullptr) ran->result = std::move(results[p]);
  return stowage::Status::Ok();
}

stowage::Status PgConnection::Finish(const std::string& text, Ran& ran, std::chrono::milliseconds elapsed,
                                     stowage::SqlResult* result) {
  PGconn* conn = native();
  PGresult* res = ran.result.get();
  const ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
    if (result != nullptr) {
      const int columns = PQnfields(res);
      const int rows = PQntuples(res);
      result->columns.reserve(columns);
      for (int c = 0; c < columns; ++c) result->columns.emplace_back(PQfname(res, c));
      result->rows.resize(rows);
      for (int r = 0; r < rows; ++r) {
        auto& row = result->rows[r];
        row.reserve(columns);
        for (int c = 0; c < columns; ++c) {
          if (PQgetisnull(res, r, c)) {
            row.emplace_back(std::nullopt);
          } else {
            row.emplace_back(std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
          }
        }
      }
      const char* affected = PQcmdTuples(res);
      result->affected = affected && *affected ? std::stoull(affected) : 0;
    }
    return stowage::Status::Ok();
  }
  if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
    broken_ = true;  // the connection is left in the middle of a COPY
    return stowage::Status::Internal("COPY cannot run through execute() on PostgreSQL database '" +
                                     target_.name + "'; use INSERT statements");
  }
  const bool lost = PQstatus(conn) != CONNECTION_OK;
  const char* sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (lost || (sqlstate && ConnectionLost(sqlstate))) broken_ = true;
  if (!ran.prepared_name.empty() && sqlstate &&
      (std::string_view(sqlstate) == "26000" || std::string_view(sqlstate) == "0A000")) {
    prepared_.erase(text);  // deallocated, or its plan no longer fits the schema: prepare it again
  }
  return StatementError(target_, res, conn, broken_, elapsed);
}

stowage::Status PgConnection::execute(std::string_view statement,
                                      const std::vector<stowage::SqlValue>& params,
                                      stowage::SqlResult* result) noexcept {
  try {
    if (result != nullptr) *result = stowage::SqlResult{};
    if (broken()) {
      return Unreachable(target_, "this connection was lost by an earlier statement; retry on a new one");
    }
    if (deadline_.expired()) {
      return stowage::Status::DeadlineExceeded(
          "the deadline passed before a statement was sent to PostgreSQL database '" + target_.name +
          "' at " + target_.address +
          "; raise the stage's timeout_ms or spend less time before the statement");
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (params[i] && params[i]->find('\0') != std::string::npos) {
        return stowage::Status::InvalidArgument(
            "parameter $" + std::to_string(i + 1) + " of a statement for PostgreSQL database '" +
            target_.name +
            "' holds a NUL byte, which PostgreSQL text cannot store; remove it or encode the value");
      }
      values.push_back(params[i] ? params[i]->c_str() : nullptr);
    }
    if (params.size() > 65535) {
      return stowage::Status::InvalidArgument("a statement for PostgreSQL database '" + target_.name +
                                              "' has " + std::to_string(params.size()) +
                                              " parameters, more than the 65535 PostgreSQL takes; split it");
    }

    const std::string text(statement);
    const bool simple = params.empty() && UsesSimpleProtocol(statement);
    const auto start = stowage::Clock::now();
    give_up_at_ = deadline_.at() >= stowage::Clock::time_point::max() - kCancelGrace
                      ? stowage::Clock::time_point::max()
                      : deadline_.at() + kCancelGrace;
    ArmedDeadline armed(watchdog_, deadline_, cancel_);
    // The server answered neither the statement nor its cancel request: the
    // connection is given up (broken_), and closing it makes PostgreSQL roll
    // back what it has not committed once it runs again.
    auto unanswered = [&] {
      armed.Abandon();
      return stowage::Status::DeadlineExceeded(
          "PostgreSQL database '" + target_.name + "' at " + target_.address +
          " answered neither a statement by its deadline nor the cancel request sent then, " +
          std::to_string(kCancelGrace.count()) +
          " ms later; the connection is closed (PostgreSQL rolls back what it did not commit); check that the "
          "server is running and reachable");
    };
    Ran ran;
    if (!HasWaiting()) {
      ran = RunAlone(text, simple, values);
    } else if (simple && HoldsSeveralStatements(statement)) {
      // The simple protocol's text cannot join a pipeline: the deferred
      // commands go first, in a round trip of their own.
      stowage::Status ready = RunPipeline(nullptr, false, values, start, &ran);
      if (unanswered_) return unanswered();
      if (!ready.ok()) return ready;
      if (deadline_.expired()) {
        return stowage::Status::DeadlineExceeded(
            "the deadline passed before a statement was sent to PostgreSQL database '" + target_.name +
            "' at " + target_.address +
            " (the commands deferred before it ran); raise the stage's timeout_ms");
      }
      ran = RunAlone(text, true, values);
    } else {
      stowage::Status piped = RunPipeline(&text, simple, values, start, &ran);
      if (unanswered_) return unanswered();
      if (!piped.ok()) return piped;
    }
    if (unanswered_) return unanswered();
    armed.Disarm();
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(stowage::Clock::now() - start);
    return Finish(text, ran, elapsed, result);
  } catch (const std::exception& e) {
    return stowage::Status::Internal("a statement on PostgreSQL database '" + target_.name +
                                     "' failed in the host: " + CleanText(target_, e.what()));
  } catch (...) {
    return stowage::Status::Internal("a statement on PostgreSQL database '" + target_.name +
                                     "' failed in the host with an unknown exception");
  }
}

}  // namespace stowage::database
