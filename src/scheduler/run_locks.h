// RunLocks: the scheduler's seam for lock leases (docs/design/locks.md,
// "Lifecycle"), as Launcher is its seam for processes and CommitSource for
// commits. The scheduler calls it at each step of a run's hold on its lock
// `<worktree-id>/<job>/<sha>`; the implementation decides what holding a
// lock means:
//   NewOffRunLocks()   no lock: the lease-less path (RunStore::Lease,
//                      MarkRunning without a lease, Finish, ...)
//   NewGitRunLocks()   (src/leasing/git_run_locks.h) a lease row in the store
//                      and a ref in the run's repository, receipts in notes
//
// Every method commits its store writes itself (each one synced batch) and
// returns the run as stored after them.
//
// Thread-safety: called from the scheduler's loop thread only.
#ifndef WTD_SCHEDULER_RUN_LOCKS_H_
#define WTD_SCHEDULER_RUN_LOCKS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "base/attempt_outcome.h"
#include "base/process_table.h"
#include "runs/run_store.h"
#include "wtd/status.h"

namespace wtd {

// Set from the option table (src/daemon/options.cc, docs/design/options.md).
struct RunLockOptions {
  bool enabled = true;                        // --locks on|off
  std::string locks_root = "refs/wtd/locks";  // --locks-root
  std::string notes_ref = "refs/notes/wtd";   // --notes-ref
  int64_t lease_ttl_s = 60;                   // --lease-ttl-s
  int64_t lock_grace_s = 60;                  // --lock-grace-s
};

// What Acquire found.
struct AcquireResult {
  enum class Kind {
    kAcquired,   // the run is leased and holds its lock
    kContended,  // another live owner holds it: the run is in retry_wait
    kDone,       // another owner's receipt says the job is done: skipped
    kRefused,    // the run's lock name gives no valid ref: cancelled, never run
  };
  Kind kind = Kind::kAcquired;
  Run run;             // as stored now
  std::string detail;  // contended: the holder; done: "HOST pid N run R"; refused: why
};

class RunLocks {
 public:
  virtual ~RunLocks() = default;

  // pending -> leased holding the lock, or -> retry_wait (contended, no
  // attempt used), or -> skipped (done elsewhere). An error leaves the run
  // pending or leased for the next step or for recovery.
  virtual Result<AcquireResult> Acquire(uint64_t id) = 0;

  // ready -> running for `process`, then (with a lock) the ref's blob moved
  // to name the job: both before the job is released.
  virtual Result<Run> Started(const Run& run, const ProcessIdentity& process, uint64_t incarnation,
                              const std::string& log_path) = 0;

  // A running run of an earlier incarnation whose supervisor still runs
  // becomes `incarnation`'s (RunStore::Adopt); with a lock, the lease row
  // and then the ref name this daemon as the owner, with a fresh expiry.
  // Aborted when the ref is no longer the run's (another owner reaped it
  // while no daemon renewed it): the caller stops the job.
  virtual Result<Run> Adopt(const Run& run, uint64_t incarnation) = 0;

  // Moves the lease's expiry (row, then ref) when a third of the TTL has
  // passed since the last renewal. Aborted when the ref is no longer ours
  // (reaped by someone else): the caller stops the job. Called every step for
  // each running run.
  virtual Status Renew(const Run& run) = 0;

  // The job ended with `outcome`: records it (with a lock: the receipt, then
  // the terminal state, then the release). Returns the stored run; with a
  // lock, a run still `finishing` when the outcome is recorded but the
  // receipt or the state after it is not yet (retried, RetryUnfinished).
  virtual Result<Run> Finish(const Run& run, const AttemptOutcome& outcome) = 0;

  // The run's hold on its lock ended without an outcome (its store call,
  // e.g. SpawnFailed, Interrupt or Cancel, already marked the row
  // releasing): deletes the ref and the row. OK when there is nothing (or
  // the run's row is not releasing). An error is also retried later.
  virtual Status Release(const Run& run) = 0;

  // Retries, when due, what a Finish or Release could not finish (the
  // receipt or the ref delete failed: the repository failing, a ref's lock
  // file): the outcome is recorded, so the run stays `finishing` (or its row
  // `releasing`) until this succeeds. Called every step.
  virtual void RetryUnfinished() = 0;

  // The longest the loop may sleep before a renewal or a retry is due (ms;
  // -1: none).
  virtual int64_t NextRenewalMs() const = 0;
};

// The lease-less path.
std::unique_ptr<RunLocks> NewOffRunLocks(RunStore* runs);

}  // namespace wtd

#endif  // WTD_SCHEDULER_RUN_LOCKS_H_
