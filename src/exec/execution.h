// Execution: one job process from spawn to reap, with the spawn handshake
// (docs/design/loop.md, "Dispatch and the spawn handshake").
//
// Start() posix_spawns the shim `wtd-exec` (tools/wtd_exec_main.cc) as the
// leader of a new process group. The shim blocks reading one byte from fd 3
// (the read end of a handshake pipe) before it execs `/bin/sh -c <command>`.
// The caller durably records identity() and only then calls Release(), which
// writes that byte. If the daemon dies or calls Abort() instead, the shim reads
// EOF and exits 125 without running anything: a job never runs without a
// durable record naming its process.
//
// After Release a worker thread copies the job's stdout+stderr into the run
// log, enforces the timeout (SIGTERM to the group, then SIGKILL after the
// grace), and when the leader exits SIGKILLs the whole group before reaping
// the leader, so no grandchild outlives the job and the group id cannot have
// been reused when it is signalled.
//
// The run log holds every attempt of a run: a later attempt appends a header
// line "[wtd: attempt N]" and then its output. log_cap_bytes bounds the whole
// file, all attempts together: output beyond what is left is read and
// discarded, and one line "[wtd: log truncated at CAP bytes]" is appended once
// (a later attempt of a run whose log already ends with it writes nothing).
// So the file never exceeds the cap plus that line.
//
// No SIGCHLD handler is installed or needed; the leader is observed with
// waitid(WNOWAIT) and reaped with waitpid by the worker (or by Abort).
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
// back (the shim sets it before exec). -1, the default: jobs keep the
// process's umask.
void SetJobUmask(int mask);

// One job process from spawn to reap. Thread-safe: Wait/Done/Terminate may be
// called from any thread.
class Execution : public Launched {
 public:
  // Opens (creates 0600, appends; a symlink is refused) req.log_path,
  // creating its directory, and spawns the shim held before exec. Returns an
  // error naming the shim, cwd or log path when any step fails; on error
  // nothing is left running.
  // REQUIRES: processes != nullptr (used only here).
  static Result<std::unique_ptr<Execution>> Start(const SpawnRequest& req, ProcessTable* processes);

  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  // If never released: Abort(). Otherwise waits for the worker thread, i.e.
  // for the job to end (call Terminate() first to end it promptly).
  ~Execution() override;

  // {pid, start time, boot id} of the group leader; fixed from Start on.
  const ProcessIdentity& identity() const override { return identity_; }

  // Lets the job exec and starts the pump/wait thread. timeout_ms <= 0 means
  // no timeout; kill_grace_ms is the wait between SIGTERM and SIGKILL (also
  // used by Terminate). FailedPrecondition when already released or aborted.
  // IOError when the handshake byte cannot be written (the shim is gone): the
  // job did not run, and the worker still reaps it and delivers an outcome with
  // never_ran set.
  Status Release(int64_t timeout_ms, int64_t kill_grace_ms) override EXCLUDES(mu_);

  // Instead of Release: closes the handshake pipe (the shim exits 125 without
  // running anything) and reaps it. The outcome has never_ran set. OnDone is
  // not called for an aborted execution. No-op after Release or a prior Abort.
  void Abort() override EXCLUDES(mu_);

  // Asks the job to stop now (graceful shutdown): SIGTERM to the group, SIGKILL
  // after kill_grace_ms. Before Release it is Abort(). Returns immediately;
  // the worker sends the signal within ~100 ms.
  void Terminate() override EXCLUDES(mu_);

  // True once the outcome is final.
  bool Done() const EXCLUDES(mu_);

  // Blocks until the job ended and returns its outcome, or returns
  // std::nullopt when timeout_ms (>= 0) elapses first. timeout_ms < 0 waits
  // without limit. REQUIRES (for an unbounded wait): Release or Abort called.
  std::optional<AttemptOutcome> Wait(int64_t timeout_ms = -1) override EXCLUDES(mu_);

  // Optional completion callback, called once from the worker thread after
  // the outcome is final (Wait already returns it). The callback must not
  // destroy this Execution. REQUIRES: set before Release.
  void OnDone(std::function<void(const AttemptOutcome&)> fn) override EXCLUDES(mu_);

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  explicit Execution(const SpawnRequest& req);

  // Spawns the shim with its fds, process group, signal state and cwd.
  Status Spawn(int out_write, int handshake_read);
  // Worker thread body: pump output, enforce timeouts, reap, finish the log.
  void Run();
  // Sends SIGTERM to the group when the timeout or a Terminate request is due,
  // and SIGKILL when the grace after it has passed.
  void EnforceDeadlines(SteadyTime now, bool* timed_out);
  // Reads once from the output pipe into the log. False at EOF or error.
  bool PumpOnce();
  // Reads the pipe to EOF, at most until `limit`.
  void Drain(SteadyTime limit);
  // Reads the end of the log as earlier attempts left it: its size, whether it
  // ends with a newline and with the truncation marker.
  Status ReadLogTail();
  // Writes the "[wtd: attempt N]" line of a later attempt, if it fits.
  void WriteAttemptHeader();
  // Writes `data` to the log within the cap; tracks truncation.
  void AppendToLog(const char* data, size_t size);
  // Writes to the log regardless of the cap; returns the bytes written.
  size_t WriteLog(const char* data, size_t size);
  // Appends the truncation marker, fsyncs, measures and closes the log.
  void FinishLog();
  // Marks the outcome final and wakes waiters.
  void Finish(AttemptOutcome outcome) EXCLUDES(mu_);
  // Fills exit_code/term_signal/error from a waitpid status.
  void DecodeStatus(int status, AttemptOutcome* outcome) const;

  const SpawnRequest req_;
  ProcessIdentity identity_;
  pid_t pid_ = -1;
  int out_fd_ = -1;        // read end of the job's stdout+stderr pipe
  int handshake_fd_ = -1;  // write end of the handshake pipe (held until Release/Abort)
  int log_fd_ = -1;

  // Set by Start; owned by the worker thread after Release.
  uint64_t log_bytes_ = 0;      // size of the log file
  bool log_truncated_ = false;  // this attempt lost output (or its header) to the cap
  bool log_marked_ = false;     // the log already ends with the truncation marker
  bool log_full_ = false;       // nothing more is written this attempt
  bool log_ends_with_newline_ = true;
  std::string output_head_;  // first bytes of output, to recognise a shim exec failure
  bool release_failed_ = false;
  std::string release_error_;

  SteadyTime released_at_;
  int64_t timeout_ms_ = 0;
  int64_t kill_grace_ms_ = 0;
  std::optional<SteadyTime> term_sent_at_;
  bool kill_sent_ = false;
  std::atomic<bool> terminate_requested_{false};

  mutable Mutex mu_;
  CondVar cv_;  // signalled when done_ becomes true
  bool released_ GUARDED_BY(mu_) = false;
  bool aborted_ GUARDED_BY(mu_) = false;
  bool done_ GUARDED_BY(mu_) = false;
  AttemptOutcome outcome_ GUARDED_BY(mu_);  // final once done_
  std::function<void(const AttemptOutcome&)> on_done_ GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace wtd

#endif  // WTD_EXEC_EXECUTION_H_
