// RunSlots: the scheduler's seam for the worktrees runs with `isolation =
// commit` run in (docs/design/worktrees.md), as RunLocks is its seam for
// locks. The daemon's implementation is WorktreeSlots (src/worktrees); a
// scheduler without one runs every job in its watched worktree.
//
// Thread-safety: called from the scheduler's loop thread only.
#ifndef WTD_SCHEDULER_RUN_SLOTS_H_
#define WTD_SCHEDULER_RUN_SLOTS_H_

#include <string>

#include "runs/run_store.h"
#include "wtd/status.h"

namespace wtd {

// The worktree a run was given.
struct RunSlot {
  std::string name;
  std::string path;
};

class RunSlots {
 public:
  virtual ~RunSlots() = default;
  // Whether Take would find a slot for `run` now (a free one, or room for a
  // new one): a run that cannot is left pending, its lock not taken.
  virtual bool CanTake(const Run& run) = 0;
  // A worktree at exactly run.key.sha, recorded as the run's before it is
  // moved there. An error: the run's attempt cannot start.
  virtual Result<RunSlot> Take(const Run& run) = 0;
  // The run's attempt is over: its worktree is free again, or with `keep`
  // kept aside for inspection.
  virtual Status Give(const Run& run, bool keep) = 0;
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_RUN_SLOTS_H_
