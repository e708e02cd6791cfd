// Scheduler: the daemon's loop. Each Step wakes runs whose retry delay has
// passed, polls the repositories when the poll interval is up (or a ref
// moved), and dispatches pending runs up to the concurrency limit.
//
// Dispatching one run (docs/design/loop.md):
//   RunLocks::Acquire (pending -> leased; with locks: row, then ref)
//                                       committed      after_lease_commit
//   isolation = commit: a slot taken (RunSlots::Take: recorded busy, then
//     checked out at the run's sha)                   after_slot_checkout
//   isolation = inplace: the worktree's current path; a worktree that no
//     longer exists ends the run instead (leased -> failed, no attempt)
//   MarkReady (leased -> ready)         committed      after_ready_commit
//   spawn wtd-exec, held on its pipe                   after_spawn
//                                                      before_running_commit
//   RunLocks::Started: MarkRunning {pid, start, boot id} (+ lock ref blob)
//                                       committed      after_running_commit
//   release: the shim may exec the job                 after_release
//   ...job ends...                                     before_outcome_commit
//   RunLocks::Finish (running -> terminal | retry_wait; with locks
//     finishing, receipt, release: run_locks.h)        after_outcome_commit
// So no job runs without a durable record naming its process.
//
// Stop() stops polling and dispatch, lets running jobs finish for a grace
// period, then terminates the rest and records them as interrupted (they
// are retried by the next start).
//
// After each completed step (and each wait round of the stop) Loop calls
// the step hook, if one is set, on the loop thread: the daemon feeds
// systemd's watchdog from there, so a wedged loop stops the pings. The hook
// also bounds how long the loop may sleep before its next step.
//
// Thread-safety: Loop() on one loop thread; Notify, SetPaused, RequestStop,
// SetOptions, Post and Snapshot from any thread. The options are the loop
// thread's alone: SetOptions posts them there, so a reload never writes them
// while the loop reads them. Step is public so tests can drive the loop
// without sleeping.
#ifndef WTD_SCHEDULER_SCHEDULER_H_
#define WTD_SCHEDULER_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "exec/launcher.h"
#include "runs/run_store.h"
#include "scheduler/activity.h"
#include "scheduler/commit_source.h"
#include "scheduler/run_locks.h"
#include "scheduler/run_slots.h"
#include "scheduler/waker.h"

namespace wtd {

class Collector;

// The fields marked with a wtd option are set from the option table
// (src/daemon/options.cc, docs/design/options.md), which takes its defaults
// from here; the others are fixed by the daemon.
struct SchedulerOptions {
  int64_t poll_ms = 1500;             // --poll-ms
  int64_t concurrency = 1;            // --concurrency (wtd's default: the number of cores)
  std::string exec_shim;              // --exec-shim: absolute path of wtd-exec
  std::string state_dir;              // logs/runs/<id>.log and runs/<id>.json live here
  uint64_t log_cap_bytes = 16 << 20;  // --log-cap-bytes
  int64_t shutdown_grace_s = 10;      // --shutdown-grace-s: how long Loop's stop waits
  int64_t kill_grace_ms = 5000;       // SIGTERM -> SIGKILL on timeout or stop
  bool dry_run = false;               // --dry-run: dispatch nothing
  // Retention of the `events` family: the newest `events_keep` are kept,
  // older ones deleted every `events_trim_ms`.
  uint64_t events_keep = 100000;
  int64_t events_trim_ms = 60000;
  // --stuck-after-s: a running job with no new output and no CPU used for
  // this long is flagged stuck in `wtctl status` (only flagged: a job may
  // legitimately wait that long; its timeout is what ends it).
  int64_t stuck_after_s = 600;
  // Retention of history (src/retention, with a collector set): runs and
  // their files, orphan files and reap records older than
  // --retention-days (0: forever) go, one batch at most every
  // gc_interval_ms, the next batches every gc_catch_up_ms until caught up.
  double retention_days = 30;
  int64_t gc_interval_ms = 60000;
  int64_t gc_catch_up_ms = 100;
};

// What the loop tells its step hook (Scheduler::SetStepHook).
struct LoopHeartbeat {
  uint64_t queued = 0;      // pending, leased or ready (or due to retry): waiting for a slot
  uint64_t retry_wait = 0;  // waiting for their retry delay
  uint64_t running = 0;     // with a live process
  // The store's error, else the first failing repository's, else the last
  // dispatch that failed (until one succeeds); empty when there is none.
  std::string last_error;
  bool stopping = false;       // the loop ended: the stop is under way
  int64_t stop_budget_ms = 0;  // the longest the stop can take: grace + kill grace
};
// Returns the longest the loop may sleep before its next step, in ms
// (< 0: no limit of the hook's own).
using StepHook = std::function<int64_t(const LoopHeartbeat&)>;

class Scheduler {
 public:
  // All pointers must outlive the Scheduler. `source` finds commits and
  // enqueues runs (the Poller); `launcher` starts job processes (the shim
  // launcher); tests give fakes of both.
  Scheduler(RunStore* runs, CommitSource* source, Launcher* launcher, Clock* clock, Waker* waker,
            uint64_t incarnation, SchedulerOptions options);
  ~Scheduler();

  // Loops on Step until RequestStop, then performs the graceful stop with
  // the options' shutdown grace for running jobs.
  void Loop() EXCLUDES(mu_);
  // One iteration; returns how long the loop may sleep before the next.
  int64_t Step(bool refs_changed) EXCLUDES(mu_);

  // Set before Loop starts. The counts are those of the last step that
  // listed the active runs (none while paused or read-only).
  void SetStepHook(StepHook hook) { step_hook_ = std::move(hook); }
  // The lock seam (run_locks.h); set before Loop starts. Without one the
  // scheduler takes the lease-less path (NewOffRunLocks). `locks` must
  // outlive the Scheduler.
  void SetRunLocks(RunLocks* locks);
  // The worktree seam (run_slots.h); set before Loop starts. Without one
  // every job runs in its watched worktree. `slots` must outlive the
  // Scheduler.
  void SetRunSlots(RunSlots* slots) { slots_ = slots; }
  // What running jobs do, for the stuck flag (activity.h); set before Loop
  // starts. Without one no job is ever flagged. `probe` must outlive the
  // Scheduler.
  void SetActivityProbe(ActivityProbe* probe) { probe_ = probe; }
  // How often the probe samples each running job at most: every quarter
  // of --stuck-after-s, bounded by this.
  static constexpr int64_t kActivitySampleMs = 5000;
  // Called on the loop thread after each poll tick with its figures and how
  // long it took, in microseconds (the daemon's metrics). Set before Loop
  // starts; it must be quick.
  void SetTickHook(std::function<void(const PollStats& stats, int64_t micros)> hook) {
    tick_hook_ = std::move(hook);
  }
  // The retention collector (src/retention), used on the loop thread only;
  // set before Loop starts. Without one nothing is collected. `collector`
  // must outlive the Scheduler.
  void SetCollector(Collector* collector) { collector_ = collector; }

  void RequestStop();
  // Ends the loop like RequestStop, but leaves the running jobs to their
  // supervisors (Launched::Detach) instead of stopping them: the daemon is
  // about to re-execute itself, and the next incarnation adopts them.
  void RequestRestart();
  bool restart_requested() const { return restart_.load(); }
  bool stop_requested() const { return stop_.load(); }
  // A run recovery adopted (RunLocks::Adopt done): `exec` watches its
  // supervisor. Call before Loop starts.
  void AdoptRunning(const Run& run, std::unique_ptr<Launched> exec);
  void SetPaused(bool paused) EXCLUDES(mu_);
  // Replaces the options (a reload) at the start of the next Step, on the
  // loop thread, or before the stop if the loop is ending.
  void SetOptions(SchedulerOptions options) EXCLUDES(mu_);
  void Notify() { waker_->Notify(); }
  // Runs `fn` on the loop thread at the start of the next Step, or before
  // the stop if the loop is ending (for work on the poller, which is not
  // thread-safe: reloads).
  void Post(std::function<void()> fn) EXCLUDES(mu_);
  SchedulerSnapshot Snapshot() const EXCLUDES(mu_);
  // `wtctl cancel`, posted to the loop thread: ends run `id` cancelled with
  // error `reason`. A job this loop runs has its process group terminated
  // (SIGTERM, SIGKILL after the kill grace) and the run is recorded
  // cancelled once the job has ended, its lock and slot given back as for
  // any end; any other non-terminal run but a finishing one is recorded
  // cancelled at once (and its lock released). `done` is called on the loop
  // thread with the committed run, or the refusal (a terminal run:
  // FailedPrecondition naming its state). It is not called if the loop ends
  // first.
  void Cancel(uint64_t id, std::string reason, std::function<void(Result<Run>)> done) EXCLUDES(mu_);

  // Waits for running jobs up to grace_ms, then terminates the rest and
  // records them interrupted. Called by Loop after the loop ends.
  void Shutdown(int64_t grace_ms) EXCLUDES(mu_);
  size_t in_flight() const;

 private:
  struct InFlight {
    Run run;
    std::unique_ptr<Launched> exec;
    // The probe's last sample, and when the job was last seen doing
    // something (its start until a sample differs).
    std::optional<Activity> activity;
    int64_t active_at_ms = 0;
    bool adopted = false;  // started by an earlier daemon
  };
  struct Completion {
    uint64_t id;
    AttemptOutcome outcome;
  };

  // Runs what other threads posted; true if there was anything.
  bool RunPosted();
  void WakeRetries(const std::vector<Run>& active, int64_t now, int64_t* next_ms);
  void DispatchPending(const std::vector<Run>& active) EXCLUDES(mu_);
  // Takes one pending run through the handshake up to the release.
  Status Dispatch(uint64_t id) EXCLUDES(mu_);
  // Starts the job of `run` in `dir` (its slot, or its watched worktree).
  Status Spawn(const Run& run, const std::string& dir, std::unique_ptr<Launched>* out)
      EXCLUDES(mu_);
  std::vector<std::string> JobEnvironment(const Run& run, const std::string& dir,
                                          const std::string& context_path) const;
  Status WriteContext(const Run& run, const std::string& dir, const std::string& path) const;
  // Whether `r` may be dispatched now as far as directories go: an inplace
  // run waits while another inplace run of its worktree runs; a commit run
  // waits while no slot is to be had (its repository then goes into
  // *no_slot, which holds for the rest of the step).
  bool DirectoryAvailable(const Run& r, std::set<std::string>* no_slot);
  // Whether a run of the same lock name as `r` (repo, worktree, job, sha:
  // another series) is in flight: two series never run at once, with or
  // without --locks.
  bool SameLockInFlight(const Run& r) const;
  // Cancel's work on the loop thread.
  void CancelNow(uint64_t id, const std::string& reason,
                 const std::function<void(Result<Run>)>& done);
  // Gives back the slot of a run whose attempt is over (logged on failure:
  // recovery frees it).
  void GiveSlot(const Run& run);
  // Records the outcome of each finished job: Finish, or Interrupt for a
  // job stopped by Shutdown.
  void ReapCompletions() EXCLUDES(mu_);
  // Once a run's outcome is in the store: its supervisor's exit and group
  // files and its context file go.
  void RemoveRunFiles(uint64_t id) const;
  // Hands the completion of `exec` (run `id`) to the loop.
  void WatchCompletion(uint64_t id, Launched* exec) EXCLUDES(mu_);
  // The restart's end of the loop: every job left to its supervisor.
  void DetachAll();
  // Gives back the lock of a run whose store call ended its hold (logged
  // on failure: recovery finishes it).
  void ReleaseLock(const Run& run);
  // Renews the locks of running jobs that are due; a job whose lock was
  // lost is terminated and recorded interrupted.
  void RenewLocks();
  void NoteStoreError(const Status& st);
  void Publish() EXCLUDES(mu_);
  // The queue depths of heartbeat_ from the active runs listed this step.
  void CountQueue(const std::vector<Run>& active, int64_t now);
  // Samples the running jobs' activity when kActivitySampleMs passed.
  void SampleActivity(int64_t now);
  // Calls the step hook; its sleep limit, or -1.
  int64_t Beat();
  // One batch of retention when it is due; lowers *next_ms to the next.
  void CollectHistory(int64_t now, int64_t* next_ms);

  RunStore* runs_;
  CommitSource* source_;
  Launcher* launcher_;
  Clock* clock_;
  Waker* waker_;
  uint64_t incarnation_;

  mutable Mutex mu_;
  bool paused_ GUARDED_BY(mu_) = false;
  SchedulerSnapshot snapshot_ GUARDED_BY(mu_);
  std::deque<Completion> completions_ GUARDED_BY(mu_);
  std::vector<std::function<void()>> posted_ GUARDED_BY(mu_);

  std::atomic<bool> stop_{false};
  std::atomic<bool> restart_{false};
  // Loop thread only.
  SchedulerOptions options_;
  std::unique_ptr<RunLocks> owned_locks_;  // the lease-less default
  RunLocks* locks_;
  RunSlots* slots_ = nullptr;
  ActivityProbe* probe_ = nullptr;
  int64_t next_sample_ms_ = 0;
  Collector* collector_ = nullptr;
  int64_t next_gc_ms_ = 0;
  std::map<uint64_t, InFlight> in_flight_;
  std::map<uint64_t, std::string> lost_lock_;  // in flight, lock lost: why
  // In flight, terminated by `wtctl cancel`: the reason and who waits.
  struct Cancelling {
    std::string reason;
    std::vector<std::function<void(Result<Run>)>> done;
  };
  std::map<uint64_t, Cancelling> cancelling_;
  int64_t next_poll_ms_ = 0;
  int64_t next_trim_ms_ = 0;
  uint64_t ticks_ = 0, enqueued_ = 0, started_ = 0;
  std::string store_error_;
  std::string dispatch_error_;  // the last failed dispatch, until one succeeds
  StepHook step_hook_;
  std::function<void(const PollStats&, int64_t)> tick_hook_;
  LoopHeartbeat heartbeat_;
  size_t damaged_reported_ = 0;  // unreadable active runs last logged
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_SCHEDULER_H_
