// The recovery pass: run at start, before polling resumes, to bring every
// run that a previous incarnation left unfinished back to a state the
// scheduler can act on (docs/design/recovery.md).
//
// It scans `active` only, never history, so its cost grows with the number
// of unfinished runs, not with the number of runs ever made:
//   running under a supervisor (wtd-exec, docs/design/supervisor.md):
//     its exit file names this attempt -> the outcome recorded as if the
//                                       daemon had watched the job end (no
//                                       re-run); stopped: interrupted
//     the supervisor alive             -> adopted (hook): the run becomes this
//                                       incarnation's and stays running
//     else                             -> what is left of the job's group
//                                       killed, then interrupted as below
//   running, process gone            -> retry_wait (failed when attempts spent)
//   running, process alive from a previous incarnation (pid + start time +
//     boot id all match the record) -> process group killed, then as above
//   running, boot id unknown (now or in the record) -> as "process gone",
//                                       with nothing signalled: the process
//                                       cannot be proved to be the run's
//   leased | preparing | ready       -> hooks release what the run held
//                                       (lock lease and ref, half-made
//                                       worktree), then pending; no attempt
//                                       is used because no process ran
//   finishing, earlier incarnation   -> its receipt (hook), then the state
//                                       its outcome decided, or skipped when
//                                       another daemon's receipt is there
//   pending | retry_wait             -> left alone
// A run that stops holding its lock lease marks the lease row `releasing`
// in the batch of its transition. Then the `locks` family is scanned: a
// `held` row whose run no longer holds it (run missing, terminal, unstarted
// and requeued, or holding another token) is marked `releasing`; every
// `releasing` row is listed in the report for the caller to delete its ref
// (compare-and-swap on ref_blob or prev_ref_blob) and then DropLease.
// Every action is one committed batch, so a crash inside recovery is
// recovered by the next pass, which finds what is left to do.
//
// Thread-safety: call from one thread while nothing else transitions runs.
#ifndef WTD_RECOVERY_RECOVERY_H_
#define WTD_RECOVERY_RECOVERY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/process_table.h"
#include "runs/run_store.h"
#include "wtd/status.h"

namespace wtd {

struct RecoveryHooks {
  // Releases what a run that never started a process holds (its lease and
  // lock ref; a worktree being prepared). Must be idempotent. May be empty.
  std::function<Status(const Run&)> release_unstarted;
  // Releases what a run whose process is gone still holds. May be empty.
  std::function<Status(const Run&)> release_finished;
  // Writes the receipt of a `finishing` run left by an earlier incarnation
  // (idempotent: its own receipt already there counts as written). Returns
  // "" when the run's receipt is in place, or "HOST pid N run R" when
  // another daemon's receipt was there first (the run is then skipped).
  // Empty: the run is completed without a receipt.
  std::function<Result<std::string>(const Run&)> write_receipt;
  // Records the outcome a supervisor wrote for a run of an earlier
  // incarnation (the scheduler's Finish: with a lock, receipt and release).
  // Empty: RunStore::Finish (a run holding a lease is then an error).
  std::function<Result<Run>(const Run&, const AttemptOutcome&)> record_outcome;
  // Takes on the live supervisor of a run of an earlier incarnation: watches
  // it and makes the run this incarnation's (RunLocks::Adopt). NotFound when
  // the supervisor ended meanwhile (the pass looks for its outcome again);
  // Aborted when its lock was lost (the hook has stopped the job; the run is
  // interrupted). Empty (wtctl with no daemon): the run is left running for
  // the next daemon to adopt.
  std::function<Result<Run>(const Run&)> adopt;
};

struct RecoveryOptions {
  // How long to wait for a killed process group's leader to disappear.
  int64_t kill_wait_ms = 5000;
  // Plan mode: decide every action exactly as the pass would, and report
  // them, but change nothing: no commit, no hook called, no signal sent.
  // The actions are those the pass would then take, in the same order, with
  // `to` the state it would reach (a hook or commit that fails then turns
  // an action into an error instead). `releasing` lists the leases that
  // would be releasing after it.
  bool plan_only = false;
  // The state dir, where supervisors leave runs/<id>.exit and .pgid. Empty:
  // no outcome is looked for and no job group is known.
  std::string state_dir = {};
};

struct RecoveryAction {
  // "kill_orphan_group" (the live process group of a run of an earlier
  // incarnation SIGKILLed; from = to = running), "record_outcome" (a
  // supervisor's outcome recorded), "adopt_run" (a live supervisor adopted;
  // running -> running), "leave_running" (a live supervisor left for the
  // next daemon), "interrupt_run",
  // "requeue_run", "finish_release" (a finishing run completed or skipped),
  // "release_lease" (an orphaned held lease marked releasing; from and to
  // are its run's state, or pending when it has none).
  std::string kind;
  uint64_t run_id = 0;
  RunKey key;
  RunState from = RunState::kPending;
  RunState to = RunState::kPending;
  std::string lock;  // the lock name, for an action that released a lease
  std::string detail;
};

struct RecoveryReport {
  uint64_t incarnation = 0;
  bool planned = false;  // plan mode: nothing was done
  size_t active_scanned = 0;
  std::vector<RecoveryAction> actions;
  std::vector<std::string> errors;  // runs that could not be recovered now
  // The leases left `releasing` after the pass: for each, delete its ref
  // (CAS on ref_blob or prev_ref_blob), then RunStore::DropLease.
  std::vector<Lease> releasing;
  int64_t duration_us = 0;
};

// Runs the recovery pass for daemon incarnation `incarnation`. Runs started
// by this same incarnation are left alone (their processes are ours). A run
// that cannot be handled is reported in `errors` and left for the next pass;
// the pass goes on with the others.
Result<RecoveryReport> RunRecovery(RunStore* runs, ProcessTable* processes, Clock* clock,
                                   const RecoveryHooks& hooks, uint64_t incarnation,
                                   const RecoveryOptions& options = RecoveryOptions());

}  // namespace wtd

#endif  // WTD_RECOVERY_RECOVERY_H_
