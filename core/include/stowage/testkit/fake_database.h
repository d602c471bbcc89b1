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
//
// FakeDatabase records the migrations a stage asks it to apply (SDK 2.0):
//
//   stowage::testkit::FakeDatabase database;
//   stowage::StageEnvironment env{log, &database};
//   MyStage stage(config, env);
//   ASSERT_EQ(database.migration_calls().size(), 1u);
//   EXPECT_EQ(database.migration_calls()[0].component, "my_stage");
//   EXPECT_EQ(database.applied_versions("my_stage"), (std::vector<int>{1, 2}));
#pragma once

#include <cctype>
#include <cstddef>
#include <functional>
#include <map>
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
// constructor and its work outside requests, and which records the
// migrations it is asked to apply.
class FakeDatabase final : public Database {
 public:
  // One apply_migrations call.
  struct MigrationCall {
    std::string component;
    std::vector<Migration> migrations;
    Status status;  // what the call returned
  };

  explicit FakeDatabase(std::string name = "main") : name_(name), session_(std::move(name), false) {}

  // The next `times` with_session and apply_migrations calls find no
  // connection: they return `status` without running their work or
  // applying anything (-1: every call).
  void FailSessions(Status status, int times = 1) {
    unavailable_ = std::move(status);
    unavailable_times_ = times;
  }
  // The next `times` apply_migrations calls fail with `status` (not ok),
  // applying nothing (-1: every call).
  void FailMigrations(Status status, int times = 1) {
    migrations_failure_ = std::move(status);
    migrations_failure_times_ = times;
  }

  const std::string& name() const noexcept override { return name_; }
  Status with_session(Deadline deadline, const std::function<Status(SqlSession&)>& work) noexcept override {
    if (Status unavailable = TakeSession(deadline); !unavailable.ok()) return unavailable;
    try {
      return work(session_);
    } catch (...) {
      return Status::Internal("work on FakeDatabase '" + name_ + "' threw");
    }
  }

  // Records the call, then, as the host's does, refuses a list whose
  // versions do not strictly increase from 1 (kInternal) and "applies" the
  // versions not applied before for `component`, appending them to
  // `applied`. It runs none of their SQL (it knows none): a test of the
  // migrations themselves needs a real PostgreSQL. Scripted failures
  // (FailSessions, FailMigrations) apply nothing.
  Status apply_migrations(std::string_view component, const std::vector<Migration>& migrations,
                          Deadline deadline, std::vector<int>* applied = nullptr) noexcept override {
    try {
      calls_.push_back({std::string(component), migrations, Status::Ok()});
      Status& status = calls_.back().status;
      status = TakeSession(deadline);
      if (status.ok() && migrations_failure_times_ != 0) {
        if (migrations_failure_times_ > 0) --migrations_failure_times_;
        status = migrations_failure_;
      }
      if (!status.ok()) return status;
      int previous = 0;
      for (const Migration& migration : migrations) {
        if (migration.version <= previous) {
          status =
              Status::Internal("migrating the schema of '" + std::string(component) + "' in database '" +
                               name_ + "': migration versions must strictly increase from 1, but version " +
                               std::to_string(migration.version) + " follows " + std::to_string(previous));
          return status;
        }
        previous = migration.version;
      }
      std::vector<int>& done = applied_[std::string(component)];
      for (const Migration& migration : migrations) {
        bool before = false;
        for (int version : done) before = before || version == migration.version;
        if (before) continue;
        done.push_back(migration.version);
        if (applied != nullptr) applied->push_back(migration.version);
      }
      return status;
    } catch (...) {
      return Status::Internal("FakeDatabase '" + name_ + "' ran out of memory");
    }
  }

  // The session every with_session call gets: script it, read what ran.
  FakeSqlSession& session() noexcept { return session_; }
  // Every apply_migrations call, in order, failed ones included.
  const std::vector<MigrationCall>& migration_calls() const noexcept { return calls_; }
  // The versions of `component` applied so far, in the order they were.
  std::vector<int> applied_versions(std::string_view component) const {
    auto it = applied_.find(std::string(component));
    return it == applied_.end() ? std::vector<int>{} : it->second;
  }

 private:
  // Ok, or the failure of a session scripted by FailSessions, or the deadline's.
  Status TakeSession(Deadline deadline) {
    if (unavailable_times_ != 0) {
      if (unavailable_times_ > 0) --unavailable_times_;
      return unavailable_;
    }
    if (deadline.expired())
      return Status::DeadlineExceeded("no connection to '" + name_ + "' before the deadline");
    return Status::Ok();
  }

  std::string name_;
  FakeSqlSession session_;
  Status unavailable_;
  int unavailable_times_ = 0;
  Status migrations_failure_;
  int migrations_failure_times_ = 0;
  std::vector<MigrationCall> calls_;
  std::map<std::string, std::vector<int>> applied_;
};

}  // namespace stowage::testkit
