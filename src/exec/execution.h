// Execution: the daemon's side of one job's supervisor, from spawn (or
// adoption) to the recorded outcome (docs/design/supervisor.md, and
// docs/design/loop.md, "Dispatch and the spawn handshake").
//
// Start() opens the run log and posix_spawns the supervisor `wtd-exec`
// (exec/supervisor.h) as the leader of a new process group, with the log as
// its fd 4. It blocks reading fd 3 (the read end of a handshake pipe). The
// caller durably records identity() and only then calls Release(), which
// writes the release line (with the job's timeout) and closes the pipe. If
// the daemon dies or calls Abort() instead, the supervisor reads EOF and
// exits without running anything: a job never runs without a durable record
// naming its supervisor.
//
// After Release the supervisor does the job's work: it forks the job into
// a group of its own, copies its output into the run log within the cap,
// enforces the timeout, and writes the outcome to the run's exit file
// before it exits. A worker thread here only waits for the supervisor to
// exit (pidfd), reaps it and reads that file. A supervisor that exits
// without a readable outcome (killed, or its write failed) has its job's
// group killed (from the group file) and gives an outcome with `lost` set:
// the attempt is interrupted, not failed.
//
// Adopt() takes on the supervisor of a run an earlier daemon started: it
// is not this process's child (unless this process re-executed itself: then
// it is, and is reaped as such); it is watched through a pidfd opened while
// its identity (pid + start time + boot id) is checked, so a reused pid is
// never taken for it.
//
// Terminate sends SIGTERM to the supervisor, which stops the job's group
// (SIGTERM, SIGKILL after the grace) and records it stopped.
//
// Thread-safety: all public methods may be called from any thread.
#ifndef WTD_EXEC_EXECUTION_H_
#define WTD_EXEC_EXECUTION_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/process_table.h"
#include "exec/launcher.h"
#include "wtd/status.h"

namespace wtd {

// The umask jobs run with, for the whole process (as the umask itself is).
// The daemon runs with umask 077 so that what it creates is its user's alone,
// and passes the umask it was started with here: every later job gets that one
// back (the supervisor sets it before exec). -1, the default: jobs keep the
// process's umask.
void SetJobUmask(int mask);
// The umask SetJobUmask set, or -1.
int JobUmask();

class Execution : public Launched {
 public:
  // Opens (creates 0600, appends; a symlink is refused) req.log_path,
  // creating its directory, removes an earlier attempt's exit and group
  // files, and spawns the supervisor held before the job. Returns an error
  // naming the shim, cwd or log path when any step fails; on error nothing
  // is left running.
  // REQUIRES: processes != nullptr and outlives the Execution.
  static Result<std::unique_ptr<Execution>> Start(const SpawnRequest& req, ProcessTable* processes);

  // Watches the live supervisor `req.supervisor` again. NotFound when it is
  // gone or its pid now names another process. Call OnDone, then Watch.
  static Result<std::unique_ptr<Execution>> Adopt(const AdoptRequest& req, ProcessTable* processes);

  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  // If never released: Abort(). Otherwise waits for the worker thread, i.e.
  // for the supervisor to end (call Terminate() first to end it promptly),
  // unless Detach was called.
  ~Execution() override;

  // {pid, start time, boot id} of the supervisor; fixed from Start on.
  const ProcessIdentity& identity() const override { return identity_; }

  // Lets the job run: writes the release line and starts the worker.
  // timeout_ms <= 0: no timeout; kill_grace_ms is the wait between SIGTERM
  // and SIGKILL (also for Terminate). FailedPrecondition when already
  // released or aborted. IOError when the line cannot be written (the
  // supervisor is gone): the job did not run, and the worker still reaps it
  // and delivers an outcome with never_ran set.
  Status Release(int64_t timeout_ms, int64_t kill_grace_ms) override EXCLUDES(mu_);

  // Instead of Release: closes the handshake pipe (the supervisor exits 125
  // without running anything) and reaps it. The outcome has never_ran set.
  // OnDone is not called. No-op after Release or a prior Abort.
  void Abort() override EXCLUDES(mu_);

  // Asks the job to stop now: SIGTERM to the supervisor, which stops the
  // job's group. Before Release it is Abort(). Returns immediately.
  void Terminate() override EXCLUDES(mu_);

  // An adopted supervisor: starts the worker. No-op otherwise.
  void Watch() override EXCLUDES(mu_);

  // Stops the worker without reaping or signalling anything.
  void Detach() override EXCLUDES(mu_);

  // True once the outcome is final.
  bool Done() const EXCLUDES(mu_);

  // Blocks until the job ended and returns its outcome, or returns
  // std::nullopt when timeout_ms (>= 0) elapses first. timeout_ms < 0 waits
  // without limit. REQUIRES (for an unbounded wait): Release or Abort called.
  std::optional<AttemptOutcome> Wait(int64_t timeout_ms = -1) override EXCLUDES(mu_);

  // Optional completion callback, called once from the worker thread after
  // the outcome is final (Wait already returns it). The callback must not
  // destroy this Execution. REQUIRES: set before Release (or Watch).
  void OnDone(std::function<void(const AttemptOutcome&)> fn) override EXCLUDES(mu_);

 private:
  Execution(ProcessTable* processes, uint64_t run_id, uint32_t attempt, std::string exit_path,
            std::string group_path);

  // Spawns the supervisor with its fds, process group, signal state and cwd.
  Status Spawn(const SpawnRequest& req, int log_fd, int handshake_read);
  // Wakes the worker's poll (Terminate, Detach).
  void WakeWorker();
  // Whether the supervisor was sent SIGTERM.
  bool TermSent() const EXCLUDES(mu_);
  // Worker thread body: wait for the supervisor, reap it, read the outcome.
  void Run();
  // The outcome from the exit file, or a lost one (the job's group killed).
  AttemptOutcome Collect(int status);
  // Marks the outcome final and wakes waiters.
  void Finish(AttemptOutcome outcome) EXCLUDES(mu_);

  ProcessTable* const processes_;
  const uint64_t run_id_;
  const uint32_t attempt_;
  const std::string exit_path_;
  const std::string group_path_;
  ProcessIdentity identity_;
  pid_t pid_ = -1;
  bool child_ = false;     // spawned by this process (reaped with waitpid)
  int pid_fd_ = -1;        // the supervisor's pidfd, -1 when the kernel has none
  int wake_fd_ = -1;       // eventfd: Terminate or Detach for the worker
  int handshake_fd_ = -1;  // write end of the handshake pipe (held until Release/Abort)
  bool release_failed_ = false;
  std::string release_error_;

  std::atomic<bool> terminate_requested_{false};
  std::atomic<bool> detach_requested_{false};

  mutable Mutex mu_;
  CondVar cv_;  // signalled when done_ becomes true
  bool released_ GUARDED_BY(mu_) = false;
  bool aborted_ GUARDED_BY(mu_) = false;
  bool done_ GUARDED_BY(mu_) = false;
  bool term_sent_ GUARDED_BY(mu_) = false;
  AttemptOutcome outcome_ GUARDED_BY(mu_);  // final once done_
  std::function<void(const AttemptOutcome&)> on_done_ GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace wtd

#endif  // WTD_EXEC_EXECUTION_H_
