// wtd_store_bench: what durability costs in wtd's state store, each figure
// printed beside an anchor measured in the same run on the same directory
// (docs/design/benchmarks.md):
//   1. latency of one durable run transition vs fdatasync of a 100-byte
//      append to a plain file (the physical floor);
//   2. transitions/s from 1 and T threads vs bare synced RocksDB Puts;
//   3. recovery of A active runs with 0 vs H terminal runs in history.
// Not a test: it prints figures and checks nothing beyond errors.
//
//   wtd_store_bench [--dir BASE] [--n N] [--threads T] [--active A]
//                   [--history H] [--quick]
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <stdlib.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_header.h"
#include "fakes/fake_process_table.h"
#include "recovery/recovery.h"
#include "runs/run_store.h"
#include "settle.h"
#include "store/keys.h"
#include "store/records.h"
#include "store/state_store.h"

namespace wtd {
namespace {

using Micros = std::vector<double>;

struct BenchOptions {
  std::string base;  // parent of the scratch directory
  size_t n = 2000;
  size_t threads = 8;
  size_t active = 1000;
  size_t history = 1'000'000;
};

double NowUs() {
  using namespace std::chrono;
  return static_cast<double>(
      duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "wtd_store_bench: %s\n", what.c_str());
  exit(1);
}

template <typename T>
T Check(Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.status().ToString());
  return std::move(*r);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

double Percentile(Micros v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void PrintHeader(const std::string& dir, const BenchOptions& o) {
  PrintBenchHeader("wtd_store_bench", dir);
  printf("options: n=%zu threads=%zu active=%zu history=%zu\n\n", o.n, o.threads, o.active,
         o.history);
}

void PrintLatency(const char* name, const Micros& v, const Micros* anchor) {
  double p50 = Percentile(v, 0.5), p99 = Percentile(v, 0.99);
  printf("  %-36s p50 %8.0f us  p99 %8.0f us", name, p50, p99);
  if (anchor) {
    printf("   x%.2f / x%.2f", p50 / Percentile(*anchor, 0.5), p99 / Percentile(*anchor, 0.99));
  }
  printf("\n");
}

// ---- 1. latency -----------------------------------------------------------

std::unique_ptr<rocksdb::DB> OpenBare(const std::string& dir) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &db);
  if (!s.ok()) Die("open " + dir + ": " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(db);
}

// Synced 100-byte Puts from `threads` threads, `per_thread` each; returns
// every Put's latency.
Micros BarePuts(rocksdb::DB* db, size_t threads, size_t per_thread) {
  std::vector<Micros> lat(threads);
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      std::string value(100, 'v');
      for (size_t i = 0; i < per_thread; ++i) {
        char key[48];
        snprintf(key, sizeof key, "t%zu-%zu", t, i);
        double t0 = NowUs();
        if (!db->Put(wo, key, value).ok()) Die("bare put");
        lat[t].push_back(NowUs() - t0);
      }
    });
  }
  for (std::thread& th : pool) th.join();
  Micros all;
  for (const Micros& m : lat) all.insert(all.end(), m.begin(), m.end());
  return all;
}

struct StoreHandle {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<RunStore> runs;
};

StoreHandle OpenRuns(const std::string& dir) {
  StoreHandle h;
  StoreOptions so;
  so.dir = dir;
  h.store = Check(StateStore::Open(so), "open state store");
  h.runs = std::make_unique<RunStore>(h.store.get(), SystemClock());
  Check(h.runs->Init(), "run store init");
  return h;
}

// Transition `k` (0 enqueue, 1 lease, 2 mark ready, 3 mark running,
// 4 finish) of run `id`, one step of a run's life; returns the run's id.
uint64_t Step(RunStore* runs, int k, uint64_t id, const std::string& job, size_t i) {
  switch (k) {
    case 0: {
      NewRun n;
      n.key = RunKey{"/bench/repo", "main", job, std::to_string(i)};
      n.branch = "main";
      n.worktree_path = "/bench/repo";
      return Check(runs->Enqueue({n}, std::nullopt), "enqueue").at(0).id;
    }
    case 1:
      return Check(runs->Lease(id), "lease").id;
    case 2:
      return Check(runs->MarkReady(id, RunState::kLeased), "ready").id;
    case 3:
      return Check(runs->MarkRunning(id, ProcessIdentity{4242, 1, "boot"}, 1, "/bench/log"),
                   "running")
          .id;
    default: {
      AttemptOutcome ok;
      ok.exit_code = 0;
      return Check(runs->Finish(id, ok), "finish").id;
    }
  }
}

// One plain-file append + fdatasync.
void AppendSync(int fd) {
  static const std::string kRecord(100, 'x');
  if (write(fd, kRecord.data(), kRecord.size()) != 100 || fdatasync(fd) != 0) Die("append");
}

// The floor, a bare synced Put and a transition, interleaved one of each per
// round so that all three see the same disk (other load on a shared machine
// moves them together).
void BenchLatency(const std::string& dir, const BenchOptions& o) {
  printf("[1] latency of one durable write (N=%zu each, interleaved); ratios p50 / p99 vs floor\n",
         o.n);
  std::string path = dir + "/floor.log";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) Die("open " + path);
  auto db = OpenBare(dir + "/bare-latency");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  StoreHandle h = OpenRuns(dir + "/latency");
  Micros floor, bare, lat[5];
  const std::string value(100, 'v');
  uint64_t id = 0;
  for (size_t i = 0; i < o.n; ++i) {
    double t0 = NowUs();
    AppendSync(fd);
    double t1 = NowUs();
    if (!db->Put(wo, std::to_string(i), value).ok()) Die("bare put");
    double t2 = NowUs();
    id = Step(h.runs.get(), static_cast<int>(i % 5), id, "latency", i / 5);
    double t3 = NowUs();
    floor.push_back(t1 - t0);
    bare.push_back(t2 - t1);
    lat[i % 5].push_back(t3 - t2);
  }
  close(fd);
  Micros all;
  for (const Micros& m : lat) all.insert(all.end(), m.begin(), m.end());
  PrintLatency("fdatasync of 100 B append (floor)", floor, nullptr);
  PrintLatency("bare RocksDB Put, sync=true", bare, &floor);
  PrintLatency("RunStore transition (all five)", all, &floor);
  const char* names[5] = {"  enqueue (-> pending)", "  lease", "  mark ready", "  mark running",
                          "  finish (-> succeeded)"};
  for (int k = 0; k < 5; ++k) PrintLatency(names[k], lat[k], &floor);
  printf("\n");
}

// ---- 2. throughput --------------------------------------------------------

// Transitions/s of `threads` threads, each taking its own runs through
// their lives. With `pre_enqueue`, every run is enqueued (in one batch per
// thread) before the clock starts and only lease..finish are counted, which
// leaves out Enqueue's store-wide lock.
double StoreThroughput(const std::string& dir, size_t threads, size_t total, bool pre_enqueue) {
  StoreHandle h = OpenRuns(dir);
  int first = pre_enqueue ? 1 : 0;
  size_t lives = std::max<size_t>(1, total / static_cast<size_t>(5 - first) / threads);
  std::vector<std::vector<uint64_t>> ids(threads);
  for (size_t t = 0; t < threads && pre_enqueue; ++t) {
    std::vector<NewRun> batch(lives);
    for (size_t i = 0; i < lives; ++i) {
      batch[i].key = RunKey{"/bench/repo", "main", "tput-" + std::to_string(t), std::to_string(i)};
    }
    for (const Run& r : Check(h.runs->Enqueue(batch, std::nullopt), "enqueue")) {
      ids[t].push_back(r.id);
    }
  }
  std::vector<std::thread> pool;
  double t0 = NowUs();
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::string job = "tput-" + std::to_string(t);
      for (size_t i = 0; i < lives; ++i) {
        uint64_t id = pre_enqueue ? ids[t][i] : 0;
        for (int k = first; k < 5; ++k) id = Step(h.runs.get(), k, id, job, i);
      }
    });
  }
  for (std::thread& th : pool) th.join();
  return static_cast<double>(lives * static_cast<size_t>(5 - first) * threads) /
         ((NowUs() - t0) / 1e6);
}

double BareThroughput(const std::string& dir, size_t threads, size_t total) {
  auto db = OpenBare(dir);
  size_t per = std::max<size_t>(1, total / threads);
  double t0 = NowUs();
  BarePuts(db.get(), threads, per);
  return static_cast<double>(per * threads) / ((NowUs() - t0) / 1e6);
}

// Bare Puts and transitions alternate over three rounds, each in a fresh
// database; the medians are compared.
// Bare Puts and transitions alternate over three rounds, each in a fresh
// database; the medians are compared.
void BenchThroughput(const std::string& dir, const BenchOptions& o) {
  printf(
      "[2] throughput (%zu writes per row, median of 3 alternating rounds);\n"
      "    ratio = transitions/s over bare synced Puts/s\n",
      o.n);
  for (size_t threads : {size_t{1}, o.threads}) {
    Micros bare, store, no_enqueue;
    for (int round = 0; round < 3; ++round) {
      std::string tag = std::to_string(threads) + "-" + std::to_string(round);
      bare.push_back(BareThroughput(dir + "/bare-" + tag, threads, o.n));
      store.push_back(StoreThroughput(dir + "/tput-" + tag, threads, o.n, false));
      no_enqueue.push_back(StoreThroughput(dir + "/tput-pre-" + tag, threads, o.n, true));
    }
    double b = Percentile(bare, 0.5), s = Percentile(store, 0.5), p = Percentile(no_enqueue, 0.5);
    printf(
        "  %2zu thread(s): bare synced Put %7.0f/s   transitions %7.0f/s x%.2f"
        "   lease..finish only %7.0f/s x%.2f\n",
        threads, b, s, s / b, p, p / b);
  }
  printf("\n");
}

// ---- 3. recovery ----------------------------------------------------------

Run BenchRun(uint64_t id, RunState state) {
  Run r;
  r.id = id;
  char sha[41];
  snprintf(sha, sizeof sha, "%040llu", static_cast<unsigned long long>(id));
  r.key = RunKey{"/home/dev/repo", "main", "job-" + std::to_string(id % 16), sha};
  r.branch = "main";
  r.worktree_path = "/home/dev/repo";
  r.state = state;
  r.attempt = 1;
  r.max_attempts = 3;
  r.created_at_ms = r.updated_at_ms = r.started_at_ms = 1700000000000 + static_cast<int64_t>(id);
  r.pid = static_cast<int32_t>(100000 + id % 100000);
  r.pid_start_time = 1;
  r.boot_id = "boot-A";
  r.incarnation = 1;
  r.log_path = "/var/lib/wtd/logs/" + std::to_string(id) + "/1.log";
  if (IsTerminal(state)) {
    r.finished_at_ms = r.started_at_ms + 5000;
    r.exit_code = 0;
    r.duration_ms = 5000;
  }
  return r;
}

// Writes runs [first, first+count) in `state` straight through the store's
// batch API, about 10,000 runs per synced batch: record, key, one event, and
// `active` membership for non-terminal runs.
void Populate(StateStore* store, uint64_t first, size_t count, RunState state) {
  WriteBatch b;
  for (uint64_t id = first; id < first + count; ++id) {
    Run r = BenchRun(id, state);
    std::string key = EncodeU64Key(id);
    b.Put(Family::kRuns, key, EncodeRun(r));
    b.Put(Family::kRunKeys, EncodeRunKey(r.key), key);
    b.Put(Family::kEvents, key, EncodeEvent(Event{id, RunState::kRunning, state, 1, 0}));
    if (!IsTerminal(state)) b.Put(Family::kActive, key, "");
    if (b.size() >= 30000) {
      Check(store->Commit(b), "populate");
      b.Clear();
    }
  }
  if (!b.empty()) Check(store->Commit(b), "populate");
}

void Settle(const std::string& dir) {
  std::string error = SettleStore(dir);
  if (!error.empty()) Die(error);
}

struct RecoveryFigures {
  double open_us = 0;
  double first_pass_us = 0;  // every active run running, its process gone
  double scan_pass_us = 0;   // median of later passes: nothing left to do
};

RecoveryFigures MeasureRecovery(const std::string& dir, const BenchOptions& o, size_t history) {
  {
    StoreOptions so;
    so.dir = dir;
    auto store = Check(StateStore::Open(so), "open state store");
    double t0 = NowUs();
    Populate(store.get(), 1, history, RunState::kSucceeded);
    Populate(store.get(), history + 1, o.active, RunState::kRunning);
    if (history > 0)
      printf("  (history of %zu written in %.1f s)\n", history, (NowUs() - t0) / 1e6);
  }
  Settle(dir);
  RecoveryFigures f;
  double t0 = NowUs();
  StoreHandle h = OpenRuns(dir);
  f.open_us = NowUs() - t0;
  FakeProcessTable processes;  // no process alive: every run's is gone
  auto pass = [&](size_t expect_actions) {
    double start = NowUs();
    RecoveryReport rep =
        Check(RunRecovery(h.runs.get(), &processes, SystemClock(), {}, h.store->incarnation()),
              "recovery");
    double took = NowUs() - start;
    if (rep.active_scanned != o.active || rep.actions.size() != expect_actions ||
        !rep.errors.empty()) {
      Die("recovery did not do what the bench set up");
    }
    return took;
  };
  f.first_pass_us = pass(o.active);
  Micros scans;
  for (int i = 0; i < 5; ++i) scans.push_back(pass(0));
  f.scan_pass_us = Percentile(scans, 0.5);
  return f;
}

void BenchRecovery(const std::string& dir, const BenchOptions& o) {
  printf("[3] recovery with %zu active runs: 0 vs %zu terminal runs in history\n", o.active,
         o.history);
  RecoveryFigures none = MeasureRecovery(dir + "/recovery-0", o, 0);
  RecoveryFigures full = MeasureRecovery(dir + "/recovery-h", o, o.history);
  auto row = [](const char* name, double a, double b) {
    printf("  %-44s %10.1f ms  %10.1f ms   x%.2f\n", name, a / 1e3, b / 1e3, b / a);
  };
  printf("  %-44s %13s  %13s\n", "", "0 history", "with history");
  row("store open (RunStore::Init included)", none.open_us, full.open_us);
  row("recovery pass: all running, processes gone", none.first_pass_us, full.first_pass_us);
  row("recovery pass: nothing to do (scan, median)", none.scan_pass_us, full.scan_pass_us);
  row("restart to recovered (open + first pass)", none.open_us + none.first_pass_us,
      full.open_us + full.first_pass_us);
  printf("\n");
}

bool ParseArgs(int argc, char** argv, BenchOptions* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto number = [&]() { return static_cast<size_t>(strtoull(value().c_str(), nullptr, 10)); };
    if (a == "--dir") {
      o->base = value();
    } else if (a == "--n") {
      o->n = number();
    } else if (a == "--threads") {
      o->threads = number();
    } else if (a == "--active") {
      o->active = number();
    } else if (a == "--history") {
      o->history = number();
    } else if (a == "--quick") {
      o->n = 200;
      o->active = 100;
      o->history = 20000;
    } else {
      return false;
    }
  }
  return o->n > 0 && o->threads > 0 && o->active > 0;
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // each figure as soon as it is measured
  wtd::BenchOptions o;
  const char* tmp = getenv("TMPDIR");
  o.base = tmp && *tmp ? tmp : "/tmp";
  if (!wtd::ParseArgs(argc, argv, &o)) {
    fprintf(stderr,
            "usage: %s [--dir BASE] [--n N] [--threads T] [--active A] [--history H] "
            "[--quick]\n",
            argv[0]);
    return 2;
  }
  std::string tmpl = o.base + "/wtd-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) wtd::Die("cannot make a directory under " + o.base);
  wtd::PrintHeader(tmpl, o);
  wtd::BenchLatency(tmpl, o);
  wtd::BenchThroughput(tmpl, o);
  wtd::BenchRecovery(tmpl, o);
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return 0;
}
