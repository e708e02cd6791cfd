// The metrics registry and its text renderer: the exact exposition text of a
// small registry (HELP/TYPE, label escaping, cumulative histogram buckets),
// children found again by their labels, and counts exact under concurrency.
#include "metrics/registry.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace wtd::metrics {
namespace {

TEST(RegistryTest, RendersExactTextWithEscapingAndCumulativeBuckets) {
  Registry r;
  CounterFamily* requests =
      r.AddCounter("t_requests_total", "Requests served.\nBy path \\ code.", {"path", "code"});
  requests->With({"/a\"b\\c\nd", "200"})->Inc(3);
  requests->With({"/", "404"})->Inc();
  r.AddGauge("t_temperature", "A gauge without labels.")->With({})->Set(-5);
  // Bounds given out of order are sorted.
  HistogramFamily* latency =
      r.AddHistogram("t_latency_seconds", "Latency.", {1, 0.1, 0.5}, {"job"});
  Histogram* x = latency->With({"x"});
  x->Observe(0.5);   // on a bound: counted in le="0.5"
  x->Observe(0.75);  // le="1"
  x->Observe(4);     // only +Inf
  EXPECT_EQ(r.Render(),
            "# HELP t_requests_total Requests served.\\nBy path \\\\ code.\n"
            "# TYPE t_requests_total counter\n"
            "t_requests_total{path=\"/\",code=\"404\"} 1\n"
            "t_requests_total{path=\"/a\\\"b\\\\c\\nd\",code=\"200\"} 3\n"
            "# HELP t_temperature A gauge without labels.\n"
            "# TYPE t_temperature gauge\n"
            "t_temperature -5\n"
            "# HELP t_latency_seconds Latency.\n"
            "# TYPE t_latency_seconds histogram\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"0.1\"} 0\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"0.5\"} 1\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"1\"} 2\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"+Inf\"} 3\n"
            "t_latency_seconds_sum{job=\"x\"} 5.25\n"
            "t_latency_seconds_count{job=\"x\"} 3\n");
}

TEST(RegistryTest, AFamilyWithoutChildrenRendersItsHeaderOnly) {
  Registry r;
  r.AddHistogram("t_h", "H.", {1}, {"job"});
  EXPECT_EQ(r.Render(), "# HELP t_h H.\n# TYPE t_h histogram\n");
}

TEST(RegistryTest, TheSameLabelsFindTheSameChild) {
  Registry r;
  CounterFamily* f = r.AddCounter("t_total", "T.", {"a", "b"});
  Counter* one = f->With({"x", "y"});
  std::string a = "x", b = "y";  // other storage, same values
  EXPECT_EQ(f->With({a, b}), one);
  EXPECT_NE(f->With({"x", "z"}), one);
  EXPECT_NE(f->With({"xy", ""}), one) << "values are not concatenated";
  // A wrong number of values is padded, never a crash.
  f->With({"only"})->Inc();
  EXPECT_NE(r.Render().find("t_total{a=\"only\",b=\"\"} 1\n"), std::string::npos) << r.Render();
}

TEST(RegistryTest, CollectHooksRunBeforeEachRender) {
  Registry r;
  Gauge* g = r.AddGauge("t_g", "G.")->With({});
  int calls = 0;
  r.AddCollectHook([&] { g->Set(++calls * 10); });
  EXPECT_NE(r.Render().find("t_g 10\n"), std::string::npos);
  EXPECT_NE(r.Render().find("t_g 20\n"), std::string::npos);
}

TEST(RegistryTest, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  CounterFamily* f = r.AddCounter("t_total", "T.", {"job"});
  Histogram* h = r.AddHistogram("t_seconds", "S.", {1})->With({});
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* mine = f->With({t % 2 ? "odd" : "even"});
      for (int i = 0; i < kEach; ++i) {
        mine->Inc();
        h->Observe(0.5);
        if (i % 1000 == 0) r.Render();  // a scrape meanwhile
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(f->With({"odd"})->value() + f->With({"even"})->value(), uint64_t{kThreads} * kEach);
  Histogram::Snapshot s = h->Read();
  EXPECT_EQ(s.cumulative.back(), uint64_t{kThreads} * kEach);
  EXPECT_EQ(s.sum, 0.5 * kThreads * kEach);
}

TEST(RegistryTest, ValuesAndEscapes) {
  EXPECT_EQ(FormatValue(1), "1");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(3600), "3600");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(EscapeHelp("a\"b\\c\nd"), "a\"b\\\\c\\nd") << "a quote stays in HELP";
}

}  // namespace
}  // namespace wtd::metrics
