#include "scheduler/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "retention/collector.h"

namespace wtd {

Scheduler::Scheduler(RunStore* runs, CommitSource* source, Launcher* launcher, Clock* clock,
                     Waker* waker, uint64_t incarnation, SchedulerOptions options)
    : runs_(runs),
      source_(source),
      launcher_(launcher),
      clock_(clock),
      waker_(waker),
      incarnation_(incarnation),
      options_(std::move(options)),
      owned_locks_(NewOffRunLocks(runs)),
      locks_(owned_locks_.get()) {}

void Scheduler::SetRunLocks(RunLocks* locks) {
  locks_ = locks;
  owned_locks_.reset();
}

Scheduler::~Scheduler() {
  // Executions still held here are aborted or waited for by their own
  // destructors; Shutdown() is the orderly path.
}

void Scheduler::RequestStop() {
  stop_.store(true);
  waker_->Notify();
}

void Scheduler::RequestRestart() {
  restart_.store(true);
  RequestStop();
}

void Scheduler::WatchCompletion(uint64_t id, Launched* exec) {
  exec->OnDone([this, id](const AttemptOutcome& outcome) {
    {
      MutexLock l(&mu_);
      completions_.push_back(Completion{id, outcome});
    }
    waker_->Notify();
  });
}

void Scheduler::AdoptRunning(const Run& run, std::unique_ptr<Launched> exec) {
  WatchCompletion(run.id, exec.get());
  spdlog::info("run {} adopted: job {} on {} (attempt {}, supervisor pid {})", run.id, run.key.job,
               run.key.sha.substr(0, 12), run.attempt, run.pid);
  InFlight& f = in_flight_[run.id];
  f.run = run;
  f.exec = std::move(exec);
  f.adopted = true;
  f.exec->Watch();
  Publish();  // status shows it before the first step
}

void Scheduler::DetachAll() {
  spdlog::info("restarting: {} job(s) left running under their supervisors", in_flight_.size());
  for (auto& [id, f] : in_flight_) f.exec->Detach();
  in_flight_.clear();
  Publish();
}

void Scheduler::RemoveRunFiles(uint64_t id) const {
  if (options_.state_dir.empty()) return;
  for (const std::string& path :
       {RunExitPath(options_.state_dir, id), RunGroupPath(options_.state_dir, id),
        RunContextPath(options_.state_dir, id)}) {
    Status st = RemoveIfExists(path);
    if (!st.ok()) spdlog::warn("run {}: {} (retention removes it later)", id, st.ToString());
  }
}

void Scheduler::SetPaused(bool paused) {
  {
    MutexLock l(&mu_);
    paused_ = paused;
  }
  spdlog::info(paused ? "paused: no new runs start" : "resumed");
  waker_->Notify();
}

void Scheduler::SetOptions(SchedulerOptions options) {
  Post([this, options = std::move(options)] { options_ = options; });
}

SchedulerSnapshot Scheduler::Snapshot() const {
  MutexLock l(&mu_);
  return snapshot_;
}

size_t Scheduler::in_flight() const { return in_flight_.size(); }

void Scheduler::Loop() {
  bool refs_changed = true;
  while (!stop_.load()) {
    int64_t sleep_ms = Step(refs_changed);
    WTD_WEDGE_POINT("wedge_loop");
    int64_t limit = Beat();
    if (limit >= 0) sleep_ms = std::min(sleep_ms, limit);
    if (stop_.load()) break;
    refs_changed = waker_->Wait(sleep_ms) == Waker::Reason::kFileChange;
  }
  RunPosted();  // a reload answered before the stop holds for the stop
  heartbeat_.stopping = true;
  heartbeat_.stop_budget_ms = options_.shutdown_grace_s * 1000 + options_.kill_grace_ms;
  Beat();
  if (restart_.load()) return DetachAll();
  Shutdown(options_.shutdown_grace_s * 1000);
}

int64_t Scheduler::Beat() {
  if (!step_hook_) return -1;
  heartbeat_.running = in_flight_.size();
  return step_hook_(heartbeat_);
}

void Scheduler::CountQueue(const std::vector<Run>& active, int64_t now) {
  heartbeat_.queued = heartbeat_.retry_wait = 0;
  for (const Run& r : active) {
    if (in_flight_.count(r.id)) continue;  // dispatched this step: running
    switch (r.state) {
      case RunState::kPending:
      case RunState::kLeased:
      case RunState::kPreparing:
      case RunState::kReady:
        ++heartbeat_.queued;
        break;
      case RunState::kRetryWait:
        ++(r.not_before_ms > now ? heartbeat_.retry_wait : heartbeat_.queued);
        break;
      default:
        break;
    }
  }
}

void Scheduler::Post(std::function<void()> fn) {
  {
    MutexLock l(&mu_);
    posted_.push_back(std::move(fn));
  }
  waker_->Notify();
}

bool Scheduler::RunPosted() {
  std::vector<std::function<void()>> posted;
  {
    MutexLock l(&mu_);
    posted.swap(posted_);
  }
  for (auto& fn : posted) fn();
  return !posted.empty();
}

int64_t Scheduler::Step(bool refs_changed) {
  if (RunPosted()) refs_changed = true;  // e.g. new repositories: poll now
  ReapCompletions();
  RenewLocks();
  locks_->RetryUnfinished();
  // A failed write anywhere (the poller's enqueue, a lease) left the store
  // read-only: say so once and stop polling and dispatching.
  if (store_error_.empty() && !runs_->store()->sticky_error().ok()) {
    NoteStoreError(runs_->store()->sticky_error());
  }
  const SchedulerOptions& opts = options_;
  bool paused;
  {
    MutexLock l(&mu_);
    paused = paused_;
  }
  int64_t now = clock_->NowMs();
  int64_t next = now + opts.poll_ms;
  if (store_error_.empty() && (refs_changed || now >= next_poll_ms_)) {
    auto tick_start = std::chrono::steady_clock::now();
    PollStats stats = source_->Tick();
    if (tick_hook_) {
      tick_hook_(stats, std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - tick_start)
                            .count());
    }
    ++ticks_;
    enqueued_ += stats.runs_enqueued;
    next_poll_ms_ = stats.more ? now : now + opts.poll_ms;
    // Watches are (re)added after the poll: a directory that was created or
    // re-created (a new refs/heads/x/, a worktree added again) is watched
    // from now on, and polled once more at once, for what changed in it
    // between this poll and its watch.
    if (waker_->Watch(source_->WatchDirs()) > 0) next_poll_ms_ = now;
  }
  next = std::min(next, next_poll_ms_);
  if (int64_t renew = locks_->NextRenewalMs(); renew >= 0) next = std::min(next, now + renew);
  if (store_error_.empty() && now >= next_trim_ms_) {
    Status trimmed = runs_->TrimEvents(opts.events_keep);
    if (!trimmed.ok()) NoteStoreError(trimmed);
    next_trim_ms_ = now + opts.events_trim_ms;
  }
  if (store_error_.empty() && !paused && !opts.dry_run) {
    std::vector<Status> damaged;
    Result<std::vector<Run>> active = runs_->ListActive(&damaged);
    if (damaged.size() != damaged_reported_) {
      // Once per change, not every step: the run stays until an operator acts.
      for (const Status& d : damaged)
        spdlog::error("unreadable active run skipped: {}", d.ToString());
      damaged_reported_ = damaged.size();
    }
    if (!active.ok()) {
      spdlog::error("cannot list active runs: {}", active.status().ToString());
    } else {
      WakeRetries(*active, now, &next);
      DispatchPending(*active);
      CountQueue(*active, now);
    }
  }
  SampleActivity(now);
  if (probe_ != nullptr && !in_flight_.empty()) next = std::min(next, next_sample_ms_);
  if (store_error_.empty()) CollectHistory(clock_->NowMs(), &next);
  Publish();
  return std::max<int64_t>(0, next - clock_->NowMs());
}

void Scheduler::CollectHistory(int64_t now, int64_t* next_ms) {
  int64_t retention_ms = RetentionMs(options_.retention_days);
  if (collector_ == nullptr || retention_ms <= 0) return;
  if (now >= next_gc_ms_) {
    CollectReport report;
    Status st =
        collector_->CollectBatch(now - retention_ms, kCollectBatch, /*dry_run=*/false, &report);
    if (!report.runs.empty() || report.log_files + report.context_files + report.reap_records > 0) {
      spdlog::info(
          "retention: {} run(s), {} log file(s), {} context file(s) ({} orphan), {} reap "
          "record(s) removed, {} bytes freed{}",
          report.runs.size(), report.log_files, report.context_files, report.orphan_files,
          report.reap_records, report.bytes_freed, report.caught_up ? "" : "; more to do");
    }
    for (const std::string& e : report.errors) spdlog::warn("retention: {}", e);
    if (!st.ok()) {
      spdlog::error("retention: {}", st.ToString());
      if (!runs_->store()->sticky_error().ok()) NoteStoreError(st);
    }
    // Not caught up: the next batch soon, each a short step of its own.
    next_gc_ms_ =
        now + (st.ok() && !report.caught_up ? options_.gc_catch_up_ms : options_.gc_interval_ms);
  }
  *next_ms = std::min(*next_ms, next_gc_ms_);
}

void Scheduler::SampleActivity(int64_t now) {
  if (probe_ == nullptr || now < next_sample_ms_) return;
  // A busy job looks idle for up to one interval between samples: sampling
  // four times per --stuck-after-s keeps it well below the threshold.
  next_sample_ms_ =
      now + std::clamp<int64_t>(options_.stuck_after_s * 1000 / 4, 250, kActivitySampleMs);
  for (auto& [id, f] : in_flight_) {
    if (f.active_at_ms == 0) f.active_at_ms = f.run.started_at_ms > 0 ? f.run.started_at_ms : now;
    Result<Activity> a = probe_->Sample(f.run);
    if (!a.ok()) continue;  // ended meanwhile: its completion is on the way
    if (f.activity && !(*f.activity == *a)) f.active_at_ms = now;
    f.activity = *a;
  }
}

void Scheduler::WakeRetries(const std::vector<Run>& active, int64_t now, int64_t* next_ms) {
  for (const Run& r : active) {
    if (r.state != RunState::kRetryWait) continue;
    if (r.not_before_ms > now) {
      *next_ms = std::min(*next_ms, r.not_before_ms);
      continue;
    }
    Result<Run> woke = runs_->Wake(r.id);
    if (!woke.ok()) NoteStoreError(woke.status());
  }
}

void Scheduler::DispatchPending(const std::vector<Run>& active) {
  int64_t limit = options_.concurrency;
  // Runs just woken are pending in the store but not in `active`: re-read.
  std::vector<Status> damaged;  // reported by Step
  Result<std::vector<Run>> now_active = runs_->ListActive(&damaged);
  const std::vector<Run>& list = now_active.ok() ? *now_active : active;
  std::set<std::string> no_slot;  // repositories whose slots are all taken this step
  for (const Run& r : list) {
    if (static_cast<int64_t>(in_flight_.size()) >= limit || stop_.load()) break;
    if (r.state != RunState::kPending || in_flight_.count(r.id)) continue;
    if (SameLockInFlight(r)) continue;
    if (!DirectoryAvailable(r, &no_slot)) continue;
    Status st = Dispatch(r.id);
    if (!st.ok()) spdlog::error("run {}: {}", r.id, st.ToString());
    dispatch_error_ = st.ok() ? "" : "run " + std::to_string(r.id) + ": " + st.ToString();
  }
}

void Scheduler::ReapCompletions() {
  std::deque<Completion> done;
  {
    MutexLock l(&mu_);
    done.swap(completions_);
  }
  for (Completion& c : done) {
    auto it = in_flight_.find(c.id);
    if (it == in_flight_.end()) continue;
    WTD_CRASH_POINT("before_outcome_commit");
    // Only a job our stop signalled, or one whose lock was lost, is
    // interrupted; one that ended on its own, even during the stop, has its
    // own outcome (recorded, with a lock, receipt first: run_locks.h).
    auto lost = lost_lock_.find(c.id);
    auto cancel = cancelling_.find(c.id);
    Result<Run> r = Status::OK();
    if (cancel != cancelling_.end()) {
      // Cancelled, whatever the outcome: not failed, not retried.
      r = runs_->Cancel(c.id, RunState::kRunning, cancel->second.reason);
      WTD_CRASH_POINT("after_outcome_commit");
      if (r.ok()) ReleaseLock(*r);
      if (lost != lost_lock_.end()) lost_lock_.erase(lost);
    } else if (lost != lost_lock_.end() || c.outcome.stopped || c.outcome.lost) {
      r = runs_->Interrupt(c.id, lost != lost_lock_.end() ? "interrupted: " + lost->second
                                 : c.outcome.lost         ? "interrupted: " + c.outcome.error
                                                  : "interrupted: the daemon stopped while it ran");
      WTD_CRASH_POINT("after_outcome_commit");
      if (r.ok()) ReleaseLock(*r);
      if (lost != lost_lock_.end()) lost_lock_.erase(lost);
    } else {
      r = locks_->Finish(it->second.run, c.outcome);
    }
    if (slots_ != nullptr && it->second.run.isolation == Isolation::kCommit) {
      // A failed run's worktree is kept when its job asks for it.
      bool failed =
          r.ok() &&
          (r->state == RunState::kFailed || r->state == RunState::kTimedOut ||
           (r->state == RunState::kFinishing &&
            (r->finish_state == RunState::kFailed || r->finish_state == RunState::kTimedOut)));
      bool keep = failed && it->second.run.keep_worktree == KeepWorktree::kOnFailure;
      Status st = slots_->Give(it->second.run, keep);
      if (!st.ok()) {
        spdlog::error("run {}: cannot give back its worktree (recovery will): {}", c.id,
                      st.ToString());
      }
    }
    if (!r.ok()) {
      NoteStoreError(r.status());
    } else {
      RemoveRunFiles(c.id);
      spdlog::info("run {} {}: job {} on {} (attempt {}, exit {}, {} ms)", r->id,
                   RunStateName(r->state), r->key.job, r->key.sha.substr(0, 12), r->attempt,
                   r->exit_code, r->duration_ms);
    }
    in_flight_.erase(it);  // joins the execution's finished worker
    if (cancel != cancelling_.end()) {
      for (const auto& done : cancel->second.done) done(r);
      cancelling_.erase(cancel);
    }
  }
}

void Scheduler::Cancel(uint64_t id, std::string reason, std::function<void(Result<Run>)> done) {
  Post([this, id, reason = std::move(reason), done = std::move(done)] {
    CancelNow(id, reason, done);
  });
}

void Scheduler::CancelNow(uint64_t id, const std::string& reason,
                          const std::function<void(Result<Run>)>& done) {
  auto f = in_flight_.find(id);
  if (f != in_flight_.end()) {
    Cancelling& c = cancelling_[id];
    if (c.done.empty()) {
      c.reason = reason;
      spdlog::info("run {}: cancelled by wtctl, stopping job {}", id, f->second.run.key.job);
      f->second.exec->Terminate();
    }
    c.done.push_back(done);  // answered once the job has ended (ReapCompletions)
    return;
  }
  Result<Run> run = runs_->Get(id);
  if (!run.ok()) return done(run.status());
  if (IsTerminal(run->state)) {
    return done(Status::FailedPrecondition("run " + std::to_string(id) + " is already " +
                                           std::string(RunStateName(run->state))));
  }
  if (run->state == RunState::kRunning || run->state == RunState::kFinishing) {
    // Running without being this loop's (recovery's to judge), or its
    // outcome recorded and its receipt under way: it ends on its own.
    return done(Status::FailedPrecondition(
        "run " + std::to_string(id) + " is " + std::string(RunStateName(run->state)) +
        (run->state == RunState::kFinishing ? ": its outcome is recorded, it ends on its own"
                                            : " but not by this daemon: it cannot be cancelled")));
  }
  Result<Run> cancelled = runs_->Cancel(id, run->state, reason);
  if (cancelled.ok()) {
    ReleaseLock(*cancelled);
    spdlog::info("run {} cancelled by wtctl: job {} on {} ({} -> cancelled)", id, run->key.job,
                 run->key.sha.substr(0, 12), RunStateName(run->state));
  } else if (!cancelled.status().IsFailedPrecondition()) {
    NoteStoreError(cancelled.status());
  }
  done(cancelled);
}

bool Scheduler::SameLockInFlight(const Run& r) const {
  for (const auto& [id, f] : in_flight_) {
    const RunKey& k = f.run.key;
    if (k.repo == r.key.repo && k.worktree == r.key.worktree && k.job == r.key.job &&
        k.sha == r.key.sha) {
      return true;
    }
  }
  return false;
}

void Scheduler::RenewLocks() {
  for (auto& [id, f] : in_flight_) {
    if (lost_lock_.count(id)) continue;
    Status st = locks_->Renew(f.run);
    if (st.ok()) continue;
    if (!st.IsAborted()) {
      spdlog::error("run {}: cannot renew its lock (retried next step): {}", id, st.ToString());
      continue;
    }
    // Someone else holds the lock now: the job must not go on.
    spdlog::error("run {}: lock lost, stopping job {}: {}", id, f.run.key.job, st.ToString());
    lost_lock_[id] = "its lock was lost: " + st.message();
    f.exec->Terminate();
  }
}

void Scheduler::NoteStoreError(const Status& st) {
  spdlog::error("state store: {}", st.ToString());
  if (runs_->store()->sticky_error().ok()) return;
  if (store_error_.empty()) {
    store_error_ = runs_->store()->sticky_error().ToString();
    spdlog::critical(
        "the state store is read-only after a failed write ({}); no new runs start "
        "until wtd is restarted",
        store_error_);
  }
}

void Scheduler::Publish() {
  SchedulerSnapshot s;
  source_->Report(&s);
  s.ticks = ticks_;
  s.runs_enqueued = enqueued_;
  s.runs_started = started_;
  int64_t now = clock_->NowMs();
  int64_t stuck_after_ms = options_.stuck_after_s * 1000;
  s.stuck_after_ms = stuck_after_ms;
  for (const auto& [id, f] : in_flight_) {
    s.running.push_back(id);
    RunningStatus r;
    r.id = id;
    r.started_at_ms = f.run.started_at_ms;
    r.active_at_ms = f.active_at_ms;
    r.stuck = f.active_at_ms > 0 && now - f.active_at_ms >= stuck_after_ms;
    r.adopted = f.adopted;
    s.running_detail.push_back(r);
  }
  s.store_error = store_error_;
  s.stopping = stop_.load();
  heartbeat_.last_error = store_error_;
  for (const RepoStatus& repo : s.repos) {
    if (!heartbeat_.last_error.empty()) break;
    if (!repo.error.empty()) heartbeat_.last_error = "repository " + repo.path + ": " + repo.error;
  }
  if (heartbeat_.last_error.empty()) heartbeat_.last_error = dispatch_error_;
  MutexLock l(&mu_);
  s.paused = paused_;
  snapshot_ = std::move(s);
}

void Scheduler::Shutdown(int64_t grace_ms) {
  spdlog::info("stopping: {} job(s) running, {} ms grace", in_flight_.size(), grace_ms);
  int64_t deadline = clock_->MonotonicUs() / 1000 + grace_ms;
  while (!in_flight_.empty()) {
    ReapCompletions();
    int64_t left = deadline - clock_->MonotonicUs() / 1000;
    if (left <= 0 || in_flight_.empty()) break;
    Beat();
    waker_->Wait(std::min<int64_t>(left, 100));
  }
  if (!in_flight_.empty()) {
    spdlog::info("grace period over: stopping {} job(s); they run again at the next start",
                 in_flight_.size());
    for (auto& [id, f] : in_flight_) f.exec->Terminate();
    while (!in_flight_.empty()) {
      WTD_CRASH_POINT("during_shutdown");
      for (auto& [id, f] : in_flight_) f.exec->Wait(100);
      ReapCompletions();
      Beat();
    }
  }
  Publish();
}

}  // namespace wtd
