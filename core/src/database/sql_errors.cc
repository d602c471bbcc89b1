#include "database/sql_errors.h"

namespace stowage::database {
namespace {

std::string Named(const Target& target) {
  return "PostgreSQL database '" + target.name + "' at " + target.address;
}

// The server's primary message without the value it may quote: PostgreSQL
// puts values after ": " ("invalid input syntax for type integer: \"abc\"").
std::string WithoutValue(std::string text) {
  if (auto colon = text.find(": "); colon != std::string::npos) text.resize(colon);
  return text;
}

}  // namespace

std::string CleanText(const Target& target, std::string_view text) {
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
  if (!target.password.empty()) {
    for (auto at = out.find(target.password); at != std::string::npos;
         at = out.find(target.password, at + 3)) {
      out.replace(at, target.password.size(), "***");
    }
  }
  return out;
}

stowage::Status Unreachable(const Target& target, std::string_view reason) {
  return stowage::Status::Unavailable("cannot reach " + Named(target) + ": " + CleanText(target, reason) +
                                      "; check that it runs and that [[database]] " + target.name +
                                      "'s url is right");
}

bool ConnectionLost(std::string_view sqlstate) {
  if (sqlstate.size() != 5) return false;
  if (sqlstate.substr(0, 2) == "08") return sqlstate != "08P01";
  return sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

stowage::Status StatementError(const Target& target, const PGresult* result, PGconn* conn,
                               bool connection_lost, std::chrono::milliseconds elapsed,
                               std::string_view what) {
  const char* state_field = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state_field ? state_field : "";
  const char* primary_field = result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string primary = primary_field ? primary_field : "";
  if (primary.empty()) primary = result ? PQresultErrorMessage(result) : "";
  if (primary.empty() && conn) primary = PQerrorMessage(conn);
  if (primary.empty()) primary = "no answer from the server";
  primary = CleanText(target, primary);
  const std::string code = sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")";

  const std::string subject = what.empty() ? std::string("a statement") : std::string(what);
  if (connection_lost || ConnectionLost(sqlstate)) {
    const std::string during = what.empty() ? "" : " during " + subject;
    return Unreachable(target, "the connection was lost" + during + ": " + primary);
  }
  if (sqlstate == "57014") {
    return stowage::Status::DeadlineExceeded(
        subject + " on " + Named(target) + " was cancelled at its deadline, " +
        std::to_string(elapsed.count()) +
        " ms after it was sent; raise the stage's timeout_ms or make the statement faster");
  }
  if (sqlstate.rfind("22", 0) == 0 || sqlstate == "23502" || sqlstate == "23514") {
    return stowage::Status::InvalidArgument(Named(target) + " refused a value: " + WithoutValue(primary) +
                                            code + "; check the values the statement is given");
  }
  if (sqlstate == "23505" || sqlstate == "23503") {
    return stowage::Status::Conflict(Named(target) + " refused the statement, it clashes with stored rows: " +
                                     WithoutValue(primary) + code);
  }
  const char* what_to_do = sqlstate.rfind("42", 0) == 0
                               ? "; fix the statement or create the schema it expects"
                               : "; look the SQLSTATE up in PostgreSQL's error codes";
  return stowage::Status::Internal(subject + " failed on " + Named(target) + ": " + WithoutValue(primary) +
                                   code + what_to_do);
}

}  // namespace stowage::database
