// Metrics of one stowaged process, rendered in the Prometheus text format
// (version 0.0.4) for GET /metrics.
//
// A family (name, help, type) is created on first use; each distinct label
// set is a series. Looking a series up takes a lock; recording into a series
// already looked up does not (callers on hot paths keep the reference, which
// lives as long as the registry). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::observability {

// Label names and values, in the order the family always uses.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(double amount = 1) noexcept;
  double value() const noexcept;

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) noexcept;
  double value() const noexcept;

 private:
  std::atomic<double> value_{0};
};

// A histogram of durations in seconds.
class Histogram {
 public:
  // `bounds`: upper bounds of the buckets, ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double seconds) noexcept;

  const std::vector<double>& bounds() const noexcept { return bounds_; }
  // Cumulative count per bound (as Prometheus renders them), then +Inf.
  std::vector<std::uint64_t> cumulative_counts() const;
  double sum() const noexcept;
  std::uint64_t count() const noexcept;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

// Latency buckets from 0.5 ms to 10 s.
std::vector<double> DefaultLatencyBounds();

class Registry {
 public:
  Registry();
  ~Registry();

  // The series of family `name` with `labels`, created on first use. A name
  // used with another type is a programming error (std::logic_error).
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                       std::vector<double> bounds = DefaultLatencyBounds());

  // Every family, sorted by name, with # HELP and # TYPE lines; label values
  // escaped (\\, \", \n).
  std::string RenderPrometheus() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stowage::observability
