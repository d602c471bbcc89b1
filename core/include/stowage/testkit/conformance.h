// The stage conformance suite: GoogleTest tests that every stage must pass,
// instantiated by the stage's author in a few lines:
//
//   #include "stowage/testkit/conformance.h"
//
//   using stowage::testkit::StageConformanceTest;
//   using stowage::testkit::StageUnderTest;
//
//   StageUnderTest Archive() {
//     StageUnderTest stage;
//     stage.name = "archive";
//     stage.schema = ArchiveStage::config_schema();
//     stage.make = [](stowage::StageEnvironment& env) -> std::unique_ptr<stowage::Stage> {
//       return std::make_unique<ArchiveStage>(stowage::StageConfig({...}), env);
//     };
//     return stage;
//   }
//   INSTANTIATE_TEST_SUITE_P(Archive, StageConformanceTest, ::testing::Values(Archive()),
//                            stowage::testkit::StageName());
//
// and links stowage::testkit (which brings GoogleTest and its main()).
//
// The suite checks: a write is served back by a read; a read asked for a page
// (SDK 1.5) returns that page and the guest's total, or the whole history
// when the stage ignores the range; an erase removes it and
// says the stage held it; compensate() removes exactly the write it is given
// (a later write stays; skipped for a stage with a database, whose writes
// the host rolls back instead); a replay (SDK 1.3, WriteContext::replay) of a
// message the stage stored, or missed, leaves it held once; a read of an
// unknown guest is a miss; the
// config schema is well formed (every key described, unknown keys not
// declared); an expired deadline makes every call return quickly, and a
// write given one stores nothing (a stage without a database: the host
// refuses the statements of one with a database); bad input
// is an error result, never an exception; calls from many threads at once
// are safe.
//
// Every call goes through the same exception guard the host puts around a
// loaded stage (stowage::internal::GuardedStage), with a fresh stage per test.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/sdk.h"
#include "stowage/testkit/loggers.h"

namespace stowage::testkit {

// One stage as the suite tests it.
struct StageUnderTest {
  // Names the instantiation in test names (with StageName): letters, digits
  // and underscores.
  std::string name;

  // Makes a fresh stage, configured for the test (e.g. with a scratch folder
  // or a test server's url). Called once per test; `env.log` is the test's
  // logger. A stage with a database sets `env.database` before constructing
  // it; whatever it points to must outlive the stage.
  std::function<std::unique_ptr<Stage>(StageEnvironment&)> make;

  // The stage's config schema, as its config_schema() returns it.
  ConfigSchema schema;

  // For a stage with a database, else empty: lends a session for one stage
  // call, or null when none can be had. The suite calls it on the thread of
  // the call, once per call, and runs a write or an erase inside BEGIN ...
  // COMMIT (ROLLBACK when the call fails), a read in autocommit. The session
  // must not be lent to another call until `release_sql` gets it back.
  std::function<SqlSession*()> sql;
  // Takes back a session `sql` lent; optional.
  std::function<void(SqlSession*)> release_sql;

  // For a stage that relies on earlier stages of the pipeline (e.g. on the
  // message_id the postgres stage sets): what they do for a write, called
  // with the write's context (and in its transaction) just before the
  // stage's own write(). Optional; a failure fails the write.
  std::function<Status(WriteContext&)> before_write;

  // Whether read() serves the messages the stage wrote (false for a stage
  // that keeps no message content, or keeps it somewhere it does not read
  // back): the read-back checks are skipped.
  bool serves_reads = true;
  // Whether erase() reports `held` for a guest it wrote, and not for a guest
  // it never saw.
  bool erase_reports_held = true;

  // Whether the host can replay the stage from its journal (SDK 1.3,
  // WriteContext::replay): false for a stage it never journals, one that
  // runs after the commit (kAfterCommit) or that is only ever `required`;
  // the replay check is then skipped.
  bool replayable = true;
  // For a stage that does not serve reads but keeps one record per message
  // (e.g. a row keyed by message_id): how many of the guest's messages it
  // holds, counted outside any call of the suite (e.g. on a connection of
  // its own); -1 when it cannot tell (the test then fails). Optional:
  // without it, and without reads, the replay check is skipped.
  std::function<int(const std::string& guest_id)> count_stored;

  // How long a call given an already expired deadline may take.
  std::chrono::milliseconds expired_deadline_bound{1000};
};

// A stage's config as the host would make it (stowage/config.h).
using stowage::ConfigWithDefaults;

// Prints the stage's name in test output.
void PrintTo(const StageUnderTest& stage, std::ostream* os);

// Names each instantiation after StageUnderTest::name, for the last argument
// of INSTANTIATE_TEST_SUITE_P.
struct StageName {
  std::string operator()(const ::testing::TestParamInfo<StageUnderTest>& info) const;
};

// The value-parameterised suite. Its helpers are there for a stage's own
// tests too: derive from it, or use the same calls.
class StageConformanceTest : public ::testing::TestWithParam<StageUnderTest> {
 protected:
  StageConformanceTest();
  ~StageConformanceTest() override;

  void SetUp() override;
  // Erases every guest made by Guest().
  void TearDown() override;

  // The stage, behind the host's exception guard.
  Stage& stage() { return *stage_; }
  CapturingLogger& log() { return log_; }

  // A guest id no other test or run uses, containing `what`.
  std::string Guest(std::string_view what);
  // A valid message: role "user", the given content, a canonical timestamp
  // whose microseconds are `micros`.
  static Message Msg(std::string content, int micros = 0);
  // A deadline `seconds` from now.
  static Deadline Soon(int seconds = 10);

  // The calls, with the contexts (and for a stage with a database, the
  // transactions) the host gives them. Write() calls admit(), then
  // StageUnderTest::before_write, then write(); a failure stops it there.
  Status Write(const std::string& guest, const Message& message, Attributes* attributes = nullptr,
               Deadline deadline = Soon());
  // A write whose admit() and StageUnderTest::before_write run in time, and
  // whose write() is given a deadline that passed a second ago.
  Status WriteTooLate(const std::string& guest, const Message& message);
  Status Compensate(const std::string& guest, const Message& message, Attributes& attributes,
                    Deadline deadline = Soon());
  // A replay from the host's journal (SDK 1.3): admit() then write(), both
  // with WriteContext::replay set, in a transaction of their own for a stage
  // with a database; StageUnderTest::before_write is not called (the earlier
  // stages stored the message already). `attributes` are what the host
  // journaled: the ones write() was given, without what the stage set.
  Status Replay(const std::string& guest, const Message& message, Attributes& attributes,
                Deadline deadline = Soon());
  ReadResult Read(const std::string& guest, Deadline deadline = Soon());
  // A read asked for the page `range` names (SDK 1.5, GuestContext::range);
  // what the stage answers in it (its total) is left in `range`.
  ReadResult ReadPage(const std::string& guest, ReadRange& range, Deadline deadline = Soon());
  EraseResult Erase(const std::string& guest, Deadline deadline = Soon());

  bool has_database() const { return static_cast<bool>(GetParam().sql); }

  // The check of AWriteWhoseDeadlinePassedStoresNothing: WriteTooLate() is
  // not ok, and what it was given is not held afterwards (read back, or
  // StageUnderTest::count_stored).
  void ExpectALateWriteStoresNothing();

 private:
  Status WriteWith(const std::string& guest, const Message& message, Attributes& attributes,
                   Deadline before_deadline, Deadline write_deadline);

  CapturingLogger log_;
  std::unique_ptr<Stage> stage_;
  std::mutex guests_mu_;
  std::vector<std::string> guests_;
};

// A failure message unless `status` is free of a caught exception (the
// guard's kInternal "<call> threw: ..."): a stage reports failure as a
// Status and does not rely on the guard.
::testing::AssertionResult NoException(const Status& status);

namespace internal {
// Defined next to the suite's tests: referencing it from every file that
// includes this header links them in, even from a static library.
int ConformanceTestsLinked();
static const int kConformanceTestsLinked [[maybe_unused]] = ConformanceTestsLinked();
}  // namespace internal

}  // namespace stowage::testkit
