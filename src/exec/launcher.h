// Launcher: the seam in front of starting job processes, so the scheduler
// can be driven by a fake in tests (no process, no git) the way ninja's
// build is driven by a FakeCommandRunner.
//
// A Launched job is held before it may run: the caller records its identity
// durably and only then calls Release (docs/design/loop.md, the spawn
// handshake). The real implementation (NewShimLauncher) is Execution: the
// posix_spawned supervisor wtd-exec (docs/design/supervisor.md), which stays
// the job's parent and records its outcome in a file, so a later daemon can
// adopt a job that outlived the daemon that started it (Launcher::Adopt).
//
// Thread-safety: a Launcher's Start may be called from one thread at a
// time; a Launched's methods from any thread.
#ifndef WTD_EXEC_LAUNCHER_H_
#define WTD_EXEC_LAUNCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/attempt_outcome.h"
#include "base/process_table.h"
#include "wtd/status.h"

namespace wtd {

struct SpawnRequest {
  uint64_t run_id = 0;
  std::string shim_path;              // absolute path of wtd-exec
  std::string command;                // run by /bin/sh -c
  std::string cwd;                    // worktree root
  std::vector<std::string> env;       // complete environment, "NAME=value"
  std::string log_path;               // <state-dir>/logs/runs/<id>.log, shared by all attempts
  uint64_t log_cap_bytes = 16 << 20;  // bound of the whole run log
  uint32_t attempt = 1;               // 1-based; a later one starts with a header line
  std::string exit_path;              // <state-dir>/runs/<id>.exit: the outcome, written last
  std::string group_path;             // <state-dir>/runs/<id>.pgid: the job's process group
};

// A supervisor an earlier daemon started, to be watched again.
struct AdoptRequest {
  uint64_t run_id = 0;
  uint32_t attempt = 0;        // the run's attempt: the one the exit file must name
  ProcessIdentity supervisor;  // as the run records it
  std::string exit_path;
  std::string group_path;
};

// One job process, held before it may run.
class Launched {
 public:
  virtual ~Launched() = default;
  // {pid, start time, boot id} of the process; fixed from Start on.
  virtual const ProcessIdentity& identity() const = 0;
  // Lets the job run. timeout_ms <= 0: no timeout; kill_grace_ms: the wait
  // between SIGTERM and SIGKILL (also used by Terminate). An error means
  // the job did not run; an outcome with never_ran still follows.
  virtual Status Release(int64_t timeout_ms, int64_t kill_grace_ms) = 0;
  // Instead of Release: the job never runs. OnDone is not called.
  virtual void Abort() = 0;
  // Asks the job to stop now (SIGTERM to its group, SIGKILL after the
  // grace). Returns at once.
  virtual void Terminate() = 0;
  // The outcome once the job ended, waiting at most timeout_ms (< 0: no
  // limit); nullopt if it has not ended by then.
  virtual std::optional<AttemptOutcome> Wait(int64_t timeout_ms) = 0;
  // Called once, from any thread, when the outcome is final.
  // REQUIRES: set before Release (for an adopted job: before Watch).
  virtual void OnDone(std::function<void(const AttemptOutcome&)> fn) = 0;
  // An adopted job: starts watching it (Release's counterpart). Others: no-op.
  virtual void Watch() {}
  // Stops watching without ending the job or waiting for it (the daemon
  // re-executes itself; the next one adopts the job). OnDone is not called.
  virtual void Detach() = 0;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts the process for `req`, held before it may run. On error nothing
  // is left running.
  virtual Result<std::unique_ptr<Launched>> Start(const SpawnRequest& req) = 0;
  // Takes on the live supervisor of a run an earlier daemon started. NotFound
  // when the process is gone or is not that supervisor any more.
  virtual Result<std::unique_ptr<Launched>> Adopt(const AdoptRequest& req) = 0;
};

// The real launcher: posix_spawn of the run supervisor wtd-exec (execution.h).
// `processes` must outlive it.
std::unique_ptr<Launcher> NewShimLauncher(ProcessTable* processes);

}  // namespace wtd

#endif  // WTD_EXEC_LAUNCHER_H_
