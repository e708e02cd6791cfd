#include "metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace wtd::metrics {
namespace {

template <typename A, typename B>
bool Less(const A* a, size_t na, const B* b, size_t nb) {
  return std::lexicographical_compare(a, a + na, b, b + nb, [](const auto& x, const auto& y) {
    return std::string_view(x) < std::string_view(y);
  });
}

}  // namespace

bool LabelLess::operator()(const std::vector<std::string>& a,
                           const std::vector<std::string>& b) const {
  return a < b;
}
bool LabelLess::operator()(const std::vector<std::string>& a, const LabelValues& b) const {
  return Less(a.data(), a.size(), b.data, b.size);
}
bool LabelLess::operator()(const LabelValues& a, const std::vector<std::string>& b) const {
  return Less(a.data, a.size, b.data(), b.size());
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // The first bucket whose bound is >= v (le: less than or equal).
  size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> RunDurationBuckets() {
  return {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600};
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

void FamilyBase::RenderHeader(std::string* out) const {
  static constexpr std::string_view kTypes[] = {"counter", "gauge", "histogram"};
  *out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  *out += "# TYPE " + name_ + " ";
  *out += kTypes[static_cast<int>(type_)];
  *out += "\n";
}

std::string FamilyBase::LabelText(const std::vector<std::string>& values,
                                  std::string_view extra) const {
  if (labels_.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (i > 0) out += ",";
    out += labels_[i] + "=\"" + EscapeLabelValue(i < values.size() ? values[i] : "") + "\"";
  }
  if (!extra.empty()) {
    if (!labels_.empty()) out += ",";
    out += extra;
  }
  out += "}";
  return out;
}

template <typename T>
T* Family<T>::WithValues(const std::string_view* values, size_t n) {
  // Exactly one value per label name: pad or cut (never a crash).
  std::string_view fixed[8];
  size_t want = label_names().size();
  if (n != want && want <= 8) {
    for (size_t i = 0; i < want; ++i) fixed[i] = i < n ? values[i] : std::string_view();
    values = fixed;
    n = want;
  }
  MutexLock l(&mu_);
  auto it = children_.find(LabelValues{values, n});
  if (it != children_.end()) return it->second.get();
  std::vector<std::string> key(values, values + n);
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>) {
    child = std::make_unique<Histogram>(bounds_);
  } else {
    child = std::make_unique<T>();
  }
  T* raw = child.get();
  children_.emplace(std::move(key), std::move(child));
  return raw;
}

template <typename T>
void Family<T>::Render(std::string* out) const {
  RenderHeader(out);
  std::vector<std::pair<std::vector<std::string>, const T*>> children;
  {
    MutexLock l(&mu_);
    for (const auto& [values, child] : children_) children.emplace_back(values, child.get());
  }
  for (const auto& [values, child] : children) {
    if constexpr (std::is_same_v<T, Histogram>) {
      Histogram::Snapshot s = child->Read();
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        std::string le = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
        *out += name() + "_bucket" + LabelText(values, "le=\"" + le + "\"") + " " +
                std::to_string(s.cumulative[i]) + "\n";
      }
      *out += name() + "_sum" + LabelText(values) + " " + FormatValue(s.sum) + "\n";
      *out +=
          name() + "_count" + LabelText(values) + " " + std::to_string(s.cumulative.back()) + "\n";
    } else {
      *out += name() + LabelText(values) + " " + std::to_string(child->value()) + "\n";
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

CounterFamily* Registry::AddCounter(std::string name, std::string help,
                                    std::vector<std::string> labels) {
  auto f = std::make_unique<CounterFamily>(std::move(name), std::move(help), Type::kCounter,
                                           std::move(labels));
  CounterFamily* raw = f.get();
  MutexLock l(&mu_);
  families_.push_back(std::move(f));
  return raw;
}

GaugeFamily* Registry::AddGauge(std::string name, std::string help,
                                std::vector<std::string> labels) {
  auto f = std::make_unique<GaugeFamily>(std::move(name), std::move(help), Type::kGauge,
                                         std::move(labels));
  GaugeFamily* raw = f.get();
  MutexLock l(&mu_);
  families_.push_back(std::move(f));
  return raw;
}

HistogramFamily* Registry::AddHistogram(std::string name, std::string help,
                                        std::vector<double> bounds,
                                        std::vector<std::string> labels) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  auto f = std::make_unique<HistogramFamily>(std::move(name), std::move(help), Type::kHistogram,
                                             std::move(labels), std::move(bounds));
  HistogramFamily* raw = f.get();
  MutexLock l(&mu_);
  families_.push_back(std::move(f));
  return raw;
}

void Registry::AddCollectHook(std::function<void()> fn) {
  MutexLock l(&mu_);
  hooks_.push_back(std::move(fn));
}

std::string Registry::Render() const {
  std::vector<const FamilyBase*> families;
  std::vector<std::function<void()>> hooks;
  {
    MutexLock l(&mu_);
    for (const auto& f : families_) families.push_back(f.get());
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();
  std::string out;
  for (const FamilyBase* f : families) f->Render(&out);
  return out;
}

}  // namespace wtd::metrics
