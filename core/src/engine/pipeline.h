// Pipeline: the ordered stages of one pipeline.toml, and the three things
// done to a guest's chat: write a message, read the messages, erase them.
//
// Failure policy (per stage, from pipeline.toml):
// - a best_effort stage has a circuit (circuit_threshold,
//   circuit_cooldown_ms): while it is open, writes and reads skip the stage
//   (counted as skipped and listed in `degraded`); erase and search always ask.
// - required: a failure (error result, exception caught at the boundary, or
//   timing out) stops the write; the transactions roll back and every stage
//   already applied without a database is compensated in reverse order; the
//   request fails naming the stage.
// - best_effort: a failure is logged, counted and listed in `degraded`; the
//   write goes on.
// The databases are the truth: with a database in the pipeline, a stage that
// keeps a copy of the store (kAfterCommit: the Redis cache) is prepared
// before the COMMIT and written after it, and nothing fails a write once its
// COMMIT succeeded (pipeline_write.cc, pipeline_erase.cc).
// A Pipeline is immutable once built and safe to use from many threads.
//
// Generations: a reload builds a new Pipeline from the previous one, which
// lends it every stage and database whose settings did not change (they are
// shared, not copied), so a kept stage keeps its connections and state. A
// request holds the Pipeline it started on until it ends; a stage, database
// or plugin library goes away with the last Pipeline that uses it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "database/postgres_database.h"
#include "engine/circuit_breaker.h"
#include "loader/plugin_loader.h"
#include "stowage/context.h"
#include "stowage/message.h"
#include "stowage/stage.h"
#include "stowage/status.h"

namespace stowage::observability {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace stowage::observability

namespace stowage::idempotency {
class IdempotencyStore;
}  // namespace stowage::idempotency

namespace stowage::journal {
class JournalStore;
struct Backlog;
}  // namespace stowage::journal

namespace stowage::engine {

class CallRunner;
class JournalReplayer;

// The metric series of one stage (stowage_stage_calls_total by outcome,
// stowage_stage_duration_seconds, stowage_circuit_state); all null when the
// pipeline was built without a registry (circuit: also without a breaker).
struct StageMetrics {
  observability::Counter* ok = nullptr;
  observability::Counter* failed = nullptr;
  observability::Counter* timed_out = nullptr;
  observability::Counter* skipped = nullptr;
  observability::Histogram* duration = nullptr;
  observability::Gauge* circuit = nullptr;
  observability::Counter* journaled = nullptr;  // stowage_journal_recorded_total
  observability::Counter* replayed = nullptr;   // stowage_journal_replayed_total
  // stowage_stage_admits_total, by what admit() of a request's write said:
  // let the message through, refused it (a quota: the request fails with
  // that answer), or failed to decide.
  observability::Counter* admitted = nullptr;
  observability::Counter* admit_refused = nullptr;
  observability::Counter* admit_failed = nullptr;
};

// Outcome counters of one stage, kept for logs and metrics.
struct StageCounters {
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> compensated{0};
  std::atomic<std::uint64_t> compensation_failed{0};
  // The exported series of the two above (stowage_stage_compensations_total)
  // for the compensations a request makes (a later required stage failed);
  // null without a metrics registry. Counted by CountCompensation. A write
  // compensated after its request ended (it finished past its deadline) counts
  // in the atomics and the log only: the registry may be gone by then.
  observability::Counter* compensated_total = nullptr;
  observability::Counter* compensation_failed_total = nullptr;
};

// One configured stage: its settings, its plugin, and (when enabled) the
// stage object made from it.
struct StageInstance {
  config::StageSettings settings;
  std::shared_ptr<const loader::Plugin> plugin;
  std::shared_ptr<stowage::Logger> logger;  // the one the stage was given
  // Null when disabled. Every copy holds, besides the stage and its plugin
  // library, what the stage was given and keeps references to (its
  // StageEnvironment, `logger`, `database`), destroyed after the stage: a
  // call that outlives this instance (a health check or a write the engine
  // stopped waiting for, still running on the call runner after a reload
  // dropped the generation) holds a copy, so what it uses lives until it ends.
  std::shared_ptr<stowage::Stage> stage;
  std::string target;                              // stage->target(), cached
  // The stage promises to return by each call's deadline (kKeepsDeadlines):
  // it is called on the request's thread, not on the call runner.
  bool keeps_deadlines = false;
  // The stage keeps a copy of what the databases hold (kAfterCommit): in a
  // pipeline with a database it is prepared before the COMMIT and written
  // after it (stowage/stage.h).
  bool after_commit = false;
  // The [[database]] the stage joins; null when none. A stage with a
  // database is called on the request's thread and its statements run in
  // the request's transaction.
  std::shared_ptr<database::PostgresDatabase> database;
  std::shared_ptr<StageCounters> counters = std::make_shared<StageCounters>();
  // Asked before each write or read of a best_effort stage; null for a
  // required stage, a disabled one, or circuit_threshold = 0.
  std::shared_ptr<CircuitBreaker> breaker;
  // Where the messages this stage failed to store are journaled (the
  // stage's database, or for a stage without one the database of the
  // Idempotency-Keys); null when the stage is not journaled (required,
  // after-commit, journal = false, disabled, or no database in the pipeline).
  std::shared_ptr<journal::JournalStore> journal;
  StageMetrics metrics;

  const std::string& name() const noexcept { return settings.name; }
  bool required() const noexcept { return settings.policy == config::Policy::kRequired; }
};

struct WriteOutcome;

// The Idempotency-Key of a write. With a database in the pipeline, the key
// is recorded in the same transaction as the message (IdempotencyStore), so
// a retry on any stowaged, before or after a restart, finds it.
struct IdempotencyClaim {
  std::string key;          // as the client sent it
  std::string fingerprint;  // what a retry must match (idempotency::Fingerprint of the request)
  // The answer to record with the key: called once, just before the COMMIT,
  // with the outcome the request will have if the COMMIT succeeds.
  std::function<std::string(const WriteOutcome&)> answer;
};

struct WriteOutcome {
  stowage::Status status;              // ok, or what failed the request
  std::string failed_stage;            // the stage that failed or refused the write
  stowage::Attributes attributes;      // e.g. message_id, conversation_id, sequence
  std::vector<std::string> stored_in;  // targets that hold the message, in stage order
  // Best-effort stages that failed, and after-commit stages whose write
  // failed once the message was committed.
  std::vector<std::string> degraded;
  // The COMMIT's answer never came: the message may be stored. (status is
  // kUnavailable.) A retry with the same Idempotency-Key finds out.
  bool outcome_unknown = false;
  // With a claim whose key this guest had already used: kReplay when the
  // request matches, and `replay` holds the answer recorded then (status is
  // ok and nothing was stored now); kConflict when it does not (status is
  // kConflict and nothing was stored).
  enum class Claim { kNone, kRecorded, kReplay, kConflict } claim = Claim::kNone;
  std::string replay;
};

struct ReadOutcome {
  stowage::Status status;
  std::string failed_stage;
  std::string served_by;  // the stage that served the messages; empty if none held any
  // The page of the history the read asked for, oldest first: the messages
  // whose sequences are first_sequence, first_sequence + 1, ...
  std::vector<stowage::Message> messages;
  std::uint64_t first_sequence = 0;  // > 0: older messages exist than `messages`
  std::uint64_t total = 0;           // how many messages the guest has in all
  std::vector<std::string> degraded;
};

struct SearchOutcome {
  stowage::Status status;
  std::string failed_stage;
  bool supported = false;  // some enabled stage searches
  std::vector<stowage::SearchHit> hits;
};

struct EraseOutcome {
  stowage::Status status;
  std::string failed_stage;
  std::vector<std::string> erased_from;  // targets that held data of the guest (the answer's deleted_from)
  std::vector<std::string> degraded;
};

// The health of one stage, as its health() answered.
struct StageHealth {
  std::string name;
  bool required = false;
  bool enabled = false;
  stowage::Status status;  // ok when healthy; not asked (ok) when disabled
};

struct BuildResult {
  std::shared_ptr<class Pipeline> pipeline;  // null when errors is non-empty
  std::vector<std::string> errors;           // each names the file, line and key, or the plugin file
  std::vector<std::string> warnings;
};

class Pipeline {
 public:
  // Loads every stage's plugin, validates its config table against the
  // plugin's schema and creates the enabled stages. With `previous`, every
  // stage and database whose settings are unchanged (for a stage, also the
  // content of its plugin file) is taken from it as it is (the same
  // objects); `previous` itself is left untouched. Never throws.
  // Stage calls are recorded in `metrics` (the one of `previous` when null);
  // it must outlive the pipeline.
  static BuildResult Build(const config::PipelineConfig& config, const Pipeline* previous = nullptr,
                           observability::Registry* metrics = nullptr);

  ~Pipeline();

  // Stores the message through every enabled stage. With `claim`, the key
  // is recorded with the message, or the answer recorded for it returned.
  WriteOutcome Write(const std::string& guest_id, const stowage::Message& message,
                     const IdempotencyClaim* claim = nullptr);
  // The page `range` asks for (the whole history by default) from the first
  // enabled stage that holds the guest. A stage that honours the range
  // (stowage::ReadRange) reads only the page; the host takes the page from
  // the whole history another stage returns. The stages that missed before
  // it are refilled only from a whole history (a page never fills a cache
  // as if it were everything the guest has).
  ReadOutcome Read(const std::string& guest_id, const stowage::ReadRange& range = {});
  EraseOutcome Erase(const std::string& guest_id);
  // The guest's `k` messages most similar to `query`, from the first enabled
  // stage that searches.
  SearchOutcome Search(const std::string& guest_id, const std::string& query, std::size_t k);

  // Asks every enabled stage's health() at once, each with `timeout`; a
  // stage that does not answer in time is unhealthy. In stage order,
  // disabled stages included (not asked).
  std::vector<StageHealth> Health(std::chrono::milliseconds timeout) const;

  const std::vector<std::shared_ptr<StageInstance>>& stages() const noexcept { return stages_; }
  const config::PipelineConfig& config() const noexcept { return config_; }
  // The stage named `name`, or null.
  const StageInstance* stage(const std::string& name) const noexcept;
  // The generation number given by the PipelineHolder that published it (1
  // for the first); 0 when not published.
  std::uint64_t generation() const noexcept { return generation_; }
  // Where Idempotency-Keys are recorded: the database of the first enabled
  // required stage that has one (else of the first enabled stage that has
  // one); null when no enabled stage has a database.
  idempotency::IdempotencyStore* idempotency_store() const noexcept { return idempotency_.get(); }
  // Whether after-commit stages are prepared before the COMMIT and written
  // after it: some enabled stage has a database.
  bool defers_after_commit() const noexcept { return defers_after_commit_; }

  // The journals of the pipeline's databases, one per database that holds
  // entries of some stage; empty when nothing is journaled.
  const std::vector<std::shared_ptr<journal::JournalStore>>& journals() const noexcept { return journals_; }
  // Starts replaying the journal in the background (JournalReplayer); the
  // PipelineHolder does it for the generation in force. Idempotent.
  void StartReplay();
  // Stops the replay, waiting for the entry being replayed. Idempotent.
  void StopReplay();
  // The entries per stage as the replayer last counted them (every stage
  // with entries, those no longer in the pipeline included); empty before
  // its first count or when it does not run.
  std::vector<journal::Backlog> JournalBacklogs() const;

 private:
  Pipeline() = default;

  // Tells every enabled stage how a request went; `attributes`: a write's.
  void Report(stowage::RequestKind kind, const std::string& guest_id, bool ok, bool cache_hit,
              Clock::time_point started, const stowage::Attributes* attributes = nullptr) const noexcept;

  friend class PipelineHolder;
  friend class JournalReplayer;

  config::PipelineConfig config_;
  // Declared before the stages, so that they are destroyed after them (a
  // stage instance also holds its own database).
  std::vector<std::shared_ptr<database::PostgresDatabase>> databases_;
  std::vector<std::shared_ptr<StageInstance>> stages_;
  std::shared_ptr<CallRunner> runner_;
  std::shared_ptr<idempotency::IdempotencyStore> idempotency_;
  bool defers_after_commit_ = false;
  std::vector<std::shared_ptr<journal::JournalStore>> journals_;
  observability::Registry* metrics_ = nullptr;
  std::uint64_t generation_ = 0;
  // Last: stopped and destroyed before anything it uses.
  std::unique_ptr<JournalReplayer> replayer_;
};

}  // namespace stowage::engine
