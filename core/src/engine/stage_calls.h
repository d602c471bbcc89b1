// How the engine calls one stage: on which thread, with which deadline and
// session, and how each outcome is counted. Shared by the write, read and
// erase paths of Pipeline; private to the engine.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/call_runner.h"
#include "engine/pipeline.h"
#include "engine/transaction.h"
#include "stowage/context.h"
#include "stowage/stage.h"
#include "stowage/status.h"

namespace stowage::engine {

// What one request hands to every stage call: owned jointly by the calls, so
// a call the engine stopped waiting for still has valid data.
struct Request {
  std::string guest_id;
  stowage::Message message;
  bool replay = false;  // a replay from the journal (WriteContext::replay)
};

// Everything a stage call needs, captured by the call itself.
struct CallTarget {
  std::shared_ptr<stowage::Stage> stage;
  std::shared_ptr<stowage::Logger> log;
  std::shared_ptr<StageCounters> counters;
  std::string name;
  std::chrono::milliseconds timeout;
  bool keeps_deadlines;  // call on this thread: the stage returns by the deadline itself
};

CallTarget TargetOf(const StageInstance& s);

// The status of a call that did not return within the stage's timeout_ms.
stowage::Status TimedOutStatus(const std::string& operation, std::chrono::milliseconds timeout);

// "required" or "best_effort".
std::string PolicyText(const StageInstance& s);

// Appends `value` to `list` unless it is empty or already there.
void AddOnce(std::vector<std::string>& list, const std::string& value);

// A status that refuses the message itself rather than reporting a broken
// target: the request fails with it whatever the stage's policy.
bool RefusesMessage(const stowage::Status& status);

// The metric series of stage `stage` in `registry`.
StageMetrics MetricsOf(observability::Registry& registry, const std::string& stage);

// Counts the outcome of one call of `s` that began at `began`, and tells its
// breaker (when `breaker` is set: the call was let through by it).
void Count(const StageInstance& s, const stowage::Status& status, Clock::time_point began, bool breaker = false);

// Counts what admit() of `s` said of a request's message, in
// stowage_stage_admits_total (when `s` has metrics).
void CountAdmit(const StageInstance& s, const stowage::Status& status);

// Counts one compensation of a stage (`ok`: compensate() succeeded), in its
// counters and its metric. Only while the request runs: the metric lives in
// the pipeline's registry.
void CountCompensation(StageCounters& counters, bool ok);

// Asks the breaker of a best_effort stage whether it may be called now; a
// stage skipped is counted as such.
bool Admitted(const StageInstance& s);

// A probe let through by a half-open breaker whose call never happened (the
// request ended first) counts as failed, so the breaker probes again later.
void Unprobed(const StageInstance& s);

// The stage's health(), an exception it throws turned into a kInternal Status.
stowage::Status HealthOf(stowage::Stage& stage, stowage::Deadline deadline);

// The calls of the stage that failed or timed out so far, for log lines.
std::uint64_t FailuresOf(const StageCounters& counters);

// The result of a write-like call: its status and the attributes it left.
struct WriteCall {
  stowage::Status status;
  stowage::Attributes attributes;
};

// The write-like operations of a stage.
enum class WriteOp {
  kAdmit,
  kWrite,
  kCompensate,
  kPrepare,         // an after-commit stage, before the COMMIT
  kAbandon,         // an after-commit stage whose COMMIT rolled back
  kAbandonUnknown,  // an after-commit stage whose COMMIT's outcome is unknown
};

const char* NameOf(WriteOp op);

// What becomes of a write that returns after the engine stopped waiting.
enum class LateWrite {
  kCompensate,  // compensate it: the request went on without it
  kKeep,        // keep it: it follows a COMMIT that happened (after-commit stages)
};

// Runs a write-like call of a stage without a database, with the stage's
// timeout: on this thread when the stage keeps its deadlines, else on the
// call runner; a write that finishes after the engine stopped waiting is
// compensated on its own thread when `late` says so, so that a timed-out
// write leaves nothing behind.
WriteCall CallWrite(CallRunner& runner, const CallTarget& target, std::shared_ptr<const Request> request,
                    const stowage::Attributes& attributes, WriteOp op, LateWrite late = LateWrite::kCompensate);

// The savepoint of the stage at `index` (names must be SQL identifiers).
std::string SavepointOf(std::size_t index);

// The one way a stage runs inside the shared transaction of its database:
// `call` gets a session whose statements join `transactions` (inside the
// stage's savepoint when `savepoint`) and the call's deadline (the stage's
// timeout from now), on this thread. Its status then fails, whatever `call`
// returned, when the deadline passed, when the stage tried to control the
// transaction or left it aborted (LazySession::Settle); a failure is rolled
// back to the savepoint. When the transaction was ended, its connection lost,
// or that rollback failed, `*lost` is set: the caller rolls every database
// back.
stowage::Status CallInTransaction(const StageInstance& s, std::size_t index, Transactions& transactions,
                                  bool savepoint, const char* operation,
                                  const std::function<stowage::Status(stowage::SqlSession&, stowage::Deadline)>& call,
                                  bool* lost);

// Runs admit or write of a stage that has a database, on this thread, with
// its statements in the request's transaction. A best_effort stage's
// statements run inside its own savepoint, rolled back when it fails; when
// that rollback fails, the transaction is lost and `*transaction_lost` is set.
// The call fails, whatever the stage returned, when it tried to control the
// transaction or left it aborted (LazySession::Settle); when the transaction
// was ended or its connection lost, `*transaction_lost` is set too.
WriteCall CallWithDatabase(const StageInstance& s, std::size_t index, Transactions& transactions,
                           const std::shared_ptr<const Request>& request, const stowage::Attributes& attributes,
                           WriteOp op, bool* transaction_lost);

// Where every stage call outside a transaction runs: `call` on this thread
// when `on_this_thread` (the stage keeps its deadlines, or runs statements
// whose waits the host bounds), else on `runner`, given up at `deadline`;
// then `late`, when set, receives the result of a call given up, on the
// call's thread. nullopt when given up. Everything `call` and `late` use must
// be owned by them.
template <typename R>
std::optional<R> RunStageCall(CallRunner& runner, bool on_this_thread, stowage::Deadline deadline,
                              std::function<R()> call, std::function<void(R&)> late = nullptr) {
  if (on_this_thread) return call();
  return CallWithDeadline<R>(runner, deadline.at(), std::move(call), std::move(late));
}

// Runs a guest call (read, refill, erase, search, prepare_erase) of one
// stage, with its timeout: a stage with a database on this thread with an
// autocommit session (a result that comes past the deadline is dropped),
// else as RunStageCall places it. `attributes` and `range` (each may be
// null) are given to the stage as ctx.attributes and ctx.range; the call
// keeps them alive until it is done, even when the engine stopped waiting
// for it, so read what the stage left in them only once it returned in time.
// nullopt when the call did not return in time.
template <typename R>
std::optional<R> CallGuest(CallRunner& runner, const StageInstance& s, const std::string& guest_id,
                           std::function<R(stowage::Stage&, stowage::GuestContext&)> op,
                           std::shared_ptr<stowage::Attributes> attributes = nullptr,
                           std::shared_ptr<stowage::ReadRange> range = nullptr) {
  const stowage::Deadline deadline = stowage::Deadline::After(s.settings.timeout);
  auto call = [target = TargetOf(s), database = s.database, id = std::make_shared<const std::string>(guest_id),
               deadline, op = std::move(op), attributes, range]() {
    std::optional<LazySession> session;
    if (database) session.emplace(*database, nullptr, "", deadline);
    stowage::GuestContext ctx{*id, deadline, *target.log, session ? &*session : nullptr, attributes.get(),
                              range.get()};
    return op(*target.stage, ctx);
  };
  std::optional<R> result = RunStageCall<R>(runner, s.database != nullptr || s.keeps_deadlines, deadline, call);
  if (result && s.database != nullptr && deadline.expired()) return std::nullopt;
  return result;
}

}  // namespace stowage::engine
