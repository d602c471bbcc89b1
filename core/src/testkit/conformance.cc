// The stage conformance suite (see stowage/testkit/conformance.h).
#include "stowage/testkit/conformance.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <optional>
#include <set>
#include <thread>
#include <utility>

namespace stowage::testkit {

namespace internal {
int ConformanceTestsLinked() {
  return 1;
}
}  // namespace internal

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A session lent by StageUnderTest::sql for one call, given back at the end.
class LentSession {
 public:
  explicit LentSession(const StageUnderTest& stage) : stage_(stage) {
    if (stage_.sql) session_ = stage_.sql();
  }
  ~LentSession() {
    if (session_ != nullptr && stage_.release_sql) stage_.release_sql(session_);
  }
  LentSession(const LentSession&) = delete;
  LentSession& operator=(const LentSession&) = delete;

  SqlSession* get() const { return session_; }
  // Unavailable when the stage has a database and no session was lent.
  Status status() const {
    if (stage_.sql && session_ == nullptr)
      return Status::Unavailable("the test's sql provider lent no session");
    return Status::Ok();
  }

 private:
  const StageUnderTest& stage_;
  SqlSession* session_ = nullptr;
};

// Runs `call` inside BEGIN ... COMMIT on `session` (ROLLBACK when it fails),
// or as is when there is no session.
Status InTransaction(SqlSession* session, const std::function<Status()>& call) {
  if (session == nullptr) return call();
  Status begun = session->execute("BEGIN", {});
  if (!begun.ok()) return begun.WithContext("BEGIN before the call");
  Status status = call();
  Status ended = session->execute(status.ok() ? "COMMIT" : "ROLLBACK", {});
  if (status.ok() && !ended.ok()) return ended.WithContext("COMMIT after the call");
  return status;
}

std::string Describe(const std::vector<Message>& messages) {
  std::string text = "[";
  for (const auto& m : messages) {
    if (text.size() > 1) text += ", ";
    text += "{" + m.role + ", \"" + m.content + "\", " + m.timestamp + "}";
  }
  return text + "]";
}

}  // namespace

void PrintTo(const StageUnderTest& stage, std::ostream* os) {
  *os << "stage " << stage.name;
}

std::string StageName::operator()(const ::testing::TestParamInfo<StageUnderTest>& info) const {
  std::string name;
  for (char c : info.param.name) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (name.empty()) name = "stage_" + std::to_string(info.index);
  return name;
}

::testing::AssertionResult NoException(const Status& status) {
  if (status.code() == StatusCode::kInternal && status.message().find(" threw") != std::string::npos)
    return ::testing::AssertionFailure() << "an exception reached the plugin boundary: " << status.ToString();
  return ::testing::AssertionSuccess();
}

StageConformanceTest::StageConformanceTest() = default;
StageConformanceTest::~StageConformanceTest() = default;

void StageConformanceTest::SetUp() {
  const StageUnderTest& param = GetParam();
  ASSERT_TRUE(param.make) << "StageUnderTest::make is not set";
  StageEnvironment env{log_, nullptr};
  std::unique_ptr<Stage> inner;
  try {
    inner = param.make(env);
  } catch (const std::exception& e) {
    FAIL() << "making the stage threw: " << e.what() << "\nlog:\n" << log_.All();
  }
  ASSERT_NE(inner, nullptr) << "StageUnderTest::make returned no stage\nlog:\n" << log_.All();
  stage_ = std::make_unique<stowage::internal::GuardedStage<Stage>>(std::move(inner));
}

void StageConformanceTest::TearDown() {
  if (!stage_) return;
  std::vector<std::string> guests;
  {
    std::lock_guard lock(guests_mu_);
    guests.swap(guests_);
  }
  for (const auto& guest : guests) Erase(guest);
  stage_.reset();
}

std::string StageConformanceTest::Guest(std::string_view what) {
  static const std::string run =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000007);
  static std::atomic<int> counter{0};
  std::string guest = "conformance-" + run + "-" + std::to_string(counter++) + "-" + std::string(what);
  std::lock_guard lock(guests_mu_);
  guests_.push_back(guest);
  return guest;
}

Message StageConformanceTest::Msg(std::string content, int micros) {
  char timestamp[32];
  std::snprintf(timestamp, sizeof(timestamp), "2025-01-02T03:04:05.%06dZ", micros % 1000000);
  return {"user", std::move(content), timestamp};
}

Deadline StageConformanceTest::Soon(int seconds) {
  return Deadline::After(std::chrono::seconds(seconds));
}

Status StageConformanceTest::Write(const std::string& guest, const Message& message, Attributes* attributes,
                                   Deadline deadline) {
  Attributes local;
  return WriteWith(guest, message, attributes != nullptr ? *attributes : local, deadline, deadline);
}

Status StageConformanceTest::WriteTooLate(const std::string& guest, const Message& message) {
  Attributes attributes;
  return WriteWith(guest, message, attributes, Soon(), Deadline(Clock::now() - seconds(1)));
}

Status StageConformanceTest::WriteWith(const std::string& guest, const Message& message,
                                       Attributes& attributes, Deadline before_deadline,
                                       Deadline write_deadline) {
  LentSession session(GetParam());
  if (!session.status().ok()) return session.status();
  return InTransaction(session.get(), [&] {
    WriteContext before{guest, message, before_deadline, log_, attributes, session.get()};
    Status admitted = stage_->admit(before);
    if (!admitted.ok()) return admitted;
    if (GetParam().before_write) {
      Status done = GetParam().before_write(before);
      if (!done.ok()) return done.WithContext("StageUnderTest::before_write");
    }
    WriteContext ctx{guest, message, write_deadline, log_, attributes, session.get()};
    return stage_->write(ctx);
  });
}

void StageConformanceTest::ExpectALateWriteStoresNothing() {
  const std::string guest = Guest("late");
  const Message late = Msg("too late to store", 9);
  Status written = WriteTooLate(guest, late);
  EXPECT_TRUE(NoException(written));
  int stored = -1;  // -1: the suite cannot tell
  if (GetParam().serves_reads) {
    ReadResult read = Read(guest);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    stored = static_cast<int>(std::count(read.messages.begin(), read.messages.end(), late));
  } else if (GetParam().count_stored) {
    stored = GetParam().count_stored(guest);
  }
  // One check for both, so that a stage that breaks the rule fails once.
  EXPECT_TRUE(!written.ok() && stored <= 0)
      << "write() given a deadline that had passed " << (written.ok() ? "answered ok" : "failed")
      << (stored > 0 ? " and stored the message" : "")
      << ": the host has given up on the call by then and told its client the request failed, so the stage "
         "must store nothing and say so (e.g. Status::DeadlineExceeded)";
}

Status StageConformanceTest::Compensate(const std::string& guest, const Message& message,
                                        Attributes& attributes, Deadline deadline) {
  LentSession session(GetParam());
  if (!session.status().ok()) return session.status();
  return InTransaction(session.get(), [&] {
    WriteContext ctx{guest, message, deadline, log_, attributes, session.get()};
    return stage_->compensate(ctx);
  });
}

Status StageConformanceTest::Replay(const std::string& guest, const Message& message, Attributes& attributes,
                                    Deadline deadline) {
  LentSession session(GetParam());
  if (!session.status().ok()) return session.status();
  return InTransaction(session.get(), [&] {
    WriteContext ctx{guest, message, deadline, log_, attributes, session.get()};
    ctx.replay = true;
    Status admitted = stage_->admit(ctx);
    if (!admitted.ok()) return admitted;
    return stage_->write(ctx);
  });
}

ReadResult StageConformanceTest::Read(const std::string& guest, Deadline deadline) {
  LentSession session(GetParam());
  if (!session.status().ok()) return {session.status(), false, {}};
  GuestContext ctx{guest, deadline, log_, session.get()};
  return stage_->read(ctx);
}

ReadResult StageConformanceTest::ReadPage(const std::string& guest, ReadRange& range, Deadline deadline) {
  LentSession session(GetParam());
  if (!session.status().ok()) return {session.status(), false, {}};
  GuestContext ctx{guest, deadline, log_, session.get(), nullptr, &range};
  return stage_->read(ctx);
}

EraseResult StageConformanceTest::Erase(const std::string& guest, Deadline deadline) {
  LentSession session(GetParam());
  if (!session.status().ok()) return {session.status(), false};
  EraseResult result;
  Status status = InTransaction(session.get(), [&] {
    GuestContext ctx{guest, deadline, log_, session.get()};
    result = stage_->erase(ctx);
    return result.status;
  });
  if (result.status.ok() && !status.ok()) return {status, false};
  return result;
}

// --- The tests ---------------------------------------------------------------

TEST_P(StageConformanceTest, WriteThenReadReturnsTheMessage) {
  const std::string guest = Guest("read");
  const Message message = Msg("hello from the conformance suite", 101);
  Attributes attributes;
  Status written = Write(guest, message, &attributes);
  ASSERT_TRUE(written.ok()) << written.ToString() << "\nlog:\n" << log().All();
  if (!GetParam().serves_reads) GTEST_SKIP() << "the stage does not serve reads";

  ReadResult read = Read(guest);
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_TRUE(read.found);
  EXPECT_EQ(read.messages, std::vector<Message>{message}) << Describe(read.messages);

  const Message second{"assistant", "and a reply, with \"quotes\", \\ and ünïcödé", Msg("", 202).timestamp};
  ASSERT_TRUE(Write(guest, second).ok());
  read = Read(guest);
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_EQ(read.messages, (std::vector<Message>{message, second}))
      << "oldest first: " << Describe(read.messages);
}

TEST_P(StageConformanceTest, ReadOfAnUnknownGuestIsAMiss) {
  if (!GetParam().serves_reads) GTEST_SKIP() << "the stage does not serve reads";
  ReadResult read = Read(Guest("never-written"));
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_FALSE(read.found);
  EXPECT_TRUE(read.messages.empty()) << Describe(read.messages);
}

// SDK 1.5: a read asked for a page (GuestContext::range) returns exactly
// that page, oldest first, and sets ReadRange::total; or it leaves total
// unset and returns the whole history (the host cuts the page).
TEST_P(StageConformanceTest, APageReadIsThePageWithTheTotalOrTheWholeHistory) {
  if (!GetParam().serves_reads) GTEST_SKIP() << "the stage does not serve reads";
  const std::string guest = Guest("page");
  std::vector<Message> history;
  for (int i = 0; i < 5; ++i) {
    history.push_back(Msg("page message " + std::to_string(i), i + 1));
    Status written = Write(guest, history.back());
    ASSERT_TRUE(written.ok()) << written.ToString();
  }
  const struct {
    std::optional<std::uint64_t> before, limit;
  } asked[] = {{std::nullopt, 2}, {4, 2}, {1, 3}, {9, 10}, {3, std::nullopt}};
  for (const auto& a : asked) {
    ReadRange range{a.before, a.limit, std::nullopt};
    const std::string what = "before=" + (a.before ? std::to_string(*a.before) : "-") +
                             " limit=" + (a.limit ? std::to_string(*a.limit) : "-");
    ReadResult read = ReadPage(guest, range);
    ASSERT_TRUE(read.status.ok()) << what << ": " << read.status.ToString();
    EXPECT_TRUE(read.found) << what;
    if (!range.total) {
      EXPECT_EQ(read.messages, history)
          << what << ": a stage that leaves ReadRange::total unset returns the whole history; "
          << Describe(read.messages);
      continue;
    }
    EXPECT_EQ(*range.total, history.size())
        << what << ": ReadRange::total is how many messages the guest has";
    const std::vector<Message> page(
        history.begin() + static_cast<std::ptrdiff_t>(range.first(history.size())),
        history.begin() + static_cast<std::ptrdiff_t>(range.end(history.size())));
    EXPECT_EQ(read.messages, page) << what << ": " << Describe(read.messages);
  }
  ReadRange unknown{2, 1, std::nullopt};
  ReadResult miss = ReadPage(Guest("page-never-written"), unknown);
  ASSERT_TRUE(miss.status.ok()) << miss.status.ToString();
  EXPECT_FALSE(miss.found);
}

TEST_P(StageConformanceTest, EraseRemovesTheGuestAndReportsHeld) {
  const std::string guest = Guest("erase");
  const std::string other = Guest("erase-other");
  ASSERT_TRUE(Write(guest, Msg("to be erased", 1)).ok());
  ASSERT_TRUE(Write(guest, Msg("to be erased too", 2)).ok());
  ASSERT_TRUE(Write(other, Msg("kept", 3)).ok());

  EraseResult erased = Erase(guest);
  ASSERT_TRUE(erased.status.ok()) << erased.status.ToString();
  if (GetParam().erase_reports_held) {
    EXPECT_TRUE(erased.held) << "the stage held the guest's messages";
  }

  if (GetParam().serves_reads) {
    ReadResult read = Read(guest);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    EXPECT_FALSE(read.found);
    EXPECT_TRUE(read.messages.empty()) << Describe(read.messages);
    ReadResult kept = Read(other);
    ASSERT_TRUE(kept.status.ok()) << kept.status.ToString();
    EXPECT_EQ(kept.messages, std::vector<Message>{Msg("kept", 3)}) << "an erase removes one guest only";
  }

  EraseResult again = Erase(guest);
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  if (GetParam().erase_reports_held) {
    EXPECT_FALSE(again.held) << "nothing was left to erase";
  }
}

TEST_P(StageConformanceTest, CompensateRemovesExactlyTheWrite) {
  if (has_database())
    GTEST_SKIP() << "a stage with a database is not compensated: its transaction is rolled back";
  const std::string guest = Guest("compensate");
  const Message first = Msg("written, then compensated", 10);
  const Message second = Msg("written after it, and kept", 11);
  Attributes first_attributes, second_attributes;
  ASSERT_TRUE(Write(guest, first, &first_attributes).ok());
  ASSERT_TRUE(Write(guest, second, &second_attributes).ok());

  Status compensated = Compensate(guest, first, first_attributes);
  ASSERT_TRUE(compensated.ok()) << compensated.ToString();
  if (GetParam().serves_reads) {
    ReadResult read = Read(guest);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    EXPECT_EQ(read.messages, std::vector<Message>{second}) << Describe(read.messages);
  }

  // A compensation for a write that stored nothing leaves the rest alone.
  Attributes none;
  EXPECT_TRUE(NoException(Compensate(Guest("compensate-unwritten"), Msg("never stored"), none)));
  if (GetParam().serves_reads) {
    ReadResult read = Read(guest);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    EXPECT_EQ(read.messages, std::vector<Message>{second}) << Describe(read.messages);
  }
}

// SDK 1.3: the host replays a message a stage failed to store (or was
// skipped for) with WriteContext::replay set; the stage stores its part once,
// whether or not it had in fact stored it.
TEST_P(StageConformanceTest, ReplayStoresOnce) {
  const StageUnderTest& param = GetParam();
  if (!param.replayable)
    GTEST_SKIP() << "the host never replays the stage (StageUnderTest::replayable is false)";
  if (!param.serves_reads && !param.count_stored)
    GTEST_SKIP() << "the stage serves no reads and its StageUnderTest sets no count_stored: the suite cannot "
                    "tell how many times it holds a message";

  // How many times the stage holds `message` for `guest`.
  auto held = [&](const std::string& guest, const Message& message) -> int {
    if (!param.serves_reads) return param.count_stored(guest);
    ReadResult read = Read(guest);
    EXPECT_TRUE(read.status.ok()) << read.status.ToString();
    for (const Message& m : read.messages)
      EXPECT_EQ(m, message) << "only this message was written: " << Describe(read.messages);
    return static_cast<int>(read.messages.size());
  };
  // Runs what happens to a message before the stage's write(): its admit()
  // (unless `skip_stage`, as when its circuit is open) and the earlier stages
  // (StageUnderTest::before_write); then its write() unless `skip_stage`.
  // `journaled` gets what the host journals for the stage: the attributes
  // write() is given, without what admit() set.
  auto write = [&](const std::string& guest, const Message& message, bool skip_stage, Attributes* journaled) {
    LentSession session(param);
    if (!session.status().ok()) return session.status();
    Attributes attributes;
    return InTransaction(session.get(), [&] {
      WriteContext ctx{guest, message, Soon(), log(), attributes, session.get()};
      std::set<std::string> set_by_admit;
      if (!skip_stage) {
        Status admitted = stage().admit(ctx);
        if (!admitted.ok()) return admitted;
        for (const auto& [key, value] : attributes.all()) set_by_admit.insert(key);
      }
      if (param.before_write) {
        Status before = param.before_write(ctx);
        if (!before.ok()) return before.WithContext("StageUnderTest::before_write");
      }
      for (const auto& [key, value] : attributes.all())
        if (set_by_admit.count(key) == 0) journaled->set(key, value);
      return skip_stage ? Status::Ok() : stage().write(ctx);
    });
  };

  // Stored, then replayed (e.g. the host stopped waiting for a write that
  // went through): nothing new.
  const std::string stored_guest = Guest("replay-stored");
  const Message stored = Msg("stored, then replayed", 301);
  Attributes journaled;
  Status status = write(stored_guest, stored, false, &journaled);
  ASSERT_TRUE(status.ok()) << status.ToString() << "\nlog:\n" << log().All();
  ASSERT_EQ(held(stored_guest, stored), 1) << "the stage holds the message it wrote once";
  status = Replay(stored_guest, stored, journaled);
  ASSERT_TRUE(status.ok()) << "replay: " << status.ToString() << "\nlog:\n" << log().All();
  EXPECT_EQ(held(stored_guest, stored), 1) << "a replay of a message the stage stored stores nothing new";

  // Missed by the stage (failed or skipped), then replayed twice: stored once.
  const std::string missed_guest = Guest("replay-missed");
  const Message missed = Msg("missed, then replayed", 302);
  Attributes missed_journaled;
  status = write(missed_guest, missed, true, &missed_journaled);
  ASSERT_TRUE(status.ok()) << status.ToString() << "\nlog:\n" << log().All();
  ASSERT_EQ(held(missed_guest, missed), 0) << "the stage was not called";
  Attributes first = missed_journaled;
  status = Replay(missed_guest, missed, first);
  ASSERT_TRUE(status.ok()) << "replay: " << status.ToString() << "\nlog:\n" << log().All();
  EXPECT_EQ(held(missed_guest, missed), 1) << "a replay stores what the stage missed";
  Attributes second = missed_journaled;
  status = Replay(missed_guest, missed, second);
  ASSERT_TRUE(status.ok()) << "second replay: " << status.ToString() << "\nlog:\n" << log().All();
  EXPECT_EQ(held(missed_guest, missed), 1) << "a second replay stores nothing new";
}

TEST_P(StageConformanceTest, SchemaIsWellFormedAndRejectsUnknownKeys) {
  const ConfigSchema& schema = GetParam().schema;
  EXPECT_EQ(schema.find("no_such_key_for_conformance"), nullptr)
      << "an unknown key must not be declared, so that the host refuses it";
  std::set<std::string> names;
  for (const ConfigKey& key : schema.keys()) {
    EXPECT_FALSE(key.name.empty()) << "a key without a name";
    EXPECT_TRUE(names.insert(key.name).second) << "key '" << key.name << "' is declared twice";
    EXPECT_FALSE(key.description.empty()) << "key '" << key.name << "' has no description";
    EXPECT_EQ(schema.find(key.name), &key);
    if (key.required()) {
      EXPECT_FALSE(key.default_value.has_value()) << "required key '" << key.name << "' has a default";
    } else {
      EXPECT_EQ(key.default_value->index(), ConfigValueIndex(key.type))
          << "the default of key '" << key.name << "' is not a " << ConfigTypeName(key.type);
      // The host refuses a value outside the key's bounds or words; its own
      // default must not be one.
      if (key.min && key.min->index() == key.default_value->index())
        EXPECT_FALSE(*key.default_value < *key.min) << "the default of key '" << key.name << "' is below its minimum";
      if (key.max && key.max->index() == key.default_value->index())
        EXPECT_FALSE(*key.max < *key.default_value) << "the default of key '" << key.name << "' is above its maximum";
      if (const auto* word = std::get_if<std::string>(&*key.default_value); word && !key.allowed.empty())
        EXPECT_NE(std::find(key.allowed.begin(), key.allowed.end(), *word), key.allowed.end())
            << "the default of key '" << key.name << "' is not one of its allowed values";
    }
    for (const auto& bound : {key.min, key.max})
      if (bound)
        EXPECT_EQ(bound->index(), ConfigValueIndex(key.type))
            << "a bound of key '" << key.name << "' is not a " << ConfigTypeName(key.type);
  }
}

TEST_P(StageConformanceTest, ExpiredDeadlineReturnsPromptly) {
  const milliseconds bound = GetParam().expired_deadline_bound;
  const std::string guest = Guest("deadline");
  const Deadline expired(Clock::now() - seconds(1));

  auto timed = [&](const char* call, const std::function<Status()>& run) {
    const Clock::time_point start = Clock::now();
    Status status = run();
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    EXPECT_LE(took.count(), bound.count())
        << call << " with an expired deadline took " << took.count() << " ms";
    EXPECT_TRUE(NoException(status)) << call;
  };
  timed("write", [&] { return Write(guest, Msg("too late", 7), nullptr, expired); });
  timed("read", [&] { return Read(guest, expired).status; });
  timed("erase", [&] { return Erase(guest, expired).status; });

  // The stage is still fine for calls in time.
  const Message message = Msg("in time", 8);
  Status written = Write(guest, message);
  ASSERT_TRUE(written.ok()) << written.ToString();
  if (GetParam().serves_reads) {
    ReadResult read = Read(guest);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    ASSERT_FALSE(read.messages.empty());
    EXPECT_EQ(read.messages.back(), message);
  }
}

TEST_P(StageConformanceTest, AWriteWhoseDeadlinePassedStoresNothing) {
  // The host gives a stage with a database a session whose statements carry
  // the call's deadline: its late write fails at the first statement, and
  // the transaction is rolled back. The sessions of this suite carry none.
  if (has_database())
    GTEST_SKIP() << "a stage with a database: the host's session refuses statements past the call's deadline";
  ExpectALateWriteStoresNothing();
}

TEST_P(StageConformanceTest, BadInputIsAnErrorResultNotAnException) {
  const std::string long_guest = "g" + std::string(127, 'x');
  ReadResult read = Read(long_guest);
  EXPECT_TRUE(NoException(read.status)) << "read of a 128-character guest id";
  if (read.status.ok()) {
    EXPECT_FALSE(read.found) << "nothing was written for it";
  }
  EraseResult erased = Erase(long_guest);
  EXPECT_TRUE(NoException(erased.status)) << "erase of a 128-character guest id";

  const std::string odd_guest = Guest("odd \"'\\\n\t%s{}*?[]ü");
  EXPECT_TRUE(NoException(Read(odd_guest).status)) << "read of a guest id with odd characters";

  // The host never lets such messages through; a stage given one anyway
  // answers with a Status.
  const std::string guest = Guest("bad-message");
  EXPECT_TRUE(NoException(Write(guest, Message{"", "no role", Msg("").timestamp}))) << "empty role";
  EXPECT_TRUE(NoException(Write(guest, Message{"user", "", Msg("").timestamp}))) << "empty content";
  EXPECT_TRUE(NoException(Write(guest, Message{"user", "no timestamp", ""}))) << "empty timestamp";
  EXPECT_TRUE(NoException(Write(odd_guest, Msg("to an odd guest id", 5)))) << "odd guest id";
  EXPECT_TRUE(NoException(Erase(guest).status));
  EXPECT_TRUE(NoException(stage().health(Soon(5))));
}

TEST_P(StageConformanceTest, ConcurrentCallsAreSafe) {
  constexpr int kThreads = 16;
  constexpr int kWrites = 20;
  std::vector<std::string> guests;
  for (int t = 0; t < kThreads; ++t) guests.push_back(Guest("concurrent-" + std::to_string(t)));

  std::atomic<int> failed{0};
  std::mutex first_failure_mu;
  std::string first_failure;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        Status status =
            Write(guests[t], Msg("thread " + std::to_string(t) + " message " + std::to_string(i), i), nullptr,
                  Soon(30));
        if (!status.ok()) {
          std::lock_guard lock(first_failure_mu);
          if (failed++ == 0) first_failure = status.ToString();
        }
        if (GetParam().serves_reads && i % 5 == 4) {
          ReadResult read = Read(guests[(t + 1) % kThreads], Soon(30));
          if (!read.status.ok()) {
            std::lock_guard lock(first_failure_mu);
            if (failed++ == 0) first_failure = "read: " + read.status.ToString();
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failed.load(), 0) << "first failure: " << first_failure;

  if (!GetParam().serves_reads) return;
  for (int t = 0; t < kThreads; ++t) {
    ReadResult read = Read(guests[t]);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    std::vector<Message> expected;
    for (int i = 0; i < kWrites; ++i)
      expected.push_back(Msg("thread " + std::to_string(t) + " message " + std::to_string(i), i));
    EXPECT_EQ(read.messages, expected) << "guest " << t << ": " << Describe(read.messages);
  }
}

}  // namespace stowage::testkit
