// The invariants a state store must satisfy after every recovery pass,
// checked from the store's own column families rather than from a model:
//   - runs and run_keys agree: each run's key maps to that run, and each
//     run_keys entry names a run with that key (so no key has two runs);
//   - active holds exactly the runs that are not terminal;
//   - no run is running unless `incarnation` started it and its process is
//     alive, and no process of an attempt that ended is alive;
//   - no supervised run is left running when its supervisor's exit file
//     under `state_dir` (runs/<id>.exit) names its attempt: that outcome
//     was for recovery to record;
//   - the events of each run form one path of the state machine from its
//     enqueue to its present state, so a terminal outcome is recorded
//     exactly once and nothing moves a run out of a terminal state.
// and, below, those of the idempotency records.
//
// Thread-safety: reads only; call while nothing writes the store.
#ifndef WTD_TESTS_PROPERTY_INVARIANTS_H_
#define WTD_TESTS_PROPERTY_INVARIANTS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/process_table.h"
#include "store/records.h"
#include "store/state_store.h"

namespace wtd::property {

// One line per violation; empty when every invariant holds.
std::vector<std::string> CheckInvariants(const StateStore& store, ProcessTable* processes,
                                         uint64_t incarnation, const std::string& state_dir);

// The invariants of the idempotency records (by key index) on their own, as
// seen by store incarnation `incarnation`:
//   - attempts never exceed max_attempts (a Fail or a rollback of the last
//     attempt blocks the record; Unblock resets them), and a record that is
//     not blocked has attempts left or is done;
//   - an in_progress record has an owner of this or an earlier incarnation
//     and at least one attempt; a completed one has its result; a failed one
//     a retry time.
std::vector<std::string> CheckIdemRecords(const std::map<int, IdemRecord>& records,
                                          uint32_t max_attempts, uint64_t incarnation);

// What earlier looks at the idempotency records promise about later ones.
// One per test case; Observe after each step that may have changed them.
class IdemHistory {
 public:
  // Violations in `now`, seen by `incarnation`, of what was seen before:
  //   - a completed record's result and first attempt never change while it
  //     exists (until Forget: a Trim may delete it and a new one be made);
  //   - an attempt seen in_progress by an owner of an earlier incarnation
  //     (dead) is never completed by it: the record may be rolled back and
  //     retried, never completed under that owner.
  std::vector<std::string> Observe(const std::map<int, IdemRecord>& now, uint64_t incarnation);
  // A Trim may have run: completed records may be gone and made again.
  void Forget() { completed_.clear(); }

 private:
  std::map<int, IdemRecord> completed_;     // by key: as first seen completed
  std::map<int, std::set<uint64_t>> dead_;  // by key: owners seen in_progress when dead
};

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_INVARIANTS_H_
