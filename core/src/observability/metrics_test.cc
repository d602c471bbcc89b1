#include "observability/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <vector>

namespace stowage::observability {
namespace {

TEST(RegistryTest, RendersASmallRegistryExactly) {
  Registry registry;
  // Created out of name order: families come out sorted, series in creation order.
  Histogram& latency =
      registry.histogram("stowage_request_seconds", "Request latency.", {{"route", "post"}}, {0.0625, 0.125, 1});
  Counter& created = registry.counter("stowage_requests_total", "Requests answered.",
                                      {{"route", "post"}, {"status", "201"}});
  Counter& bad = registry.counter("stowage_requests_total", "Requests answered.",
                                  {{"route", "post"}, {"status", "400"}});
  Gauge& generation = registry.gauge("stowage_pipeline_generation", "Pipeline generation.");
  created.Add();
  created.Add(2);
  bad.Add(0.5);
  generation.Set(7);
  // Binary fractions, so that the sum is exact.
  latency.Observe(0.03125);
  latency.Observe(0.0625);  // on a bound: counts in that bucket
  latency.Observe(0.5);
  latency.Observe(3);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP stowage_pipeline_generation Pipeline generation.\n"
            "# TYPE stowage_pipeline_generation gauge\n"
            "stowage_pipeline_generation 7\n"
            "# HELP stowage_request_seconds Request latency.\n"
            "# TYPE stowage_request_seconds histogram\n"
            "stowage_request_seconds_bucket{route=\"post\",le=\"0.0625\"} 2\n"
            "stowage_request_seconds_bucket{route=\"post\",le=\"0.125\"} 2\n"
            "stowage_request_seconds_bucket{route=\"post\",le=\"1\"} 3\n"
            "stowage_request_seconds_bucket{route=\"post\",le=\"+Inf\"} 4\n"
            "stowage_request_seconds_sum{route=\"post\"} 3.59375\n"
            "stowage_request_seconds_count{route=\"post\"} 4\n"
            "# HELP stowage_requests_total Requests answered.\n"
            "# TYPE stowage_requests_total counter\n"
            "stowage_requests_total{route=\"post\",status=\"201\"} 3\n"
            "stowage_requests_total{route=\"post\",status=\"400\"} 0.5\n");
}

TEST(RegistryTest, ReturnsTheSameSeriesForTheSameLabels) {
  Registry registry;
  Counter& a = registry.counter("c_total", "help", {{"stage", "redis"}});
  Counter& b = registry.counter("c_total", "help", {{"stage", "redis"}});
  EXPECT_EQ(&a, &b);
  Counter& c = registry.counter("c_total", "help", {{"stage", "postgres"}});
  EXPECT_NE(&a, &c);
}

TEST(RegistryTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.counter("x_total", "a \\ b\nc", {{"stage", "a\"b\\c\nd"}}).Add();
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP x_total a \\\\ b\\nc\n"
            "# TYPE x_total counter\n"
            "x_total{stage=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(RegistryTest, RendersNonIntegersWithFullPrecisionAndIntegersWithoutAPoint) {
  Registry registry;
  registry.gauge("a", "h", {{"k", "1"}}).Set(0.1);
  registry.gauge("a", "h", {{"k", "2"}}).Set(1e6);
  registry.gauge("a", "h", {{"k", "3"}}).Set(-2);
  registry.gauge("a", "h", {{"k", "4"}}).Set(1.0 / 3);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP a h\n# TYPE a gauge\n"
            "a{k=\"1\"} 0.1\n"
            "a{k=\"2\"} 1000000\n"
            "a{k=\"3\"} -2\n"
            "a{k=\"4\"} 0.3333333333333333\n");
}

TEST(RegistryTest, SixteenThreadsAddingToOneCounterLoseNothing) {
  Registry registry;
  constexpr int kThreads = 16;
  constexpr int kAdds = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&registry] {
      Counter& counter = registry.counter("hits_total", "Hits.", {{"route", "get"}});
      for (int i = 0; i < kAdds; ++i) counter.Add();
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(registry.counter("hits_total", "Hits.", {{"route", "get"}}).value(), double(kThreads) * kAdds);
  EXPECT_NE(registry.RenderPrometheus().find("hits_total{route=\"get\"} 1600000\n"), std::string::npos);
}

TEST(RegistryTest, ConcurrentHistogramObservationsAllCount) {
  Registry registry;
  Histogram& h = registry.histogram("lat_seconds", "h", {}, {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(i % 2 ? 1.0 : 0.25);
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(h.count(), 80000u);
  EXPECT_EQ(h.cumulative_counts(), (std::vector<std::uint64_t>{40000, 80000}));
  EXPECT_DOUBLE_EQ(h.sum(), 40000 * 1.0 + 40000 * 0.25);
}

TEST(RegistryTest, SameNameWithAnotherTypeThrows) {
  Registry registry;
  registry.counter("stowage_reloads_total", "Reloads.");
  EXPECT_THROW(registry.gauge("stowage_reloads_total", "Reloads."), std::logic_error);
  EXPECT_THROW(registry.histogram("stowage_reloads_total", "Reloads."), std::logic_error);
  EXPECT_NO_THROW(registry.counter("stowage_reloads_total", "Reloads.", {{"result", "ok"}}));
}

TEST(RegistryTest, DefaultLatencyBoundsSpanHalfAMillisecondToTenSeconds) {
  std::vector<double> bounds = DefaultLatencyBounds();
  ASSERT_FALSE(bounds.empty());
  EXPECT_DOUBLE_EQ(bounds.front(), 0.0005);
  EXPECT_DOUBLE_EQ(bounds.back(), 10);
  EXPECT_TRUE(std::is_sorted(bounds.begin(), bounds.end()));
}

}  // namespace
}  // namespace stowage::observability
