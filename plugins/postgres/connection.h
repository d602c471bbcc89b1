// Connection: one PostgreSQL session and the statements prepared on it.
#pragma once

#include <soci/soci.h>

#include <memory>
#include <string>

#include "chat_statements.h"
#include "stowage/logger.h"

namespace stowage::postgres {

// Used by one thread at a time (the pool hands it out). Not movable: the
// prepared statements refer to the session.
class Connection {
 public:
  // Connects with a libpq connection string. Throws soci::soci_error whose
  // text holds libpq's reason. Server notices go to `log`, which must outlive
  // the connection.
  Connection(const std::string& conninfo, stowage::Logger& log);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Whether the idle connection can still be used, without a round trip:
  // false once the server has closed it (restart, shutdown, idle kill) or
  // libpq has marked it bad. Call only between statements.
  bool Usable();

  // Whether libpq has marked the connection bad (after a failed call).
  bool Broken() const;

  soci::session& session() { return session_; }
  ChatStatements& chat() { return *chat_; }

 private:
  soci::session session_;
  // Destroyed before `session_`: the statements deallocate through it.
  std::unique_ptr<ChatStatements> chat_;
};

}  // namespace stowage::postgres
