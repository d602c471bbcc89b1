#include "scratch_database.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include "support/services.h"

namespace stowage::testing {
namespace {

constexpr std::chrono::seconds kTimeout{10};

std::unique_ptr<database::PostgresDatabase> Open(const std::string& name, const std::string& url,
                                                 std::shared_ptr<Logger> log) {
  config::DatabaseSettings settings;
  settings.name = name;
  settings.url = url;
  settings.pool_size = 4;
  return std::make_unique<database::PostgresDatabase>(std::move(settings), std::move(log));
}

Status Run(database::PostgresDatabase& database, const std::string& statement) {
  return database.with_session(Deadline::After(kTimeout),
                               [&](SqlSession& sql) { return sql.execute(statement, {}); });
}

std::string FreshName(const std::string& what) {
  static std::atomic<int> counter{0};
  return "stowage_test_" + what + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
}

}  // namespace

std::string WithDatabaseName(const std::string& url, const std::string& name) {
  const std::size_t scheme = url.find("://");
  const std::size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const std::size_t query = url.find('?');
  const std::string tail = query == std::string::npos ? "" : url.substr(query);
  const std::string head = slash == std::string::npos ? url.substr(0, query) : url.substr(0, slash);
  return head + "/" + name + tail;
}

ScratchDatabase::ScratchDatabase(const std::string& what)
    : admin_url_(RequireEnv("STOWAGE_TEST_DATABASE_URL")),
      name_(FreshName(what)),
      log_(std::make_shared<CapturingLogger>()) {
  if (admin_url_.empty()) return;
  auto admin = Open("admin", admin_url_, log_);
  Status status = Run(*admin, "CREATE DATABASE " + name_);
  if (!status.ok()) {
    ADD_FAILURE() << "could not create database " << name_ << ": " << status.ToString();
    return;
  }
  status = Run(*admin, "ALTER DATABASE " + name_ + " SET timezone TO 'America/St_Johns'");
  EXPECT_TRUE(status.ok()) << status.ToString();
  url_ = WithDatabaseName(admin_url_, name_);
  database_ = Open("main", url_, log_);
}

ScratchDatabase::~ScratchDatabase() {
  if (url_.empty()) return;
  database_.reset();
  auto admin = Open("admin", admin_url_, log_);
  // A leftover database is harmless: names never repeat.
  Run(*admin, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

SqlResult ScratchDatabase::Query(const std::string& statement, const std::vector<SqlValue>& params) {
  SqlResult result;
  if (!database_) {
    ADD_FAILURE() << "no scratch database for: " << statement;
    return result;
  }
  Status status = database_->with_session(
      Deadline::After(kTimeout), [&](SqlSession& sql) { return sql.execute(statement, params, &result); });
  EXPECT_TRUE(status.ok()) << statement << ": " << status.ToString();
  return result;
}

std::string ScratchDatabase::Scalar(const std::string& statement, const std::vector<SqlValue>& params) {
  return Query(statement, params).value(0, 0).value_or("<null>");
}

WriteTransaction::WriteTransaction(database::PostgresDatabase& database) {
  auto acquired = database.Acquire(Deadline::After(kTimeout));
  if (!acquired.status.ok()) {
    ADD_FAILURE() << "could not lease a connection: " << acquired.status.ToString();
    return;
  }
  lease_ = std::move(acquired.lease);
  lease_->set_deadline(Deadline::After(kTimeout));
  Status status = lease_->execute("BEGIN", {});
  EXPECT_TRUE(status.ok()) << status.ToString();
  open_ = status.ok();
}

WriteTransaction::~WriteTransaction() {
  if (open_) rollback();
}

Status WriteTransaction::commit() {
  open_ = false;
  return lease_ ? lease_->execute("COMMIT", {}) : Status::Unavailable("no connection");
}

Status WriteTransaction::rollback() {
  open_ = false;
  return lease_ ? lease_->execute("ROLLBACK", {}) : Status::Unavailable("no connection");
}

}  // namespace stowage::testing
