#include "engine/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <optional>
#include <set>

#include "engine/call_runner.h"
#include "engine/transaction.h"
#include "logging/logging.h"
#include "observability/metrics.h"

namespace stowage::engine {
namespace {

using stowage::Attributes;
using stowage::Deadline;
using stowage::Message;
using stowage::Status;
using stowage::StatusCode;

// What one request hands to every stage call: owned jointly by the calls, so
// a call the engine stopped waiting for still has valid data.
struct Request {
  std::string guest_id;
  Message message;
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

CallTarget TargetOf(const StageInstance& s) {
  return {s.stage, s.logger, s.counters, s.name(), s.settings.timeout, s.keeps_deadlines};
}

Status TimeoutStatus(const std::string& operation, std::chrono::milliseconds timeout) {
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

bool RefusesMessage(const Status& status);

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
  return m;
}

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

// Counts the outcome of one call of `s` that began at `began`, and tells its
// breaker (when `breaker` is set: the call was let through by it).
void Count(const StageInstance& s, const Status& status, Clock::time_point began, bool breaker = false) {
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

// Asks the breaker of a best_effort stage whether it may be called now; a
// stage skipped is counted as such.
bool Admitted(const StageInstance& s) {
  if (!s.breaker) return true;
  bool allowed = s.breaker->Allow();
  ShowCircuit(s);
  if (!allowed && s.metrics.skipped) s.metrics.skipped->Add();
  return allowed;
}

// A probe let through by a half-open breaker whose call never happened (the
// request ended first) counts as failed, so the breaker probes again later.
void Unprobed(const StageInstance& s) {
  if (s.breaker && s.breaker->state() == CircuitBreaker::State::kHalfOpen) {
    s.breaker->RecordFailure();
    ShowCircuit(s);
  }
}

std::uint64_t FailuresOf(const StageCounters& counters) {
  return counters.failed.load(std::memory_order_relaxed) + counters.timed_out.load(std::memory_order_relaxed);
}

// A status that refuses the message itself rather than reporting a broken
// target: the request fails with it whatever the stage's policy.
bool RefusesMessage(const Status& status) {
  return status.code() == StatusCode::kRejected || status.code() == StatusCode::kInvalidArgument ||
         status.code() == StatusCode::kConflict;
}

// The result of a write-like call: its status and the attributes it left.
struct WriteCall {
  Status status;
  Attributes attributes;
};

enum class WriteOp { kAdmit, kWrite, kCompensate };

const char* NameOf(WriteOp op) {
  return op == WriteOp::kAdmit ? "admit" : op == WriteOp::kWrite ? "write" : "compensate";
}

// Calls admit, write or compensate of `stage` with `ctx`, on this thread.
Status Invoke(stowage::Stage& stage, WriteOp op, stowage::WriteContext& ctx) {
  switch (op) {
    case WriteOp::kAdmit:
      return stage.admit(ctx);
    case WriteOp::kWrite:
      return stage.write(ctx);
    case WriteOp::kCompensate:
      return stage.compensate(ctx);
  }
  return Status::Internal("unknown stage operation");
}

// Runs admit, write or compensate of one stage with the stage's timeout. A
// stage that keeps its deadlines is called on this thread. Any other runs on
// the call runner; a write of it that finishes after the engine stopped
// waiting is compensated on its own thread, so a timed-out write leaves
// nothing behind.
WriteCall CallWrite(CallRunner& runner, const CallTarget& target, std::shared_ptr<const Request> request,
                    const Attributes& attributes, WriteOp op) {
  const Deadline deadline = Deadline::After(target.timeout);
  if (target.keeps_deadlines) {
    WriteCall done{Status::Ok(), attributes};
    stowage::WriteContext ctx{request->guest_id, request->message, deadline, *target.log, done.attributes};
    done.status = Invoke(*target.stage, op, ctx);
    return done;
  }
  auto call = [target, request, attributes = Attributes(attributes), deadline, op]() mutable -> WriteCall {
    stowage::WriteContext ctx{request->guest_id, request->message, deadline, *target.log, attributes};
    Status status = Invoke(*target.stage, op, ctx);
    return {std::move(status), std::move(attributes)};
  };
  std::function<void(WriteCall&)> late;
  if (op == WriteOp::kWrite) {
    late = [target, request](WriteCall& done) {
      if (!done.status.ok()) return;
      stowage::WriteContext ctx{request->guest_id, request->message, Deadline::After(target.timeout),
                                *target.log, done.attributes};
      Status undone = target.stage->compensate(ctx);
      if (undone.ok()) {
        target.counters->compensated.fetch_add(1, std::memory_order_relaxed);
        target.log->warn("write for guest " + request->guest_id +
                         " finished after its deadline and was undone (compensated)");
      } else {
        target.counters->compensation_failed.fetch_add(1, std::memory_order_relaxed);
        target.log->error("write for guest " + request->guest_id +
                          " finished after its deadline and could not be undone: " + undone.ToString() +
                          "; the message may remain in this target");
      }
    };
  }
  auto result = CallWithDeadline<WriteCall>(runner, deadline.at(), std::move(call), std::move(late));
  if (!result) {
    return {TimeoutStatus(NameOf(op), target.timeout), attributes};
  }
  return std::move(*result);
}

}  // namespace

Pipeline::~Pipeline() = default;

BuildResult Pipeline::Build(const config::PipelineConfig& cfg, const Pipeline* previous,
                            observability::Registry* metrics) {
  BuildResult result;
  auto pipeline = std::shared_ptr<Pipeline>(new Pipeline());
  pipeline->config_ = cfg;
  pipeline->metrics_ = metrics ? metrics : previous ? previous->metrics_ : nullptr;
  pipeline->runner_ = previous ? previous->runner_ : std::make_shared<CallRunner>();

  for (const auto& settings : cfg.databases) {
    std::shared_ptr<database::PostgresDatabase> kept;
    if (previous) {
      for (std::size_t i = 0; i < previous->config_.databases.size(); ++i)
        if (config::SameSettings(previous->config_.databases[i], settings)) kept = previous->databases_[i];
    }
    if (!kept) {
      kept = std::make_shared<database::PostgresDatabase>(
          settings, logging::MakeStageLogger("Database " + settings.name));
    }
    pipeline->databases_.push_back(std::move(kept));
  }

  loader::PluginLoader loader(cfg.server.plugin_path);
  const auto base_folder = cfg.file.parent_path();
  const std::string file = cfg.file.string();

  for (const auto& settings : cfg.stages) {
    std::shared_ptr<database::PostgresDatabase> db;
    if (!settings.database.empty()) {
      for (const auto& candidate : pipeline->databases_)
        if (candidate->name() == settings.database) db = candidate;
    }
    // An unchanged stage on an unchanged database is the previous one itself.
    std::shared_ptr<StageInstance> old;
    if (previous) {
      for (const auto& candidate : previous->stages_)
        if (candidate->name() == settings.name) old = candidate;
    }
    if (old && config::SameSettings(old->settings, settings) && old->database == db) {
      pipeline->stages_.push_back(std::move(old));
      continue;
    }

    auto instance = std::make_shared<StageInstance>();
    instance->settings = settings;
    const std::string where =
        file + ":" + std::to_string(settings.where.line) + ": stage[" + settings.name + "]";
    if (!settings.enabled) {
      pipeline->stages_.push_back(std::move(instance));
      continue;
    }
    if (!settings.database.empty()) {
      instance->database = db;
      if (instance->database == nullptr) {
        result.errors.push_back(where + ".database: no [[database]] is named '" + settings.database +
                                "'; declare it or fix the name");
        continue;
      }
    }
    auto loaded = loader.Load(settings.plugin, base_folder);
    for (auto& warning : loaded.warnings) result.warnings.push_back(where + ": " + warning);
    if (!loaded.plugin) {
      result.errors.push_back(where + ".plugin: " + loaded.error);
      continue;
    }
    instance->plugin = loaded.plugin;

    stowage::StageConfig stage_config;
    auto errors = config::ValidateStageConfig(settings, file, loaded.plugin->schema(), &stage_config);
    if (!errors.empty()) {
      for (const auto& error : errors) result.errors.push_back(error.ToString());
      continue;
    }

    instance->logger = logging::MakeStageLogger(loaded.plugin->info().label);
    instance->env = std::make_unique<stowage::StageEnvironment>(
        stowage::StageEnvironment{*instance->logger, instance->database.get()});
    Status error;
    instance->stage = loaded.plugin->Create(stage_config, *instance->env, &error);
    if (!instance->stage) {
      result.errors.push_back(where + ": the stage could not be created by " +
                              loaded.plugin->path().string() + ": " + error.ToString());
      continue;
    }
    instance->target = instance->stage->target();
    instance->keeps_deadlines = loaded.plugin->keeps_deadlines();
    if (!instance->required() && settings.circuit_threshold > 0) {
      instance->breaker = std::make_shared<CircuitBreaker>(
          CircuitBreaker::Options{settings.circuit_threshold, settings.circuit_cooldown});
    }
    if (pipeline->metrics_) {
      instance->metrics = MetricsOf(*pipeline->metrics_, settings.name);
      if (instance->breaker) {
        instance->metrics.circuit = &pipeline->metrics_->gauge(
            "stowage_circuit_state",
            "Circuit breaker state of a best_effort stage: 0 closed, 1 open, 2 half_open.",
            {{"stage", settings.name}});
        instance->metrics.circuit->Set(0);
      }
    }
    pipeline->stages_.push_back(std::move(instance));
  }

  if (result.errors.empty()) result.pipeline = std::move(pipeline);
  return result;
}

const StageInstance* Pipeline::stage(const std::string& name) const noexcept {
  for (const auto& s : stages_)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<StageHealth> Pipeline::Health(std::chrono::milliseconds timeout) const {
  const auto deadline = Deadline::After(timeout);
  std::vector<StageHealth> out;
  std::vector<std::optional<std::future<Status>>> pending;
  for (const auto& s : stages_) {
    out.push_back({s->name(), s->required(), s->stage != nullptr, Status::Ok()});
    pending.emplace_back();
    if (!s->stage) continue;
    auto answer = std::make_shared<std::promise<Status>>();
    pending.back() = answer->get_future();
    std::shared_ptr<stowage::Stage> stage = s->stage;
    runner_->Submit([stage, answer, deadline]() {
      Status status;
      try {
        status = stage->health(deadline);
      } catch (const std::exception& e) {
        status = Status::Internal(std::string("health() threw: ") + e.what());
      } catch (...) {
        status = Status::Internal("health() threw a non-standard exception");
      }
      answer->set_value(std::move(status));
    });
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!pending[i]) continue;
    if (pending[i]->wait_until(deadline.at()) == std::future_status::ready) {
      out[i].status = pending[i]->get();
    } else {
      out[i].status =
          Status::DeadlineExceeded("health() did not answer within " + std::to_string(timeout.count()) +
                                   " ms; check that the stage's target is reachable");
    }
  }
  return out;
}

namespace {

// The savepoint of the stage at `index` (names must be SQL identifiers).
std::string SavepointOf(std::size_t index) {
  return "stowage_stage_" + std::to_string(index);
}

// Runs admit or write of a stage that has a database, on this thread, with
// its statements in the request's transaction. A best_effort stage's
// statements run inside its own savepoint, rolled back when it fails; when
// that rollback fails, the transaction is lost and `*transaction_lost` is set.
WriteCall CallWithDatabase(const StageInstance& s, std::size_t index, Transactions& transactions,
                           std::shared_ptr<const Request> request, const Attributes& attributes, WriteOp op,
                           bool* transaction_lost) {
  const Deadline deadline = Deadline::After(s.settings.timeout);
  LazySession session(*s.database, &transactions, s.required() ? "" : SavepointOf(index), deadline);
  WriteCall call{Status::Ok(), attributes};
  stowage::WriteContext ctx{request->guest_id, request->message, deadline,
                            *s.logger,         call.attributes,  &session};
  call.status = Invoke(*s.stage, op, ctx);
  if (call.status.ok() && deadline.expired()) call.status = TimeoutStatus(NameOf(op), s.settings.timeout);
  if (!call.status.ok() && !s.required()) {
    Status undone = session.RollbackToSavepoint();
    if (!undone.ok()) {
      *transaction_lost = true;
      call.status = Status::Unavailable("the failure of best_effort stage '" + s.name() +
                                        "' could not be rolled back (" + undone.ToString() +
                                        "), so the transaction of database '" + s.database->name() +
                                        "' is lost; " + call.status.ToString());
    }
  }
  return call;
}

}  // namespace

void Pipeline::Report(stowage::RequestKind kind, const std::string& guest_id, bool ok, bool cache_hit,
                      Clock::time_point started) const noexcept {
  stowage::RequestReport report{
      kind, guest_id, ok, cache_hit,
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started)};
  for (const auto& s : stages_)
    if (s->stage) s->stage->observe(report);
}

WriteOutcome Pipeline::Write(const std::string& guest_id, const Message& message) {
  const auto started = Clock::now();
  WriteOutcome outcome;
  auto request = std::make_shared<const Request>(Request{guest_id, message});
  Transactions transactions;

  std::vector<std::size_t> enabled;
  for (std::size_t i = 0; i < stages_.size(); ++i)
    if (stages_[i]->stage) enabled.push_back(i);

  auto call = [&](std::size_t i, WriteOp op, bool* lost) -> WriteCall {
    const StageInstance& s = *stages_[i];
    if (s.database != nullptr)
      return CallWithDatabase(s, i, transactions, request, outcome.attributes, op, lost);
    return CallWrite(*runner_, TargetOf(s), request, outcome.attributes, op);
  };
  // Undoes what the stages without a database wrote, newest first (the
  // transaction takes care of the others).
  std::vector<std::size_t> applied;
  auto undo = [&](const std::string& because) {
    transactions.RollbackAll(Deadline::After(std::chrono::seconds(5)));
    for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
      const StageInstance& done = *stages_[*it];
      if (done.database != nullptr) continue;
      WriteCall undone =
          CallWrite(*runner_, TargetOf(done), request, outcome.attributes, WriteOp::kCompensate);
      if (undone.status.ok()) {
        done.counters->compensated.fetch_add(1, std::memory_order_relaxed);
        done.logger->info("undid the write for guest " + guest_id + " because " + because);
      } else {
        done.counters->compensation_failed.fetch_add(1, std::memory_order_relaxed);
        done.logger->error("could not undo the write for guest " + guest_id + ": " +
                           undone.status.ToString() + "; the message may remain in this target");
      }
    }
    outcome.stored_in.clear();
  };
  auto fail = [&](const StageInstance& s, Status status) {
    outcome.status = std::move(status);
    outcome.failed_stage = s.name();
    Report(stowage::RequestKind::kWrite, guest_id, false, false, started);
    return outcome;
  };

  // Admission: every stage may refuse the message before anything is written.
  // A best_effort stage whose circuit is open is skipped for this message.
  std::vector<bool> skipped(stages_.size(), false);
  // Stages let through by their breaker whose write outcome is still owed to it.
  std::vector<bool> owed(stages_.size(), false);
  auto release = [&] {
    for (std::size_t i : enabled)
      if (owed[i]) Unprobed(*stages_[i]);
  };
  for (std::size_t i : enabled) {
    const StageInstance& s = *stages_[i];
    if (!Admitted(s)) {
      skipped[i] = true;
      outcome.degraded.push_back(s.name());
      continue;
    }
    owed[i] = s.breaker != nullptr;
    bool lost = false;
    const auto began = Clock::now();
    WriteCall admitted = call(i, WriteOp::kAdmit, &lost);
    if (admitted.status.ok()) {
      outcome.attributes = std::move(admitted.attributes);
      continue;
    }
    Count(s, admitted.status, began, owed[i]);
    owed[i] = false;
    if (RefusesMessage(admitted.status) || s.required() || lost) {
      s.logger->info("refused the message for guest " + guest_id + ": " + admitted.status.ToString());
      undo("stage '" + s.name() + "' refused it");
      release();
      return fail(s, std::move(admitted.status));
    }
    s.logger->warn("could not check the message for guest " + guest_id +
                   " (best_effort, stage skipped for this message; failures so far: " +
                   std::to_string(FailuresOf(*s.counters)) + "): " + admitted.status.ToString());
    skipped[i] = true;
    outcome.degraded.push_back(s.name());
  }

  for (std::size_t i : enabled) {
    if (skipped[i]) continue;
    const StageInstance& s = *stages_[i];
    bool lost = false;
    const auto began = Clock::now();
    WriteCall written = call(i, WriteOp::kWrite, &lost);
    Count(s, written.status, began, owed[i]);
    owed[i] = false;
    if (written.status.ok()) {
      outcome.attributes = std::move(written.attributes);
      applied.push_back(i);
      AddOnce(outcome.stored_in, s.target);
      continue;
    }
    if (!s.required() && !lost) {
      s.logger->warn(
          "could not store the message for guest " + guest_id + " (best_effort, request goes on; " +
          "failures so far: " + std::to_string(FailuresOf(*s.counters)) + "): " + written.status.ToString());
      outcome.degraded.push_back(s.name());
      continue;
    }
    s.logger->error("could not store the message for guest " + guest_id + " (" + PolicyText(s) +
                    ", request fails): " + written.status.ToString());
    undo("stage '" + s.name() + "' failed");
    release();
    return fail(s, std::move(written.status));
  }

  // One COMMIT per database, after the last stage.
  std::string failed_database;
  Status committed = transactions.CommitAll(Deadline::After(std::chrono::seconds(5)), &failed_database);
  if (!committed.ok()) {
    const StageInstance* blamed = nullptr;
    for (std::size_t i : applied)
      if (stages_[i]->database && stages_[i]->database->name() == failed_database && !blamed)
        blamed = stages_[i].get();
    for (std::size_t i : enabled)
      if (!blamed && stages_[i]->database && stages_[i]->database->name() == failed_database)
        blamed = stages_[i].get();
    const std::string reason = "the transaction of database '" + failed_database + "' did not commit";
    if (blamed) blamed->logger->error(reason + " for guest " + guest_id + ": " + committed.ToString());
    undo(reason);
    outcome.status = Status::Unavailable(reason + ": " + committed.ToString());
    outcome.failed_stage = blamed ? blamed->name() : failed_database;
    Report(stowage::RequestKind::kWrite, guest_id, false, false, started);
    return outcome;
  }
  Report(stowage::RequestKind::kWrite, guest_id, true, false, started);
  return outcome;
}

namespace {

// Runs a read-like call of one stage: on this thread with an autocommit
// session when it has a database, on this thread when it keeps its
// deadlines, else on the runner with its timeout.
template <typename R>
std::optional<R> CallGuest(CallRunner& runner, const StageInstance& s, const std::string& guest_id,
                           std::function<R(stowage::Stage&, stowage::GuestContext&)> op) {
  const Deadline deadline = Deadline::After(s.settings.timeout);
  if (s.database != nullptr) {
    LazySession session(*s.database, nullptr, "", deadline);
    stowage::GuestContext ctx{guest_id, deadline, *s.logger, &session};
    R result = op(*s.stage, ctx);
    if (deadline.expired()) return std::nullopt;
    return result;
  }
  if (s.keeps_deadlines) {
    stowage::GuestContext ctx{guest_id, deadline, *s.logger, nullptr};
    return op(*s.stage, ctx);
  }
  CallTarget target = TargetOf(s);
  auto id = std::make_shared<const std::string>(guest_id);
  return CallWithDeadline<R>(runner, deadline.at(), [target, id, deadline, op]() {
    stowage::GuestContext ctx{*id, deadline, *target.log, nullptr};
    return op(*target.stage, ctx);
  });
}

}  // namespace

ReadOutcome Pipeline::Read(const std::string& guest_id) {
  const auto started = Clock::now();
  ReadOutcome outcome;
  std::vector<const StageInstance*> missed;
  Status required_failure;
  std::string required_failed_stage;
  bool first_asked = true;
  bool cache_hit = false;

  for (const auto& owned : stages_) {
    const StageInstance* s = owned.get();
    if (!s->stage) continue;
    if (!Admitted(*s)) {
      outcome.degraded.push_back(s->name());
      continue;
    }
    const auto began = Clock::now();
    auto result = CallGuest<stowage::ReadResult>(
        *runner_, *s, guest_id,
        [](stowage::Stage& stage, stowage::GuestContext& ctx) { return stage.read(ctx); });
    Status status = result ? result->status : TimeoutStatus("read", s->settings.timeout);
    Count(*s, status, began, true);
    const bool was_first = first_asked;
    first_asked = false;
    if (!status.ok()) {
      s->logger->warn("could not read guest " + guest_id + " (" + PolicyText(*s) + "): " + status.ToString());
      outcome.degraded.push_back(s->name());
      if (s->required() && required_failure.ok()) {
        required_failure = status;
        required_failed_stage = s->name();
      }
      continue;
    }
    if (!result->found) {
      missed.push_back(s);
      continue;
    }
    outcome.served_by = s->name();
    outcome.messages = std::move(result->messages);
    cache_hit = was_first;
    // Refill the stages before this one that held nothing, so the next read
    // is served earlier in the pipeline.
    for (const StageInstance* m : missed) {
      const auto& messages = outcome.messages;
      auto refilled = CallGuest<Status>(*runner_, *m, guest_id,
                                        [messages](stowage::Stage& stage, stowage::GuestContext& ctx) {
                                          return stage.refill(ctx, messages);
                                        });
      Status refill_status = refilled ? *refilled : TimeoutStatus("refill", m->settings.timeout);
      if (!refill_status.ok())
        m->logger->warn("could not refill guest " + guest_id + ": " + refill_status.ToString());
    }
    Report(stowage::RequestKind::kRead, guest_id, true, cache_hit, started);
    return outcome;
  }
  if (!required_failure.ok()) {
    outcome.status = std::move(required_failure);
    outcome.failed_stage = std::move(required_failed_stage);
  }
  Report(stowage::RequestKind::kRead, guest_id, outcome.status.ok(), false, started);
  return outcome;
}

EraseOutcome Pipeline::Erase(const std::string& guest_id) {
  const auto started = Clock::now();
  EraseOutcome outcome;
  Transactions transactions;
  // Every stage is asked, even after a failure, so that as much as possible
  // is removed; a retry of the DELETE finishes the rest. Each stage with a
  // database erases inside its own savepoint, so a failing one leaves the
  // others' deletions to commit.
  std::vector<std::pair<const StageInstance*, bool>> held_by;
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const StageInstance* s = stages_[i].get();
    if (!s->stage) continue;
    std::optional<stowage::EraseResult> result;
    const auto began = Clock::now();
    if (s->database != nullptr) {
      const Deadline deadline = Deadline::After(s->settings.timeout);
      LazySession session(*s->database, &transactions, SavepointOf(i), deadline);
      stowage::GuestContext ctx{guest_id, deadline, *s->logger, &session};
      result = s->stage->erase(ctx);
      if (result->status.ok() && deadline.expired())
        result->status = TimeoutStatus("erase", s->settings.timeout);
      if (!result->status.ok()) {
        Status undone = session.RollbackToSavepoint();
        if (!undone.ok()) transactions.RollbackAll(Deadline::After(std::chrono::seconds(5)));
      }
    } else {
      result = CallGuest<stowage::EraseResult>(
          *runner_, *s, guest_id,
          [](stowage::Stage& stage, stowage::GuestContext& ctx) { return stage.erase(ctx); });
    }
    Status status = result ? result->status : TimeoutStatus("erase", s->settings.timeout);
    Count(*s, status, began);
    if (status.ok()) {
      held_by.emplace_back(s, result->held);
      continue;
    }
    s->logger->warn("could not erase guest " + guest_id + " (" + PolicyText(*s) + "): " + status.ToString());
    if (s->required()) {
      if (outcome.status.ok()) {
        outcome.status = std::move(status);
        outcome.failed_stage = s->name();
      }
    } else {
      outcome.degraded.push_back(s->name());
    }
  }
  std::string failed_database;
  Status committed = transactions.CommitAll(Deadline::After(std::chrono::seconds(5)), &failed_database);
  for (const auto& [s, held] : held_by) {
    // A deletion that did not commit did not happen.
    if (!committed.ok() && s->database && s->database->name() == failed_database) continue;
    if (held) AddOnce(outcome.deleted_from, s->target);
  }
  if (!committed.ok() && outcome.status.ok()) {
    outcome.status = Status::Unavailable("the transaction of database '" + failed_database +
                                         "' did not commit: " + committed.ToString());
    outcome.failed_stage = failed_database;
  }
  Report(stowage::RequestKind::kErase, guest_id, outcome.status.ok(), false, started);
  return outcome;
}

SearchOutcome Pipeline::Search(const std::string& guest_id, const std::string& query, std::size_t k) {
  const auto started = Clock::now();
  SearchOutcome outcome;
  for (const auto& owned : stages_) {
    const StageInstance* s = owned.get();
    if (!s->stage) continue;
    const auto began = Clock::now();
    auto result = CallGuest<stowage::SearchResult>(
        *runner_, *s, guest_id, [query, k](stowage::Stage& stage, stowage::GuestContext& ctx) {
          return stage.search(ctx, query, k);
        });
    if (result && !result->supported) continue;
    outcome.supported = true;
    Status status = result ? result->status : TimeoutStatus("search", s->settings.timeout);
    Count(*s, status, began);
    if (!status.ok()) {
      s->logger->warn("could not search guest " + guest_id + ": " + status.ToString());
      outcome.status = std::move(status);
      outcome.failed_stage = s->name();
    } else {
      outcome.hits = std::move(result->hits);
    }
    break;
  }
  Report(stowage::RequestKind::kSearch, guest_id, outcome.status.ok(), false, started);
  return outcome;
}

}  // namespace stowage::engine
