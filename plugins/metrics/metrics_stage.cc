#include "metrics_stage.h"

#include <stdexcept>

#include "metrics_schema.h"
#include "usage_ledger.h"

namespace stowage::metrics {
namespace {

// How long the constructor waits to apply the migrations.
constexpr std::chrono::seconds kConstructionMigrationTimeout{30};

Database& RequireDatabase(StageEnvironment& env) {
  if (env.database == nullptr) {
    throw std::invalid_argument(
        "the metrics stage keeps its tables in a SQL database, but its [[stage]] entry names none; add "
        "database = \"<name>\" naming a [[database]] of pipeline.toml");
  }
  return *env.database;
}

Status NoSession(const std::string& operation) {
  return Status::Internal(
      "the metrics stage was called to " + operation +
      " without a database session; give its [[stage]] entry a database = \"<name>\" key");
}

}  // namespace

ConfigSchema MetricsStage::config_schema() {
  ConfigSchema schema;
  UsagePolicy::Declare(schema);
  schema
      .optional("flush_interval_ms", std::int64_t{1000},
                "how often observed reads and cache traffic are written to the database, in milliseconds")
      .range(std::int64_t{1}, std::int64_t{3'600'000})
      .optional("flush_timeout_ms", std::int64_t{2000},
                "how long one flush (and the last one, at shutdown) may take, in milliseconds")
      .range(std::int64_t{1}, std::int64_t{3'600'000});
  return schema;
}

MetricsStage::MetricsStage(const StageConfig& config, StageEnvironment& env)
    : log_(env.log),
      database_(RequireDatabase(env)),
      policy_(UsagePolicy::FromConfig(config)),
      flush_interval_(config.integer("flush_interval_ms")),
      flush_timeout_(config.integer("flush_timeout_ms")),
      schema_(database_, std::string(kMigrationComponent), MetricsMigrations(), log_) {
  Status status = schema_.ensure(Deadline::After(kConstructionMigrationTimeout));
  if (!status.ok()) {
    if (status.code() != StatusCode::kUnavailable && status.code() != StatusCode::kDeadlineExceeded) {
      throw std::runtime_error(status.message());
    }
    log_.warn(status.message() + "; the tables will be created before the first use");
  }
  log_.info("counting " + policy_.tier + " requests (monthly limit " + std::to_string(policy_.monthly_limit) +
            (policy_.enforce_limit ? ", enforced" : ", not enforced") + ") in database '" + database_.name() +
            "'");
  flusher_ = std::thread([this] { FlushLoop(); });
}

MetricsStage::~MetricsStage() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  Status status = flush(Deadline::After(flush_timeout_));
  if (!status.ok())
    log_.warn("the last flush, at shutdown, failed; its counts are lost: " + status.message());
}

Status MetricsStage::admit(WriteContext& ctx) {
  if (ctx.sql == nullptr) return NoSession("count a request");
  Status status = schema_.ensure(ctx.deadline);
  if (!status.ok()) return status;
  CountedRequest counted;
  status = UsageLedger::CountWrite(*ctx.sql, ctx.guest_id, policy_, &counted);
  if (!status.ok()) return status;
  if (ctx.replay) {
    // A replay (SDK 1.3) counts the request its failed write did not count,
    // and is never refused: its message is stored already.
    if (counted.over_limit()) {
      ctx.log.info("replayed request of " + counted.tier + " " + ctx.guest_id +
                   " is beyond its monthly limit of " + std::to_string(counted.monthly_limit) +
                   ": counted, not refused (a replay: the message is stored already)");
    }
  } else if (policy_.enforce_limit && counted.over_limit()) {
    return Status::Rejected(counted.tier + " " + ctx.guest_id + " reached its monthly request limit of " +
                            std::to_string(counted.monthly_limit) + "; it resets on " + counted.resets_on);
  }
  ctx.attributes.set(kMonthRequestsAttribute, std::to_string(counted.month_requests));
  ctx.attributes.set(kMonthlyLimitAttribute, std::to_string(counted.monthly_limit));
  if (counted.created) ctx.attributes.set(kCreatedAttribute, "1");
  return Status::Ok();
}

Status MetricsStage::write(WriteContext& ctx) {
  auto month_requests = ctx.attributes.get(kMonthRequestsAttribute);
  auto limit = ctx.attributes.get(kMonthlyLimitAttribute);
  if (!month_requests || !limit) {
    ctx.log.warn("the request of " + policy_.tier + " " + ctx.guest_id +
                 " was not counted in usage_metrics: admission did not count it (see its failure above)");
    return Status::Ok();
  }
  // The operators' checklist looks for these words.
  const bool created = ctx.attributes.get(kCreatedAttribute).has_value();
  ctx.log.info(std::string(created ? "✓ Created new usage metrics record" : "✓ Updated usage metrics") + ": " +
               (ctx.replay ? "counted replayed request " : "counted request ") + *month_requests + " of " +
               *limit + " this month for " + policy_.tier + " " + ctx.guest_id);
  return Status::Ok();
}

Status MetricsStage::compensate(WriteContext& ctx) {
  (void)ctx;
  return Status::Ok();
}

EraseResult MetricsStage::erase(GuestContext& ctx) {
  ctx.log.debug("kept the usage_metrics row of " + ctx.guest_id + ": it is accounting, not chat content");
  return {Status::Ok(), false};
}

void MetricsStage::observe(const RequestReport& report) noexcept {
  try {
    if (report.kind == RequestKind::kRead) {
      window_.add_read(report.guest_id, report.cache_hit, report.elapsed);
    } else if (report.kind == RequestKind::kWrite) {
      window_.add_write(report.elapsed);
    }
  } catch (...) {
    // Out of memory: this request goes uncounted, the request itself is unharmed.
  }
}

Status MetricsStage::health(Deadline deadline) {
  Status status = schema_.ensure(deadline);
  if (!status.ok()) return status;
  return database_.with_session(deadline, [](SqlSession& sql) {
    return sql.execute("SELECT 1 FROM usage_metrics, cache_metrics LIMIT 0", {});
  });
}

Status MetricsStage::flush(Deadline deadline) {
  std::lock_guard lock(flush_mu_);
  TrafficCounts counts = window_.take();
  if (counts.empty()) return Status::Ok();
  Status status = schema_.ensure(deadline);
  if (status.ok()) {
    status = database_.with_session(
        deadline, [&](SqlSession& sql) { return UsageLedger::Flush(sql, counts); });
  }
  if (!status.ok()) {
    window_.restore(counts);
    return status;
  }
  if (counts.unattributed_reads > 0) {
    log_.warn(std::to_string(counts.unattributed_reads) + " read(s) were counted in cache_metrics but not in " +
              "their guest's usage_metrics row: the window held the reads of " +
              std::to_string(TrafficWindow::kDefaultMaxUsers) +
              " guests already (reads of that many distinct guests within one flush_interval_ms, or flushes "
              "failing meanwhile); shorten flush_interval_ms if this happens under normal load");
  }
  if (log_.enabled(LogLevel::kDebug)) {
    log_.debug("flushed " + std::to_string(counts.total_requests) + " request(s): " +
               std::to_string(counts.cache_hits) + " cache hit(s), " + std::to_string(counts.cache_misses) +
               " miss(es), reads of " + std::to_string(counts.reads.size()) + " user(s)");
  }
  return Status::Ok();
}

void MetricsStage::FlushLoop() {
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    if (stop_cv_.wait_for(lock, flush_interval_, [this] { return stopping_; })) break;
    lock.unlock();
    Status status = flush(Deadline::After(flush_timeout_));
    if (!status.ok())
      log_.warn("metrics flush failed; its counts are kept for the next one: " + status.message());
    lock.lock();
  }
}

}  // namespace stowage::metrics
