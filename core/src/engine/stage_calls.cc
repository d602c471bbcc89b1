#include "engine/stage_calls.h"

#include <algorithm>

#include "observability/metrics.h"
#include "stowage/plugin.h"

namespace stowage::engine {

using stowage::Attributes;
using stowage::Deadline;
using stowage::Status;
using stowage::StatusCode;

CallTarget TargetOf(const StageInstance& s) {
  return {s.stage, s.logger, s.counters, s.name(), s.settings.timeout, s.keeps_deadlines};
}

Status TimedOutStatus(const std::string& operation, std::chrono::milliseconds timeout) {
  return Status::DeadlineExceeded(operation +
                                  " did not finish within timeout_ms = " + std::to_string(timeout.count()) +
                                  "; check the target's load, or raise the stage's timeout_ms");
}

std::string PolicyText(const StageInstance& s) {
  return config::PolicyName(s.settings.policy);
}

void AddOnce(std::vector<std::string>& list, const std::string& value) {
  if (!value.empty() && std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

bool RefusesMessage(const Status& status) {
  return status.code() == StatusCode::kRejected || status.code() == StatusCode::kInvalidArgument ||
         status.code() == StatusCode::kConflict;
}

StageMetrics MetricsOf(observability::Registry& registry, const std::string& stage) {
  constexpr const char* kCalls = "stowage_stage_calls_total";
  constexpr const char* kCallsHelp = "Stage calls by outcome: ok, failed, timed_out, skipped (circuit open).";
  StageMetrics m;
  m.ok = &registry.counter(kCalls, kCallsHelp, {{"stage", stage}, {"outcome", "ok"}});
  m.failed = &registry.counter(kCalls, kCallsHelp, {{"stage", stage}, {"outcome", "failed"}});
  m.timed_out = &registry.counter(kCalls, kCallsHelp, {{"stage", stage}, {"outcome", "timed_out"}});
  m.skipped = &registry.counter(kCalls, kCallsHelp, {{"stage", stage}, {"outcome", "skipped"}});
  m.duration = &registry.histogram("stowage_stage_duration_seconds", "Duration of stage calls, in seconds.",
                                   {{"stage", stage}});
  m.journaled = &registry.counter("stowage_journal_recorded_total",
                                  "Messages a best_effort stage failed to store, journaled for replay.",
                                  {{"stage", stage}});
  m.replayed =
      &registry.counter("stowage_journal_replayed_total",
                        "Journal entries replayed into their stage and removed.", {{"stage", stage}});
  constexpr const char* kAdmits = "stowage_stage_admits_total";
  constexpr const char* kAdmitsHelp =
      "What admit() said of each message written: admitted, refused (e.g. over a quota), failed (could not tell).";
  m.admitted = &registry.counter(kAdmits, kAdmitsHelp, {{"stage", stage}, {"outcome", "admitted"}});
  m.admit_refused = &registry.counter(kAdmits, kAdmitsHelp, {{"stage", stage}, {"outcome", "refused"}});
  m.admit_failed = &registry.counter(kAdmits, kAdmitsHelp, {{"stage", stage}, {"outcome", "failed"}});
  return m;
}

void CountAdmit(const StageInstance& s, const Status& status) {
  observability::Counter* counter = status.ok()               ? s.metrics.admitted
                                    : RefusesMessage(status) ? s.metrics.admit_refused
                                                             : s.metrics.admit_failed;
  if (counter) counter->Add();
}

void CountCompensation(StageCounters& counters, bool ok) {
  (ok ? counters.compensated : counters.compensation_failed).fetch_add(1, std::memory_order_relaxed);
  if (observability::Counter* total = ok ? counters.compensated_total : counters.compensation_failed_total)
    total->Add();
}

namespace {

// Shows the breaker's state in its gauge.
void ShowCircuit(const StageInstance& s) {
  if (!s.breaker || !s.metrics.circuit) return;
  switch (s.breaker->state()) {
    case CircuitBreaker::State::kClosed:
      s.metrics.circuit->Set(0);
      break;
    case CircuitBreaker::State::kOpen:
      s.metrics.circuit->Set(1);
      break;
    case CircuitBreaker::State::kHalfOpen:
      s.metrics.circuit->Set(2);
      break;
  }
}

}  // namespace

void Count(const StageInstance& s, const Status& status, Clock::time_point began, bool breaker) {
  StageCounters& counters = *s.counters;
  observability::Counter* counter = nullptr;
  if (status.ok()) {
    counters.ok.fetch_add(1, std::memory_order_relaxed);
    counter = s.metrics.ok;
  } else if (status.code() == StatusCode::kDeadlineExceeded) {
    counters.timed_out.fetch_add(1, std::memory_order_relaxed);
    counter = s.metrics.timed_out;
  } else {
    counters.failed.fetch_add(1, std::memory_order_relaxed);
    counter = s.metrics.failed;
  }
  if (counter) counter->Add();
  if (s.metrics.duration)
    s.metrics.duration->Observe(std::chrono::duration<double>(Clock::now() - began).count());
  if (breaker && s.breaker) {
    const auto before = s.breaker->state();
    if (status.ok() || RefusesMessage(status))
      s.breaker->RecordSuccess();
    else
      s.breaker->RecordFailure();
    const auto after = s.breaker->state();
    if (after == CircuitBreaker::State::kOpen && before != after) {
      s.logger->warn(
          "circuit opened (" +
          std::string(before == CircuitBreaker::State::kHalfOpen
                          ? "the probe failed"
                          : std::to_string(s.settings.circuit_threshold) + " consecutive failures") +
          "): the stage is skipped for circuit_cooldown_ms = " +
          std::to_string(s.settings.circuit_cooldown.count()) + ", then probed by one request");
    } else if (after == CircuitBreaker::State::kClosed && before == CircuitBreaker::State::kHalfOpen) {
      s.logger->info("circuit closed: the probe succeeded, the stage is called again");
    }
    ShowCircuit(s);
  }
}

bool Admitted(const StageInstance& s) {
  if (!s.breaker) return true;
  bool allowed = s.breaker->Allow();
  ShowCircuit(s);
  if (!allowed && s.metrics.skipped) s.metrics.skipped->Add();
  return allowed;
}

void Unprobed(const StageInstance& s) {
  if (s.breaker && s.breaker->state() == CircuitBreaker::State::kHalfOpen) {
    s.breaker->RecordFailure();
    ShowCircuit(s);
  }
}

std::uint64_t FailuresOf(const StageCounters& counters) {
  return counters.failed.load(std::memory_order_relaxed) + counters.timed_out.load(std::memory_order_relaxed);
}

const char* NameOf(WriteOp op) {
  switch (op) {
    case WriteOp::kAdmit:
      return "admit";
    case WriteOp::kWrite:
      return "write";
    case WriteOp::kCompensate:
      return "compensate";
    case WriteOp::kPrepare:
      return "prepare";
    case WriteOp::kAbandon:
    case WriteOp::kAbandonUnknown:
      return "abandon";
  }
  return "unknown";
}

namespace {

// Calls `op` of `stage` with `ctx`, on this thread.
Status Invoke(stowage::Stage& stage, WriteOp op, stowage::WriteContext& ctx) {
  switch (op) {
    case WriteOp::kAdmit:
      return stage.admit(ctx);
    case WriteOp::kWrite:
      return stage.write(ctx);
    case WriteOp::kCompensate:
      return stage.compensate(ctx);
    case WriteOp::kPrepare:
      return stage.prepare(ctx);
    case WriteOp::kAbandon:
      return stage.abandon(ctx, stowage::Uncommitted::kRolledBack);
    case WriteOp::kAbandonUnknown:
      return stage.abandon(ctx, stowage::Uncommitted::kOutcomeUnknown);
  }
  return Status::Internal("unknown stage operation");
}

}  // namespace

WriteCall CallWrite(CallRunner& runner, const CallTarget& target, std::shared_ptr<const Request> request,
                    const Attributes& attributes, WriteOp op, LateWrite late_write) {
  const Deadline deadline = Deadline::After(target.timeout);
  auto call = [target, request, attributes = Attributes(attributes), deadline, op]() mutable -> WriteCall {
    stowage::WriteContext ctx{request->guest_id, request->message, deadline, *target.log, attributes};
    ctx.replay = request->replay;
    Status status = Invoke(*target.stage, op, ctx);
    return {std::move(status), std::move(attributes)};
  };
  std::function<void(WriteCall&)> late;
  if (op == WriteOp::kWrite && late_write == LateWrite::kCompensate) {
    late = [target, request](WriteCall& done) {
      if (!done.status.ok()) return;
      stowage::WriteContext ctx{request->guest_id, request->message, Deadline::After(target.timeout),
                                *target.log, done.attributes};
      ctx.replay = request->replay;
      Status compensated = target.stage->compensate(ctx);
      // The atomics only: this runs after the request, maybe after the
      // pipeline and its metrics registry are gone (the log says it).
      (compensated.ok() ? target.counters->compensated : target.counters->compensation_failed)
          .fetch_add(1, std::memory_order_relaxed);
      if (compensated.ok()) {
        target.log->warn("write for guest " + request->guest_id +
                         " finished after its deadline and was compensated");
      } else {
        target.log->error("write for guest " + request->guest_id +
                          " finished after its deadline and could not be compensated: " +
                          compensated.ToString() + "; the message may remain in this target");
      }
    };
  }
  auto result = RunStageCall<WriteCall>(runner, target.keeps_deadlines, deadline, std::move(call), std::move(late));
  if (!result) {
    return {TimedOutStatus(NameOf(op), target.timeout), attributes};
  }
  return std::move(*result);
}

Status HealthOf(stowage::Stage& stage, Deadline deadline) {
  try {
    return stage.health(deadline);
  } catch (...) {
    return stowage::internal::StatusFromCurrentException("health()");
  }
}

std::string SavepointOf(std::size_t index) {
  return "stowage_stage_" + std::to_string(index);
}

Status CallInTransaction(const StageInstance& s, std::size_t index, Transactions& transactions, bool savepoint,
                         const char* operation,
                         const std::function<Status(stowage::SqlSession&, Deadline)>& call, bool* lost) {
  const Deadline deadline = Deadline::After(s.settings.timeout);
  LazySession session(*s.database, &transactions, savepoint ? SavepointOf(index) : "", deadline);
  Status status = call(session, deadline);
  if (status.ok() && deadline.expired()) status = TimedOutStatus(operation, s.settings.timeout);
  // A stage that tried to control the transaction, or left it aborted,
  // fails; one that ended it loses it for every stage.
  status = session.Settle(std::move(status), lost);
  if (*lost || status.ok() || !savepoint) return status;
  Status rolled_back = session.RollbackToSavepoint();
  if (rolled_back.ok()) return status;
  *lost = true;
  return Status::Unavailable("the failure of stage '" + s.name() + "' could not be rolled back to its savepoint (" +
                             rolled_back.ToString() + "), so the transaction of database '" + s.database->name() +
                             "' is lost; " + status.ToString());
}

WriteCall CallWithDatabase(const StageInstance& s, std::size_t index, Transactions& transactions,
                           const std::shared_ptr<const Request>& request, const Attributes& attributes,
                           WriteOp op, bool* transaction_lost) {
  WriteCall call{Status::Ok(), attributes};
  bool lost = false;
  call.status = CallInTransaction(
      s, index, transactions, !s.required(), NameOf(op),
      [&](stowage::SqlSession& session, Deadline deadline) {
        stowage::WriteContext ctx{request->guest_id, request->message, deadline, *s.logger, call.attributes, &session};
        ctx.replay = request->replay;
        return Invoke(*s.stage, op, ctx);
      },
      &lost);
  if (lost) *transaction_lost = true;
  return call;
}

}  // namespace stowage::engine
