// The invariants a state store must satisfy after every recovery pass,
// checked from the store's own column families rather than from a model:
//   - runs and run_keys agree: each run's key maps to that run, and each
//     run_keys entry names a run with that key (so no key has two runs);
//   - active holds exactly the runs that are not terminal;
//   - no run is running unless `incarnation` started it and its process is
//     alive, and no process of an attempt that ended is alive;
//   - the events of each run form one path of the state machine from its
//     enqueue to its present state, so a terminal outcome is recorded
//     exactly once and nothing moves a run out of a terminal state.
//
// Thread-safety: reads only; call while nothing writes the store.
#ifndef WTD_TESTS_PROPERTY_INVARIANTS_H_
#define WTD_TESTS_PROPERTY_INVARIANTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/process_table.h"
#include "store/state_store.h"

namespace wtd::property {

// One line per violation; empty when every invariant holds.
std::vector<std::string> CheckInvariants(const StateStore& store, ProcessTable* processes,
                                         uint64_t incarnation);

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_INVARIANTS_H_
