// The run supervisor, the program `wtd-exec` (docs/design/supervisor.md).
//
//   wtd-exec --run=N --attempt=N --log-cap=BYTES --exit-file=PATH
//            --group-file=PATH [--umask=OCTAL] -- PROGRAM [ARG...]
//
// The daemon spawns it as the leader of a process group of its own with
//   fd 0  /dev/null          fd 3  the read end of the handshake pipe
//   fd 1  /dev/null          fd 4  the run's log, opened for appending
//   fd 2  the daemon's stderr (the supervisor's own messages)
// It waits on fd 3 for the release line "go TIMEOUT_MS KILL_GRACE_MS\n",
// which the daemon writes only once `running` (with the supervisor's pid,
// start time and boot id) is durable. EOF first: the daemon died or aborted
// the attempt, and nothing runs.
//
// Released, it stays the job's parent: it forks the job as the leader of a
// new process group, writes that group to --group-file, and only then lets
// the job exec PROGRAM (with --umask, the umask wtd was started with). It
// copies the job's stdout and stderr into the log within --log-cap
// (exec/run_log.h), sends SIGTERM to the job's group when TIMEOUT_MS (> 0)
// has passed or when it gets SIGTERM or SIGINT itself (the daemon stopping
// or cancelling the job), and SIGKILL KILL_GRACE_MS after that. When the
// job's leader exits it kills the rest of the group before reaping the
// leader (so the group id cannot have been reused), finishes the log and
// writes the outcome to --exit-file durably (exec/exit_record.h). It does
// not depend on the daemon after the release: it goes on if the daemon dies.
//
// Its exit status is its own, never the job's (which is in the exit file):
//   0    the outcome is in the exit file
//   125  not released (EOF on fd 3), or a usage error: nothing ran
//   126  the job ran but its outcome could not be written
// $WTD_EXEC_CRASH_AT (exec_before_exit_write | exec_after_exit_write) makes
// it SIGKILL itself at that point, for crash tests; it is removed from the
// job's environment.
//
// Thread-safety: a program's main, single-threaded.
#ifndef WTD_EXEC_SUPERVISOR_H_
#define WTD_EXEC_SUPERVISOR_H_

namespace wtd {

inline constexpr int kSupervisorOutcomeWritten = 0;
inline constexpr int kSupervisorNotRun = 125;
inline constexpr int kSupervisorOutcomeLost = 126;
// The job's exit status when it could not exec PROGRAM (its first output
// line then says why: "wtd-exec: exec PROGRAM: REASON").
inline constexpr int kJobExecFailed = 127;
inline constexpr char kExecFailurePrefix[] = "wtd-exec: exec ";

// fds the daemon hands the supervisor.
inline constexpr int kHandshakeFd = 3;
inline constexpr int kRunLogFd = 4;

// The release line the daemon writes on the handshake pipe.
inline constexpr char kReleaseWord[] = "go";

int SupervisorMain(int argc, char** argv);

}  // namespace wtd

#endif  // WTD_EXEC_SUPERVISOR_H_
