#include "engine/transaction.h"

namespace stowage::engine {

using stowage::Status;

Status Transactions::Connection(database::PostgresDatabase& db, stowage::Deadline deadline,
                                database::Connection** out) {
  for (auto& open : open_) {
    if (open.db == &db) {
      *out = &*open.lease;
      return Status::Ok();
    }
  }
  auto acquired = db.Acquire(deadline);
  if (!acquired.status.ok()) return acquired.status;
  acquired.lease->set_deadline(deadline);
  const database::DeferredId begin = acquired.lease->Defer("BEGIN");
  open_.push_back({&db, std::move(acquired.lease), begin, {}});
  *out = &*open_.back().lease;
  return Status::Ok();
}

Status Transactions::AddToCommit(database::PostgresDatabase& db, stowage::Deadline deadline,
                                 std::string statement, std::vector<stowage::SqlValue> params) {
  database::Connection* connection = nullptr;
  if (Status got = Connection(db, deadline, &connection); !got.ok()) return got;
  for (auto& open : open_) {
    if (open.db != &db) continue;
    open.with_commit.push_back(open.lease->Defer(std::move(statement), std::move(params)));
  }
  return Status::Ok();
}

bool Transactions::HasWork(const Open& open) noexcept {
  return !open.with_commit.empty() || open.lease->deferred_state(open.begin) != database::DeferredState::kWaiting;
}

CommitResult Transactions::CommitAll(stowage::Deadline deadline) {
  CommitResult result;
  for (std::size_t i = 0; i < open_.size(); ++i) {
    Open& open = open_[i];
    if (!HasWork(open)) continue;
    open.lease->set_deadline(deadline);
    Status committed = open.lease->execute("COMMIT", {}, nullptr);
    if (committed.ok()) continue;
    result.status = std::move(committed);
    result.failed_database = open.db->name();
    // A COMMIT the server answered with an error did not commit; one whose
    // answer never came may have.
    result.outcome_unknown = open.lease->broken();
    for (database::DeferredId queued : open.with_commit) {
      if (!result.outcome_unknown && open.lease->deferred_state(queued) == database::DeferredState::kFailed)
        result.queued_statement_failed = true;
    }
    // When the queued statement failed, the COMMIT never ran and the
    // transaction is still open (aborted): end it, so the connection can be
    // reused. A COMMIT that failed on the server ended it already.
    if (result.queued_statement_failed) (void)open.lease->execute("ROLLBACK", {}, nullptr);
    for (std::size_t j = i + 1; j < open_.size(); ++j) {
      if (open_[j].lease->deferred_state(open_[j].begin) == database::DeferredState::kWaiting) continue;
      open_[j].lease->set_deadline(deadline);
      (void)open_[j].lease->execute("ROLLBACK", {}, nullptr);
    }
    break;
  }
  for (auto& open : open_) open.lease->ClearDeferred();
  open_.clear();
  return result;
}

void Transactions::RollbackAll(stowage::Deadline deadline) noexcept {
  for (auto& open : open_) {
    const bool begun = open.lease->deferred_state(open.begin) != database::DeferredState::kWaiting;
    open.lease->ClearDeferred();
    if (!begun) continue;
    open.lease->set_deadline(deadline);
    (void)open.lease->execute("ROLLBACK", {}, nullptr);
  }
  open_.clear();
}

LazySession::LazySession(database::PostgresDatabase& db, Transactions* transactions, std::string savepoint,
                         stowage::Deadline deadline)
    : db_(db), transactions_(transactions), savepoint_(std::move(savepoint)), deadline_(deadline) {}

Status LazySession::execute(std::string_view statement, const std::vector<stowage::SqlValue>& params,
                            stowage::SqlResult* result) noexcept {
  try {
    if (connection_ == nullptr) {
      if (transactions_ != nullptr) {
        Status got = transactions_->Connection(db_, deadline_, &connection_);
        if (!got.ok()) return got;
      } else {
        auto acquired = db_.Acquire(deadline_);
        if (!acquired.status.ok()) return acquired.status;
        own_ = std::move(acquired.lease);
        connection_ = &*own_;
      }
    }
    connection_->set_deadline(deadline_);
    if (!savepoint_.empty() && !savepoint_id_) savepoint_id_ = connection_->Defer("SAVEPOINT " + savepoint_);
  } catch (const std::exception& e) {
    return Status::Internal("could not start a statement on PostgreSQL database '" + db_.name() +
                            "': " + e.what());
  }
  return connection_->execute(statement, params, result);
}

Status LazySession::RollbackToSavepoint() noexcept {
  if (!savepoint_id_) return Status::Ok();
  switch (connection_->deferred_state(*savepoint_id_)) {
    case database::DeferredState::kWaiting:
      // Never sent: no statement of this call ran.
      connection_->Withdraw(*savepoint_id_);
      savepoint_id_.reset();
      return Status::Ok();
    case database::DeferredState::kRan:
      break;
    case database::DeferredState::kFailed:
    case database::DeferredState::kUnknown:
      return Status::Unavailable("SAVEPOINT " + savepoint_ + " was not opened on PostgreSQL database '" +
                                 db_.name() + "', so there is no savepoint to roll back to");
  }
  // The stage's own deadline may have passed: undoing gets a fresh moment.
  connection_->set_deadline(stowage::Deadline::After(kSettleTimeout));
  return connection_->execute("ROLLBACK TO SAVEPOINT " + savepoint_, {}, nullptr);
}

}  // namespace stowage::engine
