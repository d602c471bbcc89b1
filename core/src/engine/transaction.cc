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
  Status begun = acquired.lease->execute("BEGIN", {}, nullptr);
  if (!begun.ok()) return begun;
  open_.push_back({&db, std::move(acquired.lease)});
  *out = &*open_.back().lease;
  return Status::Ok();
}

Status Transactions::CommitAll(stowage::Deadline deadline, std::string* failed_database) {
  for (std::size_t i = 0; i < open_.size(); ++i) {
    open_[i].lease->set_deadline(deadline);
    Status committed = open_[i].lease->execute("COMMIT", {}, nullptr);
    if (!committed.ok()) {
      *failed_database = open_[i].db->name();
      for (std::size_t j = i + 1; j < open_.size(); ++j) {
        open_[j].lease->set_deadline(deadline);
        (void)open_[j].lease->execute("ROLLBACK", {}, nullptr);
      }
      open_.clear();
      return committed;
    }
  }
  open_.clear();
  return Status::Ok();
}

void Transactions::RollbackAll(stowage::Deadline deadline) noexcept {
  for (auto& open : open_) {
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
  if (!savepoint_.empty() && !savepoint_open_) {
    Status opened = connection_->execute("SAVEPOINT " + savepoint_, {}, nullptr);
    if (!opened.ok()) return opened;
    savepoint_open_ = true;
  }
  return connection_->execute(statement, params, result);
}

Status LazySession::RollbackToSavepoint() noexcept {
  if (!savepoint_open_) return Status::Ok();
  // The stage's own deadline may have passed: undoing gets a fresh moment.
  connection_->set_deadline(stowage::Deadline::After(std::chrono::seconds(5)));
  return connection_->execute("ROLLBACK TO SAVEPOINT " + savepoint_, {}, nullptr);
}

}  // namespace stowage::engine
