// wtd_daemon_bench: figures for the daemon's loop, each beside its anchor
// measured in the same run (docs/design/benchmarks.md):
//   1. one poll tick with no new commits over 1, 10, 100 worktrees (the
//      in-process Poller) vs the shell poller's check (`git worktree list
//      --porcelain` + `git rev-parse HEAD` per worktree);
//   2. commit-to-spawn latency p50/p95 of the real wtd at --poll-ms 100
//      without inotify, and with the inotify wake (--poll-ms 1500);
//   3. the end-to-end cost per run of the real wtd with --locks on against
//      --locks off;
//   4. idle CPU of wtd watching 100 worktrees, and its RSS.
// Not a test: it prints numbers. Usage:
//   wtd_daemon_bench [--wtd PATH] [--idle-seconds N] [--commits N] [--quick]
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "fakes/temp_dir.h"
#include "git/file_stamp.h"
#include "runs/run_store.h"
#include "scheduler/poller.h"
#include "store/state_store.h"

namespace wtd {
namespace {

using Clk = std::chrono::steady_clock;

double Us(Clk::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

void Sh(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "command failed: %s\n", cmd.c_str());
    std::exit(1);
  }
}

std::string Git(const std::string& repo) {
  return "git -C '" + repo +
         "' -c user.name=bench -c user.email=bench@example.com -c advice.detachedHead=false ";
}

// A repository with `n` worktrees (main + n-1 linked), one job file.
void MakeRepo(const std::string& repo, int n) {
  Sh("git init -q -b main '" + repo + "'");
  Sh("mkdir -p '" + repo + "/jobs'");
  Sh("printf 'run = date +%%s%%N >> \"$OUT\"\\nenv.OUT = " + repo + ".spawns\\n' > '" + repo +
     "/jobs/stamp.job'");
  Sh(Git(repo) + "add -A && " + Git(repo) + "commit -q -m init");
  for (int i = 1; i < n; ++i) {
    Sh(Git(repo) + "worktree add -q -b wt" + std::to_string(i) + " '" + repo + "-wt" +
       std::to_string(i) + "' >/dev/null 2>&1");
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

void TickBench(int worktrees, int rounds) {
  TempDir dir;
  std::string repo = dir.Sub("r");
  MakeRepo(repo, worktrees);
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(StoreOptions{dir.Sub("db")});
  if (!store.ok()) std::exit(1);
  RunStore runs(store->get(), SystemClock());
  if (!runs.Init().ok()) std::exit(1);
  Poller poller(&runs, SystemClock(), PollerOptions{});
  poller.SetRepos({RepoSpec{repo, WorktreeSelection::kAll, {}}});
  poller.Tick();  // opens handles, takes the initial commits
  // What a tick reads when every HEAD file and the worktree list look
  // changed (stamps younger than the racy margin): touched before each
  // round, outside the timing.
  std::vector<std::string> touched = {repo + "/.git/HEAD", repo + "/.git/worktrees"};
  for (int i = 1; i < worktrees; ++i) {
    touched.push_back(repo + "/.git/worktrees/r-wt" + std::to_string(i) + "/HEAD");
  }
  std::vector<double> full;
  for (int i = 0; i < rounds; ++i) {
    for (const std::string& p : touched) utimensat(AT_FDCWD, p.c_str(), nullptr, 0);
    auto t0 = Clk::now();
    poller.Tick();
    full.push_back(Us(Clk::now() - t0));
  }
  // The steady state of an idle daemon: files older than the racy margin,
  // so unchanged worktrees are answered from their stamps.
  std::this_thread::sleep_for(std::chrono::nanoseconds(2 * git::kRacyMarginNs));
  poller.Tick();  // the first trusted stamps
  std::vector<double> ticks;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clk::now();
    poller.Tick();
    ticks.push_back(Us(Clk::now() - t0));
  }
  int shell_rounds = std::max(3, rounds / 50);
  std::string check = "git -C '" + repo + "' worktree list --porcelain | sed -n 's/^worktree //p'" +
                      " | while read -r w; do git -C \"$w\" rev-parse HEAD; done >/dev/null";
  std::vector<double> shell;
  for (int i = 0; i < shell_rounds; ++i) {
    auto t0 = Clk::now();
    Sh(check);
    shell.push_back(Us(Clk::now() - t0));
  }
  double a = Percentile(ticks, 0.5), f = Percentile(full, 0.5), b = Percentile(shell, 0.5);
  std::printf("%-24s %10.1f %12.1f %14.1f %9.0fx %9.0fx\n",
              ("tick, " + std::to_string(worktrees) + " worktree(s)").c_str(), a, f, b, b / a,
              b / f);
}

struct Daemon {
  pid_t pid = -1;
  std::string state;
};

Daemon StartWtd(const std::string& wtd, const std::string& repo, const std::string& state,
                std::vector<std::string> extra) {
  Daemon d;
  d.state = state;
  d.pid = fork();
  if (d.pid == 0) {
    std::vector<std::string> args = {wtd,           "--repo", repo,          "--state-dir", state,
                                     "--worktrees", "all",    "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stderr);
    execv(wtd.c_str(), argv.data());
    _exit(127);
  }
  std::string sock = state + "/wtd.sock";
  for (int i = 0; i < 200 && access(sock.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return d;
}

void StopWtd(Daemon& d) {
  kill(d.pid, SIGTERM);
  waitpid(d.pid, nullptr, 0);
}

size_t CountLines(const std::string& path) {
  std::ifstream in(path);
  return static_cast<size_t>(
      std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

// Waits (up to 6 s) until `path` has `want` lines.
void WaitLines(const std::string& path, size_t want, int64_t timeout_ms = 6000) {
  for (int64_t i = 0; i < timeout_ms / 2 && CountLines(path) < want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// The job's timestamps (ns since the epoch), one per run, in order.
std::vector<int64_t> SpawnStamps(const std::string& path) {
  std::ifstream in(path);
  std::vector<int64_t> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(std::stoll(line));
  }
  if (out.empty()) {
    std::fprintf(stderr, "no job ran (%s is empty)\n", path.c_str());
    std::exit(1);
  }
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Median/p95 of (job start - commit done) over `n` commits, in ms.
void LatencyBench(const std::string& wtd, const char* label, std::vector<std::string> extra,
                  int n) {
  TempDir dir;
  std::string repo = dir.Sub("r");
  MakeRepo(repo, 1);
  Daemon d = StartWtd(wtd, repo, dir.Sub("state"), std::move(extra));
  std::string spawns = repo + ".spawns";
  WaitLines(spawns, 1);  // the initial commit
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    Sh(Git(repo) + "commit -q --allow-empty -m c" + std::to_string(i));
    int64_t committed = NowNs();
    WaitLines(spawns, static_cast<size_t>(i) + 2);
    lat.push_back((SpawnStamps(spawns).back() - committed) / 1e6);
    std::this_thread::sleep_for(std::chrono::milliseconds(37));  // de-phase from the poll clock
  }
  StopWtd(d);
  std::printf("%-28s p50 %8.1f ms   p95 %8.1f ms\n", label, Percentile(lat, 0.5),
              Percentile(lat, 0.95));
}

// The daemon's whole cost per run with `locks` (on|off): a backlog of `n`
// commits, each with one quick job, handled one at a time (--concurrency 1),
// so the gap between two job starts is one run's cycle: its job, the outcome
// (with locks: the receipt, the terminal batch, the ref delete, the lease
// drop), then the next run's dispatch (with locks: the lease batch and the
// ref create and update). Returns the median and the mean gap, in ms.
std::pair<double, double> CyclePerRun(const std::string& wtd, const std::string& locks, int n) {
  TempDir dir;
  std::string repo = dir.Sub("r");
  MakeRepo(repo, 1);
  for (int i = 0; i < n; ++i) Sh(Git(repo) + "commit -q --allow-empty -m c" + std::to_string(i));
  std::string spawns = repo + ".spawns";
  Daemon d = StartWtd(wtd, repo, dir.Sub("state"), {"--locks", locks, "--concurrency", "1"});
  WaitLines(spawns, static_cast<size_t>(n) + 1, 120000);
  StopWtd(d);
  std::vector<int64_t> t = SpawnStamps(spawns);
  if (t.size() < static_cast<size_t>(n) + 1) {
    std::fprintf(stderr, "--locks %s: %zu of %d runs started\n", locks.c_str(), t.size(), n + 1);
    std::exit(1);
  }
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) gaps.push_back((t[i] - t[i - 1]) / 1e6);
  double mean = (t.back() - t.front()) / 1e6 / static_cast<double>(gaps.size());
  return {Percentile(gaps, 0.5), mean};
}

// --locks off and on, alternated `rounds` times so drift in the machine's
// load hits both alike; the figures are the medians over rounds.
void LocksCostBench(const std::string& wtd, int n, int rounds) {
  std::vector<double> off_p50, off_mean, on_p50, on_mean;
  for (int r = 0; r < rounds; ++r) {
    auto [a, b] = CyclePerRun(wtd, "off", n);
    off_p50.push_back(a);
    off_mean.push_back(b);
    auto [c, e] = CyclePerRun(wtd, "on", n);
    on_p50.push_back(c);
    on_mean.push_back(e);
  }
  double off = Percentile(off_mean, 0.5), on = Percentile(on_mean, 0.5);
  std::printf("%-28s p50 %8.1f ms   mean %8.1f ms\n", "--locks off", Percentile(off_p50, 0.5), off);
  std::printf("%-28s p50 %8.1f ms   mean %8.1f ms\n", "--locks on", Percentile(on_p50, 0.5), on);
  std::printf("on/off (mean): %.2fx (aim <= 1.3x)\n", on / off);
}

uint64_t CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(s.substr(s.rfind(')') + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return utime + stime;
}

long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

void IdleBench(const std::string& wtd, int seconds) {
  TempDir dir;
  std::string repo = dir.Sub("r");
  MakeRepo(repo, 100);
  Daemon d = StartWtd(wtd, repo, dir.Sub("state"), {});
  std::this_thread::sleep_for(std::chrono::seconds(3));  // initial runs and handles
  uint64_t t0 = CpuTicks(d.pid);
  auto w0 = Clk::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  double wall = std::chrono::duration<double>(Clk::now() - w0).count();
  double cpu =
      static_cast<double>(CpuTicks(d.pid) - t0) / static_cast<double>(sysconf(_SC_CLK_TCK));
  long rss = RssKb(d.pid);
  StopWtd(d);
  std::printf("idle CPU, 100 worktrees, %d s: %.3f %% of one core (aim < 0.5 %%)\n", seconds,
              100.0 * cpu / wall);
  std::printf("RSS after that: %.1f MB (aim < 50 MB)\n", rss / 1024.0);
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  std::string wtd = WTD_BIN;
  int idle = 60, commits = 40;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--wtd" && i + 1 < argc)
      wtd = argv[++i];
    else if (a == "--idle-seconds" && i + 1 < argc)
      idle = std::atoi(argv[++i]);
    else if (a == "--commits" && i + 1 < argc)
      commits = std::atoi(argv[++i]);
    else if (a == "--quick")
      quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--wtd PATH] [--idle-seconds N] [--commits N] [--quick]\n",
                   argv[0]);
      return 2;
    }
  }
  if (quick) idle = 5, commits = 10;
  utsname u{};
  uname(&u);
  std::printf("wtd daemon benchmark: %s %s, %ld cores\n\n", u.sysname, u.release,
              sysconf(_SC_NPROCESSORS_ONLN));
  std::printf(
      "idle poll tick, no new commits (median); wtd: unchanged worktrees answered from\n"
      "stamps, and with every HEAD touched (read in full); shell: git worktree list +\n"
      "git rev-parse HEAD per worktree\n");
  std::printf("%-24s %10s %12s %14s %10s %10s\n", "", "wtd (us)", "full (us)", "shell (us)",
              "shell/wtd", "shell/full");
  for (int n : {1, 10, 100}) wtd::TickBench(n, quick ? 50 : 500);
  std::printf("\ncommit-to-spawn latency (%d commits each):\n", commits);
  wtd::LatencyBench(wtd, "--poll-ms 100, no inotify", {"--poll-ms", "100", "--no-inotify"},
                    commits);
  wtd::LatencyBench(wtd, "inotify wake (poll 1500)", {}, commits);
  std::printf(
      "\nend-to-end cost per run, locks off vs on (%d commits backlog, --concurrency 1,\n"
      "gap between job starts; median of %d alternated rounds):\n",
      commits, quick ? 1 : 3);
  wtd::LocksCostBench(wtd, commits, quick ? 1 : 3);
  std::printf("\n");
  wtd::IdleBench(wtd, idle);
  return 0;
}
