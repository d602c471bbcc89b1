#include "usage_ledger.h"

#include <charconv>
#include <vector>

namespace stowage::metrics {
namespace {

// The first day of the current month, UTC, as PostgreSQL computes it.
#define STOWAGE_METRICS_MONTH_START "date_trunc('month', now() AT TIME ZONE 'UTC')::date"

constexpr const char* kCountWrite =
    "INSERT INTO usage_metrics AS u (user_id, tier, total_requests, cache_hits, cache_misses,"
    " monthly_request_limit, month_start, month_requests)"
    " VALUES ($1, $2, 1, 0, 1, $3::integer, " STOWAGE_METRICS_MONTH_START
    ", 1)"
    " ON CONFLICT (user_id) DO UPDATE SET"
    " total_requests = u.total_requests + 1,"
    " cache_misses = u.cache_misses + 1,"
    " month_requests = CASE WHEN u.month_start = EXCLUDED.month_start"
    " THEN LEAST(u.month_requests, 2147483646) + 1 ELSE 1 END,"
    " month_start = EXCLUDED.month_start,"
    " updated_at = now()"
    " RETURNING tier, month_requests, monthly_request_limit,"
    " to_char(month_start + interval '1 month', 'YYYY-MM-DD'), xmax = 0";

// Adds reads to the rows of users that have one (made by their first POST):
// a read of a guest that never wrote creates no row.
constexpr const char* kFlushReads =
    "UPDATE usage_metrics AS u SET"
    " total_requests = u.total_requests + r.hits + r.misses,"
    " cache_hits = u.cache_hits + r.hits,"
    " cache_misses = u.cache_misses + r.misses,"
    " updated_at = now()"
    " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(user_id, hits, misses)"
    " WHERE u.user_id = r.user_id";

constexpr const char* kInsertCacheMetrics =
    "INSERT INTO cache_metrics (cache_hits, cache_misses, total_requests, avg_response_time)"
    " VALUES ($1::bigint, $2::bigint, $3::bigint, $4::double precision)";

#undef STOWAGE_METRICS_MONTH_START

bool ParseInt(const SqlValue& value, std::int64_t& out) {
  if (!value || value->empty()) return false;
  auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), out);
  return error == std::errc() && end == value->data() + value->size();
}

std::string IntegerArrayLiteral(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out + "}";
}

std::string DoubleText(double value) {
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (error != std::errc()) return "0";
  return std::string(buffer, end);
}

}  // namespace

std::string TextArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

Status UsageLedger::CountWrite(SqlSession& sql, const std::string& user_id, const UsagePolicy& policy,
                               CountedRequest* out) {
  SqlResult result;
  Status status =
      sql.execute(kCountWrite, {user_id, policy.tier, std::to_string(policy.monthly_limit)}, &result);
  const std::string what = "could not count the request of " + policy.tier + " " + user_id +
                           " in usage_metrics (database '" + sql.database() + "')";
  if (!status.ok()) {
    std::string message = what + ": " + status.message();
    switch (status.code()) {
      case StatusCode::kUnavailable:
        return Status::Unavailable(std::move(message));
      case StatusCode::kDeadlineExceeded:
        return Status::DeadlineExceeded(std::move(message));
      default:
        return Status::Internal(std::move(message) +
                                "; check that the metrics migrations are applied (stowage_schema_migrations, "
                                "component 'metrics') and that usage_metrics was not altered");
    }
  }
  CountedRequest counted;
  counted.tier = result.value(0, 0).value_or(policy.tier);
  counted.resets_on = result.value(0, 3).value_or("");
  counted.created = result.value(0, 4).value_or("") == "t";
  if (result.rows.size() != 1 || !ParseInt(result.value(0, 1), counted.month_requests) ||
      !ParseInt(result.value(0, 2), counted.monthly_limit)) {
    return Status::Internal(what + ": the upsert returned " + std::to_string(result.rows.size()) +
                            " row(s) without month_requests and monthly_request_limit; check usage_metrics' "
                            "columns against the metrics migrations");
  }
  *out = std::move(counted);
  return Status::Ok();
}

Status UsageLedger::Flush(SqlSession& sql, const TrafficCounts& counts) {
  if (counts.empty()) return Status::Ok();
  const std::string where = " (database '" + sql.database() + "')";
  auto fail = [&](const std::string& what, const Status& failed) {
    sql.execute("ROLLBACK", {});
    std::string message = "could not " + what + where + ": " + failed.message();
    if (failed.code() == StatusCode::kUnavailable) return Status::Unavailable(std::move(message));
    if (failed.code() == StatusCode::kDeadlineExceeded) return Status::DeadlineExceeded(std::move(message));
    return Status::Internal(std::move(message));
  };
  Status status = sql.execute("BEGIN", {});
  if (!status.ok()) return fail("begin the metrics flush", status);
  if (!counts.reads.empty()) {
    std::vector<std::string> users;
    std::vector<std::int64_t> hits, misses;
    for (const auto& [user_id, reads] : counts.reads) {
      users.push_back(user_id);
      hits.push_back(reads.hits);
      misses.push_back(reads.misses);
    }
    status = sql.execute(kFlushReads,
                         {TextArrayLiteral(users), IntegerArrayLiteral(hits), IntegerArrayLiteral(misses)});
    if (!status.ok())
      return fail("write the reads of " + std::to_string(users.size()) + " user(s) to usage_metrics", status);
  }
  if (counts.total_requests > 0) {
    status = sql.execute(kInsertCacheMetrics,
                         {std::to_string(counts.cache_hits), std::to_string(counts.cache_misses),
                          std::to_string(counts.total_requests), DoubleText(counts.average_response_ms())});
    if (!status.ok()) return fail("write a cache_metrics row", status);
  }
  status = sql.execute("COMMIT", {});
  if (!status.ok()) return fail("commit the metrics flush", status);
  return Status::Ok();
}

}  // namespace stowage::metrics
