#include "idempotency/idempotency_store.h"

#include <charconv>

namespace stowage::idempotency {
namespace {

using stowage::Status;

// The host's own table. Migration 1 is released as it stands.
const std::vector<stowage::Migration>& IdempotencyMigrations() {
  static const std::vector<stowage::Migration> migrations = {
      {1, "create stowage_idempotency", R"sql(
CREATE TABLE stowage_idempotency (
  guest_id text NOT NULL,
  idempotency_key text NOT NULL,
  fingerprint text NOT NULL,
  status integer NOT NULL,
  answer text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT stowage_idempotency_pkey PRIMARY KEY (guest_id, idempotency_key)
);
CREATE INDEX stowage_idempotency_created_at ON stowage_idempotency (created_at);
)sql"},
  };
  return migrations;
}

constexpr const char* kComponent = "stowage.idempotency";

constexpr const char* kInsert =
    "INSERT INTO stowage_idempotency (guest_id, idempotency_key, fingerprint, status, answer)"
    " VALUES ($1, $2, $3, $4, $5)";

constexpr const char* kSelect =
    "SELECT fingerprint, status, answer FROM stowage_idempotency WHERE guest_id = $1 AND idempotency_key = $2";

// SKIP LOCKED: a batch never waits for rows another sweep (of another
// stowaged) is deleting; writes insert new rows, which no batch touches.
constexpr const char* kSweep =
    "DELETE FROM stowage_idempotency WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM stowage_idempotency WHERE created_at < now() - make_interval(secs => $1)"
    " LIMIT 1000 FOR UPDATE SKIP LOCKED))";

constexpr std::uint64_t kSweepBatch = 1000;

}  // namespace

IdempotencyStore::IdempotencyStore(std::shared_ptr<database::PostgresDatabase> database,
                                   std::shared_ptr<stowage::Logger> log, std::chrono::seconds ttl,
                                   std::chrono::seconds sweep_every)
    : database_(std::move(database)),
      log_(std::move(log)),
      ttl_(ttl),
      sweep_every_(sweep_every),
      schema_(*database_, kComponent, IdempotencyMigrations(), *log_),
      sweeper_([this] { SweepLoop(); }) {}

IdempotencyStore::~IdempotencyStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  sweeper_.join();
}

Status IdempotencyStore::EnsureSchema(stowage::Deadline deadline) {
  return schema_.ensure(deadline);
}

IdempotencyStore::Statement IdempotencyStore::Record(const std::string& guest_id, const std::string& key,
                                                     const std::string& fingerprint, int status,
                                                     const std::string& answer) {
  return {kInsert, {guest_id, key, fingerprint, std::to_string(status), answer}};
}

Status IdempotencyStore::Find(const std::string& guest_id, const std::string& key, stowage::Deadline deadline,
                              std::optional<Recorded>* found) {
  found->reset();
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    stowage::SqlResult result;
    if (Status s = sql.execute(kSelect, {guest_id, key}, &result); !s.ok()) return s;
    if (result.rows.empty()) return Status::Ok();
    Recorded recorded;
    auto fingerprint = result.value(0, 0), status = result.value(0, 1), answer = result.value(0, 2);
    if (!fingerprint || !status || !answer) {
      return Status::Internal("stowage_idempotency of database '" + sql.database() +
                              "' holds a NULL; its columns must be NOT NULL: check the table");
    }
    recorded.fingerprint = std::move(*fingerprint);
    std::from_chars(status->data(), status->data() + status->size(), recorded.status);
    recorded.answer = std::move(*answer);
    *found = std::move(recorded);
    return Status::Ok();
  });
}

Status IdempotencyStore::Sweep(stowage::Deadline deadline, std::uint64_t* deleted) {
  *deleted = 0;
  if (Status ready = schema_.ensure(deadline); !ready.ok()) return ready;
  return database_->with_session(deadline, [&](stowage::SqlSession& sql) {
    while (!deadline.expired()) {
      stowage::SqlResult result;
      if (Status s = sql.execute(kSweep, {std::to_string(ttl_.count())}, &result); !s.ok()) return s;
      *deleted += result.affected;
      if (result.affected < kSweepBatch) break;
    }
    return Status::Ok();
  });
}

void IdempotencyStore::SweepLoop() {
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, sweep_every_, [this] { return stopping_; })) {
    lock.unlock();
    std::uint64_t deleted = 0;
    Status swept = Sweep(stowage::Deadline::After(std::chrono::seconds(10)), &deleted);
    if (!swept.ok()) {
      log_->warn("could not delete expired Idempotency-Keys (retried in " + std::to_string(sweep_every_.count()) +
                 " s): " + swept.ToString());
    } else if (deleted > 0) {
      log_->info("deleted " + std::to_string(deleted) + " Idempotency-Key(s) older than " +
                 std::to_string(ttl_.count()) + " s");
    }
    lock.lock();
  }
}

}  // namespace stowage::idempotency
