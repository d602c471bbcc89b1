// A scripted SQL session and database, for unit tests of a stage's SQL logic
// without a server: what a stage does when a statement fails, times out or
// returns no row, and which statements it sends.
//
//   stowage::testkit::FakeSqlSession sql;
//   sql.Answer("INSERT INTO my_rows", {{"id"}, {{std::string("7")}}, 1});
//   sql.Fail("INSERT INTO my_audit", stowage::Status::Unavailable("lost"));
//   stowage::WriteContext ctx{guest, message, deadline, log, attributes, &sql};
//   EXPECT_EQ(stage.write(ctx).code(), stowage::StatusCode::kUnavailable);
//   EXPECT_EQ(sql.Count("INSERT INTO my_rows"), 1u);
//
// A statement gets the first scripted answer, in the order they were added,
// whose text it contains and that has uses left; a statement no answer
// matches succeeds with an empty result. Like the session the host lends a
// request (ctx.sql), it refuses transaction control (BEGIN, COMMIT,
// ROLLBACK, SAVEPOINT, RELEASE, ...) with kInternal, without "running" it;
// FakeDatabase's session, like with_session's, lets it through. It knows no SQL: what a real
// PostgreSQL does with the statements is for tests against one (the
// conformance suite, tests/support). Not thread-safe, as a session is not.
#pragma once

#include <cctype>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage::testkit {

class FakeSqlSession final : public SqlSession {
 public:
  // One statement the session was given.
  struct Statement {
    std::string text;
    std::vector<SqlValue> params;
  };

  // `in_request`: a session as ctx.sql is (transaction control refused),
  // else as Database::with_session lends one (autocommit, work may BEGIN).
  explicit FakeSqlSession(std::string database = "main", bool in_request = true)
      : database_(std::move(database)), in_request_(in_request) {}

  // Statements containing `contains` succeed with `result`, `times` times
  // (-1: every time).
  void Answer(std::string contains, SqlResult result, int times = -1) {
    script_.push_back({std::move(contains), Status::Ok(), std::move(result), times});
  }
  // Statements containing `contains` fail with `status` (not ok), `times`
  // times (-1: every time).
  void Fail(std::string contains, Status status, int times = 1) {
    script_.push_back({std::move(contains), std::move(status), {}, times});
  }

  Status execute(std::string_view statement, const std::vector<SqlValue>& params,
                 SqlResult* result = nullptr) noexcept override {
    try {
      if (result != nullptr) *result = SqlResult{};
      if (in_request_ && ControlsTheTransaction(statement)) {
        return Status::Internal("a statement that controls the transaction was refused ('" +
                                std::string(statement.substr(0, 40)) +
                                "'): the host owns BEGIN, COMMIT, ROLLBACK and SAVEPOINT");
      }
      statements_.push_back({std::string(statement), params});
      for (Scripted& scripted : script_) {
        if (scripted.times == 0 || statement.find(scripted.contains) == std::string_view::npos) continue;
        if (scripted.times > 0) --scripted.times;
        if (!scripted.status.ok()) return scripted.status;
        if (result != nullptr) *result = scripted.result;
        return Status::Ok();
      }
      return Status::Ok();
    } catch (...) {
      return Status::Internal("FakeSqlSession ran out of memory");
    }
  }
  const std::string& database() const noexcept override { return database_; }

  // Every statement run, in order (refused ones are not).
  const std::vector<Statement>& statements() const noexcept { return statements_; }
  // How many statements run contained `part`.
  std::size_t Count(std::string_view part) const {
    std::size_t n = 0;
    for (const Statement& s : statements_) n += s.text.find(part) != std::string::npos;
    return n;
  }

 private:
  struct Scripted {
    std::string contains;
    Status status;
    SqlResult result;
    int times;
  };

  // The first word, as the host's sessions read it (comments and case aside).
  static bool ControlsTheTransaction(std::string_view statement) {
    std::size_t at = 0;
    while (at < statement.size() && std::isspace(static_cast<unsigned char>(statement[at]))) ++at;
    std::string word;
    while (at < statement.size() && std::isalpha(static_cast<unsigned char>(statement[at])))
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(statement[at++])));
    for (const char* control : {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
                                "PREPARE"})
      if (word == control) return true;
    return false;
  }

  std::string database_;
  bool in_request_;
  std::vector<Scripted> script_;
  std::vector<Statement> statements_;
};

// A Database whose sessions are one FakeSqlSession, for a stage's
// constructor (migrations) and its work outside requests.
class FakeDatabase final : public Database {
 public:
  explicit FakeDatabase(std::string name = "main") : name_(name), session_(std::move(name), false) {}

  // The next `times` with_session calls find no connection: they return
  // `status` without running their work.
  void FailSessions(Status status, int times = 1) {
    unavailable_ = std::move(status);
    unavailable_times_ = times;
  }

  const std::string& name() const noexcept override { return name_; }
  Status with_session(Deadline deadline, const std::function<Status(SqlSession&)>& work) noexcept override {
    if (unavailable_times_ != 0) {
      if (unavailable_times_ > 0) --unavailable_times_;
      return unavailable_;
    }
    if (deadline.expired()) return Status::DeadlineExceeded("no connection to '" + name_ + "' before the deadline");
    try {
      return work(session_);
    } catch (...) {
      return Status::Internal("work on FakeDatabase '" + name_ + "' threw");
    }
  }

  // The session every with_session call gets: script it, read what ran.
  FakeSqlSession& session() noexcept { return session_; }

 private:
  std::string name_;
  FakeSqlSession session_;
  Status unavailable_;
  int unavailable_times_ = 0;
};

}  // namespace stowage::testkit
