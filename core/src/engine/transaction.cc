#include "engine/transaction.h"

#include <array>
#include <cctype>
#include <utility>

#include "database/sql_statements.h"

namespace stowage::engine {

using stowage::Status;

namespace {

// Skips blanks and comments (block comments nest) from `at`.
std::size_t SkipBlank(std::string_view text, std::size_t at) noexcept {
  const std::size_t n = text.size();
  while (at < n) {
    if (std::isspace(static_cast<unsigned char>(text[at]))) {
      ++at;
    } else if (text[at] == '-' && at + 1 < n && text[at + 1] == '-') {
      at = text.find('\n', at);
      if (at == std::string_view::npos) return n;
    } else if (text[at] == '/' && at + 1 < n && text[at + 1] == '*') {
      at = stowage::internal::SkipBlockComment(text, at);
    } else {
      break;
    }
  }
  return at;
}

// The next word of `text` from `*at`, after blanks and comments: a keyword or
// an identifier, "quoted" or not (the quotes left out). Moves `*at` past it;
// empty when something else comes (a symbol, a string, the end).
std::string_view NextWord(std::string_view text, std::size_t* at) noexcept {
  std::size_t i = SkipBlank(text, *at);
  if (i < text.size() && text[i] == '"') {
    std::size_t close = text.find('"', i + 1);
    if (close == std::string_view::npos) return {};
    *at = close + 1;
    return text.substr(i + 1, close - i - 1);
  }
  const std::size_t start = i;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (!std::isalnum(c) && c != '_' && c != '$' && c < 0x80) break;
    ++i;
  }
  *at = i;
  return text.substr(start, i - start);
}

// Whether `word` is `keyword` (upper case), in any case.
bool Is(std::string_view word, std::string_view keyword) noexcept {
  if (word.size() != keyword.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(word[i])) != keyword[i]) return false;
  return true;
}

// The command one statement runs, if it controls the transaction.
std::string_view ControlOf(std::string_view statement) noexcept {
  std::size_t at = 0;
  const std::string_view first = NextWord(statement, &at);
  if (first.empty()) return {};
  if (Is(first, "BEGIN")) return "BEGIN";
  if (Is(first, "START")) return "START TRANSACTION";
  if (Is(first, "END")) return "END";
  if (Is(first, "ABORT")) return "ABORT";
  if (Is(first, "SAVEPOINT")) return "SAVEPOINT";
  if (Is(first, "RELEASE")) return "RELEASE SAVEPOINT";
  if (Is(first, "COMMIT")) return Is(NextWord(statement, &at), "PREPARED") ? "COMMIT PREPARED" : "COMMIT";
  if (Is(first, "ROLLBACK")) {
    std::string_view next = NextWord(statement, &at);
    if (Is(next, "WORK") || Is(next, "TRANSACTION")) next = NextWord(statement, &at);
    if (Is(next, "TO")) return "ROLLBACK TO SAVEPOINT";
    if (Is(next, "PREPARED")) return "ROLLBACK PREPARED";
    return "ROLLBACK";
  }
  // PREPARE name AS ... prepares a statement (not a transaction command).
  if (Is(first, "PREPARE")) return Is(NextWord(statement, &at), "TRANSACTION") ? "PREPARE TRANSACTION" : "";
  if (Is(first, "SET")) {
    std::string_view next = NextWord(statement, &at);
    if (Is(next, "SESSION") || Is(next, "LOCAL")) {
      const bool session = Is(next, "SESSION");
      next = NextWord(statement, &at);
      if (session && Is(next, "CHARACTERISTICS")) return "SET SESSION CHARACTERISTICS";
    }
    if (Is(next, "TRANSACTION")) return "SET TRANSACTION";
    // The settings SET TRANSACTION and SET SESSION CHARACTERISTICS change.
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kSettings = {{
        {"TRANSACTION_ISOLATION", "SET transaction_isolation"},
        {"TRANSACTION_READ_ONLY", "SET transaction_read_only"},
        {"TRANSACTION_DEFERRABLE", "SET transaction_deferrable"},
        {"DEFAULT_TRANSACTION_ISOLATION", "SET default_transaction_isolation"},
        {"DEFAULT_TRANSACTION_READ_ONLY", "SET default_transaction_read_only"},
        {"DEFAULT_TRANSACTION_DEFERRABLE", "SET default_transaction_deferrable"},
    }};
    for (const auto& [setting, command] : kSettings)
      if (Is(next, setting)) return command;
  }
  return {};
}

}  // namespace

std::string_view TransactionControlIn(std::string_view statement) noexcept {
  // One statement (the usual case) needs no lexer: a ';' can only end it.
  if (statement.find(';') == std::string_view::npos) return ControlOf(statement);
  std::string_view found;
  stowage::internal::ForEachSqlStatement(statement, [&](std::string_view one) {
    if (found.empty()) found = ControlOf(one);
  });
  return found;
}

Transactions::Health Transactions::HealthOf(const Open& open) noexcept {
  if (open.lease->broken()) return Health::kBroken;
  const database::TransactionState state = open.lease->transaction_state();
  switch (open.lease->deferred_state(open.begin)) {
    case database::DeferredState::kWaiting:
      // No statement ran since the connection was taken (or the BEGIN
      // failed and waits for the next one): it must be outside a transaction.
      return state == database::TransactionState::kIdle ? Health::kNotBegun : Health::kEnded;
    case database::DeferredState::kRan:
      switch (state) {
        case database::TransactionState::kInTransaction:
          return Health::kOpen;
        case database::TransactionState::kFailed:
          return Health::kAborted;
        case database::TransactionState::kIdle:
          return Health::kEnded;
        case database::TransactionState::kUnknown:
          return Health::kBroken;
      }
      return Health::kBroken;
    case database::DeferredState::kFailed:
    case database::DeferredState::kUnknown:
      break;
  }
  return Health::kBroken;
}

Transactions::Health Transactions::HealthOf(const database::PostgresDatabase& db) const noexcept {
  for (const auto& open : open_)
    if (open.db == &db) return HealthOf(open);
  return Health::kNotBegun;
}

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
    // COMMIT ends an aborted transaction with a rollback and no error, and
    // commits nothing of one already ended: neither may pass for stored.
    // (A lost connection is left to the COMMIT, which reports it.)
    const Health health = HealthOf(open);
    if (health == Health::kAborted || health == Health::kEnded) {
      result.failed_database = open.db->name();
      result.status = Status::Internal(
          "the transaction of PostgreSQL database '" + open.db->name() + "' was " +
          (health == Health::kAborted
               ? "aborted by a failed statement that no stage reported, so COMMIT would only roll it back"
               : "ended by a statement the host did not send; stages must not control the transaction") +
          "; it was not committed");
      if (health == Health::kAborted) (void)open.lease->execute("ROLLBACK", {}, nullptr);
    } else {
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
    }
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
    const bool begun = open.lease->deferred_state(open.begin) != database::DeferredState::kWaiting &&
                       open.lease->transaction_state() != database::TransactionState::kIdle;
    open.lease->ClearDeferred();
    if (!begun) continue;  // never begun, or already ended
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
    if (const std::string_view command = TransactionControlIn(statement); !command.empty()) {
      Status refused = Status::Internal(
          "refused a statement running " + std::string(command) + " on PostgreSQL database '" + db_.name() +
          "': stages must not control the transaction; the host owns BEGIN, SAVEPOINT, COMMIT and ROLLBACK "
          "(return an error Status to have the stage's statements rolled back)");
      if (!refused_) refused_ = refused;
      return refused;
    }
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

Status LazySession::Settle(Status returned, bool* lost) const noexcept {
  try {
    if (returned.ok() && refused_) returned = *refused_;
    if (transactions_ == nullptr || connection_ == nullptr) return returned;
    auto where = [this] { return "PostgreSQL database '" + db_.name() + "'"; };
    switch (transactions_->HealthOf(db_)) {
      case Transactions::Health::kNotBegun:
      case Transactions::Health::kOpen:
        return returned;
      case Transactions::Health::kAborted:
        if (!returned.ok()) return returned;
        return Status::Internal(
            "the call returned ok, but a statement of it failed and aborted the transaction of " + where() +
            "; a stage returns the Status of a failed statement (or writes the statement so "
            "that it does not fail, e.g. INSERT ... ON CONFLICT DO NOTHING)");
      case Transactions::Health::kEnded:
        *lost = true;
        return Status::Internal(
            "the transaction of " + where() +
            " was ended during the call by a statement the host did not send; stages must "
            "not control the transaction" +
            (returned.ok() ? std::string() : " (the call returned: " + returned.ToString() + ")"));
      case Transactions::Health::kBroken:
        if (!returned.ok()) return returned;
        *lost = true;
        return Status::Unavailable("the call returned ok, but the connection to " + where() +
                                   " was lost during it, and the transaction with it");
    }
    return returned;
  } catch (const std::exception& e) {
    *lost = true;
    return Status::Internal("could not check the transaction of PostgreSQL database '" + db_.name() +
                            "' after the call: " + e.what());
  }
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
  // The stage's own deadline may have passed: the rollback gets a fresh deadline.
  connection_->set_deadline(stowage::Deadline::After(kSettleTimeout));
  return connection_->execute("ROLLBACK TO SAVEPOINT " + savepoint_, {}, nullptr);
}

}  // namespace stowage::engine
