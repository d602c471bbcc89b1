#include "observability/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <variant>

namespace stowage::observability {

void Counter::Add(double amount) noexcept {
  value_.fetch_add(amount, std::memory_order_relaxed);
}
double Counter::value() const noexcept {
  return value_.load(std::memory_order_relaxed);
}

void Gauge::Set(double value) noexcept {
  value_.store(value, std::memory_order_relaxed);
}
double Gauge::value() const noexcept {
  return value_.load(std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double seconds) noexcept {
  // The first bucket whose upper bound holds the value (Prometheus' `le`).
  std::size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative_counts() const {
  std::vector<std::uint64_t> counts(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    counts[i] = running;
  }
  return counts;
}

double Histogram::sum() const noexcept {
  return sum_.load(std::memory_order_relaxed);
}
std::uint64_t Histogram::count() const noexcept {
  return count_.load(std::memory_order_relaxed);
}

std::vector<double> DefaultLatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

namespace {

enum class Type { kCounter, kGauge, kHistogram };

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

using Metric = std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>>;

struct Series {
  Labels labels;
  Metric metric;
};

struct Family {
  std::string help;
  Type type;
  std::vector<Series> series;           // in creation order
  std::map<Labels, std::size_t> index;  // labels -> position in `series`
};

// Integers without a decimal point; other values in the shortest form that
// reads back as the same double.
void AppendNumber(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[64];
  std::to_chars_result result;
  if (value == std::trunc(value) && std::fabs(value) < 9.0e15) {
    result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  out.append(buffer, result.ptr);
}

void AppendEscaped(std::string& out, std::string_view text, bool escape_quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `{a="x",b="y"}`, with `extra` (e.g. le) last; nothing when there are no labels.
void AppendLabels(std::string& out, const Labels& labels, const std::pair<std::string, std::string>* extra) {
  if (labels.empty() && extra == nullptr) return;
  out += '{';
  bool first = true;
  auto append = [&](const std::pair<std::string, std::string>& label) {
    if (!first) out += ',';
    first = false;
    out += label.first;
    out += "=\"";
    AppendEscaped(out, label.second, true);
    out += '"';
  };
  for (const auto& label : labels) append(label);
  if (extra != nullptr) append(*extra);
  out += '}';
}

void AppendSample(std::string& out, std::string_view name, const Labels& labels, double value,
                  const std::pair<std::string, std::string>* extra = nullptr) {
  out += name;
  AppendLabels(out, labels, extra);
  out += ' ';
  AppendNumber(out, value);
  out += '\n';
}

}  // namespace

struct Registry::Impl {
  mutable std::mutex mu;
  std::map<std::string, Family, std::less<>> families;  // sorted by name

  // The family `name`, created with `help` and `type` on first use.
  Family& FamilyOf(std::string_view name, std::string_view help, Type type) {
    auto it = families.find(name);
    if (it == families.end()) {
      it = families.emplace(std::string(name), Family{std::string(help), type, {}, {}}).first;
    } else if (it->second.type != type) {
      throw std::logic_error("metric '" + std::string(name) + "' is a " + TypeName(it->second.type) +
                             ", not a " + TypeName(type) + "; give the new metric another name");
    }
    return it->second;
  }

  template <typename T, typename Make>
  T& SeriesOf(std::string_view name, std::string_view help, Type type, const Labels& labels, Make make) {
    std::lock_guard lock(mu);
    Family& family = FamilyOf(name, help, type);
    auto found = family.index.find(labels);
    if (found != family.index.end())
      return *std::get<std::unique_ptr<T>>(family.series[found->second].metric);
    family.series.push_back(Series{labels, make()});
    family.index.emplace(labels, family.series.size() - 1);
    return *std::get<std::unique_ptr<T>>(family.series.back().metric);
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  return impl_->SeriesOf<Counter>(name, help, Type::kCounter, labels,
                                  [] { return Metric(std::make_unique<Counter>()); });
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  return impl_->SeriesOf<Gauge>(name, help, Type::kGauge, labels,
                                [] { return Metric(std::make_unique<Gauge>()); });
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               std::vector<double> bounds) {
  return impl_->SeriesOf<Histogram>(name, help, Type::kHistogram, labels, [&bounds] {
    return Metric(std::make_unique<Histogram>(std::move(bounds)));
  });
}

std::string Registry::RenderPrometheus() const {
  std::string out;
  std::lock_guard lock(impl_->mu);
  for (const auto& [name, family] : impl_->families) {
    out += "# HELP " + name + ' ';
    AppendEscaped(out, family.help, false);
    out += "\n# TYPE " + name + ' ' + TypeName(family.type) + '\n';
    for (const auto& series : family.series) {
      if (const auto* counter = std::get_if<std::unique_ptr<Counter>>(&series.metric)) {
        AppendSample(out, name, series.labels, (*counter)->value());
      } else if (const auto* gauge = std::get_if<std::unique_ptr<Gauge>>(&series.metric)) {
        AppendSample(out, name, series.labels, (*gauge)->value());
      } else if (const auto* histogram = std::get_if<std::unique_ptr<Histogram>>(&series.metric)) {
        const Histogram& h = **histogram;
        // _count is the +Inf bucket's count, so the two agree while others record.
        std::vector<std::uint64_t> counts = h.cumulative_counts();
        const std::string bucket_name = name + "_bucket";
        for (std::size_t i = 0; i < h.bounds().size(); ++i) {
          std::string bound;
          AppendNumber(bound, h.bounds()[i]);
          std::pair<std::string, std::string> le{"le", bound};
          AppendSample(out, bucket_name, series.labels, static_cast<double>(counts[i]), &le);
        }
        std::pair<std::string, std::string> le{"le", "+Inf"};
        AppendSample(out, bucket_name, series.labels, static_cast<double>(counts.back()), &le);
        AppendSample(out, name + "_sum", series.labels, h.sum());
        AppendSample(out, name + "_count", series.labels, static_cast<double>(counts.back()));
      }
    }
  }
  return out;
}

}  // namespace stowage::observability
