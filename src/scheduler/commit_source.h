// CommitSource: what the scheduler's loop needs from the side that finds
// commits and enqueues their runs (the Poller, over git), as an interface
// so the loop can be tested with a fake that enqueues runs itself: no git,
// no repository.
//
// Thread-safety: called on the loop thread only.
#ifndef WTD_SCHEDULER_COMMIT_SOURCE_H_
#define WTD_SCHEDULER_COMMIT_SOURCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "report/daemon_status.h"
#include "store/records.h"
#include "wtd/status.h"

namespace wtd {

struct PollStats {
  uint64_t runs_enqueued = 0;
  uint64_t commits_seen = 0;
  bool more = false;  // some work was cut short by the budget: poll again at once
};

class CommitSource {
 public:
  virtual ~CommitSource() = default;
  // One pass: finds new commits and enqueues their runs.
  virtual PollStats Tick() = 0;
  // Directories whose changes should wake the loop early.
  virtual std::vector<std::string> WatchDirs() const = 0;
  // Fills the source's part of `wtctl status`: last_tick_ms, repos,
  // job_errors, skipped_commits.
  virtual void Report(SchedulerSnapshot* out) const = 0;
  // Where worktree `worktree_id` of repository `repo_root` is now; nullopt
  // when it no longer exists; NotFound when the repository is not watched
  // now (dropped by a reload, or unreadable): the run then goes where it
  // was recorded; another error when the worktree cannot be used.
  virtual Result<std::optional<std::string>> CurrentWorktreePath(
      const std::string& repo_root, const std::string& worktree_id) = 0;
  // Fills what a run record older than class version 3 lacks (command,
  // env, commit subject, author, time) from its commit. NotFound when the
  // job is no longer defined there.
  virtual Status ResolveJob(Run* run) = 0;
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_COMMIT_SOURCE_H_
