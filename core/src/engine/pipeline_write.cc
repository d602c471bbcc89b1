// Pipeline::Write: one message through every enabled stage.
//
// The steps, each a method of WriteRun:
//   0. KeysReady: with an Idempotency-Key, its table exists.
//   1. Admit: every stage may refuse the message before anything is written.
//   2. WriteStages: the stages in file order, those with a database in the
//      request's transaction; after-commit stages wait for step 3.
//   3. PrepareAfterCommit: each after-commit stage records that a change of
//      the guest is coming (a cache marks the guest's entry).
//   4. QueueJournal, QueueClaim: a journal entry for each best_effort stage
//      that failed or was skipped (replayed later, JournalReplayer), and the
//      Idempotency-Key's row, sent with the COMMIT.
//   5. Commit: one COMMIT per database.
//   6. WriteAfterCommit: the after-commit stages store the message.
// A failure before the COMMIT leaves nothing written: the transactions roll
// back, stages without a database are compensated, prepared after-commit
// stages are told the change was abandoned. Once the COMMIT succeeded the
// message is stored, and nothing fails the request any more.
#include <spdlog/spdlog.h>

#include <optional>

#include "engine/pipeline.h"
#include "engine/stage_calls.h"
#include "idempotency/idempotency_store.h"
#include "journal/journal_store.h"
#include "observability/metrics.h"

namespace stowage::engine {
namespace {

using stowage::Deadline;
using stowage::Message;
using stowage::Status;
using stowage::StatusCode;

// Where one stage is in a write.
enum class StageState {
  kWaiting,   // not called yet
  kSkipped,   // skipped for this message (circuit open, admission failed)
  kWritten,   // write() succeeded
  kPrepared,  // an after-commit stage's prepare() succeeded; write() comes after the COMMIT
  kFailed,    // a best_effort stage that failed; the request goes on without it
};

class WriteRun {
 public:
  WriteRun(const std::vector<std::shared_ptr<StageInstance>>& stages, CallRunner& runner,
           idempotency::IdempotencyStore* store, bool defers_after_commit, const std::string& guest_id,
           const Message& message, const IdempotencyClaim* claim)
      : stages_(stages),
        runner_(runner),
        store_(claim ? store : nullptr),
        defers_after_commit_(defers_after_commit),
        claim_(claim),
        request_(std::make_shared<const Request>(Request{guest_id, message})),
        state_(stages.size(), StageState::kWaiting),
        owed_(stages.size(), false),
        unstored_(stages.size()) {
    for (std::size_t i = 0; i < stages_.size(); ++i)
      if (stages_[i]->stage) enabled_.push_back(i);
  }

  WriteOutcome Run() && {
    if (KeysReady() && Admit() && WriteStages() && PrepareAfterCommit() && QueueJournal() && QueueClaim() &&
        Commit()) {
      CountJournaled();
      WriteAfterCommit();
      outcome_.stored_in = TargetsHolding(StageState::kWritten);
      if (store_) outcome_.claim = WriteOutcome::Claim::kRecorded;
    }
    return std::move(outcome_);
  }

 private:
  const std::string& guest() const { return request_->guest_id; }
  // Whether `s` waits for the COMMIT: it runs after the commit, and there
  // is a database to commit.
  bool AfterCommit(const StageInstance& s) const { return defers_after_commit_ && s.after_commit; }

  WriteCall Call(std::size_t i, WriteOp op, bool* lost) {
    const StageInstance& s = *stages_[i];
    if (s.database != nullptr)
      return CallWithDatabase(s, i, transactions_, request_, outcome_.attributes, op, lost);
    return CallWrite(runner_, TargetOf(s), request_, outcome_.attributes, op,
                     AfterCommit(s) ? LateWrite::kKeep : LateWrite::kCompensate);
  }

  bool Admit() {
    for (std::size_t i : enabled_) {
      const StageInstance& s = *stages_[i];
      if (!Admitted(s)) {
        state_[i] = StageState::kSkipped;
        outcome_.degraded.push_back(s.name());
        unstored_[i] = "skipped: its circuit was open";
        continue;
      }
      owed_[i] = s.breaker != nullptr;
      bool lost = false;
      const auto began = Clock::now();
      WriteCall admitted = Call(i, WriteOp::kAdmit, &lost);
      CountAdmit(s, admitted.status);
      if (admitted.status.ok()) {
        outcome_.attributes = std::move(admitted.attributes);
        continue;
      }
      Count(s, admitted.status, began, owed_[i]);
      owed_[i] = false;
      if (RefusesMessage(admitted.status) || s.required() || lost) {
        s.logger->info("refused the message for guest " + guest() + ": " + admitted.status.ToString());
        RollBackAndCompensate("stage '" + s.name() + "' refused it", WriteOp::kAbandon);
        return Fail(s.name(), std::move(admitted.status));
      }
      s.logger->warn("could not check the message for guest " + guest() +
                     " (best_effort, stage skipped for this message; failures so far: " +
                     std::to_string(FailuresOf(*s.counters)) + "): " + admitted.status.ToString());
      state_[i] = StageState::kSkipped;
      outcome_.degraded.push_back(s.name());
      unstored_[i] = "admit failed: " + admitted.status.ToString();
    }
    return true;
  }

  bool WriteStages() {
    for (std::size_t i : enabled_) {
      const StageInstance& s = *stages_[i];
      if (state_[i] == StageState::kSkipped || AfterCommit(s)) continue;
      bool lost = false;
      const auto began = Clock::now();
      WriteCall written = Call(i, WriteOp::kWrite, &lost);
      Count(s, written.status, began, owed_[i]);
      owed_[i] = false;
      if (written.status.ok()) {
        outcome_.attributes = std::move(written.attributes);
        state_[i] = StageState::kWritten;
        continue;
      }
      if (!s.required() && !lost) {
        s.logger->warn("✗ could not store the message for guest " + guest() + " (best_effort, request goes on; " +
                       "failures so far: " + std::to_string(FailuresOf(*s.counters)) +
                       "): " + written.status.ToString());
        state_[i] = StageState::kFailed;
        outcome_.degraded.push_back(s.name());
        unstored_[i] = "write failed: " + written.status.ToString();
        continue;
      }
      s.logger->error("✗ could not store the message for guest " + guest() + " (" + PolicyText(s) +
                      ", request fails): " + written.status.ToString());
      RollBackAndCompensate("stage '" + s.name() + "' failed", WriteOp::kAbandon);
      return Fail(s.name(), std::move(written.status));
    }
    return true;
  }

  bool PrepareAfterCommit() {
    for (std::size_t i : enabled_) {
      const StageInstance& s = *stages_[i];
      if (state_[i] == StageState::kSkipped || !AfterCommit(s)) continue;
      bool lost = false;
      const auto began = Clock::now();
      WriteCall prepared = Call(i, WriteOp::kPrepare, &lost);
      Count(s, prepared.status, began, owed_[i]);
      owed_[i] = false;
      if (prepared.status.ok()) {
        outcome_.attributes = std::move(prepared.attributes);
        state_[i] = StageState::kPrepared;
        continue;
      }
      if (!s.required()) {
        // The message commits without this stage: its copy of the guest must
        // not be trusted, as after a COMMIT whose outcome it cannot know.
        s.logger->warn("could not prepare the message for guest " + guest() +
                       " (best_effort, request goes on without this stage; failures so far: " +
                       std::to_string(FailuresOf(*s.counters)) + "): " + prepared.status.ToString());
        Abandon(s, WriteOp::kAbandonUnknown, prepared.attributes);
        state_[i] = StageState::kFailed;
        outcome_.degraded.push_back(s.name());
        continue;
      }
      s.logger->error("could not prepare the message for guest " + guest() +
                      " (required, request fails): " + prepared.status.ToString());
      Abandon(s, WriteOp::kAbandon, prepared.attributes);  // its prepare() may have partly happened
      RollBackAndCompensate("stage '" + s.name() + "' failed", WriteOp::kAbandon);
      return Fail(s.name(), std::move(prepared.status));
    }
    return true;
  }

  // The keys' table exists (created by the first write that needs it),
  // before this request takes a connection for its transaction: creating it
  // needs one of its own, and requests holding every connection of the pool
  // while they wait for it would wait for each other.
  bool KeysReady() {
    if (store_ == nullptr) return true;
    Status ready = store_->EnsureSchema(Deadline::After(kSettleTimeout));
    if (ready.ok()) return true;
    const std::string reason = "the Idempotency-Key could not be recorded in database '" + store_->database().name() + "'";
    spdlog::error(reason + " for guest " + guest() + ": " + ready.ToString());
    return Fail(store_->database().name(), Status::Unavailable(reason + ": " + ready.message()));
  }

  // Queues a journal entry, with the COMMIT, for each journaled stage that
  // did not store the message: the entry commits with the message or not at
  // all. Its attributes are the write's final ones (message_id, sequence).
  bool QueueJournal() {
    for (std::size_t i : enabled_) {
      const StageInstance& s = *stages_[i];
      if (unstored_[i].empty() || !s.journal) continue;
      auto& store = *s.journal;
      if (!store.ready()) {
        s.logger->error("could not journal the message for guest " + guest() + " (" + unstored_[i] +
                        "): the journal's table in database '" + store.database().name() +
                        "' is not ready (see its error above); this message will not be replayed to the stage");
        unstored_[i].clear();
        continue;
      }
      auto entry = journal::JournalStore::Record(s.name(), guest(), request_->message, outcome_.attributes,
                                                  unstored_[i]);
      Status queued = transactions_.AddToCommit(store.database(), Deadline::After(kSettleTimeout),
                                                std::move(entry.text), std::move(entry.params));
      if (queued.ok()) continue;
      const std::string reason = "the journal entry of stage '" + s.name() + "' could not be queued in database '" +
                                 store.database().name() + "'";
      s.logger->error(reason + " for guest " + guest() + ": " + queued.ToString());
      RollBackAndCompensate(reason, WriteOp::kAbandon);
      return Fail(store.database().name(), Status::Unavailable(reason + ": " + queued.message()));
    }
    return true;
  }

  // After the COMMIT: counts the entries journaled.
  void CountJournaled() {
    for (std::size_t i : enabled_) {
      const StageInstance& s = *stages_[i];
      if (unstored_[i].empty() || !s.journal) continue;
      if (s.metrics.journaled) s.metrics.journaled->Add();
    }
  }

  bool QueueClaim() {
    if (store_ == nullptr) return true;
    const std::string& database = store_->database().name();
    WriteOutcome expected = outcome_;
    expected.stored_in = TargetsHolding(StageState::kPrepared);
    auto statement = idempotency::IdempotencyStore::Record(guest(), claim_->key, claim_->fingerprint, 200,
                                                           claim_->answer(expected));
    Status queued = transactions_.AddToCommit(store_->database(), Deadline::After(kSettleTimeout),
                                              std::move(statement.text), std::move(statement.params));
    if (queued.ok()) return true;
    const std::string reason = "the Idempotency-Key could not be recorded in database '" + database + "'";
    spdlog::error(reason + " for guest " + guest() + ": " + queued.ToString());
    RollBackAndCompensate(reason, WriteOp::kAbandon);
    return Fail(database, Status::Unavailable(reason + ": " + queued.message()));
  }

  bool Commit() {
    CommitResult committed = transactions_.CommitAll(Deadline::After(kSettleTimeout));
    if (committed.status.ok()) return true;
    const std::string& database = committed.failed_database;
    if (committed.queued_statement_failed && committed.status.code() == StatusCode::kConflict && store_) {
      RollBackAndCompensate("its Idempotency-Key was already used", WriteOp::kAbandon);
      Replay();
      return false;
    }
    const StageInstance* blamed = Blamed(database);
    std::string reason;
    if (committed.outcome_unknown) {
      reason = "the COMMIT of database '" + database + "' got no answer (the connection was lost), so the message may " +
               "or may not be stored";
    } else {
      reason = "the transaction of database '" + database + "' did not commit";
    }
    if (blamed) blamed->logger->error(reason + " for guest " + guest() + ": " + committed.status.ToString());
    RollBackAndCompensate(reason, committed.outcome_unknown ? WriteOp::kAbandonUnknown : WriteOp::kAbandon);
    outcome_.outcome_unknown = committed.outcome_unknown;
    std::string advice =
        committed.outcome_unknown ? "; retry with the same Idempotency-Key to store it once and learn its ids" : "";
    Fail(blamed ? blamed->name() : database, Status::Unavailable(reason + ": " + committed.status.message() + advice));
    return false;
  }

  // The stage to name for a failed COMMIT of `database`: the first one that
  // wrote in it, else the first one that joins it.
  const StageInstance* Blamed(const std::string& database) const {
    for (std::size_t i : enabled_)
      if (state_[i] == StageState::kWritten && stages_[i]->database && stages_[i]->database->name() == database)
        return stages_[i].get();
    for (std::size_t i : enabled_)
      if (stages_[i]->database && stages_[i]->database->name() == database) return stages_[i].get();
    return nullptr;
  }

  // The guest had already used the claim's key: answer what was recorded for
  // it, or refuse a request that differs from the recorded one.
  void Replay() {
    const std::string& database = store_->database().name();
    std::optional<idempotency::IdempotencyStore::Recorded> found;
    Status read = store_->Find(guest(), claim_->key, Deadline::After(kSettleTimeout), &found);
    if (!read.ok() || !found) {
      Fail(database,
           Status::Unavailable("Idempotency-Key '" + claim_->key + "' was already used for guest " + guest() +
                               ", but the answer recorded for it could not be read (" +
                               (read.ok() ? "it was just swept, older than the keys' lifetime" : read.message()) +
                               "); retry"));
      return;
    }
    if (found->fingerprint != claim_->fingerprint) {
      outcome_.claim = WriteOutcome::Claim::kConflict;
      Fail("", Status::Conflict("Idempotency-Key '" + claim_->key + "' was already used for guest " + guest() +
                                " with another body; send a new key for a new message"));
      return;
    }
    outcome_.claim = WriteOutcome::Claim::kReplay;
    outcome_.replay = std::move(found->answer);
    outcome_.status = Status::Ok();
    outcome_.degraded.clear();  // of this attempt, which stored nothing
  }

  void WriteAfterCommit() {
    for (std::size_t i : enabled_) {
      if (state_[i] != StageState::kPrepared) continue;
      const StageInstance& s = *stages_[i];
      bool lost = false;
      const auto began = Clock::now();
      WriteCall written = Call(i, WriteOp::kWrite, &lost);
      Count(s, written.status, began);
      if (written.status.ok()) {
        outcome_.attributes = std::move(written.attributes);
        state_[i] = StageState::kWritten;
        continue;
      }
      s.logger->warn("✗ could not store the message for guest " + guest() + " after it was committed (" +
                     PolicyText(s) + ", the message is stored; this stage's copy of the guest stays untrusted " +
                     "until it is settled): " + written.status.ToString());
      state_[i] = StageState::kFailed;
      outcome_.degraded.push_back(s.name());
    }
  }

  // Tells the after-commit stage `s` that its prepared change will not be
  // written (`op`: kAbandon or kAbandonUnknown). `attributes` holds what its
  // prepare() set, even one that failed (it may have half happened).
  void Abandon(const StageInstance& s, WriteOp op, const stowage::Attributes& attributes) {
    WriteCall abandoned = CallWrite(runner_, TargetOf(s), request_, attributes, op);
    if (!abandoned.status.ok()) {
      s.logger->warn("could not tell the stage that the change of guest " + guest() +
                     " was abandoned: " + abandoned.status.ToString() +
                     "; its copy of the guest stays untrusted until the mark it made expires");
    }
  }

  // Takes back what was written: rolls the transactions back, compensates
  // the stages without a database (newest first), abandons the prepared
  // after-commit stages with `abandon`, and settles what is owed to the
  // circuits.
  void RollBackAndCompensate(const std::string& because, WriteOp abandon) {
    transactions_.RollbackAll(Deadline::After(kSettleTimeout));
    for (auto it = enabled_.rbegin(); it != enabled_.rend(); ++it) {
      const StageInstance& s = *stages_[*it];
      if (state_[*it] == StageState::kPrepared) {
        Abandon(s, abandon, outcome_.attributes);
        continue;
      }
      if (state_[*it] != StageState::kWritten || s.database != nullptr) continue;
      WriteCall compensated =
          CallWrite(runner_, TargetOf(s), request_, outcome_.attributes, WriteOp::kCompensate);
      CountCompensation(*s.counters, compensated.status.ok());
      if (compensated.status.ok()) {
        s.logger->info("compensated the write for guest " + guest() + " because " + because);
      } else {
        s.logger->error("could not compensate the write for guest " + guest() + ": " +
                        compensated.status.ToString() +
                        "; the message may remain in this target");
      }
    }
    for (std::size_t i : enabled_) {
      if (owed_[i]) Unprobed(*stages_[i]);
      owed_[i] = false;
    }
  }

  bool Fail(const std::string& stage, Status status) {
    outcome_.status = std::move(status);
    outcome_.failed_stage = stage;
    outcome_.stored_in.clear();
    return false;
  }

  // The targets of the stages in state kWritten (and, with kPrepared, also
  // of those prepared), in stage order.
  std::vector<std::string> TargetsHolding(StageState also) const {
    std::vector<std::string> targets;
    for (std::size_t i : enabled_)
      if (state_[i] == StageState::kWritten || state_[i] == also) AddOnce(targets, stages_[i]->target);
    return targets;
  }

  const std::vector<std::shared_ptr<StageInstance>>& stages_;
  CallRunner& runner_;
  idempotency::IdempotencyStore* store_;  // null without a claim or a database
  const bool defers_after_commit_;
  const IdempotencyClaim* claim_;
  std::shared_ptr<const Request> request_;
  Transactions transactions_;
  WriteOutcome outcome_;
  std::vector<std::size_t> enabled_;
  std::vector<StageState> state_;
  // Stages let through by their breaker whose write outcome is still owed to it.
  std::vector<bool> owed_;
  // Why each best_effort stage did not store the message; empty when it did
  // (or was never asked to).
  std::vector<std::string> unstored_;
};

}  // namespace

WriteOutcome Pipeline::Write(const std::string& guest_id, const Message& message, const IdempotencyClaim* claim) {
  const auto started = Clock::now();
  WriteOutcome outcome = WriteRun(stages_, *runner_, idempotency_.get(), defers_after_commit_, guest_id, message,
                                  claim)
                             .Run();
  Report(stowage::RequestKind::kWrite, guest_id, outcome.status.ok(), false, started, &outcome.attributes);
  return outcome;
}

}  // namespace stowage::engine
