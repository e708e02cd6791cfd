// wtd_supervisor_bench: what the run supervisor (wtd-exec,
// docs/design/supervisor.md) costs, each figure beside its anchor measured
// in the same run (docs/design/benchmarks.md):
//   1. per run, in process: `true` through Execution::Start + Release + Wait
//      (the real wtd-exec) against what the daemon did before the
//      supervisor, reproduced here: posix_spawn of `/bin/sh -c true` in a
//      process group of its own, its output on a pipe pumped into the run
//      log, the log fsynced, waitpid; directly, and through the handshake
//      shim the daemon used then (wtd_bench_shim). Wall time, the release to
//      the job's first instruction, the CPU of this process and of its
//      children, and the durable-write floor of the same directory;
//   2. commit-to-start latency of the real wtd (inotify wake), supervised,
//      and with --anchor-wtd the same of another wtd binary (one built from
//      before the supervisor), one commit to each in turn;
//   3. a restart with 50 running jobs: `restart` (re-exec in place) and
//      kill -9 + start, each until a daemon of the next incarnation answers
//      with all 50 adopted, against the same with no job running; then the
//      jobs are let go and every run must end succeeded at attempt 1.
// Not a test: it prints numbers. Usage:
//   wtd_supervisor_bench [--runs N] [--commits N] [--jobs N] [--wtd PATH]
//                        [--wtd-exec PATH] [--shim PATH] [--anchor-wtd PATH]
//                        [--locks on|off] [--dir BASE] [--part 1|2|3]... [--quick]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/process_table.h"
#include "bench_header.h"
#include "exec/execution.h"
#include "wtd/client.h"

namespace wtd {
namespace {

using json = nlohmann::json;

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What Die cleans up: the daemon this bench started (its jobs end once the
// bench's lock file is closed, on exit), and the bench's directory.
std::vector<pid_t> g_daemons;
std::string g_dir;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "wtd_supervisor_bench: %s\n", why.c_str());
  for (pid_t pid : g_daemons) kill(pid, SIGKILL);
  if (!g_dir.empty()) std::fprintf(stderr, "left for inspection: %s\n", g_dir.c_str());
  std::exit(1);
}

void Sh(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) Die("command failed: " + cmd);
}

std::string Git(const std::string& repo) {
  return "git -C '" + repo +
         "' -c user.name=bench -c user.email=bench@example.com -c advice.detachedHead=false ";
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---------------------------------------------------------------------------
// [1] per run, in process

// user + sys of `who` (RUSAGE_SELF or RUSAGE_CHILDREN), in us.
double CpuUs(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Moves `fd` (close-on-exec) above the child's fixed fds 0..4.
int MoveUp(int fd) {
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  if (moved < 0) Die("fcntl F_DUPFD_CLOEXEC");
  return moved;
}

void Pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) Die("pipe2");
  fds[0] = MoveUp(fds[0]);
  fds[1] = MoveUp(fds[1]);
}

// The moments of one run, steady clock (ns).
struct RunTimes {
  int64_t start = 0;     // before anything of the run (log open, spawn)
  int64_t released = 0;  // the job let go: release line / handshake byte / spawn call
  int64_t ended = 0;     // outcome in hand (reaped, log synced, exit file read)
};

struct Setup {
  std::string dir;       // cwd of the jobs; logs/ and runs/ below it
  std::string wtd_exec;  // the supervisor
  std::string shim;      // wtd_bench_shim
  uint64_t next_id = 1;  // a run id per run: a new log file per run, as in the daemon
};

// What the daemon did before the supervisor: the job (optionally behind the
// handshake shim) spawned in a group of its own with its output on a pipe,
// the pipe pumped into the run log until EOF, the log fsynced, the job
// reaped.
RunTimes RunPlain(Setup* s, const std::string& command, bool via_shim) {
  RunTimes t;
  uint64_t id = s->next_id++;
  t.start = MonoNs();
  std::string log_path = s->dir + "/logs/" + std::to_string(id) + ".log";
  int log = open(log_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (log < 0) Die("open " + log_path);
  int out[2], hs[2] = {-1, -1};
  Pipe(out);
  if (via_shim) Pipe(hs);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  if (via_shim) posix_spawn_file_actions_adddup2(&fa, hs[0], 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, via_shim ? 4 : 3);
  posix_spawn_file_actions_addchdir_np(&fa, s->dir.c_str());
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  std::vector<std::string> args;
  if (via_shim) args = {s->shim, "--"};
  args.insert(args.end(), {"/bin/sh", "-c", command});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string path_var = "PATH=/usr/local/bin:/usr/bin:/bin";
  char* envp[] = {path_var.data(), nullptr};
  pid_t pid = -1;
  if (!via_shim) t.released = MonoNs();
  int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) Die("posix_spawn " + args[0]);
  close(out[1]);
  if (via_shim) {
    close(hs[0]);
    t.released = MonoNs();
    char go = 'g';
    if (write(hs[1], &go, 1) != 1) Die("write handshake");
    close(hs[1]);
  }
  char buf[64 * 1024];
  for (;;) {
    pollfd p = {out[0], POLLIN, 0};
    if (poll(&p, 1, -1) < 0) continue;
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (write(log, buf, static_cast<size_t>(n)) != n) Die("write " + log_path);
  }
  close(out[0]);
  fsync(log);
  close(log);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  t.ended = MonoNs();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("job failed: " + command);
  return t;
}

// The supervisor: Execution::Start, Release, Wait (the real wtd-exec).
RunTimes RunSupervised(Setup* s, const std::string& command) {
  RunTimes t;
  SpawnRequest req;
  req.run_id = s->next_id++;
  std::string id = std::to_string(req.run_id);
  req.shim_path = s->wtd_exec;
  req.command = command;
  req.cwd = s->dir;
  req.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  req.log_path = s->dir + "/logs/" + id + ".log";
  req.exit_path = s->dir + "/runs/" + id + ".exit";
  req.group_path = s->dir + "/runs/" + id + ".pgid";
  t.start = MonoNs();
  Result<std::unique_ptr<Execution>> e = Execution::Start(req, SystemProcessTable());
  if (!e.ok()) Die("Execution::Start: " + e.status().ToString());
  t.released = MonoNs();
  Status released = (*e)->Release(0, 1000);
  if (!released.ok()) Die("Release: " + released.ToString());
  std::optional<AttemptOutcome> o = (*e)->Wait(-1);
  t.ended = MonoNs();
  if (!o || o->exit_code != 0 || o->lost) {
    Die("supervised job failed: " + command + (o ? " " + o->error : ""));
  }
  e->reset();  // joins the worker: its CPU is counted with the run
  return t;
}

// The durable write the supervisor's exit file is bounded by: a small file
// written, fsynced, renamed into place, its directory fsynced.
double ExitFileFloorUs(const std::string& dir, int i) {
  std::string tmp = dir + "/floor.tmp", final = dir + "/floor-" + std::to_string(i) + ".exit";
  std::string text(260, 'x');
  text.back() = '\n';
  int64_t t0 = MonoNs();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      fsync(fd) != 0 || close(fd) != 0 || rename(tmp.c_str(), final.c_str()) != 0) {
    Die("exit file floor in " + dir);
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) Die("fsync " + dir);
  close(dfd);
  return static_cast<double>(MonoNs() - t0) / 1e3;
}

// A program's start-up alone: `path` spawned with no arguments (both
// wtd-exec and wtd_bench_shim then print their usage and exit 125), reaped.
// Adds the wall time and the child's CPU (us) to *wall and *cpu.
void ExecOnly(const std::string& path, std::vector<double>* wall, double* cpu) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = path;
  char* argv[] = {arg0.data(), nullptr};
  char* envp[] = {nullptr};
  double cpu0 = CpuUs(RUSAGE_CHILDREN);
  int64_t t0 = MonoNs();
  pid_t pid = -1;
  if (posix_spawn(&pid, path.c_str(), &fa, nullptr, argv, envp) != 0) Die("posix_spawn " + path);
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  wall->push_back(static_cast<double>(MonoNs() - t0) / 1e3);
  *cpu += CpuUs(RUSAGE_CHILDREN) - cpu0;
}

// fsync of a new, empty file: the run log's sync at the end of a run (both
// the supervisor and the daemon before it sync a log created for the run).
double NewFileFsyncUs(const std::string& dir, int i) {
  std::string path = dir + "/new-" + std::to_string(i);
  int64_t t0 = MonoNs();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || fsync(fd) != 0) Die("fsync " + path);
  close(fd);
  return static_cast<double>(MonoNs() - t0) / 1e3;
}

struct Variant {
  using RunFn = std::function<RunTimes(Setup*, const std::string&)>;
  Variant(const char* l, RunFn r) : label(l), run(std::move(r)) {}
  const char* label;
  RunFn run;
  std::vector<double> wall_us;        // `true`: start to outcome
  double self_cpu_us = 0;             // `true`: this process, summed
  double child_cpu_us = 0;            // `true`: reaped children, summed
  std::vector<double> to_release;     // stamp runs: start to release
  std::vector<double> release_job;    // stamp runs: release to the job's stamp
  std::vector<double> job_outcome;    // stamp runs: the job's stamp to the outcome
  std::vector<double> stamp_wall_us;  // stamp runs: start to outcome
};

struct PerRun {
  double supervised_p50_ms = 0;
  double start_to_job_p50_ms = 0;
};

PerRun PerRunBench(const std::string& base, const std::string& wtd_exec, const std::string& shim,
                   int n) {
  Setup s;
  s.dir = base + "/per-run";
  s.wtd_exec = wtd_exec;
  s.shim = shim;
  Sh("mkdir -p '" + s.dir + "/logs' '" + s.dir + "/runs' '" + s.dir + "/floor'");
  std::array<Variant, 3> v = {
      Variant{"A  posix_spawn sh -c, pipe pumped (anchor)",
              [](Setup* st, const std::string& c) { return RunPlain(st, c, false); }},
      Variant{"B  same through the pre-supervisor shim",
              [](Setup* st, const std::string& c) { return RunPlain(st, c, true); }},
      Variant{"S  Execution + wtd-exec (supervised)",
              [](Setup* st, const std::string& c) { return RunSupervised(st, c); }}};
  std::string stamp_file = s.dir + "/stamp";
  std::string stamp_cmd = "'" + shim + "' --stamp '" + stamp_file + "'";
  std::vector<double> floor_us, new_file_us, exec_sup_us, exec_shim_us;
  double exec_sup_cpu = 0, exec_shim_cpu = 0;
  const int warmup = std::max(3, n / 20);
  for (int r = -warmup; r < n; ++r) {
    // The order rotates so that no variant always follows another.
    for (int k = 0; k < 3; ++k) {
      Variant& x = v[static_cast<size_t>((r + warmup + k) % 3)];
      double self0 = CpuUs(RUSAGE_SELF), child0 = CpuUs(RUSAGE_CHILDREN);
      RunTimes t = x.run(&s, "true");
      double self1 = CpuUs(RUSAGE_SELF), child1 = CpuUs(RUSAGE_CHILDREN);
      if (r >= 0) {
        x.wall_us.push_back(static_cast<double>(t.ended - t.start) / 1e3);
        x.self_cpu_us += self1 - self0;
        x.child_cpu_us += child1 - child0;
      }
    }
    double f = ExitFileFloorUs(s.dir + "/floor", r + warmup);
    double g = NewFileFsyncUs(s.dir + "/floor", r + warmup);
    if (r >= 0) floor_us.push_back(f), new_file_us.push_back(g);
    if (r >= 0) {
      ExecOnly(wtd_exec, &exec_sup_us, &exec_sup_cpu);
      ExecOnly(shim, &exec_shim_us, &exec_shim_cpu);
    }
    for (int k = 0; k < 3; ++k) {
      Variant& x = v[static_cast<size_t>((r + warmup + k) % 3)];
      unlink(stamp_file.c_str());
      RunTimes t = x.run(&s, stamp_cmd);
      std::string text = ReadFile(stamp_file);
      if (text.empty()) Die("the job wrote no stamp");
      int64_t job = std::stoll(text);
      if (r >= 0) {
        x.to_release.push_back(static_cast<double>(t.released - t.start) / 1e3);
        x.release_job.push_back(static_cast<double>(job - t.released) / 1e3);
        x.job_outcome.push_back(static_cast<double>(t.ended - job) / 1e3);
        x.stamp_wall_us.push_back(static_cast<double>(t.ended - t.start) / 1e3);
      }
    }
  }
  Variant &a = v[0], &b = v[1], &sup = v[2];
  std::printf(
      "[1] per run, in process: %d runs of `true` per variant, interleaved (after %d\n"
      "    warm-up rounds); times in us; cpu = getrusage user+sys per run\n",
      n, warmup);
  std::printf("  %-44s %9s %9s %9s %9s %9s\n", "", "wall p50", "wall p95", "x of A", "cpu self",
              "cpu child");
  for (Variant& x : v) {
    std::printf("  %-44s %9.0f %9.0f %8.2fx %9.0f %9.0f\n", x.label, Percentile(x.wall_us, 0.5),
                Percentile(x.wall_us, 0.95),
                Percentile(x.wall_us, 0.5) / Percentile(a.wall_us, 0.5), x.self_cpu_us / n,
                x.child_cpu_us / n);
  }
  double fl50 = Percentile(floor_us, 0.5), nf50 = Percentile(new_file_us, 0.5);
  std::printf("  durable-write floor, same directory (N=%d):\n", n);
  std::printf("    exit file: 260 B + fsync + rename + dir fsync  p50 %7.0f  p95 %7.0f\n", fl50,
              Percentile(floor_us, 0.95));
  std::printf("    fsync of a new empty file (the run log)        p50 %7.0f  p95 %7.0f\n", nf50,
              Percentile(new_file_us, 0.95));
  std::printf("  start-up alone (spawned with no arguments: usage, exit 125; N=%d):\n", n);
  std::printf("    wtd-exec               p50 %7.0f  p95 %7.0f  cpu %5.0f\n",
              Percentile(exec_sup_us, 0.5), Percentile(exec_sup_us, 0.95), exec_sup_cpu / n);
  std::printf("    wtd_bench_shim         p50 %7.0f  p95 %7.0f  cpu %5.0f\n",
              Percentile(exec_shim_us, 0.5), Percentile(exec_shim_us, 0.95), exec_shim_cpu / n);
  double extra_a = Percentile(sup.wall_us, 0.5) - Percentile(a.wall_us, 0.5);
  double extra_b = Percentile(sup.wall_us, 0.5) - Percentile(b.wall_us, 0.5);
  std::printf("  extra per run at p50, S - A: %7.0f us   S - B: %7.0f us   (aim <= 500 us): %s\n",
              extra_a, extra_b,
              extra_a <= 500 ? "met" : (extra_b <= 500 ? "met against B only" : "missed"));
  std::printf("  the same less the exit file's floor:  S - A - floor: %7.0f us\n", extra_a - fl50);
  std::printf(
      "  daemon-side CPU per run, S - A: %+6.0f us;  supervisor's own (children S - A): %+6.0f "
      "us\n",
      (sup.self_cpu_us - a.self_cpu_us) / n, (sup.child_cpu_us - a.child_cpu_us) / n);
  std::printf(
      "\n  where the time goes (a job that writes a CLOCK_MONOTONIC stamp, N=%d each; p50 / p95)\n",
      n);
  std::printf("  %-44s %17s %17s %17s %17s\n", "", "start->release", "release->job", "job->outcome",
              "start->outcome");
  for (Variant& x : v) {
    std::printf("  %-44s %8.0f /%7.0f %8.0f /%7.0f %8.0f /%7.0f %8.0f /%7.0f\n", x.label,
                Percentile(x.to_release, 0.5), Percentile(x.to_release, 0.95),
                Percentile(x.release_job, 0.5), Percentile(x.release_job, 0.95),
                Percentile(x.job_outcome, 0.5), Percentile(x.job_outcome, 0.95),
                Percentile(x.stamp_wall_us, 0.5), Percentile(x.stamp_wall_us, 0.95));
  }
  std::printf("  (A has no release: its release is the posix_spawn call)\n");
  PerRun out;
  out.supervised_p50_ms = Percentile(sup.wall_us, 0.5) / 1e3;
  std::vector<double> start_to_job;
  for (size_t i = 0; i < sup.to_release.size(); ++i) {
    start_to_job.push_back(sup.to_release[i] + sup.release_job[i]);
  }
  out.start_to_job_p50_ms = Percentile(start_to_job, 0.5) / 1e3;
  return out;
}

// ---------------------------------------------------------------------------
// The real daemon

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
    // The daemon's messages, for when a figure cannot be taken.
    if (!freopen((state + ".stderr").c_str(), "a", stderr)) _exit(127);
    execv(wtd.c_str(), argv.data());
    _exit(127);
  }
  g_daemons.push_back(d.pid);
  return d;
}

void StopWtd(Daemon& d) {
  kill(d.pid, SIGTERM);
  waitpid(d.pid, nullptr, 0);
  std::erase(g_daemons, d.pid);
}

// One request to the daemon; nullopt when none answers.
std::optional<json> Call(const std::string& state, const std::string& command,
                         const json& args = json::object()) {
  Result<std::unique_ptr<Client>> c = Client::Connect(state + "/wtd.sock", 1000);
  if (!c.ok()) return std::nullopt;
  Result<json> r = (*c)->Call(command, args, 10000);
  if (!r.ok()) return std::nullopt;
  return *r;
}

// Polls `pred` every `every_ms` until it holds or `limit_ms` passes.
bool WaitUntil(const std::function<bool()>& pred, int64_t limit_ms, int every_ms = 5) {
  int64_t end = MonoNs() + limit_ms * 1000000;
  while (MonoNs() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(every_ms));
  }
  return pred();
}

size_t CountLines(const std::string& path) {
  std::string s = ReadFile(path);
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

// ---------------------------------------------------------------------------
// [2] commit to the job's first instruction

// One watched repository of [2]: its daemon and the file its job's
// timestamps go to.
struct LatencyRig {
  std::string label;
  std::string repo;
  std::string spawns;
  Daemon daemon;
  std::vector<double> lat_ms;
};

void CommitToStartBench(const std::string& wtd, const std::string& anchor_wtd,
                        const std::string& base, int n, const PerRun& per_run) {
  std::vector<LatencyRig> rigs;
  rigs.push_back({"supervised (this wtd)", base + "/latency", "", {}, {}});
  if (!anchor_wtd.empty()) {
    rigs.push_back({"anchor: --anchor-wtd", base + "/latency-anchor", "", {}, {}});
  }
  for (LatencyRig& g : rigs) {
    g.spawns = g.repo + ".spawns";
    Sh("git init -q -b main '" + g.repo + "' && mkdir -p '" + g.repo + "/jobs'");
    Sh("printf 'run = date +%%s%%N >> \"$OUT\"\\nenv.OUT = " + g.spawns + "\\n' > '" + g.repo +
       "/jobs/stamp.job'");
    Sh(Git(g.repo) + "add -A && " + Git(g.repo) + "commit -q -m init");
    g.daemon = StartWtd(&g == &rigs[0] ? wtd : anchor_wtd, g.repo, g.repo + "-state", {});
  }
  for (LatencyRig& g : rigs) {
    if (!WaitUntil([&] { return CountLines(g.spawns) >= 1; }, 30000)) {
      Die(g.label + ": no first run");
    }
  }
  // One commit to each repository in turn, so that both daemons meet the
  // same load on the machine.
  for (int i = 0; i < n; ++i) {
    for (LatencyRig& g : rigs) {
      Sh(Git(g.repo) + "commit -q --allow-empty -m c" + std::to_string(i));
      int64_t committed = WallNs();
      size_t want = static_cast<size_t>(i) + 2;
      if (!WaitUntil([&] { return CountLines(g.spawns) >= want; }, 10000, 1)) {
        Die(g.label + ": commit " + std::to_string(i) + ": no run started");
      }
      std::string text = ReadFile(g.spawns);
      text.pop_back();
      int64_t started = std::stoll(text.substr(text.rfind('\n') + 1));
      g.lat_ms.push_back(static_cast<double>(started - committed) / 1e6);
      std::this_thread::sleep_for(std::chrono::milliseconds(37));  // de-phase from the poll clock
    }
  }
  for (LatencyRig& g : rigs) StopWtd(g.daemon);
  std::printf(
      "\n[2] commit to the job's first instruction, real wtd, inotify wake (%d commits%s)\n", n,
      rigs.size() > 1 ? " each, alternated" : "");
  double p50 = Percentile(rigs[0].lat_ms, 0.5);
  for (LatencyRig& g : rigs) {
    double x = Percentile(g.lat_ms, 0.5);
    std::printf("  %-28s p50 %8.2f ms   p95 %8.2f ms", g.label.c_str(), x,
                Percentile(g.lat_ms, 0.95));
    if (&g != &rigs[0]) std::printf("   supervised/anchor p50 %.2fx", p50 / x);
    std::printf("\n");
  }
  if (per_run.start_to_job_p50_ms > 0) {
    std::printf("  of which Start to the job's stamp in [1] (S, p50): %.2f ms (%.0f%%)\n",
                per_run.start_to_job_p50_ms, 100 * per_run.start_to_job_p50_ms / p50);
  }
}

// ---------------------------------------------------------------------------
// [3] restart with running jobs

struct Running {
  uint64_t incarnation = 0;
  size_t running = 0;
  size_t adopted = 0;
};

std::optional<Running> RunningOf(const std::string& state) {
  std::optional<json> s = Call(state, "status");
  if (!s) return std::nullopt;
  Running r;
  r.incarnation = s->value("incarnation", uint64_t{0});
  for (const json& job : s->value("running_jobs", json::array())) {
    ++r.running;
    if (job.value("adopted", false)) ++r.adopted;
  }
  return r;
}

// Milliseconds from `t0` until a daemon of an incarnation after `before`
// answers with `jobs` running jobs, all adopted.
double UntilAdopted(const std::string& state, uint64_t before, size_t jobs, int64_t t0,
                    Running* seen) {
  bool ok = WaitUntil(
      [&] {
        std::optional<Running> r = RunningOf(state);
        if (!r || r->incarnation <= before) return false;
        *seen = *r;
        return r->running == jobs && r->adopted == jobs;
      },
      120000);
  if (!ok) {
    Die("no daemon after incarnation " + std::to_string(before) + " with " + std::to_string(jobs) +
        " adopted (saw " + std::to_string(seen->running) + " running, " +
        std::to_string(seen->adopted) + " adopted)");
  }
  return static_cast<double>(MonoNs() - t0) / 1e6;
}

struct RestartTimes {
  double reexec_ms = 0;
  double kill9_ms = 0;
  double kill9_from_spawn_ms = 0;
  int64_t reexec_recovery_ms = 0;  // the recovery pass, as status reports it
  int64_t kill9_recovery_ms = 0;
};

int64_t RecoveryMs(const std::string& state) {
  std::optional<json> s = Call(state, "status");
  if (!s) return -1;
  return s->value("recovery", json::object()).value("duration_ms", int64_t{-1});
}

// A re-exec (`restart` over the socket, as wtctl sends it) and a kill -9 +
// start, each timed until the next incarnation answers with `jobs` adopted.
RestartTimes Restarts(const std::string& wtd, Daemon* d, const std::string& repo,
                      const std::vector<std::string>& args, size_t jobs) {
  RestartTimes out;
  std::optional<Running> now = RunningOf(d->state);
  if (!now) Die("no daemon answers");
  Running seen;
  int64_t t0 = MonoNs();
  if (!Call(d->state, "restart")) Die("restart refused");
  out.reexec_ms = UntilAdopted(d->state, now->incarnation, jobs, t0, &seen);
  out.reexec_recovery_ms = RecoveryMs(d->state);
  uint64_t before = seen.incarnation;
  t0 = MonoNs();
  kill(d->pid, SIGKILL);
  waitpid(d->pid, nullptr, 0);
  std::erase(g_daemons, d->pid);
  int64_t spawned = MonoNs();
  *d = StartWtd(wtd, repo, d->state, args);
  out.kill9_ms = UntilAdopted(d->state, before, jobs, t0, &seen);
  out.kill9_from_spawn_ms = static_cast<double>(MonoNs() - spawned) / 1e6;
  out.kill9_recovery_ms = RecoveryMs(d->state);
  return out;
}

void RestartBench(const std::string& wtd, const std::string& base, int jobs,
                  const std::string& locks) {
  std::string repo = base + "/restart";
  std::string lock = base + "/restart.lock";
  Sh("git init -q -b main '" + repo + "' && mkdir -p '" + repo + "/jobs'");
  for (int i = 0; i < jobs; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "j%02d", i);
    Sh("printf 'run = flock -s %s true\\n' '" + lock + "' > '" + repo + "/jobs/" + name + ".job'");
  }
  Sh(Git(repo) + "add -A && " + Git(repo) + "commit -q -m init");
  // Every job blocks on a shared lock of this file until it is let go.
  int lock_fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) Die("flock " + lock);
  std::string state = base + "/restart-state";
  std::vector<std::string> args = {"--concurrency", std::to_string(jobs), "--locks", locks};
  Daemon d = StartWtd(wtd, repo, state, args);
  size_t n = static_cast<size_t>(jobs);
  if (!WaitUntil(
          [&] {
            std::optional<Running> r = RunningOf(state);
            return r && r->running == n;
          },
          120000, 20)) {
    Die("fewer than " + std::to_string(jobs) + " jobs running");
  }
  RestartTimes busy = Restarts(wtd, &d, repo, args, n);
  // Let the jobs go; every run must end succeeded at its first attempt.
  flock(lock_fd, LOCK_UN);
  close(lock_fd);
  std::map<std::string, int> states;
  int first_attempt = 0;
  bool done = WaitUntil(
      [&] {
        std::optional<json> runs = Call(state, "runs", json{{"limit", 0}});
        if (!runs) return false;
        states.clear();
        first_attempt = 0;
        bool all_terminal = runs->size() == n;
        for (const json& r : *runs) {
          std::string st = r.value("state", "");
          ++states[st];
          if (r.value("attempt", 0) == 1) ++first_attempt;
          if (st != "succeeded" && st != "failed" && st != "timed_out" && st != "cancelled" &&
              st != "skipped") {
            all_terminal = false;
          }
        }
        return all_terminal;
      },
      120000, 50);
  // The anchor: the same daemon and repository with no job running.
  RestartTimes idle = Restarts(wtd, &d, repo, args, 0);
  StopWtd(d);
  std::printf(
      "\n[3] restart with %d running jobs (each blocked on a lock file), until the next\n"
      "    incarnation answers with all adopted; anchor: the same with no job running\n"
      "    (--locks %s)\n",
      jobs, locks.c_str());
  std::printf("  %-40s %12s %12s %10s\n", "", (std::to_string(jobs) + " running").c_str(), "none",
              "ratio");
  std::printf("  %-40s %9.1f ms %9.1f ms %9.2fx\n", "restart (re-exec in place)", busy.reexec_ms,
              idle.reexec_ms, busy.reexec_ms / idle.reexec_ms);
  std::printf("  %-40s %9.1f ms %9.1f ms %9.2fx\n", "kill -9 + start, from the kill", busy.kill9_ms,
              idle.kill9_ms, busy.kill9_ms / idle.kill9_ms);
  std::printf("  %-40s %9.1f ms %9.1f ms %9.2fx\n", "kill -9 + start, from the spawn",
              busy.kill9_from_spawn_ms, idle.kill9_from_spawn_ms,
              busy.kill9_from_spawn_ms / idle.kill9_from_spawn_ms);
  std::printf("  per adopted job (difference / %d): re-exec %.2f ms, kill -9 + start %.2f ms\n",
              jobs, (busy.reexec_ms - idle.reexec_ms) / jobs,
              (busy.kill9_ms - idle.kill9_ms) / jobs);
  std::printf(
      "  the recovery pass of the new incarnation (status): re-exec %lld ms vs %lld ms,\n"
      "  kill -9 + start %lld ms vs %lld ms\n",
      static_cast<long long>(busy.reexec_recovery_ms),
      static_cast<long long>(idle.reexec_recovery_ms),
      static_cast<long long>(busy.kill9_recovery_ms),
      static_cast<long long>(idle.kill9_recovery_ms));
  std::printf("  after release (sanity check): %s;",
              done ? "all runs ended" : "NOT all runs ended");
  for (const auto& [st, count] : states) std::printf(" %d %s", count, st.c_str());
  std::printf("; %d of %d at attempt 1\n", first_attempt, jobs);
}

std::string Beside(const char* self, const char* name) {
  std::string s = self;
  size_t slash = s.find_last_of('/');
  return slash == std::string::npos ? name : s.substr(0, slash + 1) + name;
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  std::string wtd = WTD_BIN, wtd_exec = WTD_EXEC_BIN, anchor_wtd, locks = "on";
  std::string shim = wtd::Beside(argv[0], "wtd_bench_shim");
  std::string base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  int runs = 300, commits = 40, jobs = 50;
  std::string parts;  // which of [1], [2], [3]; empty: all
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--runs") {
      runs = std::atoi(next().c_str());
    } else if (a == "--commits") {
      commits = std::atoi(next().c_str());
    } else if (a == "--jobs") {
      jobs = std::atoi(next().c_str());
    } else if (a == "--wtd") {
      wtd = next();
    } else if (a == "--wtd-exec") {
      wtd_exec = next();
    } else if (a == "--locks") {
      locks = next();
    } else if (a == "--anchor-wtd") {
      anchor_wtd = next();
    } else if (a == "--shim") {
      shim = next();
    } else if (a == "--dir") {
      base = next();
    } else if (a == "--part") {
      parts += next();
    } else if (a == "--quick") {
      runs = 30, commits = 10, jobs = 10;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--runs N] [--commits N] [--jobs N] [--wtd PATH] [--wtd-exec PATH]\n"
                   "          [--shim PATH] [--anchor-wtd PATH] [--locks on|off] [--dir BASE]\n"
                   "          [--part 1|2|3]... [--quick]\n",
                   argv[0]);
      return 2;
    }
  }
  if (runs < 1 || commits < 1 || jobs < 1) {
    std::fprintf(stderr, "--runs, --commits and --jobs must be positive\n");
    return 2;
  }
  for (std::string* p : {&wtd, &wtd_exec, &shim, &anchor_wtd}) {
    if (p->empty()) continue;
    char* real = realpath(p->c_str(), nullptr);
    if (real == nullptr || access(real, X_OK) != 0) {
      std::fprintf(stderr, "not executable: %s\n", p->c_str());
      return 2;
    }
    *p = real;
    free(real);
  }
  std::string dir = base + "/wtd-supervisor-bench-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  wtd::g_dir = dir;
  wtd::PrintBenchHeader("wtd_supervisor_bench", dir);
  std::printf("wtd-exec: %s\nwtd:      %s\n", wtd_exec.c_str(), wtd.c_str());
  if (!anchor_wtd.empty()) std::printf("anchor:   %s\n", anchor_wtd.c_str());
  std::printf("\n");
  std::fflush(stdout);
  auto part = [&](char n) { return parts.empty() || parts.find(n) != std::string::npos; };
  wtd::PerRun per_run;
  if (part('1')) per_run = wtd::PerRunBench(dir, wtd_exec, shim, runs);
  std::fflush(stdout);
  if (part('2')) wtd::CommitToStartBench(wtd, anchor_wtd, dir, commits, per_run);
  std::fflush(stdout);
  if (part('3')) wtd::RestartBench(wtd, dir, jobs, locks);
  wtd::Sh("rm -rf '" + dir + "'");
  return 0;
}
