// A small Prometheus metrics registry: families of counters, gauges and
// histograms, each with a fixed list of label names, and a renderer of the
// text exposition format 0.0.4 (docs/design/metrics.md).
//
// A family's children (one per combination of label values) are created on
// first use and live as long as the registry; a caller on a hot path looks
// its child up once and keeps the pointer. Updating a child is one or two
// relaxed atomic operations: no lock, no allocation. Looking a child up
// takes the family's mutex and allocates only when the child is new.
//
// Thread-safety: every method may be called from any thread. Families must
// be added before the registry is rendered from another thread (the daemon
// adds them all at start). Render takes each family's mutex only to list
// its children; the values are read from atomics, so a scrape never waits
// on a writer.
#ifndef WTD_METRICS_REGISTRY_H_
#define WTD_METRICS_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"

namespace wtd::metrics {

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending, without +Inf.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (= the count)
    double sum = 0;
  };
  // The count is the +Inf bucket, so a snapshot is always consistent in
  // itself: _count equals the last _bucket, and buckets never decrease.
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0};
};

// The bounds in seconds the daemon's histograms use (0.1 s .. 1 h for runs).
std::vector<double> RunDurationBuckets();
// 1 ms .. 10 s, for a poll tick or a synced store write.
std::vector<double> LatencyBuckets();

enum class Type { kCounter, kGauge, kHistogram };

// A family's label values as given to With: a view, compared with the
// stored values without copying them.
struct LabelValues {
  const std::string_view* data;
  size_t size;
};
struct LabelLess {
  using is_transparent = void;
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const;
  bool operator()(const std::vector<std::string>& a, const LabelValues& b) const;
  bool operator()(const LabelValues& a, const std::vector<std::string>& b) const;
};

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, Type type, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), type_(type), labels_(std::move(labels)) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  Type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return labels_; }
  // Appends this family's HELP, TYPE and sample lines to *out.
  virtual void Render(std::string* out) const = 0;

 protected:
  // `# HELP name help` and `# TYPE name type`.
  void RenderHeader(std::string* out) const;
  // `{a="x",b="y"}` of this family's label names with `values`, plus
  // `extra` (`le="0.5"`) last when given; "" when there are none.
  std::string LabelText(const std::vector<std::string>& values, std::string_view extra = {}) const;

 private:
  std::string name_, help_;
  Type type_;
  std::vector<std::string> labels_;
};

// The children of one family by label values. T: Counter, Gauge or
// Histogram.
template <typename T>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, Type type, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The child for `values`, one per label name, in order (created on first
  // use; never null). A wrong number of values gets the child whose
  // missing values are "" (extra ones are dropped): never a crash.
  T* With(std::initializer_list<std::string_view> values) EXCLUDES(mu_) {
    return WithValues(values.begin(), values.size());
  }
  T* WithValues(const std::string_view* values, size_t n) EXCLUDES(mu_);
  void Render(std::string* out) const override EXCLUDES(mu_);

 private:
  std::vector<double> bounds_;  // histograms
  mutable Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>, LabelLess> children_ GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  // Names must be valid metric names; label names valid label names. The
  // family lives as long as the registry.
  CounterFamily* AddCounter(std::string name, std::string help,
                            std::vector<std::string> labels = {}) EXCLUDES(mu_);
  GaugeFamily* AddGauge(std::string name, std::string help, std::vector<std::string> labels = {})
      EXCLUDES(mu_);
  HistogramFamily* AddHistogram(std::string name, std::string help, std::vector<double> bounds,
                                std::vector<std::string> labels = {}) EXCLUDES(mu_);
  // `fn` runs at the start of every Render, on the rendering thread: for a
  // gauge read from elsewhere at scrape time. It must be quick and must not
  // render.
  void AddCollectHook(std::function<void()> fn) EXCLUDES(mu_);

  // The whole registry in the text exposition format 0.0.4, families in
  // the order they were added, children in label order.
  std::string Render() const EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_ GUARDED_BY(mu_);
  std::vector<std::function<void()>> hooks_ GUARDED_BY(mu_);
};

// A label value escaped for the exposition format: \ as \\, " as \", a
// newline as \n.
std::string EscapeLabelValue(std::string_view v);
// HELP text escaped: \ as \\, a newline as \n.
std::string EscapeHelp(std::string_view v);
// A sample value: integers without a fraction, +Inf, -Inf, NaN, else the
// shortest text that reads back as the same double.
std::string FormatValue(double v);

// The content type of Render's text.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace wtd::metrics

#endif  // WTD_METRICS_REGISTRY_H_
