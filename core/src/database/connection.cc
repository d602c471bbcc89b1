#include "database/connection.h"

#include <poll.h>
#include <soci/postgresql/soci-postgresql.h>

#include <array>
#include <cctype>
#include <memory>
#include <string>
#include <vector>

namespace stowage::database {
namespace {

void ForwardNotice(void* arg, const char* message) {
  std::string text(message);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  static_cast<stowage::Logger*>(arg)->warn("server notice: " + text);
}

struct ClearResult {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ClearResult>;

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

// The armed deadline of one statement; disarmed when it goes out of scope.
class ArmedDeadline {
 public:
  ArmedDeadline(CancelWatchdog& watchdog, stowage::Deadline deadline, PGcancel* cancel)
      : watchdog_(watchdog), armed_(cancel != nullptr && deadline.at() != stowage::Clock::time_point::max()) {
    if (armed_) token_ = watchdog_.Arm(deadline.at(), cancel);
  }
  ~ArmedDeadline() { Disarm(); }
  void Disarm() noexcept {
    if (armed_) watchdog_.Disarm(token_);
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
  // Several statements: text after a ';' that is not blank or a comment.
  for (std::size_t semicolon = statement.find(';'); semicolon != std::string_view::npos;
       semicolon = statement.find(';', semicolon + 1)) {
    std::size_t next = SkipBlank(statement, semicolon + 1);
    if (next < statement.size() && statement[next] != ';') return true;
  }
  return false;
}

PgConnection::PgConnection(const Endpoint& endpoint, const Target& target, CancelWatchdog& watchdog,
                           stowage::Logger& log)
    : target_(target), watchdog_(watchdog), session_(soci::postgresql, endpoint.conninfo) {
  PQsetNoticeProcessor(native(), ForwardNotice, &log);
  cancel_ = PQgetCancel(native());
}

PgConnection::~PgConnection() {
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
}

PGconn* PgConnection::native() const noexcept {
  auto* backend =
      static_cast<soci::postgresql_session_backend*>(const_cast<soci::session&>(session_).get_backend());
  return backend ? backend->conn_ : nullptr;
}

bool PgConnection::broken() const noexcept {
  PGconn* conn = native();
  return broken_ || conn == nullptr || PQstatus(conn) != CONNECTION_OK;
}

PGTransactionStatusType PgConnection::TransactionStatus() const noexcept {
  PGconn* conn = native();
  return conn ? PQtransactionStatus(conn) : PQTRANS_UNKNOWN;
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

    PGconn* conn = native();
    const std::string text(statement);
    const auto start = stowage::Clock::now();
    ArmedDeadline armed(watchdog_, deadline_, cancel_);
    ResultPtr res;
    std::string prepared_name;
    if (params.empty() && UsesSimpleProtocol(statement)) {
      res.reset(PQexec(conn, text.c_str()));
    } else {
      auto it = prepared_.find(text);
      if (it == prepared_.end()) {
        std::string name = "s" + std::to_string(next_statement_);
        ResultPtr prepare(PQprepare(conn, name.c_str(), text.c_str(), 0, nullptr));
        if (prepare && PQresultStatus(prepare.get()) == PGRES_COMMAND_OK) {
          ++next_statement_;
          it = prepared_.emplace(text, std::move(name)).first;
        } else {
          res = std::move(prepare);
        }
      }
      if (it != prepared_.end()) {
        prepared_name = it->second;
        res.reset(PQexecPrepared(conn, prepared_name.c_str(), static_cast<int>(values.size()), values.data(),
                                 nullptr, nullptr, 0));
      }
    }
    armed.Disarm();
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(stowage::Clock::now() - start);

    const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
      if (result != nullptr) {
        const int columns = PQnfields(res.get());
        const int rows = PQntuples(res.get());
        result->columns.reserve(columns);
        for (int c = 0; c < columns; ++c) result->columns.emplace_back(PQfname(res.get(), c));
        result->rows.resize(rows);
        for (int r = 0; r < rows; ++r) {
          auto& row = result->rows[r];
          row.reserve(columns);
          for (int c = 0; c < columns; ++c) {
            if (PQgetisnull(res.get(), r, c)) {
              row.emplace_back(std::nullopt);
            } else {
              row.emplace_back(std::string(PQgetvalue(res.get(), r, c), PQgetlength(res.get(), r, c)));
            }
          }
        }
        const char* affected = PQcmdTuples(res.get());
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
    const char* sqlstate = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    if (lost || (sqlstate && ConnectionLost(sqlstate))) broken_ = true;
    if (!prepared_name.empty() && sqlstate &&
        (std::string_view(sqlstate) == "26000" || std::string_view(sqlstate) == "0A000")) {
      prepared_.erase(text);  // deallocated, or its plan no longer fits the schema: prepare it again
    }
    return StatementError(target_, res.get(), conn, broken_, elapsed);
  } catch (const std::exception& e) {
    return stowage::Status::Internal("a statement on PostgreSQL database '" + target_.name +
                                     "' failed in the host: " + CleanText(target_, e.what()));
  } catch (...) {
    return stowage::Status::Internal("a statement on PostgreSQL database '" + target_.name +
                                     "' failed in the host with an unknown exception");
  }
}

}  // namespace stowage::database
