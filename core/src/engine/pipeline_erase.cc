// Pipeline::Erase: a guest's chat erased from every enabled stage.
//
// After-commit stages (a cache) go first with prepare_erase(): they stop
// serving the guest before any store erases it, so no copy outlives the
// store's, and a refill racing the DELETE cannot bring the history back.
// A required one that fails stops the request before anything is erased.
// Then every other stage erases, even after one fails (a retry of the DELETE
// finishes the rest), those with a database in one transaction, each in a
// savepoint of its own so that a failing one leaves what the others erased
// to commit. Once the COMMIT is settled the after-commit stages erase() too
// (when its outcome is unknown they stay as prepare_erase() left them).
#include <optional>

#include "engine/pipeline.h"
#include "engine/stage_calls.h"
#include "journal/journal_store.h"

namespace stowage::engine {

using stowage::Deadline;
using stowage::Status;

namespace {

// Erases `s` (which has a database) inside its savepoint of `transactions`.
// When the transaction is lost (the stage ended it, or its failure could not
// be rolled back to its savepoint), rolls it back and sets `*lost`: what the
// stages before it in that database erased is rolled back too.
stowage::EraseResult EraseInTransaction(const StageInstance& s, std::size_t index, Transactions& transactions,
                                        const std::string& guest_id, bool* lost) {
  stowage::EraseResult result;
  result.status = CallInTransaction(
      s, index, transactions, /*savepoint=*/true, "erase",
      [&](stowage::SqlSession& session, Deadline deadline) {
        stowage::GuestContext ctx{guest_id, deadline, *s.logger, &session};
        result = s.stage->erase(ctx);
        return result.status;
      },
      lost);
  if (*lost) {
    transactions.RollbackAll(Deadline::After(kSettleTimeout));
    result.held = false;
  }
  return result;
}

}  // namespace

EraseOutcome Pipeline::Erase(const std::string& guest_id) {
  const auto started = Clock::now();
  EraseOutcome outcome;
  auto after_commit = [this](const StageInstance& s) { return defers_after_commit_ && s.after_commit; };
  auto call_erase = [&](const StageInstance& s, std::shared_ptr<stowage::Attributes> notes) {
    return CallGuest<stowage::EraseResult>(
        *runner_, s, guest_id, [](stowage::Stage& stage, stowage::GuestContext& ctx) { return stage.erase(ctx); },
        std::move(notes));
  };
  auto failed = [&](const StageInstance& s, Status status, const char* what) {
    s.logger->warn("could not " + std::string(what) + " guest " + guest_id + " (" + PolicyText(s) +
                   "): " + status.ToString());
    if (!s.required()) {
      outcome.degraded.push_back(s.name());
    } else if (outcome.status.ok()) {
      outcome.status = std::move(status);
      outcome.failed_stage = s.name();
    }
  };

  // 1. After-commit stages stop serving the guest. What each one's
  // prepare_erase() leaves for its erase() is kept in `notes`.
  std::vector<std::shared_ptr<stowage::Attributes>> notes(stages_.size());
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const StageInstance& s = *stages_[i];
    if (!s.stage || !after_commit(s)) continue;
    auto kept = std::make_shared<stowage::Attributes>();
    const auto began = Clock::now();
    auto prepared = CallGuest<Status>(
        *runner_, s, guest_id,
        [](stowage::Stage& stage, stowage::GuestContext& ctx) { return stage.prepare_erase(ctx); }, kept);
    Status status = prepared ? *prepared : TimedOutStatus("prepare_erase", s.settings.timeout);
    Count(s, status, began);
    if (status.ok()) {
      notes[i] = std::move(kept);
      continue;
    }
    failed(s, std::move(status), "prepare the erase of");
    if (!s.required()) continue;
    // Nothing was erased: the stages prepared so far go back to normal.
    for (std::size_t j = 0; j < i; ++j)
      if (notes[j]) (void)call_erase(*stages_[j], notes[j]);
    Report(stowage::RequestKind::kErase, guest_id, false, false, started);
    return outcome;
  }

  // 2. Every other stage erases.
  Transactions transactions;
  std::vector<bool> held(stages_.size(), false);
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const StageInstance& s = *stages_[i];
    if (!s.stage || after_commit(s)) continue;
    const auto began = Clock::now();
    std::optional<stowage::EraseResult> result;
    bool lost = false;
    if (s.database != nullptr) {
      result = EraseInTransaction(s, i, transactions, guest_id, &lost);
    } else {
      result = call_erase(s, std::make_shared<stowage::Attributes>());
    }
    Status status = result ? result->status : TimedOutStatus("erase", s.settings.timeout);
    Count(s, status, began);
    if (status.ok()) {
      held[i] = result->held;
      continue;
    }
    if (lost) {
      // What the stages before it in its database erased was rolled back
      // with the transaction: the erase failed, whatever the policy.
      for (std::size_t j = 0; j < i; ++j)
        if (stages_[j]->database == s.database) held[j] = false;
      if (outcome.status.ok()) {
        outcome.status =
            status.WithContext("the erase's transaction of database '" + s.database->name() +
                               "' was lost at stage '" + s.name() + "', nothing of it is erased");
        outcome.failed_stage = s.name();
      }
    }
    failed(s, std::move(status), "erase");
  }
  // The guest's journal entries (its messages' content) go with the erase.
  for (const auto& journal : journals_) {
    if (!journal->ready()) continue;  // no table yet: no entries
    auto erase = journal::JournalStore::EraseGuest(guest_id);
    Status queued = transactions.AddToCommit(journal->database(), Deadline::After(kSettleTimeout),
                                             std::move(erase.text), std::move(erase.params));
    if (!queued.ok() && outcome.status.ok()) {
      outcome.status = Status::Unavailable("the journal entries of guest " + guest_id + " in database '" +
                                           journal->database().name() + "' could not be erased: " +
                                           queued.message() + "; retry the DELETE");
      outcome.failed_stage = journal->database().name();
    }
  }
  CommitResult committed = transactions.CommitAll(Deadline::After(kSettleTimeout));
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    // An erase that did not commit did not happen.
    if (!committed.status.ok() && stages_[i]->database && stages_[i]->database->name() == committed.failed_database)
      held[i] = false;
  }

  // 3. The after-commit stages settle, unless the COMMIT's outcome is
  // unknown: the erase may still land, so they keep the guest hidden.
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    if (!notes[i]) continue;
    const StageInstance& s = *stages_[i];
    if (committed.outcome_unknown) {
      s.logger->warn("left guest " + guest_id + " hidden: the COMMIT of its erase got no answer, so the erase " +
                     "may still land; the mark expires on its own");
      continue;
    }
    const auto began = Clock::now();
    auto result = call_erase(s, notes[i]);
    Status status = result ? result->status : TimedOutStatus("erase", s.settings.timeout);
    Count(s, status, began);
    if (!status.ok()) {
      s.logger->warn("could not settle the erase of guest " + guest_id + " (" + PolicyText(s) +
                     ", the guest stays hidden here until the mark expires): " + status.ToString());
      outcome.degraded.push_back(s.name());
      continue;
    }
    held[i] = result->held;
  }

  for (std::size_t i = 0; i < stages_.size(); ++i)
    if (held[i]) AddOnce(outcome.erased_from, stages_[i]->target);
  if (!committed.status.ok() && outcome.status.ok()) {
    std::string reason = committed.outcome_unknown
                             ? "the COMMIT of database '" + committed.failed_database +
                                   "' got no answer (the connection was lost), so the erase may or may not have happened"
                             : "the transaction of database '" + committed.failed_database + "' did not commit";
    outcome.status = Status::Unavailable(reason + ": " + committed.status.message() + "; retry the DELETE");
    outcome.failed_stage = committed.failed_database;
  }
  Report(stowage::RequestKind::kErase, guest_id, outcome.status.ok(), false, started);
  return outcome;
}

}  // namespace stowage::engine
