// The state dir at start-up: its guard, and what is said of its store. The
// state dir holds the store, the jobs' output (logs/runs), their context
// files (runs), the PID file and the control socket: anyone who can write
// there can make wtd run or kill what they like, so it must be the daemon
// user's alone.
//
// Thread-safety: plain functions; call before anything else uses the dir.
#ifndef WTD_DAEMON_STATE_DIR_H_
#define WTD_DAEMON_STATE_DIR_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wtd/status.h"

namespace wtd {

// The directories CheckStateDir looks at, relative to the state dir ("" is
// the state dir itself).
const std::vector<std::string>& StateDirParts();

// Checks the state dir `dir` (which must exist) and those of its
// subdirectories StateDirParts() names that exist. Each must be a directory
// owned by `owner` (the effective uid wtd runs as) and writable by nobody
// else: otherwise FailedPrecondition naming the path, its mode and owner, and
// how to fix it. One that is only readable or searchable by group or others
// is tightened to owner-only (its path and old mode are added to *tightened).
Status CheckStateDir(const std::string& dir, uid_t owner, std::vector<std::string>* tightened);

// What the start-up line says of the store's previous run, given the
// incarnation the open made and whether the one before it stopped cleanly:
// " (new state store)" for incarnation 1 (nothing ran before, so nothing can
// have stopped uncleanly), " (previous run did not stop cleanly)" for an
// existing store that was not shut down cleanly, "" otherwise.
std::string PreviousRunNote(uint64_t incarnation, bool previous_shutdown_clean);

}  // namespace wtd

#endif  // WTD_DAEMON_STATE_DIR_H_
