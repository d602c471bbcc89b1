// How PostgreSQL's failures become Status values that name the database.
//
// Messages never hold the password, nor parameter values: a server message
// that quotes a value (after ": ") is cut there, and DETAIL lines (which
// hold row contents) are left out. They go to logs and API answers.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <string>
#include <string_view>

#include "stowage/status.h"

namespace stowage::database {

// The database a message is about.
struct Target {
  std::string name;      // [[database]] name
  std::string address;   // host:port/db
  std::string password;  // scrubbed from every message; may be empty
};

// Collapses libpq/soci error text (several lines, tabs) into one line and
// replaces the password, if any, by "***".
std::string CleanText(const Target& target, std::string_view text);

// kUnavailable: "cannot reach PostgreSQL database 'main' at host:port/db: <reason>; check ...".
stowage::Status Unreachable(const Target& target, std::string_view reason);

// Whether an SQLSTATE means that the connection is gone (class 08 but the
// protocol violation 08P01, and the administrator shutdown codes 57P01..03).
bool ConnectionLost(std::string_view sqlstate);

// The Status for a failed statement's result (`result` may be null, then
// libpq's connection error is used). `connection_lost` says the connection
// can no more be used (kUnavailable). `elapsed` is the statement's time, for
// a cancellation at the deadline. `what`, when given, names what failed in
// place of "a statement" (a command the host sent, which it quotes).
stowage::Status StatementError(const Target& target, const PGresult* result, PGconn* conn,
                               bool connection_lost, std::chrono::milliseconds elapsed,
                               std::string_view what = {});

}  // namespace stowage::database
