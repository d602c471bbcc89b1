#include "connection.h"

#include <poll.h>
#include <soci/postgresql/soci-postgresql.h>

namespace stowage::postgres {
namespace {

PGconn* Native(soci::session& session) {
  return static_cast<soci::postgresql_session_backend*>(session.get_backend())->conn_;
}

void ForwardNotice(void* arg, const char* message) {
  std::string text(message);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  static_cast<stowage::Logger*>(arg)->warn("server notice: " + text);
}

}  // namespace

Connection::Connection(const std::string& conninfo, stowage::Logger& log)
    : session_(soci::postgresql, conninfo), chat_(std::make_unique<ChatStatements>(session_)) {
  PQsetNoticeProcessor(Native(session_), ForwardNotice, &log);
}

Connection::~Connection() {
  chat_.reset();
}

bool Connection::Usable() {
  PGconn* conn = Native(session_);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return false;
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

bool Connection::Broken() const {
  PGconn* conn = Native(const_cast<soci::session&>(session_));
  return conn == nullptr || PQstatus(conn) != CONNECTION_OK;
}

}  // namespace stowage::postgres
