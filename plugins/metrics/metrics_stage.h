// MetricsStage: the "metrics" stage. Counts each user's requests in
// usage_metrics (refusing a POST beyond the user's monthly limit) and the
// cache's traffic in cache_metrics. Keeps no message content.
//
// A POST is counted by admit(), inside the write's transaction, so a request
// refused or failed by any stage is not counted. Reads are observed in
// memory and flushed by a background thread every flush_interval_ms, so no
// request waits on a shared row.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "stowage/sdk.h"
#include "traffic_window.h"
#include "usage_policy.h"

namespace stowage::metrics {

class MetricsStage final : public Stage {
 public:
  // What admit() counted, for write()'s log line: this request's number in
  // the month and the user's limit (decimal strings).
  static constexpr std::string_view kMonthRequestsAttribute = "metrics.month_requests";
  static constexpr std::string_view kMonthlyLimitAttribute = "metrics.monthly_request_limit";
  // "1" when admit() created the user's usage_metrics row (its first request).
  static constexpr std::string_view kCreatedAttribute = "metrics.created";

  // tier, <tier>_monthly_limit, enforce_limit, flush_interval_ms,
  // flush_timeout_ms.
  static ConfigSchema config_schema();

  // Applies the metrics migrations and starts the flush thread. Throws
  // std::invalid_argument when env.database is null or a config value is out
  // of range, and std::runtime_error when the database is reachable but the
  // tables cannot be created. An unreachable database only logs a warning:
  // the tables are created before the first use. `env` outlives the stage.
  MetricsStage(const StageConfig& config, StageEnvironment& env);
  // Stops the flush thread and flushes once more, within flush_timeout_ms.
  ~MetricsStage() override;

  std::string target() const override { return ""; }
  // Counts the POST in usage_metrics; kRejected when it goes beyond the
  // user's monthly limit and enforce_limit is on, except for a replay
  // (ctx.replay): counted, never refused, its message is stored already.
  Status admit(WriteContext& ctx) override;
  // Logs what admit() counted; writes nothing.
  Status write(WriteContext& ctx) override;
  // Nothing to undo: the write's transaction is rolled back instead.
  Status compensate(WriteContext& ctx) override;
  // usage_metrics is accounting, not content: it stays (held = false).
  EraseResult erase(GuestContext& ctx) override;
  // Adds the request to the in-memory window; never blocks on I/O.
  void observe(const RequestReport& report) noexcept override;
  // Whether the tables are in place and reachable.
  Status health(Deadline deadline) override;

  // Writes what was observed since the last flush (see UsageLedger::Flush).
  // On failure the counts are kept for the next flush. One flush at a time.
  Status flush(Deadline deadline);

 private:
  void FlushLoop();

  Logger& log_;
  Database& database_;
  const UsagePolicy policy_;
  const std::chrono::milliseconds flush_interval_;
  const std::chrono::milliseconds flush_timeout_;
  stowage::SchemaGate schema_;
  TrafficWindow window_;
  std::mutex flush_mu_;  // one flush at a time

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread flusher_;  // last: started once everything above is built
};

}  // namespace stowage::metrics
