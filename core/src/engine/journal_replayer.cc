#include "engine/journal_replayer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <numeric>
#include <set>

#include "engine/stage_calls.h"
#include "engine/transaction.h"
#include "observability/metrics.h"

namespace stowage::engine {
namespace {

using stowage::Deadline;
using stowage::Status;

// How often expired entries are parked.
constexpr std::chrono::seconds kParkEvery{10};
// Batches of one stage in one round, so that every stage gets its turn.
constexpr int kBatchesPerRound = 50;
// Replays failing in a row that pause a stage's replay.
constexpr int kFailuresToPause = 3;
constexpr std::chrono::milliseconds kFirstPause{1000};
constexpr std::chrono::milliseconds kLongestPause{5000};

// A write-like call of `s` in a replay: in `transactions` when the stage has
// a database, as in a write otherwise.
WriteCall ReplayCall(const StageInstance& s, std::size_t index, CallRunner& runner, Transactions& transactions,
                     const std::shared_ptr<const Request>& request, const stowage::Attributes& attributes, WriteOp op,
                     bool* lost) {
  if (s.database) return CallWithDatabase(s, index, transactions, request, attributes, op, lost);
  return CallWrite(runner, TargetOf(s), request, attributes, op);
}

}  // namespace

JournalReplayer::JournalReplayer(const Pipeline& pipeline, observability::Registry* metrics, Options options)
    : pipeline_(pipeline), metrics_(metrics), options_(options), thread_([this] { Loop(); }) {}

JournalReplayer::~JournalReplayer() { Stop(); }

void JournalReplayer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool JournalReplayer::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

std::vector<journal::Backlog> JournalReplayer::backlogs() const {
  std::lock_guard lock(mu_);
  return backlogs_;
}

void JournalReplayer::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    try {
      CountEntries();
      const auto& stages = pipeline_.stages();
      for (std::size_t i = 0; i < stages.size() && !stopping(); ++i)
        if (stages[i]->stage && stages[i]->journal) Replay(i);
    } catch (const std::exception& e) {
      spdlog::error(std::string("the journal's replay round failed (tried again in a second): ") + e.what());
    }
    lock.lock();
    wake_.wait_for(lock, options_.interval, [this] { return stopping_; });
  }
}

void JournalReplayer::CountEntries() {
  std::map<std::string, journal::Backlog> merged;
  for (const auto& store : pipeline_.journals()) {
    std::vector<journal::Backlog> found;
    Status counted = store->Backlogs(Deadline::After(kSettleTimeout), &found);
    if (!counted.ok()) {
      spdlog::warn("could not count the journal's entries in database '" + store->database().name() +
                   "' (counted again in a second): " + counted.ToString());
      return;  // keep the last count rather than show a partial one
    }
    for (auto& b : found) {
      journal::Backlog& m = merged[b.stage];
      m.stage = b.stage;
      m.pending += b.pending;
      m.parked += b.parked;
      m.oldest_pending_age_s = std::max(m.oldest_pending_age_s, b.oldest_pending_age_s);
    }
  }
  if (metrics_) {
    for (auto& [stage, shown] : gauged_) shown = false;
    for (const auto& [stage, b] : merged) gauged_[stage] = true;
    for (const auto& [stage, present] : gauged_) {
      const journal::Backlog* b = present ? &merged[stage] : nullptr;
      metrics_->gauge("stowage_journal_backlog", "Journal entries waiting for a replay, per stage.",
                      {{"stage", stage}})
          .Set(b ? static_cast<double>(b->pending) : 0);
      metrics_->gauge("stowage_journal_parked", "Journal entries parked (dead letters), per stage.",
                      {{"stage", stage}})
          .Set(b ? static_cast<double>(b->parked) : 0);
      metrics_->gauge("stowage_journal_oldest_entry_age_seconds",
                      "Age of the oldest journal entry waiting for a replay, per stage; 0 without one.",
                      {{"stage", stage}})
          .Set(b ? b->oldest_pending_age_s : 0);
    }
  }
  std::vector<journal::Backlog> list;
  for (auto& [stage, b] : merged) list.push_back(std::move(b));
  std::lock_guard lock(mu_);
  backlogs_ = std::move(list);
}

void JournalReplayer::Replay(std::size_t index) {
  const StageInstance& s = *pipeline_.stages()[index];
  StageState& state = states_[s.name()];
  const auto now = Clock::now();
  if (now < state.paused_until) return;

  if (now - state.parked_check >= kParkEvery) {
    state.parked_check = now;
    std::uint64_t parked = 0;
    Status done = s.journal->ParkExpired(s.name(), s.settings.replay_max_age, Deadline::After(kSettleTimeout), &parked);
    if (!done.ok()) {
      s.logger->warn("could not park the journal entries older than replay_max_age: " + done.ToString());
    } else if (parked > 0) {
      s.logger->warn("parked " + std::to_string(parked) + " journal entr" + (parked == 1 ? "y" : "ies") +
                     " older than replay_max_age (" + std::to_string(s.settings.replay_max_age.count()) +
                     " s); list them with `stowage journal list`, requeue or drop them there");
    }
  }

  bool pending = false;
  for (const auto& b : backlogs())
    if (b.stage == s.name()) pending = b.pending > 0;
  if (!pending) return;
  // After failed replays, the stage must say it is healthy again first.
  if (state.pause.count() > 0) {
    Status health = HealthOf(*s.stage, Deadline::After(s.settings.timeout));
    if (!health.ok()) {
      state.pause = std::clamp(state.pause * 2, kFirstPause, kLongestPause);
      state.paused_until = Clock::now() + state.pause;
      return;
    }
  }
  // An open circuit lets a replay through as its probe once the cooldown
  // passed, as it lets a request through.
  if (s.breaker && !s.breaker->Allow()) return;

  // The first batch alone (it may be a half-open circuit's probe), then
  // `concurrency` batches at a time, each claiming entries of its own.
  for (int round = 0; round < kBatchesPerRound && !stopping(); ++round) {
    const std::size_t lanes = round == 0 ? 1 : options_.concurrency;
    std::vector<int> failures(lanes, 0);
    std::vector<std::size_t> claimed(lanes, 0);
    std::vector<std::thread> helpers;
    for (std::size_t lane = 1; lane < lanes; ++lane)
      helpers.emplace_back([&, lane, lanes] { claimed[lane] = ReplayBatch(index, lane, lanes, &failures[lane]); });
    claimed[0] = ReplayBatch(index, 0, lanes, &failures[0]);
    for (auto& helper : helpers) helper.join();
    const std::size_t total = std::accumulate(claimed.begin(), claimed.end(), std::size_t{0});
    const int worst = *std::max_element(failures.begin(), failures.end());
    if (total == 0 && round == 0) Unprobed(s);
    // A lane that found a full batch has more to do; lanes hold guests of
    // their own, so one may run dry before another.
    const bool more = *std::max_element(claimed.begin(), claimed.end()) == options_.batch;
    if (worst >= kFailuresToPause || (worst > 0 && !more)) {
      state.pause = std::clamp(state.pause * 2, kFirstPause, kLongestPause);
      state.paused_until = Clock::now() + state.pause;
      return;
    }
    state.pause = std::chrono::milliseconds(0);
    if (!more) return;
    if (s.breaker && s.breaker->state() != CircuitBreaker::State::kClosed) return;
  }
}

std::size_t JournalReplayer::ReplayBatch(std::size_t index, std::size_t lane, std::size_t lanes, int* failures) {
  const StageInstance& s = *pipeline_.stages()[index];
  journal::JournalStore& store = *s.journal;
  Transactions transactions;
  database::Connection* connection = nullptr;
  if (Status got = transactions.Connection(store.database(), Deadline::After(kSettleTimeout), &connection);
      !got.ok()) {
    s.logger->warn("could not replay the journal (tried again in a second): " + got.ToString());
    *failures = kFailuresToPause;
    return 0;
  }
  std::vector<journal::Entry> entries;
  if (Status claimed = journal::JournalStore::ClaimDue(*connection, s.name(), options_.batch, lane, lanes, &entries);
      !claimed.ok()) {
    transactions.RollbackAll(Deadline::After(kSettleTimeout));
    s.logger->warn("could not read the journal (tried again in a second): " + claimed.ToString());
    *failures = kFailuresToPause;
    return 0;
  }
  if (entries.empty()) {
    transactions.RollbackAll(Deadline::After(kSettleTimeout));
    return 0;
  }

  std::uint64_t replayed = 0;
  std::vector<std::int64_t> done;
  // A guest whose entry failed keeps its later entries for a later round,
  // so that a guest's entries are stored oldest first.
  std::set<std::string> held_back;
  for (const journal::Entry& entry : entries) {
    if (stopping()) break;
    if (held_back.count(entry.guest_id)) continue;
    auto request = std::make_shared<const Request>(Request{entry.guest_id, entry.message, true});
    bool lost = false;
    const auto began = Clock::now();
    WriteCall call = ReplayCall(s, index, *pipeline_.runner_, transactions, request, entry.attributes,
                                WriteOp::kAdmit, &lost);
    if (call.status.ok() && !lost) {
      call = ReplayCall(s, index, *pipeline_.runner_, transactions, request, call.attributes, WriteOp::kWrite, &lost);
    }
    Count(s, call.status, began, s.breaker != nullptr);
    if (lost) {
      transactions.RollbackAll(Deadline::After(kSettleTimeout));
      s.logger->warn("replay of the journal stopped, nothing of this batch kept (tried again later): " +
                     call.status.ToString());
      *failures = kFailuresToPause;
      return entries.size();
    }
    connection->set_deadline(Deadline::After(kSettleTimeout));
    Status noted;
    if (call.status.ok()) {
      done.push_back(entry.id);  // removed together, before the COMMIT
      ++replayed;
      *failures = 0;
    } else {
      bool parked = false;
      noted = journal::JournalStore::Failed(*connection, entry.id, call.status.ToString(),
                                            s.settings.replay_max_attempts, &parked);
      ++*failures;
      held_back.insert(entry.guest_id);
      if (parked) {
        s.logger->warn("parked journal entry " + std::to_string(entry.id) + " (guest " + entry.guest_id + ") after " +
                       std::to_string(s.settings.replay_max_attempts) + " failed replays: " +
                       call.status.ToString() + "; `stowage journal replay --id " + std::to_string(entry.id) +
                       "` tries it again, `stowage journal drop --id " + std::to_string(entry.id) + "` drops it");
      } else if (*failures == 1) {
        s.logger->info("replay of journal entry " + std::to_string(entry.id) + " (guest " + entry.guest_id +
                       ") failed, tried again later: " + call.status.ToString());
      }
    }
    if (!noted.ok()) {
      transactions.RollbackAll(Deadline::After(kSettleTimeout));
      s.logger->warn("could not update the journal (tried again later): " + noted.ToString());
      *failures = kFailuresToPause;
      return entries.size();
    }
    if (*failures >= kFailuresToPause) break;
    if (s.breaker && s.breaker->state() == CircuitBreaker::State::kOpen) break;
  }
  if (!done.empty()) {
    connection->set_deadline(Deadline::After(kSettleTimeout));
    if (Status removed = journal::JournalStore::Done(*connection, done); !removed.ok()) {
      transactions.RollbackAll(Deadline::After(kSettleTimeout));
      s.logger->warn("could not remove replayed entries from the journal (tried again later): " + removed.ToString());
      *failures = kFailuresToPause;
      return entries.size();
    }
  }
  CommitResult committed = transactions.CommitAll(Deadline::After(kSettleTimeout));
  if (!committed.status.ok()) {
    s.logger->warn("the replay of " + std::to_string(replayed) + " journal entr" + (replayed == 1 ? "y" : "ies") +
                   " did not commit (tried again later): " + committed.status.ToString());
    *failures = kFailuresToPause;
    return entries.size();
  }
  if (replayed > 0) {
    if (s.metrics.replayed) s.metrics.replayed->Add(static_cast<double>(replayed));
    s.logger->info("replayed " + std::to_string(replayed) + " journal entr" + (replayed == 1 ? "y" : "ies"));
  }
  return entries.size();
}

}  // namespace stowage::engine
