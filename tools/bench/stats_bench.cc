// wtd_stats_bench: what `wtctl stats` costs as history grows
// (docs/design/benchmarks.md). For each N, a store is filled with N terminal
// runs spread over J jobs and 30 days, with the hourly RunStats records the
// transitions would have written (the same AddRunToStats, folded in memory
// and written with the runs in large batches, then compacted: the fill is
// not timed and does not go through RunStore's one-batch-per-transition
// path). Then, on the same store:
//   stats 24h / 7d   the `stats` command's handler, as wtd serves it
//   full scan 24h    RunStore::List with limit 0 (every run), computing the
//                    same per-job figures for the 24h window (exact
//                    percentiles from sorted durations)
// and the ratio of each N's figures to the smallest N's. Not a test:
// it prints figures and checks nothing beyond errors and that both ways
// count the same runs.
//
//   wtd_stats_bench [--n N[,N...]] [--jobs J] [--reps R] [--scan-max N] [--dir BASE]
#include <rocksdb/db.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_header.h"
#include "commands/command.h"
#include "fakes/fake_clock.h"
#include "runs/run_stats.h"
#include "settle.h"
#include "store/keys.h"

namespace wtd {
namespace {

RunFilter AllRuns() {
  RunFilter f;
  f.limit = 0;
  return f;
}

constexpr int64_t kDayMs = 24 * kHourMs;
constexpr int64_t kSpanMs = 30 * kDayMs;
// 2026-12-01T00:00:00Z: the end of the filled span, and the bench's "now".
constexpr int64_t kNow = 1'796'083'200'000;

struct BenchOptions {
  std::string base;
  std::vector<size_t> sizes = {1'000, 1'000'000};
  size_t jobs = 4;
  int reps = 50;
  // No full scan above this N (it holds every run in memory at once).
  size_t scan_max = 1'000'000;
};

double NowMs() {
  using namespace std::chrono;
  return static_cast<double>(
             duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count()) /
         1e6;
}

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "wtd_stats_bench: %s\n", what.c_str());
  exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Run `id` of `n`, ending at an even spread over the 30 days before kNow.
Run BenchRun(uint64_t id, size_t n, size_t jobs, std::mt19937_64& rng) {
  Run r;
  r.id = id;
  std::string sha(40, '0');
  std::string digits = std::to_string(id);
  sha.replace(40 - digits.size(), digits.size(), digits);
  r.key = RunKey{"/srv/repo", "main", "job" + std::to_string(id % jobs), sha};
  r.branch = "main";
  r.worktree_path = "/srv/repo";
  r.max_attempts = 2;
  r.command = "make test";
  r.finished_at_ms = kNow - kSpanMs + static_cast<int64_t>((id - 1) * (kSpanMs / n));
  int roll = static_cast<int>(rng() % 100);
  r.state = roll < 85   ? RunState::kSucceeded
            : roll < 95 ? RunState::kFailed
            : roll < 97 ? RunState::kTimedOut
            : roll < 99 ? RunState::kCancelled
                        : RunState::kSkipped;
  if (r.state != RunState::kCancelled) {
    r.attempt = 1 + static_cast<uint32_t>(rng() % 2);
    std::uniform_real_distribution<double> exp10(1.0, 6.0);
    r.duration_ms = static_cast<int64_t>(std::pow(10.0, exp10(rng)));
    r.started_at_ms = r.finished_at_ms - r.duration_ms;
    r.exit_code = r.state == RunState::kSucceeded ? 0 : 1;
  }
  r.created_at_ms = r.updated_at_ms = r.finished_at_ms - 1000;
  r.updated_at_ms = r.finished_at_ms;
  r.log_path = "/var/lib/wtd/logs/" + std::to_string(id) + "/1.log";
  return r;
}

void Fill(StateStore* store, size_t n, size_t jobs) {
  std::mt19937_64 rng(n);
  std::map<std::string, RunStats> stats;
  WriteBatch b;
  for (uint64_t id = 1; id <= n; ++id) {
    Run r = BenchRun(id, n, jobs, rng);
    std::string key = EncodeU64Key(id);
    b.Put(Family::kRuns, key, EncodeRun(r));
    b.Put(Family::kRunKeys, EncodeRunKey(r.key), key);
    AddRunToStats(
        stats[RunStatsKey(HourOf(r.finished_at_ms), r.key.repo, r.key.worktree, r.key.job)], r);
    if (b.size() >= 30000) {
      Check(store->Commit(b), "fill");
      b.Clear();
    }
  }
  for (const auto& [key, s] : stats) b.Put(Family::kMeta, key, EncodeRunStats(s));
  Check(store->Commit(b), "fill");
  printf("  %zu hourly records\n", stats.size());
}

// The same figures as `stats` for runs ending in hours >= since, by a scan
// of every run; returns the number of runs counted.
uint64_t FullScan(RunStore* runs, int64_t since) {
  Result<std::vector<Run>> all = runs->List(AllRuns());
  Check(all.status(), "full scan");
  struct Figures {
    uint64_t counts[kRunStateCount] = {};
    uint64_t attempts = 0;
    std::vector<int64_t> durations;
    std::vector<std::pair<int64_t, uint64_t>> failures;
  };
  std::map<std::string, Figures> jobs;
  uint64_t counted = 0;
  for (const Run& r : *all) {
    if (!IsTerminal(r.state) || HourOf(r.finished_at_ms) < since) continue;
    Figures& f = jobs[r.key.job];
    ++f.counts[static_cast<int>(r.state)];
    f.attempts += r.attempt;
    if (r.started_at_ms > 0) f.durations.push_back(r.duration_ms);
    if (r.state == RunState::kFailed || r.state == RunState::kTimedOut) {
      f.failures.emplace_back(r.finished_at_ms, r.id);
    }
    ++counted;
  }
  volatile int64_t sink = 0;
  for (auto& [job, f] : jobs) {
    std::sort(f.durations.begin(), f.durations.end());
    std::sort(f.failures.rbegin(), f.failures.rend());
    if (!f.durations.empty()) {
      for (double q : {0.5, 0.95, 0.99}) {
        sink = sink + f.durations[static_cast<size_t>(q * (f.durations.size() - 1))];
      }
    }
  }
  return counted;
}

void Settle(const std::string& dir) {
  std::string error = SettleStore(dir);
  if (!error.empty()) Die(error);
}

struct Figures {
  size_t n = 0;
  double stats_24h_ms = 0, stats_7d_ms = 0, scan_ms = 0;
};

Figures Measure(const std::string& dir, size_t n, const BenchOptions& o) {
  printf("N = %zu terminal runs, %zu jobs, over 30 days\n", n, o.jobs);
  StoreOptions so;
  so.dir = dir;
  double t0 = NowMs();
  {
    auto filling = StateStore::Open(so);
    Check(filling.status(), "open");
    Fill(filling->get(), n, o.jobs);
  }
  Settle(dir);
  printf("  filled and compacted in %.1f s (not timed below)\n", (NowMs() - t0) / 1000);
  auto store = StateStore::Open(so);
  Check(store.status(), "open");
  FakeClock clock(kNow);
  RunStore runs(store->get(), &clock);
  Check(runs.Init(), "init");
  CommandContext ctx;
  ctx.runs = &runs;
  const CommandDef* stats = FindCommand("stats");
  if (stats == nullptr) Die("no stats command");
  Figures f;
  f.n = n;
  for (const char* since : {"24h", "7d"}) {
    std::vector<double> times;
    json last;
    for (int i = 0; i < o.reps; ++i) {
      double start = NowMs();
      Result<json> r = stats->handle(ctx, json{{"since", since}});
      times.push_back(NowMs() - start);
      Check(r.status(), "stats");
      last = std::move(*r);
    }
    // The fastest call: the machine is shared, and the slower calls measure
    // the neighbours more than the handler.
    double best = *std::min_element(times.begin(), times.end());
    (std::string(since) == "24h" ? f.stats_24h_ms : f.stats_7d_ms) = best;
    printf(
        "  stats --since %-4s  fastest %9.3f ms, median %9.3f ms of %d calls (%s runs in the "
        "window)\n",
        since, best, Median(times), o.reps, last["overall"]["runs"].dump().c_str());
    if (std::string(since) == "24h" && n <= o.scan_max) {
      uint64_t counted = FullScan(&runs, *ParseSince("24h", kNow));
      if (counted != last["overall"]["runs"].get<uint64_t>()) {
        Die("the full scan counts " + std::to_string(counted) + " runs, stats " +
            last["overall"]["runs"].dump());
      }
    }
  }
  if (n > o.scan_max) {
    printf("  full scan skipped (N > --scan-max %zu)\n\n", o.scan_max);
    return f;
  }
  int scan_reps = n > 100'000 ? 3 : o.reps;
  std::vector<double> times;
  for (int i = 0; i < scan_reps; ++i) {
    double start = NowMs();
    FullScan(&runs, *ParseSince("24h", kNow));
    times.push_back(NowMs() - start);
  }
  f.scan_ms = *std::min_element(times.begin(), times.end());
  printf("  full scan (24h)     fastest %9.3f ms, median %9.3f ms of %d scans\n\n", f.scan_ms,
         Median(times), scan_reps);
  return f;
}

bool ParseArgs(int argc, char** argv, BenchOptions* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    if (a == "--n") {
      o->sizes.clear();
      size_t pos = 0;
      while (pos <= v.size()) {
        size_t comma = v.find(',', pos);
        if (comma == std::string::npos) comma = v.size();
        o->sizes.push_back(std::strtoull(v.substr(pos, comma - pos).c_str(), nullptr, 10));
        if (o->sizes.back() == 0) return false;
        pos = comma + 1;
      }
    } else if (a == "--jobs") {
      o->jobs = std::strtoull(v.c_str(), nullptr, 10);
      if (o->jobs == 0) return false;
    } else if (a == "--reps") {
      o->reps = std::atoi(v.c_str());
      if (o->reps < 1) return false;
    } else if (a == "--scan-max") {
      o->scan_max = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--dir") {
      o->base = v;
    } else {
      return false;
    }
  }
  return !o->sizes.empty();
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  wtd::BenchOptions o;
  const char* tmp = getenv("TMPDIR");
  o.base = tmp && *tmp ? tmp : "/tmp";
  if (!wtd::ParseArgs(argc, argv, &o)) {
    fprintf(stderr, "usage: %s [--n N[,N...]] [--jobs J] [--reps R] [--scan-max N] [--dir BASE]\n",
            argv[0]);
    return 2;
  }
  std::string tmpl = o.base + "/wtd-stats-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) wtd::Die("cannot make a directory under " + o.base);
  wtd::PrintBenchHeader("wtd_stats_bench", tmpl);
  std::vector<wtd::Figures> figures;
  for (size_t i = 0; i < o.sizes.size(); ++i) {
    std::string dir = tmpl + "/n" + std::to_string(o.sizes[i]);
    figures.push_back(wtd::Measure(dir, o.sizes[i], o));
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  // Each N against the smallest: stats reads the window's hourly records,
  // whose number stops growing once every (job, hour) has runs; the full
  // scan reads every run.
  const wtd::Figures& small = figures.front();
  printf("fastest time of each N / that of N = %zu:\n", small.n);
  printf("%12s  %14s  %14s  %14s\n", "N", "stats 24h", "stats 7d", "full scan");
  for (const wtd::Figures& f : figures) {
    std::string scan = "-";
    if (f.scan_ms > 0) {
      char buf[32];
      snprintf(buf, sizeof buf, "%.1fx", f.scan_ms / small.scan_ms);
      scan = buf;
    }
    printf("%12zu  %13.2fx  %13.2fx  %14s\n", f.n, f.stats_24h_ms / small.stats_24h_ms,
           f.stats_7d_ms / small.stats_7d_ms, scan.c_str());
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return 0;
}
