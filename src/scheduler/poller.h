// Poller: finds new commits in the watched worktrees and enqueues one run per
// matching job per commit (docs/design/loop.md).
//
// Per tick and worktree: read HEAD through a kept-open libgit2 handle; when
// it equals the HEAD last processed, nothing else is done (no store access).
// Otherwise the new commits are those reachable from HEAD and from nothing
// this repository has processed (every cursor of every worktree and branch
// is hidden); a worktree with no cursor of its own also leaves out what is
// older than the lookback window. Each commit's job files are read from its
// own tree and matched, and the new runs are committed together with the
// cursor in one batch. docs/design/loop.md states the rule with its cases.
//
// At most `max_per_tick` new runs are enqueued per tick over all worktrees;
// a walk cut short keeps a durable frontier (the newest commits it took) and
// resumes there. More than `max_backfill` new commits at once (a switch to
// a years-old branch): only the newest are taken, the skip is logged and
// reported. A commit whose job files cannot be read (an object missing in a
// partial clone) is skipped and reported; a repository that fails as a
// whole (vanished, unreadable) is reported and retried with exponential
// backoff while the others go on.
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
#include "report/daemon_status.h"
#include "runs/retry_policy.h"
#include "runs/run_store.h"
#include "scheduler/commit_source.h"
#include "scheduler/job_loader.h"

namespace wtd {

enum class WorktreeSelection { kCurrent, kAll, kPaths };

struct RepoSpec {
  std::string path;  // any path inside the repository (resolved at open)
  WorktreeSelection selection = WorktreeSelection::kCurrent;
  std::vector<std::string> worktree_paths;  // kPaths
};

// The fields marked with a wtd option are set from the option table
// (src/daemon/options.cc, docs/design/options.md), which takes its defaults
// from here.
struct PollerOptions {
  std::string jobs_root = "jobs";  // --jobs-root
  // --lookback-s: how old a commit may be and still run, for a worktree
  // with no cursor of its own.
  int64_t lookback_s = 600;
  int64_t max_per_tick = 50;  // --max-per-tick
  // --max-backfill: most new commits taken at once for one worktree; older
  // ones are skipped.
  int64_t max_backfill = 200;
  // Most commits walked per worktree per tick (bounds one tick's work).
  size_t max_commits_per_walk = 1000;
  int64_t backoff_ms = 1000;       // --backoff-ms: a failing repository's backoff
  int64_t max_backoff_ms = 60000;  // --max-backoff-ms: its cap
  bool dry_run = false;            // --dry-run: log what would run, enqueue nothing
  // wtd's own worktrees live here (<state-dir>/worktrees): never watched.
  std::string own_worktree_root;
};

class Poller : public CommitSource {
 public:
  // `runs` and `clock` must outlive the Poller.
  Poller(RunStore* runs, Clock* clock, PollerOptions options);
  ~Poller();

  // Replaces the watched repositories (config load or reload). Handles of
  // repositories that stay are kept.
  void SetRepos(const std::vector<RepoSpec>& repos);
  // New options (a reload), from the next tick on: the backoff of every
  // repository, and when dry-run ends, the commits it only logged are walked
  // again (nothing was enqueued for them).
  void SetOptions(const PollerOptions& options);
  const PollerOptions& options() const { return options_; }

  // One pass over every repository that is not backing off.
  PollStats Tick() override;

  std::vector<RepoStatus> Snapshot() const;
  // Directories whose changes should wake the loop early (gitdirs, refs).
  std::vector<std::string> WatchDirs() const override;
  void Report(SchedulerSnapshot* out) const override;
  Status ResolveJob(Run* run) override;
  // The open repository whose main worktree root is `root`, or null.
  git::Repository* RepositoryFor(const std::string& root);
  JobLoader* job_loader() { return &loader_; }
  // Job-file errors seen so far (most recent last, bounded).
  const std::deque<JobFileError>& job_errors() const { return loader_.errors(); }
  // Commits skipped lately (most recent last, at most kMaxSkipped).
  const std::deque<SkippedCommits>& skipped() const { return skipped_; }
  static constexpr size_t kMaxSkipped = 100;
  int64_t last_tick_ms() const { return last_tick_ms_; }

  // Where worktree `worktree_id` of the repository whose main root is
  // `repo_root` is now (git::Repository::FindWorktree: re-listed when its
  // stamps changed, so a `git worktree move` is seen). nullopt when that
  // worktree is gone; FailedPrecondition when the repository is not open.
  Result<std::optional<std::string>> CurrentWorktreePath(const std::string& repo_root,
                                                         const std::string& worktree_id) override;

  // `wtctl trigger`: enqueues a run of job `job` as defined in the tree of
  // commit `rev` (any revision; "" = the worktree's HEAD) for watched
  // worktree `worktree` of watched repository `repo` ("" when exactly one
  // is watched). The job's branch, path and message filters are not asked.
  // Idempotent on the run key: when a run of (repo, worktree, job, sha)
  // exists, the newest series' run is answered and nothing is enqueued;
  // with `again`, the next series is enqueued even so. Errors name the
  // repository, worktree, revision or job file that is not there (listing
  // the ones that are). No cursor moves.
  Result<TriggeredRun> Trigger(const std::string& repo, const std::string& worktree,
                               const std::string& job, const std::string& rev, bool again);

 private:
  struct Worktree;
  struct Repo;

  Status PollRepo(Repo* repo, int64_t* budget, PollStats* stats);
  Status OpenRepo(Repo* repo);
  // Whether `path` lies under options_.own_worktree_root.
  bool IsOwnWorktree(const std::string& path) const;
  Status RefreshWorktrees(Repo* repo);
  Status PollWorktree(Repo* repo, Worktree* wt, int64_t* budget, PollStats* stats);
  struct Walked;
  // The new commits of `wt` at `head`, with the cursor they continue.
  Result<Walked> WalkNew(Repo* repo, Worktree* wt, const std::string& branch,
                         const std::string& head);
  // The runs `sha` calls for that do not exist yet. NotFound when one of
  // its objects cannot be read.
  Status CollectRuns(Repo* repo, Worktree* wt, const std::string& sha, const std::string& branch,
                     std::vector<NewRun>* out);
  void NoteSkipped(Repo* repo, Worktree* wt, const std::string& sha, uint64_t count,
                   const std::string& reason);

  RunStore* runs_;
  Clock* clock_;
  PollerOptions options_;
  JobLoader loader_;
  std::vector<std::unique_ptr<Repo>> repos_;
  std::deque<SkippedCommits> skipped_;
  size_t rotate_ = 0;  // repository fairness under max_per_tick
  int64_t last_tick_ms_ = 0;
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_POLLER_H_
