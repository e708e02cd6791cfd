// wtd_gc_bench: what retention costs (docs/design/benchmarks.md). N
// terminal runs with a log and a context file each are made in a fresh
// store, then collected in batches of 500 as the daemon's loop does; then a
// pass with nothing to collect (the steady state) and a new collector's
// first pass (a restart: the orphan sweep lists the run files). The store's
// clock is a fake one, so that "older than the retention" needs no wait.
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/paths.h"
#include "bench_header.h"
#include "fakes/fake_clock.h"
#include "retention/collector.h"
#include "runs/run_store.h"
#include "store/state_store.h"

namespace wtd {
namespace {

constexpr int64_t kDayMs = 86'400'000;

void Check(const Status& st, const std::string& what) {
  if (st.ok()) return;
  fprintf(stderr, "wtd_gc_bench: %s: %s\n", what.c_str(), st.ToString().c_str());
  exit(1);
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// `n` runs of fresh commits, made terminal (cancelled), each with a 1 KiB
// log and context file.
void MakeRuns(RunStore* runs, const std::string& state_dir, int n, int* seq) {
  for (int done = 0; done < n;) {
    std::vector<NewRun> batch;
    for (int i = 0; i < 500 && done + i < n; ++i) {
      NewRun r;
      std::string sha = std::to_string(++*seq);
      r.key = RunKey{"/bench/repo", "main", "build", std::string(40 - sha.size(), '0') + sha};
      r.branch = "main";
      r.worktree_path = "/bench/repo";
      batch.push_back(std::move(r));
    }
    Result<std::vector<Run>> made = runs->Enqueue(batch, std::nullopt);
    Check(made.status(), "enqueue");
    for (const Run& r : *made) {
      Check(runs->Cancel(r.id, RunState::kPending, "bench").status(), "cancel");
      for (const std::string& p : {RunLogPath(state_dir, r.id), RunContextPath(state_dir, r.id)}) {
        Check(WriteFileAtomic(p, std::string(1024, 'x')), p);
      }
    }
    done += static_cast<int>(made->size());
  }
}

// Batches of 500 until caught up; prints their count, median, max and total.
void Pass(const char* name, Collector* c, int64_t cutoff) {
  CollectReport report;
  std::vector<double> batch_ms;
  auto start = std::chrono::steady_clock::now();
  while (!report.caught_up) {
    auto t = std::chrono::steady_clock::now();
    Check(c->CollectBatch(cutoff, kCollectBatch, false, &report), name);
    batch_ms.push_back(Ms(std::chrono::steady_clock::now() - t));
  }
  double total = Ms(std::chrono::steady_clock::now() - start);
  printf(
      "  %-34s %6zu runs %6llu files %5zu batches  median %8.2f ms  max %8.2f ms  total %9.1f ms\n",
      name, report.runs.size(),
      static_cast<unsigned long long>(report.log_files + report.context_files), batch_ms.size(),
      Percentile(batch_ms, 0.5), Percentile(batch_ms, 1.0), total);
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* tmp = getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  int old_runs = 5000, kept_runs = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 < argc && a == "--dir") {
      base = argv[++i];
    } else if (i + 1 < argc && a == "--runs") {
      old_runs = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--runs N] [--dir BASE]\n  default: 5000 old runs, 1000 kept\n",
              argv[0]);
      return 2;
    }
  }
  if (old_runs < 1) return 2;
  std::string dir = base + "/wtd-gc-bench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) return 1;
  wtd::PrintBenchHeader("wtd_gc_bench", dir);
  wtd::FakeClock clock;
  {
    wtd::StoreOptions so;
    so.dir = dir + "/db";
    wtd::Result<std::unique_ptr<wtd::StateStore>> store = wtd::StateStore::Open(so);
    wtd::Check(store.status(), "open");
    wtd::RunStore runs(store->get(), &clock);
    wtd::Check(runs.Init(), "init");
    wtd::Check(wtd::MakeDirs(dir + "/logs/runs"), "logs");
    wtd::Check(wtd::MakeDirs(dir + "/runs"), "runs");
    int seq = 0;
    wtd::MakeRuns(&runs, dir, old_runs, &seq);
    clock.AdvanceMs(2 * wtd::kDayMs);
    wtd::MakeRuns(&runs, dir, kept_runs, &seq);  // newer than the cutoff: kept
    int64_t cutoff = clock.NowMs() - wtd::kDayMs;
    printf("runs:    %d older than the retention, %d newer; 1 KiB log + context file each\n\n",
           old_runs, kept_runs);
    wtd::Collector loop(&runs, dir, &clock);
    wtd::Pass("first pass (collects everything)", &loop, cutoff);
    wtd::Pass("next pass (nothing to collect)", &loop, cutoff);
    wtd::Collector restarted(&runs, dir, &clock);
    wtd::Pass("new collector (orphan sweep)", &restarted, cutoff);
  }
  wtd::Check(wtd::RemoveTree(dir), "remove " + dir);
  return 0;
}
