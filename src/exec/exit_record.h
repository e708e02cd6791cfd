// The files a run's supervisor (wtd-exec, docs/design/supervisor.md) leaves
// beside the run, through which a daemon that did not watch the job end, or
// a later daemon, learns what happened:
//
//   <state-dir>/runs/<id>.exit  how the attempt ended. Written once, when the
//                               job has ended, durably (temp file, fsync,
//                               rename, fsync of the directory) before the
//                               supervisor exits: one JSON object on one line,
//                                 {"format":"wtd-exit","version":1,"run":N,
//                                  "attempt":N,"exit_code":N,"signal":N,
//                                  "timed_out":B,"stopped":B,"log_bytes":N,
//                                  "log_truncated":B,"started_at_ms":N,
//                                  "ended_at_ms":N,"duration_ms":N,
//                                  "error":"..."}
//   <state-dir>/runs/<id>.pgid  the job's process group: "PGID START_TIME\n",
//                               written (not synced: it only matters while
//                               this boot lasts) before the job may run.
//
// Thread-safety: pure functions and plain file access.
#ifndef WTD_EXEC_EXIT_RECORD_H_
#define WTD_EXEC_EXIT_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/attempt_outcome.h"
#include "wtd/status.h"

namespace wtd {

struct ExitRecord {
  uint64_t run_id = 0;
  uint32_t attempt = 0;  // 1-based, as the run's `attempt` while it runs
  AttemptOutcome outcome;
  int64_t started_at_ms = 0;  // wall clock: the job released
  int64_t ended_at_ms = 0;    // wall clock: the job reaped
};

std::string EncodeExitRecord(const ExitRecord& r);
// Corruption naming what is wrong: not one JSON object, another format, a
// newer version (NotSupported), a missing or mistyped field.
Result<ExitRecord> DecodeExitRecord(std::string_view text);

// Writes `r` to `path` durably (file_util.h WriteFileAtomic).
Status WriteExitRecord(const std::string& path, const ExitRecord& r);

// The outcome of attempt `attempt` of run `run_id` at `path`: nullopt when
// there is no such file; Corruption when the file cannot be decoded or is
// another run's or attempt's (a torn or foreign file is never an outcome).
Result<std::optional<ExitRecord>> ReadExitRecord(const std::string& path, uint64_t run_id,
                                                 uint32_t attempt);

struct JobGroup {
  int32_t pgid = 0;         // the job's pid, the leader of its own group
  uint64_t start_time = 0;  // of that leader, clock ticks since boot
};

std::string EncodeJobGroup(const JobGroup& g);
Result<JobGroup> DecodeJobGroup(std::string_view text);
// Nullopt when there is no such file; Corruption when it cannot be decoded.
Result<std::optional<JobGroup>> ReadJobGroup(const std::string& path);

}  // namespace wtd

#endif  // WTD_EXEC_EXIT_RECORD_H_
