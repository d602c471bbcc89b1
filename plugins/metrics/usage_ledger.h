// UsageLedger: the statements of the metrics stage on usage_metrics and
// cache_metrics. Plain functions of a SqlSession: the caller chooses the
// transaction (the write's own for a POST, a flush's for observed traffic).
#pragma once

#include <cstdint>
#include <string>

#include "stowage/sql.h"
#include "traffic_window.h"
#include "usage_policy.h"

namespace stowage::metrics {

// A POST as usage_metrics counted it.
struct CountedRequest {
  std::string tier;                 // the user's tier, as stored
  std::int64_t month_requests = 0;  // this request's number in the month, from 1
  std::int64_t monthly_limit = 0;   // the user's limit, as stored
  std::string resets_on;            // the first day of next month (UTC), YYYY-MM-DD
  bool created = false;             // this request made the user's row (its first)

  bool over_limit() const noexcept { return month_requests > monthly_limit; }
};

class UsageLedger {
 public:
  // Counts one POST of `user_id` in ONE statement: creates the user's row on
  // the first request (tier and limit from `policy`), adds one to
  // total_requests, cache_misses and month_requests (which restarts at 1 in
  // a new calendar month, UTC), and fills `out` from the row. Does not
  // check the limit. On failure the Status names usage_metrics and the user.
  static Status CountWrite(SqlSession& sql, const std::string& user_id, const UsagePolicy& policy,
                           CountedRequest* out);

  // Writes `counts` in one transaction of its own (`sql` in autocommit):
  // every user's reads added to their usage_metrics row (a user without
  // one, who never wrote, gets none: a read creates no row; reads do not
  // count toward the limit) and one cache_metrics row when there was
  // traffic. Nothing is written when `counts` is empty. On failure the
  // transaction is rolled back.
  static Status Flush(SqlSession& sql, const TrafficCounts& counts);
};

// PostgreSQL's text form of a text[] holding `values`, e.g. {"a","b\"c"}.
std::string TextArrayLiteral(const std::vector<std::string>& values);

}  // namespace stowage::metrics
