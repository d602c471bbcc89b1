#include "load_report.h"

#include <boost/json/array.hpp>
#include <cmath>
#include <cstdio>

namespace stowage::bench {
namespace {

KindFigures Figures(std::string kind, KindOutcome* outcome, double elapsed_s) {
  KindFigures figures;
  figures.kind = std::move(kind);
  figures.sent = outcome->sent;
  figures.ok = outcome->ok;
  figures.failed = outcome->failed;
  figures.requests_per_second = elapsed_s > 0 ? static_cast<double>(outcome->sent) / elapsed_s : 0;
  figures.ok_latency = Summarize(&outcome->ok_latencies_us);
  return figures;
}

// Rounds to 3 decimals, so the JSON carries no false precision.
double Round3(double value) {
  return std::round(value * 1000) / 1000;
}

}  // namespace

LoadFigures ComputeFigures(LoadOutcome* outcome) {
  LoadFigures figures;
  figures.elapsed_s = outcome->elapsed_s;
  KindOutcome all;
  for (std::size_t k = 0; k < kRequestKinds; ++k) {
    auto& kind = outcome->kinds[k];
    all.sent += kind.sent;
    all.ok += kind.ok;
    all.failed += kind.failed;
    all.ok_latencies_us.insert(all.ok_latencies_us.end(), kind.ok_latencies_us.begin(),
                               kind.ok_latencies_us.end());
    figures.kinds.push_back(Figures(KindName(static_cast<RequestKind>(k)), &kind, outcome->elapsed_s));
  }
  figures.kinds.push_back(Figures("all", &all, outcome->elapsed_s));
  figures.connections_opened = outcome->connections_opened;
  figures.first_failures = outcome->first_failures;
  return figures;
}

std::string FormatTable(const LoadOptions& options, const LoadFigures& figures) {
  std::string text;
  char line[256];
  std::snprintf(line, sizeof line,
                "stowage-load %s: %d connections, %.1f s, %d guests, mix post=%d,get=%d, content %d bytes\n",
                options.url.c_str(), options.connections, figures.elapsed_s, options.guests,
                options.post_weight, options.get_weight, options.content_bytes);
  text += line;
  std::snprintf(line, sizeof line, "%-5s %10s %10s %8s %10s %9s %9s %9s\n", "kind", "sent", "ok", "failed",
                "req/s", "p50 ms", "p99 ms", "p99.9 ms");
  text += line;
  for (const auto& kind : figures.kinds) {
    std::snprintf(line, sizeof line, "%-5s %10lld %10lld %8lld %10.1f %9.2f %9.2f %9.2f\n", kind.kind.c_str(),
                  static_cast<long long>(kind.sent), static_cast<long long>(kind.ok),
                  static_cast<long long>(kind.failed), kind.requests_per_second, kind.ok_latency.p50_ms,
                  kind.ok_latency.p99_ms, kind.ok_latency.p999_ms);
    text += line;
  }
  std::snprintf(line, sizeof line, "connections opened: %lld (latencies are of ok answers)\n",
                static_cast<long long>(figures.connections_opened));
  text += line;
  if (!figures.first_failures.empty()) {
    text += "first failures:\n";
    for (const auto& failure : figures.first_failures) text += "  " + failure + "\n";
  }
  return text;
}

boost::json::object FiguresToJson(const LoadOptions& options, const LoadFigures& figures) {
  boost::json::object json;
  json["url"] = options.url;
  json["connections"] = options.connections;
  json["duration_s"] = options.duration_s;
  json["elapsed_s"] = Round3(figures.elapsed_s);
  json["guests"] = options.guests;
  json["mix"] = {{"post", options.post_weight}, {"get", options.get_weight}};
  json["content_bytes"] = options.content_bytes;
  const auto& total = figures.total();
  json["requests_sent"] = total.sent;
  json["requests_ok"] = total.ok;
  json["requests_failed"] = total.failed;
  json["requests_per_second"] = Round3(total.requests_per_second);
  json["connections_opened"] = figures.connections_opened;
  boost::json::object kinds;
  for (const auto& kind : figures.kinds) {
    kinds[kind.kind] = {{"sent", kind.sent},
                        {"ok", kind.ok},
                        {"failed", kind.failed},
                        {"requests_per_second", Round3(kind.requests_per_second)},
                        {"latency_ms",
                         {{"p50", Round3(kind.ok_latency.p50_ms)},
                          {"p99", Round3(kind.ok_latency.p99_ms)},
                          {"p99_9", Round3(kind.ok_latency.p999_ms)},
                          {"max", Round3(kind.ok_latency.max_ms)}}}};
  }
  json["kinds"] = std::move(kinds);
  boost::json::array failures;
  for (const auto& failure : figures.first_failures) failures.emplace_back(failure);
  json["first_failures"] = std::move(failures);
  return json;
}

}  // namespace stowage::bench
