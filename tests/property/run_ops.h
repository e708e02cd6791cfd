// Runs a run_model Op against a real RunStore, the same way in the property
// test and in its child process (property_child), and reads a store back in
// the model's terms.
//
// Thread-safety: as RunStore's; the functions keep no state.
#ifndef WTD_TESTS_PROPERTY_RUN_OPS_H_
#define WTD_TESTS_PROPERTY_RUN_OPS_H_

#include <map>
#include <string_view>
#include <vector>

#include "fakes/fake_clock.h"
#include "property/run_model.h"
#include "runs/run_store.h"
#include "wtd/status.h"

namespace wtd::property {

// Executes `op` on `runs` as the scheduler does, passing the named crash
// points that the scheduler passes around the same calls
// (src/scheduler/dispatcher.cc), each only after a successful commit as
// there: an armed point stops the process just before or just after the
// commit. kWake first moves `clock` on by kWakeAdvanceMs. Returns the runs
// an enqueue created, or the run after a transition; NotFound when the key
// has no run; otherwise the store's refusal.
Result<std::vector<Run>> ExecuteOp(RunStore* runs, FakeClock* clock, const Op& op);

// The crash points ExecuteOp passes, in order, when `op` is accepted and
// writes something (an enqueue of only known keys and no cursor writes
// nothing and passes no point).
std::vector<std::string_view> CrashPointsOf(const Op& op);

// The outcome an attempt that ended with `outcome` reports (exit code
// ExitCodeOf(outcome)).
AttemptOutcome OutcomeOf(Outcome outcome);

// The recovery hooks of a daemon (RecoveryHooks in src/recovery/recovery.h)
// as the scheduler's lock-holding side does them, on `runs`:
//   AdoptRun          RunStore::Adopt by `incarnation`, the lease row (when
//                     the run holds one) re-owned by this daemon with a fresh
//                     expiry and ref blob (GitRunLocks::Adopt);
//   RecordUnwatched   the outcome a supervisor wrote, recorded as the loop
//                     would have: BeginFinish, then CompleteFinish (with a
//                     lease), else RunStore::Finish.
Result<Run> AdoptRun(RunStore* runs, FakeClock* clock, const Run& run, uint64_t incarnation);
Result<Run> RecordUnwatched(RunStore* runs, const Run& run, const AttemptOutcome& outcome);

// Every run in the store, by key index. Corruption for a run whose key is not
// in the pool, or for a second run with the same key.
Result<std::map<int, Run>> ReadRuns(const RunStore& runs);

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_RUN_OPS_H_
