#include "engine/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "engine/call_runner.h"
#include "logging/logging.h"

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
};

CallTarget TargetOf(const StageInstance& s) {
  return {s.stage, s.logger, s.counters, s.name(), s.settings.timeout};
}

Status TimeoutStatus(const std::string& operation, std::chrono::milliseconds timeout) {
  return Status::DeadlineExceeded(operation + " did not finish within timeout_ms = " +
                                  std::to_string(timeout.count()) +
                                  "; check the target's load, or raise the stage's timeout_ms");
}

std::string PolicyText(const StageInstance& s) { return config::PolicyName(s.settings.policy); }

void AddOnce(std::vector<std::string>& list, const std::string& value) {
  if (!value.empty() && std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

void Count(StageCounters& counters, const Status& status) {
  if (status.ok())
    counters.ok.fetch_add(1, std::memory_order_relaxed);
  else if (status.code() == StatusCode::kDeadlineExceeded)
    counters.timed_out.fetch_add(1, std::memory_order_relaxed);
  else
    counters.failed.fetch_add(1, std::memory_order_relaxed);
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

// Runs admit, write or compensate of one stage with the stage's timeout. A
// write that finishes after the engine stopped waiting is compensated on its
// own thread, so a timed-out write leaves nothing behind.
enum class WriteOp { kAdmit, kWrite, kCompensate };

WriteCall CallWrite(CallRunner& runner, const CallTarget& target, std::shared_ptr<const Request> request,
                    const Attributes& attributes, WriteOp op) {
  const Deadline deadline = Deadline::After(target.timeout);
  auto call = [target, request, attributes = Attributes(attributes), deadline, op]() mutable -> WriteCall {
    stowage::WriteContext ctx{request->guest_id, request->message, deadline, *target.log, attributes};
    Status status;
    switch (op) {
      case WriteOp::kAdmit: status = target.stage->admit(ctx); break;
      case WriteOp::kWrite: status = target.stage->write(ctx); break;
      case WriteOp::kCompensate: status = target.stage->compensate(ctx); break;
    }
    return {std::move(status), std::move(attributes)};
  };
  std::function<void(WriteCall&)> late;
  if (op == WriteOp::kWrite) {
    late = [target, request](WriteCall& done) {
      if (!done.status.ok()) return;
      stowage::WriteContext ctx{request->guest_id, request->message, Deadline::After(target.timeout), *target.log,
                                done.attributes};
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
    const char* what = op == WriteOp::kAdmit ? "admit" : op == WriteOp::kWrite ? "write" : "compensate";
    return {TimeoutStatus(what, target.timeout), attributes};
  }
  return std::move(*result);
}

}  // namespace

Pipeline::~Pipeline() = default;

BuildResult Pipeline::Build(const config::PipelineConfig& cfg) {
  BuildResult result;
  auto pipeline = std::shared_ptr<Pipeline>(new Pipeline());
  pipeline->config_ = cfg;
  pipeline->runner_ = std::make_shared<CallRunner>();

  loader::PluginLoader loader(cfg.server.plugin_path);
  const auto base_folder = cfg.file.parent_path();
  const std::string file = cfg.file.string();

  for (const auto& settings : cfg.stages) {
    auto instance = std::make_unique<StageInstance>();
    instance->settings = settings;
    const std::string where = file + ":" + std::to_string(settings.where.line) + ": stage[" + settings.name + "]";
    if (!settings.enabled) {
      pipeline->stages_.push_back(std::move(instance));
      continue;
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
    Status error;
    instance->env = std::make_unique<stowage::StageEnvironment>(stowage::StageEnvironment{*instance->logger});
    instance->stage = loaded.plugin->Create(stage_config, *instance->env, &error);
    if (!instance->stage) {
      result.errors.push_back(where + ": the stage could not be created by " + loaded.plugin->path().string() +
                              ": " + error.ToString());
      continue;
    }
    instance->target = instance->stage->target();
    pipeline->stages_.push_back(std::move(instance));
  }

  if (result.errors.empty()) result.pipeline = std::move(pipeline);
  return result;
}

WriteOutcome Pipeline::Write(const std::string& guest_id, const Message& message) {
  WriteOutcome outcome;
  auto request = std::make_shared<const Request>(Request{guest_id, message});

  std::vector<const StageInstance*> enabled;
  for (const auto& s : stages_)
    if (s->stage) enabled.push_back(s.get());

  // Admission: every stage may refuse the message before anything is written.
  for (const StageInstance* s : enabled) {
    WriteCall admitted = CallWrite(*runner_, TargetOf(*s), request, outcome.attributes, WriteOp::kAdmit);
    if (admitted.status.ok()) continue;
    if (RefusesMessage(admitted.status) || s->required()) {
      s->logger->info("refused the message for guest " + guest_id + ": " + admitted.status.ToString());
      outcome.status = std::move(admitted.status);
      outcome.failed_stage = s->name();
      return outcome;
    }
    s->logger->warn("admit failed (best_effort, ignored): " + admitted.status.ToString());
  }

  struct Applied {
    const StageInstance* stage;
  };
  std::vector<Applied> applied;
  for (const StageInstance* s : enabled) {
    WriteCall written = CallWrite(*runner_, TargetOf(*s), request, outcome.attributes, WriteOp::kWrite);
    Count(*s->counters, written.status);
    if (written.status.ok()) {
      outcome.attributes = std::move(written.attributes);
      applied.push_back({s});
      AddOnce(outcome.stored_in, s->target);
      continue;
    }
    if (!s->required()) {
      s->logger->warn("could not store the message for guest " + guest_id + " (best_effort, request goes on): " +
                      written.status.ToString());
      outcome.degraded.push_back(s->name());
      continue;
    }
    s->logger->error("could not store the message for guest " + guest_id + " (required, request fails): " +
                     written.status.ToString());
    // Undo every stage already applied, newest first.
    for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
      const StageInstance* done = it->stage;
      WriteCall undone = CallWrite(*runner_, TargetOf(*done), request, outcome.attributes, WriteOp::kCompensate);
      if (undone.status.ok()) {
        done->counters->compensated.fetch_add(1, std::memory_order_relaxed);
        done->logger->info("undid the write for guest " + guest_id + " because stage '" + s->name() + "' failed");
      } else {
        done->counters->compensation_failed.fetch_add(1, std::memory_order_relaxed);
        done->logger->error("could not undo the write for guest " + guest_id + ": " + undone.status.ToString() +
                            "; the message may remain in this target");
      }
    }
    outcome.status = std::move(written.status);
    outcome.failed_stage = s->name();
    outcome.stored_in.clear();
    return outcome;
  }
  return outcome;
}

ReadOutcome Pipeline::Read(const std::string& guest_id) {
  ReadOutcome outcome;
  std::vector<const StageInstance*> missed;
  Status required_failure;
  std::string required_failed_stage;

  for (const auto& owned : stages_) {
    const StageInstance* s = owned.get();
    if (!s->stage) continue;
    CallTarget target = TargetOf(*s);
    const Deadline deadline = Deadline::After(target.timeout);
    auto id = std::make_shared<const std::string>(guest_id);
    auto result = CallWithDeadline<stowage::ReadResult>(*runner_, deadline.at(), [target, id, deadline]() {
      stowage::GuestContext ctx{*id, deadline, *target.log};
      return target.stage->read(ctx);
    });
    Status status = result ? result->status : TimeoutStatus("read", target.timeout);
    Count(*s->counters, status);
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
    // Refill the stages before this one that held nothing, so the next read
    // is served earlier in the pipeline.
    auto messages = std::make_shared<const std::vector<Message>>(outcome.messages);
    for (const StageInstance* m : missed) {
      CallTarget refill_target = TargetOf(*m);
      const Deadline refill_deadline = Deadline::After(refill_target.timeout);
      auto refilled = CallWithDeadline<Status>(
          *runner_, refill_deadline.at(), [refill_target, id, messages, refill_deadline]() {
            stowage::GuestContext ctx{*id, refill_deadline, *refill_target.log};
            return refill_target.stage->refill(ctx, *messages);
          });
      Status refill_status = refilled ? *refilled : TimeoutStatus("refill", refill_target.timeout);
      if (!refill_status.ok())
        m->logger->warn("could not refill guest " + guest_id + ": " + refill_status.ToString());
    }
    return outcome;
  }
  if (!required_failure.ok()) {
    outcome.status = std::move(required_failure);
    outcome.failed_stage = std::move(required_failed_stage);
  }
  return outcome;
}

EraseOutcome Pipeline::Erase(const std::string& guest_id) {
  EraseOutcome outcome;
  auto id = std::make_shared<const std::string>(guest_id);
  // Every stage is asked, even after a failure, so that as much as possible
  // is removed; a retry of the DELETE finishes the rest.
  for (const auto& owned : stages_) {
    const StageInstance* s = owned.get();
    if (!s->stage) continue;
    CallTarget target = TargetOf(*s);
    const Deadline deadline = Deadline::After(target.timeout);
    auto result = CallWithDeadline<stowage::EraseResult>(*runner_, deadline.at(), [target, id, deadline]() {
      stowage::GuestContext ctx{*id, deadline, *target.log};
      return target.stage->erase(ctx);
    });
    Status status = result ? result->status : TimeoutStatus("erase", target.timeout);
    Count(*s->counters, status);
    if (status.ok()) {
      if (result->held) AddOnce(outcome.deleted_from, s->target);
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
  return outcome;
}

}  // namespace stowage::engine
