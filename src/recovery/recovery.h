// The recovery pass: run at start, before polling resumes, to bring every
// run that a previous incarnation left unfinished back to a state the
// scheduler can act on (docs/design/recovery.md).
//
// It scans `active` only, never history, so its cost grows with the number
// of unfinished runs, not with the number of runs ever made:
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
//   pending | retry_wait             -> left alone
// Every action is one committed transition, so a crash inside recovery is
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
};

struct RecoveryOptions {
  // How long to wait for a killed process group's leader to disappear.
  int64_t kill_wait_ms = 5000;
};

struct RecoveryAction {
  uint64_t run_id = 0;
  RunKey key;
  RunState from = RunState::kPending;
  RunState to = RunState::kPending;
  std::string detail;
};

struct RecoveryReport {
  uint64_t incarnation = 0;
  size_t active_scanned = 0;
  std::vector<RecoveryAction> actions;
  std::vector<std::string> errors;  // runs that could not be recovered now
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
