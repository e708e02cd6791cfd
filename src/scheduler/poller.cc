#include "scheduler/poller.h"

#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <iterator>
#include <optional>

#include "git/worktree_ops.h"

namespace wtd {

struct Poller::Worktree {
  git::WorktreeInfo info;
  // The HEAD (and branch) whose commits are all enqueued: while HEAD still
  // reads the same, a tick does nothing else for this worktree.
  std::string done_head;
  std::string done_branch;
  git::HeadInfo head;
};

struct Poller::Repo {
  explicit Repo(RepoSpec s, const PollerOptions& o)
      : spec(std::move(s)), backoff(o.backoff_ms, o.max_backoff_ms) {}
  RepoSpec spec;
  std::unique_ptr<git::Repository> git;
  std::vector<Worktree> worktrees;
  std::string error;
  int64_t last_ok_ms = 0;
  int64_t error_since_ms = 0;  // start of the current failing streak
  Backoff backoff;
  std::set<std::string> refused;  // worktree paths already reported as refused
};

namespace {

// The branch name a cursor is kept under: detached HEADs share "HEAD".
std::string CursorBranch(const git::HeadInfo& head) {
  return head.detached || head.branch.empty() ? "HEAD" : head.branch;
}

bool Selected(const RepoSpec& spec, const git::WorktreeInfo& wt, const std::string& opened_id) {
  switch (spec.selection) {
    case WorktreeSelection::kAll:
      return true;
    case WorktreeSelection::kCurrent:
      return wt.id == opened_id;
    case WorktreeSelection::kPaths:
      return std::find(spec.worktree_paths.begin(), spec.worktree_paths.end(), wt.path) !=
             spec.worktree_paths.end();
  }
  return false;
}

}  // namespace

Poller::Poller(RunStore* runs, Clock* clock, PollerOptions options)
    : runs_(runs), clock_(clock), options_(std::move(options)) {}

Poller::~Poller() = default;

void Poller::SetRepos(const std::vector<RepoSpec>& specs) {
  std::vector<std::unique_ptr<Repo>> next;
  for (const RepoSpec& spec : specs) {
    auto same = std::find_if(repos_.begin(), repos_.end(), [&](const std::unique_ptr<Repo>& r) {
      return r && r->spec.path == spec.path && r->spec.selection == spec.selection &&
             r->spec.worktree_paths == spec.worktree_paths;
    });
    if (same != repos_.end()) {
      next.push_back(std::move(*same));
    } else {
      next.push_back(std::make_unique<Repo>(spec, options_));
    }
  }
  repos_ = std::move(next);
  rotate_ = 0;
}

void Poller::SetOptions(const PollerOptions& options) {
  bool dry_run_ended = options_.dry_run && !options.dry_run;
  options_ = options;
  for (std::unique_ptr<Repo>& repo : repos_) {
    repo->backoff.SetLimits(options_.backoff_ms, options_.max_backoff_ms);
    if (!dry_run_ended) continue;
    for (Worktree& wt : repo->worktrees) wt.done_head.clear();
  }
}

PollStats Poller::Tick() {
  PollStats stats;
  int64_t budget = options_.max_per_tick;
  int64_t now = clock_->NowMs();
  last_tick_ms_ = now;
  for (size_t i = 0; i < repos_.size(); ++i) {
    if (budget <= 0) {
      stats.more = true;  // repositories left unpolled this tick
      break;
    }
    Repo* repo = repos_[(rotate_ + i) % repos_.size()].get();
    if (!repo->backoff.Ready(now)) continue;
    Status st = PollRepo(repo, &budget, &stats);
    if (st.ok()) {
      if (!repo->error.empty()) spdlog::info("repository {} is healthy again", repo->spec.path);
      repo->error.clear();
      repo->error_since_ms = 0;
      repo->last_ok_ms = clock_->NowMs();
      repo->backoff.Success();
      continue;
    }
    if (repo->error_since_ms == 0) repo->error_since_ms = now;
    repo->backoff.Failure(now);
    repo->error = st.ToString();
    // A repository that failed is reopened from scratch next time: it may
    // have been deleted, moved or replaced.
    repo->git.reset();
    repo->worktrees.clear();
    spdlog::warn("repository {}: {} (failure {}, next try in {} ms)", repo->spec.path,
                 st.ToString(), repo->backoff.failures(), repo->backoff.next_ms() - now);
  }
  if (!repos_.empty()) rotate_ = (rotate_ + 1) % repos_.size();
  return stats;
}

Status Poller::PollRepo(Repo* repo, int64_t* budget, PollStats* stats) {
  if (!repo->git) WTD_RETURN_IF_ERROR(OpenRepo(repo));
  WTD_RETURN_IF_ERROR(RefreshWorktrees(repo));
  for (Worktree& wt : repo->worktrees) {
    if (*budget <= 0) {
      stats->more = true;  // worktrees left unpolled this tick
      break;
    }
    WTD_RETURN_IF_ERROR(PollWorktree(repo, &wt, budget, stats));
  }
  return Status::OK();
}

bool Poller::IsOwnWorktree(const std::string& path) const {
  const std::string& own = options_.own_worktree_root;
  if (own.empty()) return false;
  char buf[PATH_MAX];
  std::string real = realpath(own.c_str(), buf) != nullptr ? std::string(buf) : own;
  for (const std::string& root : {own, real}) {
    if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
        path[root.size()] == '/') {
      return true;
    }
  }
  return false;
}

Status Poller::OpenRepo(Repo* repo) {
  WTD_ASSIGN_OR_RETURN(repo->git, git::Repository::Open(repo->spec.path));
  spdlog::info("watching repository {} (opened at {})", repo->git->root(), repo->spec.path);
  return Status::OK();
}

Status Poller::RefreshWorktrees(Repo* repo) {
  WTD_ASSIGN_OR_RETURN(std::vector<git::WorktreeInfo> infos, repo->git->ListWorktrees());
  std::vector<std::string> before;
  for (const Worktree& w : repo->worktrees) before.push_back(w.info.id);
  std::vector<Worktree> next;
  for (git::WorktreeInfo& info : infos) {
    if (IsOwnWorktree(info.path)) continue;  // a run's worktree, not a user's
    if (!info.is_main && info.id == "main") {
      // Its runs, cursors and logs would be confused with the main
      // worktree's: refuse it, loudly, rather than guess.
      if (!repo->refused.insert(info.path).second) continue;
      spdlog::error(
          "worktree {} of {} has the admin name 'main', which is reserved for the "
          "main worktree; not watching it (rename it with `git worktree move`)",
          info.path, repo->git->root());
      continue;
    }
    if (!Selected(repo->spec, info, repo->git->opened_worktree_id())) continue;
    auto old = std::find_if(repo->worktrees.begin(), repo->worktrees.end(),
                            [&](const Worktree& w) { return w.info.id == info.id; });
    if (old != repo->worktrees.end() && old->info.path == info.path) {
      next.push_back(std::move(*old));
      continue;
    }
    spdlog::info("watching worktree {} ({}) of {}", info.id, info.path, repo->git->root());
    Worktree wt;
    wt.info = std::move(info);
    next.push_back(std::move(wt));
  }
  // (Kept entries were moved out of repo->worktrees: compare ids taken before.)
  for (const std::string& id : before) {
    bool kept =
        std::any_of(next.begin(), next.end(), [&](const Worktree& n) { return n.info.id == id; });
    if (!kept) spdlog::info("worktree {} of {} is gone", id, repo->git->root());
  }
  repo->worktrees = std::move(next);
  return Status::OK();
}

struct Poller::Walked {
  std::vector<git::WalkedCommit> commits;  // new, oldest first
  std::vector<std::string> cut_off;        // behind the lookback window
  std::optional<Cursor> cursor;            // of (worktree, branch), if any
};

Result<Poller::Walked> Poller::WalkNew(Repo* repo, Worktree* wt, const std::string& branch,
                                       const std::string& head) {
  const std::string& root = repo->git->root();
  WTD_ASSIGN_OR_RETURN(std::vector<CursorEntry> cursors, runs_->ListCursors(root));
  Walked out;
  std::vector<std::string> hide;
  bool has_own = false;
  for (CursorEntry& c : cursors) {
    if (!c.cursor.sha.empty()) hide.push_back(c.cursor.sha);
    hide.insert(hide.end(), c.cursor.frontier.begin(), c.cursor.frontier.end());
    if (c.worktree != wt->info.id) continue;
    has_own = true;
    if (c.branch == branch) out.cursor = std::move(c.cursor);
  }
  // Nothing processed here yet (first start, a new worktree): only the
  // lookback window is new. Otherwise everything not processed is, however
  // old (a branch switch, a rebase onto older upstream commits).
  int64_t min_time_s = has_own ? 0 : clock_->NowMs() / 1000 - options_.lookback_s;
  if (out.cursor && out.cursor->sha == head && out.cursor->frontier.empty()) return out;
  WTD_ASSIGN_OR_RETURN(git::NewHistory history, repo->git->WalkNew(head, hide, min_time_s));
  for (const std::string& t : history.truncated) {
    spdlog::info("worktree {} of {}: history ends early at {}", wt->info.id, root, t);
  }
  out.commits = std::move(history.commits);
  out.cut_off = std::move(history.cut_off);
  return out;
}

namespace {

// What a run record carries of its job and commit (class version 3).
void FillJob(const JobSpec& spec, const git::CommitInfo& info, std::string* command,
             std::vector<std::pair<std::string, std::string>>* env, std::string* subject,
             std::string* author, int64_t* time_s) {
  *command = spec.run;
  *env = spec.env;
  *subject = info.subject;
  *author = info.author_name + " <" + info.author_email + ">";
  *time_s = info.time_s;
}

NewRun MakeNewRun(const JobSpec& spec, const git::CommitInfo& info, const RunKey& key,
                  const std::string& branch, const std::string& worktree_path) {
  NewRun r;
  r.key = key;
  r.branch = branch;
  r.worktree_path = worktree_path;
  r.max_attempts = spec.max_attempts;
  r.retry_backoff_ms = spec.retry_backoff_s * 1000;
  r.timeout_ms = spec.timeout_s * 1000;
  FillJob(spec, info, &r.command, &r.env, &r.commit_subject, &r.commit_author, &r.commit_time_s);
  r.isolation = spec.inplace ? Isolation::kInplace : Isolation::kCommit;
  r.keep_worktree = spec.keep_on_failure ? KeepWorktree::kOnFailure : KeepWorktree::kNever;
  return r;
}

// The commits of `taken` that no other commit of `taken` has as a parent:
// with the commits hidden before, they stand for everything taken.
std::vector<std::string> Tips(const std::vector<git::WalkedCommit>& taken) {
  std::set<std::string> tips;
  for (const git::WalkedCommit& c : taken) tips.insert(c.sha);
  for (const git::WalkedCommit& c : taken) {
    for (const std::string& p : c.parents) tips.erase(p);
  }
  return std::vector<std::string>(tips.begin(), tips.end());
}

}  // namespace

Status Poller::PollWorktree(Repo* repo, Worktree* wt, int64_t* budget, PollStats* stats) {
  WTD_ASSIGN_OR_RETURN(wt->head, repo->git->ReadHead(wt->info));
  const git::HeadInfo& head = wt->head;
  std::string branch = CursorBranch(head);
  if (head.sha.empty()) return Status::OK();  // unborn: nothing to run yet
  if (head.sha == wt->done_head && branch == wt->done_branch) return Status::OK();

  WTD_ASSIGN_OR_RETURN(Walked walked, WalkNew(repo, wt, branch, head.sha));
  std::vector<git::WalkedCommit>& commits = walked.commits;
  uint64_t skipped = 0;
  size_t first = 0;
  if (static_cast<int64_t>(commits.size()) > options_.max_backfill) {
    first = commits.size() - static_cast<size_t>(options_.max_backfill);
    NoteSkipped(repo, wt, commits[first - 1].sha, first,
                "more than --max-backfill=" + std::to_string(options_.max_backfill) +
                    " new commits at once; the oldest were not run");
    skipped += first;
  }
  std::vector<NewRun> runs;
  size_t end = first;  // commits [0, end) are processed
  for (; end < commits.size(); ++end) {
    if (end - first >= options_.max_commits_per_walk) break;
    const std::string& sha = commits[end].sha;
    std::vector<NewRun> mine;
    Status st = CollectRuns(repo, wt, sha, branch, &mine);
    if (st.IsNotFound() && repo->git->CheckPresent().ok()) {
      NoteSkipped(repo, wt, sha, 1, st.ToString());
      ++skipped;
      continue;
    }
    WTD_RETURN_IF_ERROR(st);
    // Only runs that do not exist yet are charged; the first commit is
    // always taken, so a commit with more jobs than the budget progresses.
    if (end > first && static_cast<int64_t>(mine.size()) > *budget) break;
    *budget -= static_cast<int64_t>(mine.size());
    runs.insert(runs.end(), std::make_move_iterator(mine.begin()),
                std::make_move_iterator(mine.end()));
    ++stats->commits_seen;
  }
  bool complete = end == commits.size();

  Cursor next;
  if (complete) {
    next.sha = head.sha;
    Result<git::CommitInfo> info = repo->git->LookupCommit(head.sha);
    if (info.ok()) next.commit_time_s = info->time_s;
  } else {
    if (walked.cursor) next = *walked.cursor;
    std::vector<git::WalkedCommit> taken(commits.begin(), commits.begin() + end);
    for (std::string& t : Tips(taken)) next.frontier.push_back(std::move(t));
    next.frontier.insert(next.frontier.end(), walked.cut_off.begin(), walked.cut_off.end());
    std::sort(next.frontier.begin(), next.frontier.end());
    next.frontier.erase(std::unique(next.frontier.begin(), next.frontier.end()),
                        next.frontier.end());
  }
  next.skipped = (walked.cursor ? walked.cursor->skipped : 0) + skipped;
  bool unchanged = walked.cursor && walked.cursor->sha == next.sha &&
                   walked.cursor->frontier == next.frontier &&
                   walked.cursor->skipped == next.skipped;

  if (options_.dry_run) {
    for (const NewRun& r : runs) {
      spdlog::info("dry run: would run job {} on {} in worktree {} ({})", r.key.job,
                   r.key.sha.substr(0, 12), r.key.worktree, r.worktree_path);
    }
  } else if (!runs.empty() || !unchanged) {
    next.updated_at_ms = clock_->NowMs();
    CursorUpdate cursor{repo->git->root(), wt->info.id, branch, std::move(next)};
    // Enqueue passes crash point after_enqueue_commit.
    WTD_ASSIGN_OR_RETURN(std::vector<Run> created, runs_->Enqueue(runs, cursor));
    for (const Run& r : created) {
      spdlog::info("run {} queued: job {} on {} in worktree {}", r.id, r.key.job,
                   r.key.sha.substr(0, 12), r.key.worktree);
    }
    stats->runs_enqueued += created.size();
  }
  if (complete) {
    wt->done_head = head.sha;
    wt->done_branch = branch;
  } else {
    stats->more = true;
  }
  return Status::OK();
}

void Poller::NoteSkipped(Repo* repo, Worktree* wt, const std::string& sha, uint64_t count,
                         const std::string& reason) {
  spdlog::warn("worktree {} of {}: skipped {} commit(s) up to {}: {}", wt->info.id,
               repo->git->root(), count, sha.substr(0, 12), reason);
  skipped_.push_back(
      SkippedCommits{repo->git->root(), wt->info.id, sha, count, reason, clock_->NowMs()});
  while (skipped_.size() > kMaxSkipped) skipped_.pop_front();
}

Status Poller::CollectRuns(Repo* repo, Worktree* wt, const std::string& sha,
                           const std::string& branch, std::vector<NewRun>* out) {
  WTD_ASSIGN_OR_RETURN(git::CommitInfo info, repo->git->LookupCommit(sha));
  WTD_ASSIGN_OR_RETURN(auto jobs, loader_.Load(repo->git.get(), sha, options_.jobs_root));
  std::optional<std::vector<std::string>> changed;
  for (const std::shared_ptr<const JobMatcher>& job : jobs) {
    if (!job->MatchesBranch(branch) || !job->MatchesMessage(info.message)) continue;
    if (job->NeedsPaths()) {
      if (!changed) {
        WTD_ASSIGN_OR_RETURN(changed, repo->git->ChangedPaths(sha));
      }
      if (!job->MatchesPaths(*changed)) continue;
    }
    const JobSpec& spec = job->spec();
    RunKey key{repo->git->root(), wt->info.id, spec.name, sha};
    Result<uint64_t> existing = runs_->FindByKey(key);
    if (existing.ok()) continue;
    if (!existing.status().IsNotFound()) return existing.status().WithContext("look up a run");
    NewRun r = MakeNewRun(spec, info, key, branch, wt->info.path);
    out->push_back(std::move(r));
  }
  return Status::OK();
}

std::vector<RepoStatus> Poller::Snapshot() const {
  std::vector<RepoStatus> out;
  for (const auto& repo : repos_) {
    RepoStatus s;
    s.path = repo->spec.path;
    s.root = repo->git ? repo->git->root() : "";
    s.error = repo->error;
    s.consecutive_failures = repo->backoff.failures();
    s.last_ok_ms = repo->last_ok_ms;
    s.error_since_ms = repo->error_since_ms;
    s.backoff_until_ms = repo->backoff.failures() > 0 ? repo->backoff.next_ms() : 0;
    for (const Worktree& wt : repo->worktrees) {
      s.worktrees.push_back(
          WorktreeStatus{wt.info.id, wt.info.path, CursorBranch(wt.head), wt.head.sha});
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> Poller::WatchDirs() const {
  std::vector<std::string> dirs;
  for (const auto& repo : repos_) {
    if (!repo->git) continue;
    std::vector<git::WorktreeInfo> infos;
    infos.reserve(repo->worktrees.size());
    for (const Worktree& wt : repo->worktrees) infos.push_back(wt.info);
    for (std::string& d : repo->git->WatchDirs(infos)) dirs.push_back(std::move(d));
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  return dirs;
}

void Poller::Report(SchedulerSnapshot* out) const {
  out->last_tick_ms = last_tick_ms_;
  out->repos = Snapshot();
  out->job_errors.assign(loader_.errors().begin(), loader_.errors().end());
  out->skipped_commits.assign(skipped_.begin(), skipped_.end());
}

Status Poller::ResolveJob(Run* run) {
  git::Repository* repo = RepositoryFor(run->key.repo);
  if (!repo) return Status::FailedPrecondition("repository " + run->key.repo + " is not open");
  WTD_ASSIGN_OR_RETURN(auto jobs, loader_.Load(repo, run->key.sha, options_.jobs_root));
  auto job = std::find_if(jobs.begin(), jobs.end(),
                          [&](const auto& j) { return j->spec().name == run->key.job; });
  if (job == jobs.end()) {
    return Status::NotFound("job " + run->key.job + " is not defined (or not valid) in commit " +
                            run->key.sha);
  }
  WTD_ASSIGN_OR_RETURN(git::CommitInfo info, repo->LookupCommit(run->key.sha));
  FillJob((*job)->spec(), info, &run->command, &run->env, &run->commit_subject, &run->commit_author,
          &run->commit_time_s);
  run->isolation = (*job)->spec().inplace ? Isolation::kInplace : Isolation::kCommit;
  run->keep_worktree =
      (*job)->spec().keep_on_failure ? KeepWorktree::kOnFailure : KeepWorktree::kNever;
  return Status::OK();
}

git::Repository* Poller::RepositoryFor(const std::string& root) {
  for (const auto& repo : repos_) {
    if (repo->git && repo->git->root() == root) return repo->git.get();
  }
  return nullptr;
}

Result<std::optional<std::string>> Poller::CurrentWorktreePath(const std::string& repo_root,
                                                               const std::string& worktree_id) {
  git::Repository* repo = RepositoryFor(repo_root);
  if (!repo) return Status::NotFound("repository " + repo_root + " is not watched now");
  WTD_ASSIGN_OR_RETURN(std::optional<git::WorktreeInfo> wt, repo->FindWorktree(worktree_id));
  if (!wt) return std::optional<std::string>();
  return std::optional<std::string>(wt->path);
}

namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  if (names.empty()) return "none";
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

Result<TriggeredRun> Poller::Trigger(const std::string& repo_path, const std::string& worktree,
                                     const std::string& job, const std::string& rev, bool again) {
  Repo* repo = nullptr;
  std::vector<std::string> watched;
  for (const auto& r : repos_) watched.push_back(r->git ? r->git->root() : r->spec.path);
  if (repo_path.empty()) {
    if (repos_.size() != 1) {
      return Status::InvalidArgument("say which repository with --repo: the daemon watches " +
                                     std::to_string(repos_.size()) + " (" + JoinNames(watched) +
                                     ")");
    }
    repo = repos_[0].get();
  } else {
    Result<std::string> root = git::ResolveRepoRoot(repo_path);
    for (const auto& r : repos_) {
      if (r->spec.path == repo_path ||
          (root.ok() && (r->spec.path == *root || (r->git && r->git->root() == *root)))) {
        repo = r.get();
      }
    }
    if (repo == nullptr) {
      return Status::NotFound("repository " + repo_path +
                              " is not watched (watched: " + JoinNames(watched) + ")");
    }
  }
  if (!repo->git) {
    return Status::FailedPrecondition("repository " + repo->spec.path + " is not open: " +
                                      (repo->error.empty() ? "not polled yet" : repo->error));
  }
  git::Repository* git = repo->git.get();
  const std::string wt_id = worktree.empty() ? "main" : worktree;
  Worktree* wt = nullptr;
  std::vector<std::string> ids;
  for (Worktree& w : repo->worktrees) {
    ids.push_back(w.info.id);
    if (w.info.id == wt_id) wt = &w;
  }
  if (wt == nullptr) {
    return Status::NotFound("worktree " + wt_id + " of " + git->root() +
                            " is not watched (watched: " + JoinNames(ids) + ")");
  }
  WTD_ASSIGN_OR_RETURN(git::HeadInfo head, git->ReadHead(wt->info));
  std::string sha;
  if (rev.empty() || rev == "HEAD") {
    if (head.sha.empty()) {
      return Status::FailedPrecondition("worktree " + wt_id + " of " + git->root() +
                                        " has no commit yet");
    }
    sha = head.sha;
  } else {
    Result<std::string> resolved = ResolveCommit(git->root(), rev);
    if (!resolved.ok()) return Status::NotFound(resolved.status().message());
    sha = *resolved;
  }
  WTD_ASSIGN_OR_RETURN(JobFiles files, ReadJobFiles(git, sha, options_.jobs_root));
  std::shared_ptr<const JobMatcher> matcher;
  std::vector<std::string> names;
  for (const auto& j : files.jobs) {
    names.push_back(j->spec().name);
    if (j->spec().name == job) matcher = j;
  }
  const std::string file = options_.jobs_root + "/" + job + ".job";
  if (!matcher) {
    for (const JobFileProblem& p : files.problems) {
      if (p.file == file) {
        return Status::InvalidArgument("job file " + file + " at commit " + sha +
                                       " does not load: " + p.message +
                                       " (jobs there: " + JoinNames(names) + ")");
      }
    }
    return Status::NotFound("no job " + job + " (" + file + ") at commit " + sha +
                            " (jobs there: " + JoinNames(names) + ")");
  }
  RunKey key{git->root(), wt_id, job, sha};
  // The newest series with a run (series are made in order, 0 first).
  std::optional<uint64_t> newest;
  for (uint32_t s = 0;; ++s) {
    key.series = s;
    Result<uint64_t> id = runs_->FindByKey(key);
    if (id.ok()) {
      newest = *id;
      continue;
    }
    if (!id.status().IsNotFound()) return id.status().WithContext("look up a run");
    break;
  }
  if (newest && !again) {
    Result<Run> run = runs_->Get(*newest);
    if (run.status().IsNotFound()) {
      // Retention removed its record; its key stays, so it is not re-run
      // without being asked to.
      return Status::FailedPrecondition("job " + job + " already ran on " + sha + " as run " +
                                        std::to_string(*newest) +
                                        ", whose record retention has removed; --again runs it "
                                        "again");
    }
    if (!run.ok()) return run.status();
    return TriggeredRun{std::move(*run), false};
  }
  // key.series is the first series without a run.
  WTD_ASSIGN_OR_RETURN(git::CommitInfo info, git->LookupCommit(sha));
  NewRun r = MakeNewRun(matcher->spec(), info, key, CursorBranch(head), wt->info.path);
  WTD_ASSIGN_OR_RETURN(std::vector<Run> created, runs_->Enqueue({r}, std::nullopt));
  if (created.empty()) {  // another enqueue took the key meanwhile
    WTD_ASSIGN_OR_RETURN(uint64_t id, runs_->FindByKey(key));
    WTD_ASSIGN_OR_RETURN(Run run, runs_->Get(id));
    return TriggeredRun{std::move(run), false};
  }
  spdlog::info("run {} queued by wtctl trigger: job {} on {} in worktree {} (series {})",
               created[0].id, job, sha.substr(0, 12), wt_id, key.series);
  return TriggeredRun{std::move(created[0]), true};
}

}  // namespace wtd
