// Test support for running SQL stages through the conformance suite
// (stowage/testkit/conformance.h): a scratch database for the whole test
// program that lends its connections one stage call at a time, as the host
// does. Register it once per program:
//
//   ConformanceDatabase* const kDatabase = ConformanceDatabase::Register();
//
// then give a StageUnderTest `env.database = kDatabase->database()` in make,
// and kDatabase->Bind(stage) for its sql and release_sql.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "database/postgres_database.h"
#include "scratch_database.h"
#include "stowage/testkit/conformance.h"

namespace stowage::testing {

class ConformanceDatabase : public ::testing::Environment {
 public:
  static constexpr std::chrono::seconds kSessionTimeout{30};

  // Creates one, registered to set up before the first test and tear down
  // after the last; gtest owns it.
  static ConformanceDatabase* Register(std::string what = "conformance") {
    return static_cast<ConformanceDatabase*>(
        ::testing::AddGlobalTestEnvironment(new ConformanceDatabase(std::move(what))));
  }

  void SetUp() override { scratch_ = std::make_unique<ScratchDatabase>(what_); }
  void TearDown() override {
    {
      std::lock_guard lock(mu_);
      leases_.clear();
    }
    scratch_.reset();
  }

  // The database a stage receives, or null when it could not be created (a
  // test failure says why).
  Database* database() { return scratch_ && scratch_->ok() ? &scratch_->database() : nullptr; }
  ScratchDatabase* scratch() { return scratch_.get(); }

  // Sets `stage.sql` and `stage.release_sql` to lend this database's
  // connections.
  void Bind(testkit::StageUnderTest& stage) {
    stage.sql = [this] { return Lend(); };
    stage.release_sql = [this](SqlSession* session) { GiveBack(session); };
  }

  // A pooled connection with a statement deadline, or null (with a test
  // failure) when none comes in time.
  SqlSession* Lend() {
    if (database() == nullptr) return nullptr;
    auto acquired = scratch_->database().Acquire(Deadline::After(kSessionTimeout));
    if (!acquired.status.ok()) {
      ADD_FAILURE() << "no connection: " << acquired.status.ToString();
      return nullptr;
    }
    acquired.lease->set_deadline(Deadline::After(kSessionTimeout));
    SqlSession* session = &*acquired.lease;
    std::lock_guard lock(mu_);
    leases_.emplace(session, std::move(acquired.lease));
    return session;
  }
  // Returns a connection Lend() gave to the pool.
  void GiveBack(SqlSession* session) {
    database::Lease lease;
    std::lock_guard lock(mu_);
    auto it = leases_.find(session);
    if (it == leases_.end()) return;
    lease = std::move(it->second);
    leases_.erase(it);
    // `lease` goes back to the pool at the end of the scope, after the
    // lock is released (destruction runs in reverse order of declaration).
  }

 private:
  explicit ConformanceDatabase(std::string what) : what_(std::move(what)) {}

  std::string what_;
  std::unique_ptr<ScratchDatabase> scratch_;
  std::mutex mu_;
  std::map<SqlSession*, database::Lease> leases_;
};

}  // namespace stowage::testing
