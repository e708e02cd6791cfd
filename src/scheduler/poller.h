// Poller: finds new commits in the watched worktrees and enqueues one run per
// matching job per commit (docs/design/loop.md).
//
// Per tick and worktree: read HEAD through a kept-open libgit2 handle; when
// it equals the HEAD last processed, nothing else is done (no store access).
// Otherwise walk the commits reachable from HEAD and not from the durable
// cursor of (repo, worktree, branch), oldest first — or, with no cursor or a
// cursor that is no longer an ancestor, those within the lookback window —
// read each commit's job files from its own tree, match them, and commit the
// new runs together with the cursor advance in one batch.
//
// At most `max_per_tick` runs are enqueued per tick over all worktrees; a
// worktree cut short continues at the next tick. A repository that fails
// (vanished, unreadable) is reported and retried with exponential backoff
// while the others go on.
//
// Thread-safety: not thread-safe; driven by the scheduler's loop thread.
#ifndef WTD_SCHEDULER_POLLER_H_
#define WTD_SCHEDULER_POLLER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "git/repository.h"
#include "runs/retry_policy.h"
#include "runs/run_store.h"
#include "scheduler/job_loader.h"

namespace wtd {

enum class WorktreeSelection { kCurrent, kAll, kPaths };

struct RepoSpec {
  std::string path;  // any path inside the repository (resolved at open)
  WorktreeSelection selection = WorktreeSelection::kCurrent;
  std::vector<std::string> worktree_paths;  // kPaths
};

struct PollerOptions {
  std::string jobs_root = "jobs";
  int64_t lookback_s = 600;
  int64_t max_per_tick = 50;
  // Most commits walked per worktree per tick (bounds one tick's work).
  size_t max_commits_per_walk = 1000;
  int64_t backoff_ms = 1000;
  int64_t max_backoff_ms = 60000;
  bool dry_run = false;
};

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
  std::vector<WorktreeStatus> worktrees;
};

struct PollStats {
  uint64_t runs_enqueued = 0;
  uint64_t commits_seen = 0;
  bool more = false;  // some worktree was cut short by max_per_tick
};

class Poller {
 public:
  // `runs` and `clock` must outlive the Poller.
  Poller(RunStore* runs, Clock* clock, PollerOptions options);
  ~Poller();

  // Replaces the watched repositories (config load or reload). Handles of
  // repositories that stay are kept.
  void SetRepos(const std::vector<RepoSpec>& repos);
  void SetOptions(const PollerOptions& options) { options_ = options; }
  const PollerOptions& options() const { return options_; }

  // One pass over every repository that is not backing off.
  PollStats Tick();

  std::vector<RepoStatus> Snapshot() const;
  // Directories whose changes should wake the loop early (gitdirs, refs).
  std::vector<std::string> WatchDirs() const;
  // The open repository whose main worktree root is `root`, or null.
  git::Repository* RepositoryFor(const std::string& root);
  JobLoader* job_loader() { return &loader_; }
  // Job-file errors seen so far (most recent last, bounded).
  const std::deque<JobFileError>& job_errors() const { return loader_.errors(); }
  int64_t last_tick_ms() const { return last_tick_ms_; }

  // Where worktree `worktree_id` of the repository whose main root is
  // `repo_root` is now (git::Repository::FindWorktree: re-listed when its
  // stamps changed, so a `git worktree move` is seen). nullopt when that
  // worktree is gone; FailedPrecondition when the repository is not open.
  Result<std::optional<std::string>> CurrentWorktreePath(const std::string& repo_root,
                                                         const std::string& worktree_id);

 private:
  struct Worktree;
  struct Repo;

  Status PollRepo(Repo* repo, int64_t* budget, PollStats* stats);
  Status OpenRepo(Repo* repo);
  Status RefreshWorktrees(Repo* repo);
  Status PollWorktree(Repo* repo, Worktree* wt, int64_t* budget, PollStats* stats);
  // Where the walk for `wt` at `head` starts: fills *stop (the cursor, when
  // it is an ancestor) or *min_time_s (the lookback bound).
  Status WalkBounds(Repo* repo, Worktree* wt, const std::string& branch, const std::string& head,
                    std::string* stop, int64_t* min_time_s);
  Status CollectRuns(Repo* repo, Worktree* wt, const std::string& sha, const std::string& branch,
                     std::vector<NewRun>* out, git::CommitInfo* info);

  RunStore* runs_;
  Clock* clock_;
  PollerOptions options_;
  JobLoader loader_;
  std::vector<std::unique_ptr<Repo>> repos_;
  size_t rotate_ = 0;  // repository fairness under max_per_tick
  int64_t last_tick_ms_ = 0;
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_POLLER_H_
