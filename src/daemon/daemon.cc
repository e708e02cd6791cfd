#include "daemon/daemon.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <string_view>
#include <thread>

#include "base/clock.h"
#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/mutex.h"
#include "base/paths.h"
#include "base/process_table.h"
#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/pid_file.h"
#include "daemon/service.h"
#include "daemon/signals.h"
#include "daemon/state_dir.h"
#include "exec/execution.h"
#include "git/repository.h"
#include "leasing/git_run_locks.h"
#include "metrics/http_server.h"
#include "recovery/recovery.h"
#include "retention/collector.h"
#include "scheduler/poller.h"
#include "server/server.h"
#include "worktrees/slots.h"

namespace wtd {
namespace {

const char* Env(const char* name) { return getenv(name); }

// Set by a daemon that re-executes itself (`wtctl restart`) to the umask its
// jobs get (octal, or -1): the new image must neither daemonize again nor take
// its own umask (077 by then) for the jobs'.
constexpr char kReexecEnv[] = "WTD_REEXEC_JOB_UMASK";
// Daemon::Run's status when the daemon is to re-execute itself.
constexpr int kReexec = -1;

// Where this executable is: the path it was started from, which after an
// upgrade holds the new binary.
std::string SelfExePath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() &&
      path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
    path.resize(path.size() - kDeleted.size());
  }
  return path;
}

// Reaps `pid` when it is a child of this process that has exited or exits
// within `wait_ms`: a supervisor the image before a re-execution started,
// whose outcome recovery took from its exit file (nothing else would reap
// it). Never blocks on another process's child.
void ReapOwnChild(pid_t pid, int64_t wait_ms) {
  if (pid <= 0) return;
  for (int64_t waited = 0;; waited += 5) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return;  // not ours
    if (info.si_pid == pid) {
      waitpid(pid, nullptr, 0);
      return;
    }
    if (waited >= wait_ms) return;
    usleep(5000);
  }
}

// The supervisor of `run`, as recorded, to be adopted.
AdoptRequest AdoptRequestOf(const wtd::Run& run, const std::string& state_dir) {
  AdoptRequest req;
  req.run_id = run.id;
  req.attempt = run.attempt;
  req.supervisor = ProcessIdentity{run.pid, run.pid_start_time, run.boot_id, true};
  req.exit_path = RunExitPath(state_dir, run.id);
  req.group_path = RunGroupPath(state_dir, run.id);
  return req;
}

std::string RealOr(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? std::string(buf) : path;
}

std::vector<RepoSpec> RepoSpecs(const Config& c) {
  std::vector<RepoSpec> specs;
  for (const std::string& path : c.repos) {
    RepoSpec s;
    s.path = RealOr(path);
    s.selection = c.worktree_mode == WorktreeMode::kAll       ? WorktreeSelection::kAll
                  : c.worktree_mode == WorktreeMode::kCurrent ? WorktreeSelection::kCurrent
                                                              : WorktreeSelection::kPaths;
    for (const std::string& w : c.worktree_paths) s.worktree_paths.push_back(RealOr(w));
    specs.push_back(std::move(s));
  }
  return specs;
}

// The scheduler's worktree seam over the daemon's slots.
class SchedulerSlots : public RunSlots {
 public:
  SchedulerSlots(WorktreeSlots* slots, IdemStore* idem, Clock* clock, int64_t retention_ms)
      : slots_(slots), idem_(idem), clock_(clock), retention_ms_(retention_ms) {}
  bool CanTake(const wtd::Run& run) override { return slots_->CanTake(run.key.repo); }
  Result<RunSlot> Take(const Run& run) override {
    WTD_ASSIGN_OR_RETURN(Slot s, slots_->Take(run.key.repo, run.id, run.key.sha));
    return RunSlot{s.name, s.path};
  }
  Status Give(const Run& run, bool keep) override {
    Status st = slots_->Give(run.id, keep);
    // Idempotency records past retention go about once an hour.
    int64_t now = clock_->NowMs();
    if (now >= next_trim_ms_) {
      next_trim_ms_ = now + 3'600'000;
      Result<size_t> trimmed = idem_->Trim(retention_ms_);
      if (!trimmed.ok()) spdlog::error("idempotency records: {}", trimmed.status().ToString());
    }
    return st;
  }

 private:
  WorktreeSlots* slots_;
  IdemStore* idem_;
  Clock* clock_;
  int64_t retention_ms_;
  int64_t next_trim_ms_ = 0;
};

// Records the watched repositories and the lock settings in the store, so
// that the operator commands find the locks while the daemon is down. A
// failure is logged: it stops no run.
void RecordRepos(RunStore* runs, const Config& c) {
  WatchedRepos w;
  for (const RepoSpec& s : RepoSpecs(c)) w.paths.push_back(s.path);
  w.locks_root = c.locks.locks_root;
  w.notes_ref = c.locks.notes_ref;
  w.lock_grace_ms = c.locks.lock_grace_s * 1000;
  Result<bool> wrote = runs->RecordWatchedRepos(std::move(w));
  if (!wrote.ok())
    spdlog::error("cannot record the watched repositories: {}", wrote.status().ToString());
}

// Every configured repository must open at start (a typo should not start a
// daemon that watches nothing); later failures are retried with backoff.
Status CheckRepos(const Config& c) {
  for (const std::string& path : c.repos) {
    Result<std::string> root = git::ResolveRepoRoot(path);
    if (!root.ok())
      return Status::InvalidArgument("--repo=" + path + ": " + root.status().message());
  }
  if (access(c.scheduler.exec_shim.c_str(), X_OK) != 0) {
    return Status::InvalidArgument("--exec-shim=" + c.scheduler.exec_shim +
                                   ": not an executable file");
  }
  return Status::OK();
}

// Recovery's hooks, each also counting a run handled for `progress` (which
// extends systemd's start timeout while recovery makes progress).
RecoveryHooks WithProgress(RecoveryHooks hooks, StartProgress* progress) {
  auto wrap = [progress](std::function<Status(const Run&)> inner) {
    return [progress, inner = std::move(inner)](const Run& run) {
      progress->RunHandled();
      return inner ? inner(run) : Status::OK();
    };
  };
  hooks.release_unstarted = wrap(std::move(hooks.release_unstarted));
  hooks.release_finished = wrap(std::move(hooks.release_finished));
  if (hooks.record_outcome) {
    hooks.record_outcome = [progress, inner = std::move(hooks.record_outcome)](
                               const Run& run, const AttemptOutcome& o) {
      progress->RunHandled();
      return inner(run, o);
    };
  }
  if (hooks.adopt) {
    hooks.adopt = [progress, inner = std::move(hooks.adopt)](const Run& run) {
      progress->RunHandled();
      return inner(run);
    };
  }
  return hooks;
}

// The whole life of a daemon once the configuration is valid.
class Daemon {
 public:
  Daemon(Config config, std::vector<std::string> argv, std::string cwd)
      : config_(std::move(config)), argv_(std::move(argv)), cwd_(std::move(cwd)) {}
  int Run(Service* service) EXCLUDES(reload_mu_);

 private:
  Status Start(StartProgress* progress) EXCLUDES(reload_mu_);
  Result<ReloadResult> Reload() EXCLUDES(reload_mu_);
  // `wtctl gc`: one pass of a fresh collector, batch by batch on the loop
  // thread.
  Result<GcResult> CollectNow(bool dry_run) EXCLUDES(reload_mu_);
  Status RecoverSlots(const Config& config, Clock* clock);
  // With --metrics-listen: the metrics and their endpoint, bound before
  // anything else starts so that a port in use stops the start at once.
  Status StartMetrics(const Config& config);
  void OnSignal(int sig) EXCLUDES(reload_mu_);

  // Serializes reloads (from the signal thread and the control socket's
  // handlers) and guards the configuration they replace.
  Mutex reload_mu_;
  Config config_ GUARDED_BY(reload_mu_);
  std::vector<std::string> argv_;
  std::string cwd_;
  // Null without --metrics-listen. Declared before everything that feeds
  // it, so it outlives them.
  std::unique_ptr<DaemonMetrics> metrics_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<Launcher> launcher_;
  // Releases recovery's leases, and is the scheduler's RunLocks with
  // --locks on.
  std::unique_ptr<GitRunLocks> leases_;
  std::unique_ptr<RunLocks> off_locks_;  // the scheduler's RunLocks with --locks off
  // The runs recovery adopted, with the watchers of their supervisors, until
  // the scheduler takes them.
  std::vector<std::pair<wtd::Run, std::unique_ptr<Launched>>> adopted_;
  // The worktrees of isolated runs and their creation records.
  std::unique_ptr<IdemStore> idem_;
  std::unique_ptr<WorktreeSlots> slots_;
  std::unique_ptr<SchedulerSlots> scheduler_slots_;
  // Retention on the loop thread (the scheduler's collector).
  std::unique_ptr<Collector> collector_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<ActivityProbe> activity_;  // the stuck flag's samples
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Server> server_;
  // Created before the signal thread starts; its ready() is read there.
  std::unique_ptr<LoopNotifier> notifier_;
  ControlContext control_;
  // Last: stopped (its thread reads runs_ at each scrape) before the rest
  // goes.
  std::unique_ptr<metrics::HttpServer> metrics_server_;
};

Status Daemon::StartMetrics(const Config& config) {
  const std::string& listen = config.daemon.metrics_listen;
  if (listen.empty()) return Status::OK();
  Result<metrics::ListenAddress> at = metrics::ParseListenAddress(listen);
  if (!at.ok())
    return Status::InvalidArgument("--metrics-listen=" + listen + ": " + at.status().message());
  metrics_ = std::make_unique<DaemonMetrics>();
  metrics::Registry* registry = metrics_->registry();
  Result<std::unique_ptr<metrics::HttpServer>> http =
      metrics::HttpServer::Start(*at, [registry] { return registry->Render(); });
  if (!http.ok()) {
    return http.status().WithContext("--metrics-listen=" + listen);
  }
  metrics_server_ = std::move(*http);
  spdlog::info("metrics endpoint: http://{}/metrics", metrics_server_->address());
  return Status::OK();
}

Status Daemon::Start(StartProgress* progress) {
  Config config;
  {
    MutexLock l(&reload_mu_);
    config = config_;
  }
  Clock* clock = SystemClock();
  WTD_RETURN_IF_ERROR(StartMetrics(config));
  StoreOptions so;
  so.dir = JoinPath(config.daemon.state_dir, "db");
  progress->Phase("opening the state store " + so.dir);
  WTD_ASSIGN_OR_RETURN(store_, StateStore::Open(so));  // crash point after_store_open
  spdlog::info("state store {} open, incarnation {}{}", so.dir, store_->incarnation(),
               PreviousRunNote(store_->incarnation(), store_->previous_shutdown_clean()));
  if (!IsKnownBootId(SystemProcessTable()->BootId())) {
    spdlog::warn(
        "the boot id is unknown ({} cannot be read): recovery signals no process of an "
        "earlier run, since none can be proved to be that run's after a reboot",
        kBootIdPath);
  }
  runs_ = std::make_unique<RunStore>(store_.get(), clock);
  WTD_RETURN_IF_ERROR(runs_->Init());
  if (metrics_) {
    // Before recovery: its transitions and writes count too.
    store_->SetCommitObserver(metrics_->StoreObserver());
    runs_->SetObserver(metrics_->RunObserver());
    metrics_->WatchLeases(runs_.get());
  }

  GitRunLocksDeps lock_deps;
  lock_deps.runs = runs_.get();
  lock_deps.processes = SystemProcessTable();
  lock_deps.clock = clock;
  lock_deps.incarnation = store_->incarnation();
  lock_deps.host = HostName();
  lock_deps.options = config.locks;
  leases_ = std::make_unique<GitRunLocks>(lock_deps);
  off_locks_ = NewOffRunLocks(runs_.get());
  RunLocks* run_locks =
      config.locks.enabled ? static_cast<RunLocks*>(leases_.get()) : off_locks_.get();
  launcher_ = NewShimLauncher(SystemProcessTable());
  RecoveryHooks hooks;
  GitRunLocks* leases = leases_.get();
  // A job that ended while no daemon watched it: its supervisor's outcome,
  // recorded as the loop would have (with a lock: receipt, then release).
  // (A supervisor that wrote its exit file exits at once after.)
  hooks.record_outcome = [run_locks](const wtd::Run& run, const AttemptOutcome& outcome) {
    Result<wtd::Run> done = run_locks->Finish(run, outcome);
    ReapOwnChild(run.pid, 2000);
    return done;
  };
  hooks.release_finished = [](const wtd::Run& run) {
    ReapOwnChild(run.pid, 0);
    return Status::OK();
  };
  // A job still running under its supervisor: watched again, the run (and
  // its lock) made this incarnation's; the scheduler takes it after the pass.
  uint64_t incarnation = store_->incarnation();
  std::string state_dir = config.daemon.state_dir;
  int64_t stop_wait_ms = config.scheduler.kill_grace_ms + 10'000;
  hooks.adopt = [this, run_locks, incarnation, state_dir,
                 stop_wait_ms](const wtd::Run& run) -> Result<wtd::Run> {
    WTD_ASSIGN_OR_RETURN(std::unique_ptr<Launched> exec,
                         launcher_->Adopt(AdoptRequestOf(run, state_dir)));
    Result<wtd::Run> adopted = run_locks->Adopt(run, incarnation);
    if (!adopted.ok()) {
      if (adopted.status().IsAborted()) {
        // Its lock is another owner's now: the job must not go on.
        exec->Terminate();
        exec->Watch();
        exec->Wait(stop_wait_ms);
      }
      return adopted.status();
    }
    adopted_.emplace_back(*adopted, std::move(exec));
    return adopted;
  };
  // A receipt or release recovery cannot finish now (a young ref lock file,
  // the repository failing) is handed to the loop's retry, not left for the
  // next start.
  hooks.write_receipt = [leases](const wtd::Run& run) {
    Result<std::string> written = leases->WriteReceipt(run);
    if (!written.ok()) leases->FinishLater(run.id, "write its receipt", written.status());
    return written;
  };

  // A daemon that re-executed itself may have children already: supervisors
  // of the previous image whose jobs ended. Those that exited are reaped
  // here (their outcomes are in their exit files); live ones are adopted.
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  RecoveryOptions recovery_options;
  recovery_options.state_dir = config.daemon.state_dir;
  progress->Phase("recovering: checking the runs a previous wtd left unfinished",
                  static_cast<uint64_t>(recovery_options.kill_wait_ms) * 1000);
  WTD_ASSIGN_OR_RETURN(RecoveryReport report, RunRecovery(runs_.get(), SystemProcessTable(), clock,
                                                          WithProgress(hooks, progress),
                                                          store_->incarnation(), recovery_options));
  for (const RecoveryAction& a : report.actions) {
    spdlog::info("recovery: run {} ({} on {}) {} -> {}: {}", a.run_id, a.key.job,
                 a.key.sha.substr(0, 12), RunStateName(a.from), RunStateName(a.to), a.detail);
  }
  for (const std::string& e : report.errors) spdlog::error("recovery: {}", e);
  if (metrics_) {
    for (const RecoveryAction& a : report.actions) metrics_->CountRecovery(a.kind);
  }
  // Each lease left releasing: its ref deleted by CAS (one pointing
  // elsewhere is another owner's and stays), then its row. A crash in
  // between leaves the row releasing for the next pass.
  for (const Lease& row : report.releasing) {
    Status st = leases_->ReleaseLeaseRow(row);
    if (st.ok()) {
      spdlog::info("recovery: lock {} in {} released (run {}, token {})", row.name, row.repo,
                   row.run_id, row.fencing_token);
      if (metrics_) metrics_->CountRecovery("release_lock");
    } else {
      spdlog::error("recovery: cannot release lock {} in {}: {}", row.name, row.repo,
                    st.ToString());
      leases_->FinishLater(row.run_id, "release its lock", st);
    }
  }
  control_.recovery.at_ms = clock->NowMs();
  control_.recovery.first_start = store_->incarnation() == 1;
  control_.recovery.previous_shutdown_clean = store_->previous_shutdown_clean();
  control_.recovery.active_scanned = report.active_scanned;
  control_.recovery.errors = report.errors;
  control_.recovery.duration_us = report.duration_us;
  {
    std::map<std::string, uint64_t> by_kind;
    for (const RecoveryAction& a : report.actions) ++by_kind[a.kind];
    control_.recovery.actions.assign(by_kind.begin(), by_kind.end());
  }
  spdlog::info("recovery: {} active run(s) checked, {} action(s), {} us", report.active_scanned,
               report.actions.size(), report.duration_us);
  progress->Phase("recovered: " + std::to_string(report.active_scanned) +
                  " active run(s) checked, " + std::to_string(report.actions.size()) +
                  " action(s), " + std::to_string(report.errors.size()) + " error(s); first poll");

  WTD_RETURN_IF_ERROR(RecoverSlots(config, clock));
  RecordRepos(runs_.get(), config);
  poller_ = std::make_unique<Poller>(runs_.get(), clock, config.poller);
  poller_->SetRepos(RepoSpecs(config));
  WTD_ASSIGN_OR_RETURN(waker_, Waker::Create(config.daemon.inotify));
  scheduler_ = std::make_unique<Scheduler>(runs_.get(), poller_.get(), launcher_.get(), clock,
                                           waker_.get(), store_->incarnation(), config.scheduler);
  scheduler_->SetRunLocks(run_locks);
  for (auto& [run, exec] : adopted_) scheduler_->AdoptRunning(run, std::move(exec));
  adopted_.clear();
  if (metrics_) scheduler_->SetTickHook(metrics_->TickHook());
  scheduler_->SetRunSlots(scheduler_slots_.get());
  activity_ = NewSystemActivityProbe(config.daemon.state_dir);
  scheduler_->SetActivityProbe(activity_.get());
  CollectorHooks gc_hooks;
  gc_hooks.pinned_runs = RunsNamedBySlots(slots_.get());
  collector_ = std::make_unique<Collector>(runs_.get(), config.daemon.state_dir, clock, gc_hooks);
  scheduler_->SetCollector(collector_.get());
  control_.runs = runs_.get();
  control_.slots = slots_.get();
  control_.scheduler = scheduler_.get();
  control_.state_dir = config.daemon.state_dir;
  control_.socket_path = config.daemon.socket_path;
  if (metrics_server_) control_.metrics_listen = metrics_server_->address();
  control_.started_at_ms = clock->NowMs();
  control_.incarnation = store_->incarnation();
  control_.locks.locks_root = config.locks.locks_root;
  control_.locks.notes_ref = config.locks.notes_ref;
  control_.locks.grace_ms = config.locks.lock_grace_s * 1000;
  control_.reload = [this] { return Reload(); };
  control_.poller = poller_.get();
  control_.jobs_root = config.poller.jobs_root;
  control_.collect = [this](bool dry_run) { return CollectNow(dry_run); };
  WTD_ASSIGN_OR_RETURN(server_,
                       Server::Start(config.daemon.socket_path, ControlCommands(&control_)));
  return Status::OK();
}

// The slots' recovery (after the runs': a slot busy with a run that no
// longer runs is freed), then the idempotency records past retention.
Status Daemon::RecoverSlots(const Config& config, Clock* clock) {
  SlotOptions so;
  so.root = config.poller.own_worktree_root;
  so.max_slots = config.worktrees.worktree_slots > 0 ? config.worktrees.worktree_slots
                                                     : config.scheduler.concurrency;
  so.keep_failed = config.worktrees.keep_failed;
  idem_ = std::make_unique<IdemStore>(store_.get(), clock, SystemProcessTable(),
                                      ThisProcessIdemOwner(*store_, SystemProcessTable()));
  slots_ = std::make_unique<WorktreeSlots>(store_.get(), idem_.get(), clock, so);
  int64_t retention_ms = config.worktrees.idem_retention_h * 3'600'000;
  scheduler_slots_ =
      std::make_unique<SchedulerSlots>(slots_.get(), idem_.get(), clock, retention_ms);
  std::set<uint64_t> running;
  WTD_ASSIGN_OR_RETURN(std::vector<wtd::Run> active, runs_->ListActive());
  for (const wtd::Run& r : active) {
    if (r.state == RunState::kRunning) running.insert(r.id);
  }
  std::vector<std::string> repos;
  for (const RepoSpec& spec : RepoSpecs(config)) repos.push_back(spec.path);
  std::vector<std::string> errors;
  WTD_ASSIGN_OR_RETURN(std::vector<SlotAction> actions,
                       slots_->Recover(repos, running, /*dry_run=*/false, &errors));
  for (const SlotAction& a : actions) {
    spdlog::info("recovery: {} {}: {}", a.kind, a.name.empty() ? "-" : a.name, a.detail);
    if (metrics_) metrics_->CountRecovery(a.kind);
  }
  for (const std::string& e : errors) spdlog::error("recovery: worktrees: {}", e);
  Result<size_t> trimmed = idem_->Trim(retention_ms);
  if (!trimmed.ok()) return trimmed.status().WithContext("idempotency records");
  return Status::OK();
}

// Applies every option marked `applies` (options.h) and keeps the running
// value of each that needs a restart, saying so. The loop's options reach
// the loop thread through Post: only that thread reads or writes them.
Result<ReloadResult> Daemon::Reload() {
  MutexLock l(&reload_mu_);
  Result<ParsedArgs> parsed = ParseArgs(argv_, Env, cwd_);
  Status st = parsed.ok() ? CheckRepos(parsed->config) : parsed.status();
  if (!st.ok()) {
    spdlog::error("reload refused, the running configuration stays in force: {}", st.message());
    return st;
  }
  ReloadPlan plan = PlanReload(config_, parsed->config);
  config_ = std::move(plan.next);
  ApplyLogging(config_.logging);  // before the lines below, so they are in the new format
  ReloadResult result;
  result.config_file = config_.daemon.config_file;
  for (const OptionChange& c : plan.applied) {
    spdlog::info("reload: --{} is now {} (was {})", c.option, c.configured, c.running);
    result.applied.push_back(c.option);
  }
  for (const OptionChange& c : plan.needs_restart) {
    spdlog::warn("reload: --{} changed: needs a restart (running with {}, configured {})", c.option,
                 c.running, c.configured);
    result.needs_restart.push_back(c.option);
  }
  RecordRepos(runs_.get(), config_);
  Poller* poller = poller_.get();
  Waker* waker = waker_.get();
  PollerOptions po = config_.poller;
  std::vector<RepoSpec> specs = RepoSpecs(config_);
  bool inotify = config_.daemon.inotify;
  scheduler_->Post([poller, waker, po, specs, inotify] {
    poller->SetOptions(po);
    poller->SetRepos(specs);
    waker->SetInotify(inotify);
  });
  scheduler_->SetOptions(config_.scheduler);
  // Slots that follow --concurrency follow its reload.
  if (config_.worktrees.worktree_slots == 0) slots_->SetMaxSlots(config_.scheduler.concurrency);
  spdlog::info(
      "configuration reloaded from {}: {} option(s) changed and applied, {} need(s) a "
      "restart",
      result.config_file.empty() ? "the command line" : result.config_file, result.applied.size(),
      result.needs_restart.size());
  return result;
}

Result<GcResult> Daemon::CollectNow(bool dry_run) {
  // The client waits 30 s for an answer: stop posting batches after 20.
  constexpr int64_t kBudgetMs = 20'000;
  GcResult out;
  out.retention_from = "daemon";
  {
    MutexLock l(&reload_mu_);
    out.retention_days = config_.scheduler.retention_days;
  }
  int64_t retention_ms = RetentionMs(out.retention_days);
  if (retention_ms <= 0) {
    out.report.caught_up = true;
    return out;
  }
  Clock* clock = SystemClock();
  out.cutoff_ms = clock->NowMs() - retention_ms;
  // Shared with the posted batches: one may still be queued when this
  // returns (the daemon stopping).
  struct Pass {
    Pass(RunStore* runs, std::string state_dir, Clock* clock, CollectorHooks hooks)
        : collector(runs, std::move(state_dir), clock, std::move(hooks)) {}
    Collector collector;
    CollectReport report;
  };
  CollectorHooks hooks;
  hooks.pinned_runs = RunsNamedBySlots(slots_.get());
  auto pass = std::make_shared<Pass>(runs_.get(), control_.state_dir, clock, hooks);
  int64_t deadline = clock->MonotonicUs() / 1000 + kBudgetMs;
  int64_t cutoff = out.cutoff_ms;
  do {
    auto done = std::make_shared<std::promise<Status>>();
    std::future<Status> batch = done->get_future();
    scheduler_->Post([pass, done, cutoff, dry_run] {
      done->set_value(pass->collector.CollectBatch(cutoff, kCollectBatch, dry_run, &pass->report));
    });
    while (batch.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
      if (scheduler_->stop_requested()) {
        return Status::Aborted("the daemon is stopping: gc not finished");
      }
    }
    WTD_RETURN_IF_ERROR(batch.get());
  } while (!pass->report.caught_up && clock->MonotonicUs() / 1000 < deadline);
  out.report = pass->report;
  return out;
}

void Daemon::OnSignal(int sig) {
  if (sig == SIGTERM || sig == SIGINT) {
    spdlog::info("{} received: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    scheduler_->RequestStop();  // wakes the loop through the waker's eventfd
  } else if (sig == SIGHUP) {
    // READY=1 only once the loop has said it (a SIGHUP during start-up
    // must not announce a daemon that has not polled yet).
    bool ready = notifier_->ready();
    if (ready) Service::Notify("RELOADING=1");
    Reload().status().IgnoreError();  // logged; a refused reload changes nothing
    if (ready) Service::Notify("READY=1");
  }
}

int Daemon::Run(Service* service) {
  // Before any thread starts, so that every thread blocks these signals and
  // only the signal thread reads them.
  Result<std::unique_ptr<SignalWatcher>> watcher = SignalWatcher::Create({SIGTERM, SIGINT, SIGHUP});
  if (!watcher.ok()) {
    spdlog::critical("cannot start: {}", watcher.status().ToString());
    service->StartFailed(watcher.status().ToString());
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  // Read before the socket starts: a reload may change config_ from then on.
  std::string socket_path;
  size_t repos;
  {
    MutexLock l(&reload_mu_);
    socket_path = config_.daemon.socket_path;
    repos = config_.repos.size();
  }
  StartProgress progress(SystemClock(), &Service::Notify);
  Status st = Start(&progress);
  if (!st.ok()) {
    spdlog::critical("cannot start: {}", st.ToString());
    service->StartFailed(st.ToString());
    return 1;
  }
  // READY=1, the watchdog and STATUS come from the loop thread, after its
  // steps: the first completed step (recovery is done, the first poll too)
  // makes the daemon ready, and a wedged loop stops feeding the watchdog.
  uint64_t watchdog_usec = Service::WatchdogUsec();
  notifier_ = std::make_unique<LoopNotifier>(
      SystemClock(), watchdog_usec, &Service::Notify, [service, socket_path, repos] {
        spdlog::info("wtd {} ready: pid {}, socket {}, {} repositor{}", WTD_VERSION, getpid(),
                     socket_path, repos, repos == 1 ? "y" : "ies");
        service->Ready();
      });
  if (watchdog_usec > 0) {
    spdlog::info("systemd watchdog: {} ms; the loop pings it at least every {} ms",
                 watchdog_usec / 1000, watchdog_usec / 2000);
  }
  LoopNotifier* notifier = notifier_.get();
  DaemonMetrics* metrics = metrics_.get();
  scheduler_->SetStepHook([notifier, metrics](const LoopHeartbeat& beat) {
    if (metrics) metrics->OnHeartbeat(beat);
    return notifier->OnStep(beat);
  });
  SignalWatcher* signals = watcher->get();
  std::thread signal_thread([this, signals] { signals->Run([this](int sig) { OnSignal(sig); }); });
  scheduler_->Loop();  // stops with the shutdown grace of the last reload
  signals->Stop();     // the signal thread returns at once
  signal_thread.join();
  server_->Stop();
  if (metrics_server_) metrics_server_->Stop();
  WTD_CRASH_POINT("during_shutdown");
  Status clean = store_->MarkCleanShutdown();
  if (!clean.ok()) spdlog::error("cannot mark a clean shutdown: {}", clean.ToString());
  if (scheduler_->restart_requested()) {
    spdlog::info("stopped for a restart: re-executing");
    Service::Notify("RELOADING=1\nSTATUS=re-executing; running jobs are left to their supervisors");
    return kReexec;
  }
  spdlog::info("stopped");
  return 0;
}

// Replaces this process with a new image of wtd, same pid, same command
// line: its jobs' supervisors stay this pid's children and are adopted by the
// next incarnation. Returns only when the exec failed.
int ReExec(const std::string& exe, const std::vector<std::string>& args, const std::string& cwd) {
  // The command line is read again from where it was first read.
  if (chdir(cwd.c_str()) != 0) {
    fprintf(stderr, "wtd: cannot re-execute: chdir %s: %s\n", cwd.c_str(), strerror(errno));
    return 1;
  }
  char mask[16];
  snprintf(mask, sizeof mask, "%d", JobUmask());
  setenv(kReexecEnv, mask, 1);
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(exe.c_str(), argv.data());
  fprintf(stderr, "wtd: cannot re-execute %s: %s; its jobs are adopted at the next start\n",
          exe.c_str(), strerror(errno));
  return 1;
}

}  // namespace

int DaemonMain(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  char cwd_buf[PATH_MAX];
  std::string cwd = getcwd(cwd_buf, sizeof cwd_buf) ? cwd_buf : "/";
  Result<ParsedArgs> parsed = ParseArgs(args, Env, cwd);
  if (!parsed.ok()) {
    std::cerr << "wtd: " << parsed.status().message() << "\n(see wtd --help)\n";
    return 2;
  }
  if (parsed->show_help) {
    std::cout << parsed->help_text;
    return 0;
  }
  if (parsed->show_version) {
    std::cout << "wtd " << WTD_VERSION << "\n";
    return 0;
  }
  Config config = parsed->config;
  // A re-executed daemon (`wtctl restart`) is already daemonized and keeps
  // the job umask of the first start.
  std::optional<int> reexec_umask;
  if (const char* m = getenv(kReexecEnv)) {
    reexec_umask = atoi(m);
    unsetenv(kReexecEnv);
  }
  std::string exe = SelfExePath();
  if (Status st = CheckRepos(config); !st.ok()) {
    std::cerr << "wtd: " << st.message() << "\n";
    return 2;
  }
  if (Status st = ArmCrashPointFromEnv(); !st.ok()) {
    std::cerr << "wtd: " << st.message() << "\n";
    return 2;
  }
  // What wtd creates (store, logs, context files, socket) is its user's
  // alone, whatever the umask it was started with; jobs get that umask back.
  int started_umask = static_cast<int>(umask(077));
  SetJobUmask(reexec_umask ? *reexec_umask : started_umask);
  const std::string& state_dir = config.daemon.state_dir;
  if (Status st = MakeDirs(state_dir, 0700); !st.ok()) {
    std::cerr << "wtd: --state-dir=" << state_dir << ": " << st.message() << "\n";
    return 1;
  }
  std::vector<std::string> tightened;
  if (Status st = CheckStateDir(state_dir, geteuid(), &tightened); !st.ok()) {
    std::cerr << "wtd: " << st.message() << "\n";
    return 1;
  }
  Service service;
  bool daemonize = config.daemon.daemonize && !reexec_umask;
  if (daemonize) {
    std::string out = JoinPath(state_dir, "logs/wtd.out");
    Status st = MakeDirs(DirName(out), 0700);
    if (st.ok()) st = service.Daemonize(out);
    if (!st.ok()) {
      std::cerr << "wtd: cannot daemonize: " << st.message() << "\n";
      return 1;
    }
  }
  if (Status st = SetupLogging(state_dir, config.logging, /*to_stderr=*/!config.daemon.daemonize);
      !st.ok()) {
    std::cerr << "wtd: " << st.message() << "\n";
    service.StartFailed(st.message());
    return 1;
  }
  for (const std::string& t : tightened) {
    spdlog::warn("state dir: {} was open to group or others; made owner-only", t);
  }
  Result<PidFile> pid_file = PidFile::Acquire(config.daemon.pid_file);
  if (!pid_file.ok()) {
    spdlog::critical("{}", pid_file.status().message());
    service.StartFailed(pid_file.status().message());
    return 1;
  }
  int rc = Daemon(config, args, cwd).Run(&service);
  if (rc == kReexec) {
    // The pid file stays (same pid); its lock goes with the exec (O_CLOEXEC)
    // and the new image takes it again.
    spdlog::shutdown();
    return ReExec(exe, args, cwd);
  }
  if (rc == 0) pid_file->Remove();
  spdlog::shutdown();
  return rc;
}

}  // namespace wtd
