// AttemptOutcome: how one attempt of a run ended. The launcher fills it
// (exec/launcher.h) and RunStore::Finish records it (runs/run_store.h); it
// lives here, below both, so the outcome is written once and copied never.
#ifndef WTD_BASE_ATTEMPT_OUTCOME_H_
#define WTD_BASE_ATTEMPT_OUTCOME_H_

#include <cstdint>
#include <string>

namespace wtd {

struct AttemptOutcome {
  int32_t exit_code = -1;  // -1 when killed by a signal or never ran
  int32_t term_signal = 0;
  bool timed_out = false;
  // Ended because the daemon's stop signalled it, not on its own: the
  // attempt was interrupted, not finished. A job that ended before the
  // signal went out has its own outcome.
  bool stopped = false;
  bool never_ran = false;  // aborted before release, or the release failed
  // The job's supervisor ended without recording how the job ended (it was
  // killed, or could not write its exit file): like `stopped`, the attempt
  // is interrupted and retried, not failed. `error` says what happened.
  bool lost = false;
  int64_t duration_ms = 0;  // release to the job's exit
  // Size of the run log after this attempt: every attempt's output and
  // header, and the truncation marker if any.
  uint64_t log_bytes = 0;
  bool log_truncated = false;  // the cap cut the run's output, now or in an earlier attempt
  std::string error;  // e.g. "wtd-exec: exec /bin/sh: ..." when the shim failed to exec (127)
};

}  // namespace wtd

#endif  // WTD_BASE_ATTEMPT_OUTCOME_H_
