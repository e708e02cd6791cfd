// Where wtd keeps its files: the one definition of the default state
// directory and of each file's place inside it (docs/design/store.md lists
// the layout). wtd, wtctl and the tests all go through these.
//
// Thread-safety: pure functions (DefaultStateDir reads the environment).
#ifndef WTD_BASE_PATHS_H_
#define WTD_BASE_PATHS_H_

#include <cstdint>
#include <string>

namespace wtd {

// $WTD_STATE_DIR, else $XDG_STATE_HOME/wtd, else $HOME/.local/state/wtd;
// "" when none of them is set. `env` reads a variable (default: getenv).
std::string DefaultStateDir(const char* (*env)(const char*) = nullptr);

// <state-dir>/logs/runs/<id>.log: one run's output, all attempts.
std::string RunLogPath(const std::string& state_dir, uint64_t run_id);
// <state-dir>/runs/<id>.json: the run's context file (WTD_CONTEXT).
std::string RunContextPath(const std::string& state_dir, uint64_t run_id);
// <state-dir>/runs/<id>.exit: how the current attempt of the run ended, as its
// supervisor (wtd-exec) wrote it (src/exec/exit_record.h).
std::string RunExitPath(const std::string& state_dir, uint64_t run_id);
// <state-dir>/runs/<id>.pgid: the process group of the run's job, as its
// supervisor wrote it before letting the job run.
std::string RunGroupPath(const std::string& state_dir, uint64_t run_id);

}  // namespace wtd

#endif  // WTD_BASE_PATHS_H_
