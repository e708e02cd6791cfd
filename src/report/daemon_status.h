// What the daemon reports about itself: the plain values the scheduler,
// the poller and the job loader publish, and that the `status` command
// (src/commands/status.cc) turns into JSON. Kept here, below the scheduler,
// so that wtctl and the commands need not link the loop.
//
// Thread-safety: plain values.
#ifndef WTD_REPORT_DAEMON_STATUS_H_
#define WTD_REPORT_DAEMON_STATUS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace wtd {

struct WorktreeStatus {
  std::string id;
  std::string path;
  std::string branch;
  std::string head;
};

struct RepoStatus {
  std::string path;   // as configured
  std::string root;   // main worktree root, once opened
  std::string error;  // last error, empty when healthy
  uint32_t consecutive_failures = 0;
  int64_t last_ok_ms = 0;        // end of its last successful poll (0: none yet)
  int64_t error_since_ms = 0;    // first failure of the current failing streak (0: healthy)
  int64_t backoff_until_ms = 0;  // next poll not before this while failing (0: healthy)
  std::vector<WorktreeStatus> worktrees;
};

struct JobFileError {
  std::string repo;     // repository root
  std::string sha;      // first commit it was seen in
  std::string message;  // "<file>:<line>: <key>: <what>", or "<file>: symlink to '<target>' ..."
};

// Commits passed over without runs, for `wtctl status`.
struct SkippedCommits {
  std::string repo;      // repository root
  std::string worktree;  // worktree id
  std::string sha;       // the newest commit skipped
  uint64_t count = 0;
  std::string reason;
  int64_t at_ms = 0;
};

// What the recovery pass at this daemon's start did.
struct RecoverySummary {
  int64_t at_ms = 0;         // when it ended
  bool first_start = false;  // the store was new: there was no earlier daemon
  bool previous_shutdown_clean = false;
  uint64_t active_scanned = 0;
  std::vector<std::pair<std::string, uint64_t>> actions;  // by kind, in kind order
  std::vector<std::string> errors;                        // runs it could not handle
  int64_t duration_us = 0;
};

// A job the loop runs now.
struct RunningStatus {
  uint64_t id = 0;
  int64_t started_at_ms = 0;
  // When it last produced output or used CPU, as the loop last sampled it
  // (its start until then; 0 when nothing samples).
  int64_t active_at_ms = 0;
  bool stuck = false;  // idle for --stuck-after-s or longer
  // Started by an earlier daemon and adopted at this one's start: its
  // supervisor outlived that daemon (docs/design/supervisor.md).
  bool adopted = false;
};

// What `wtctl status` shows; refreshed by the loop after each step.
struct SchedulerSnapshot {
  bool paused = false;
  bool stopping = false;
  int64_t last_tick_ms = 0;
  uint64_t ticks = 0;
  uint64_t runs_enqueued = 0;
  uint64_t runs_started = 0;
  std::vector<RepoStatus> repos;
  std::vector<JobFileError> job_errors;
  std::vector<SkippedCommits> skipped_commits;
  std::vector<uint64_t> running;              // run ids with a live process
  std::vector<RunningStatus> running_detail;  // the same runs, in id order
  int64_t stuck_after_ms = 0;                 // --stuck-after-s, as in effect
  std::string store_error;                    // set once the store went read-only
};

}  // namespace wtd

#endif  // WTD_REPORT_DAEMON_STATUS_H_
