// The figures of a load run: a table for people and JSON for programs.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "latency_summary.h"
#include "load_options.h"
#include "load_run.h"

namespace stowage::bench {

struct KindFigures {
  std::string kind;  // "post", "get" or "all"
  std::int64_t sent = 0;
  std::int64_t ok = 0;
  std::int64_t failed = 0;
  double requests_per_second = 0;  // sent / elapsed
  LatencySummary ok_latency;
};

struct LoadFigures {
  double elapsed_s = 0;
  std::vector<KindFigures> kinds;  // post, get, then all
  std::int64_t connections_opened = 0;
  std::vector<std::string> first_failures;
  const KindFigures& total() const { return kinds.back(); }
};

// Sums and summarizes an outcome (its latency vectors are sorted in place).
LoadFigures ComputeFigures(LoadOutcome* outcome);

// The table stowage-load prints: a header naming the run, one row per kind
// and one for all, then the first failures if any.
std::string FormatTable(const LoadOptions& options, const LoadFigures& figures);

// The same figures as JSON. The totals are also top-level keys
// (requests_sent, requests_ok, requests_failed, requests_per_second) so a
// script can read them without a JSON parser.
boost::json::object FiguresToJson(const LoadOptions& options, const LoadFigures& figures);

}  // namespace stowage::bench
