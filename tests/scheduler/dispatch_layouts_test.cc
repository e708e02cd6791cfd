// The scheduler against the less common git layouts, driven step by step
// with a real repository, real wtd-exec and real processes: a git dir apart
// from its work tree, worktrees moved or removed while their runs wait,
// symlinked job files, and a branch directory deleted and made again under
// inotify.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "base/file_util.h"
#include "fakes/temp_dir.h"
#include "scheduler/poller.h"
#include "scheduler/scheduler.h"

namespace wtd {
namespace {

namespace fs = std::filesystem;

class DispatchLayoutsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    base_ = fs::canonical(dir_.path()).string();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), SystemClock());
    ASSERT_TRUE(runs_->Init().ok());
    Result<std::unique_ptr<Waker>> w = Waker::Create(true);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    waker_ = std::move(*w);
  }

  std::string Sub(const std::string& name) const { return base_ + "/" + name; }

  // Runs `cmd` in a shell; git ignores the user's config and commits as t.
  void Sh(const std::string& cmd) {
    std::string full =
        "GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null "
        "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t "
        "GIT_COMMITTER_EMAIL=t@e sh -c '" +
        cmd + "' >" + Sub("sh.out") + " 2>&1";
    int rc = std::system(full.c_str());
    ASSERT_EQ(rc, 0) << cmd << "\n" << ReadFile(Sub("sh.out")).value_or("");
  }
  // The first line `cmd` printed.
  std::string ShOut(const std::string& cmd) {
    Sh(cmd);
    std::string out = ReadFile(Sub("sh.out")).value_or("");
    return out.substr(0, out.find('\n'));
  }
  void Write(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << content;
  }
  std::string Lines(const std::string& path) { return ReadFile(path).value_or(""); }

  // Watches `repo` (with `selection`) and makes the scheduler.
  void Start(const std::string& repo, WorktreeSelection selection, int64_t poll_ms = 50) {
    poller_ = std::make_unique<Poller>(runs_.get(), SystemClock(), PollerOptions{});
    poller_->SetRepos({RepoSpec{repo, selection, {}}});
    SchedulerOptions o;
    o.poll_ms = poll_ms;
    o.concurrency = 2;
    o.exec_shim = WTD_EXEC_SHIM;
    o.state_dir = Sub("state");
    o.kill_grace_ms = 500;
    launcher_ = NewShimLauncher(SystemProcessTable());
    sched_ = std::make_unique<Scheduler>(runs_.get(), poller_.get(), launcher_.get(), SystemClock(),
                                         waker_.get(), store_->incarnation(), o);
  }

  // Drives the loop as Scheduler::Loop does (a poll only when the interval
  // is up or inotify saw a change) until `done` or the deadline.
  bool Pump(const std::function<bool()>& done, int64_t timeout_ms = 30000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int64_t sleep = sched_->Step(changed_);
      if (done()) return true;
      changed_ = waker_->Wait(std::min<int64_t>(sleep, 50)) == Waker::Reason::kFileChange;
    }
    return done();
  }

  std::vector<wtd::Run> All() {
    RunFilter f;
    f.limit = 0;
    Result<std::vector<wtd::Run>> all = runs_->List(f);
    return all.ok() ? *all : std::vector<wtd::Run>{};
  }
  // At least `n` runs, none active, nothing in flight.
  bool Settled(size_t n) {
    Result<std::vector<wtd::Run>> active = runs_->ListActive();
    return active.ok() && active->empty() && All().size() >= n && sched_->in_flight() == 0;
  }
  bool HasRunFor(const std::string& sha) {
    for (const wtd::Run& r : All()) {
      if (r.key.sha == sha) return true;
    }
    return false;
  }
  static std::string Describe(const std::vector<wtd::Run>& runs) {
    std::string out;
    for (const wtd::Run& r : runs) {
      out += "run " + std::to_string(r.id) + " " + r.key.worktree + " " + r.key.job + " " +
             std::string(RunStateName(r.state)) + " attempt " + std::to_string(r.attempt) + " in " +
             r.worktree_path + " error '" + r.error + "'\n";
    }
    return out;
  }

  TempDir dir_;
  std::string base_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<Launcher> launcher_;
  std::unique_ptr<Scheduler> sched_;
  bool changed_ = true;
};

TEST_F(DispatchLayoutsTest, SeparateGitDirRunsJobsInTheWorkTrees) {
  std::string work = Sub("work"), wt1 = Sub("wt1");
  Sh("git init -q -b main --separate-git-dir " + Sub("meta.git") + " " + work);
  Write(work + "/jobs/where.job", "run = echo \"$(pwd -P) $WTD_WORKTREE_ROOT $WTD_REPO_ROOT\" > " +
                                      Sub("where-") + "$WTD_WORKTREE_ID\n");
  Sh("cd " + work + " && git add -A && git commit -q -m where");
  Sh("cd " + work + " && git worktree add -q -b side " + wt1);
  // A commit of wt1's own: the one it starts from ran in main already.
  Sh("cd " + wt1 + " && git commit -q --allow-empty -m side");
  Start(work, WorktreeSelection::kAll);
  ASSERT_TRUE(Pump([&] { return Settled(2); })) << Describe(All());
  for (const wtd::Run& r : All()) {
    EXPECT_EQ(r.state, RunState::kSucceeded) << Describe(All());
    EXPECT_EQ(r.key.repo, work);
  }
  EXPECT_EQ(Lines(Sub("where-main")), work + " " + work + " " + work + "\n")
      << "not run in the work tree (the git dir's parent is " << base_ << ")";
  EXPECT_EQ(Lines(Sub("where-wt1")), wt1 + " " + wt1 + " " + work + "\n");
}

// A linked worktree with a job that runs only on its branch, and the run
// of that job queued while dispatch is paused.
class QueuedRunTest : public DispatchLayoutsTest {
 protected:
  void SetUp() override {
    DispatchLayoutsTest::SetUp();
    repo_ = Sub("repo");
    wt1_ = Sub("wt1");
    Sh("git init -q -b main " + repo_);
    Write(repo_ + "/jobs/where.job", "run = pwd -P >> " + Sub("where") +
                                         "; echo \"$WTD_WORKTREE_ROOT\" >> " + Sub("where") +
                                         "\nbranches = side\nmax_attempts = 1\n");
    Sh("cd " + repo_ + " && git add -A && git commit -q -m where");
    Sh("cd " + repo_ + " && git worktree add -q -b side " + wt1_);
    Sh("cd " + wt1_ + " && git commit -q --allow-empty -m side");
    Start(repo_, WorktreeSelection::kAll);
    sched_->SetPaused(true);
    ASSERT_TRUE(Pump([&] { return All().size() == 1; })) << Describe(All());
    ASSERT_EQ(All()[0].state, RunState::kPending);
    ASSERT_EQ(All()[0].key.worktree, "wt1");
    ASSERT_EQ(All()[0].worktree_path, wt1_);
  }
  // Resumes dispatch and waits until the run is terminal.
  wtd::Run ResumeAndSettle() {
    sched_->SetPaused(false);
    EXPECT_TRUE(Pump([&] { return Settled(1); })) << Describe(All());
    std::vector<wtd::Run> all = All();
    EXPECT_EQ(all.size(), 1u) << Describe(all);
    return all.empty() ? wtd::Run{} : all[0];
  }
  std::string repo_, wt1_;
};

TEST_F(QueuedRunTest, RunsInTheWorktreesNewPathAfterAMove) {
  std::string moved = Sub("elsewhere/wt1");
  fs::create_directories(Sub("elsewhere"));
  Sh("cd " + repo_ + " && git worktree move " + wt1_ + " " + moved);
  wtd::Run r = ResumeAndSettle();
  EXPECT_EQ(r.state, RunState::kSucceeded) << Describe(All());
  EXPECT_EQ(r.attempt, 1u);
  EXPECT_EQ(r.worktree_path, moved) << "the record names where it ran";
  EXPECT_EQ(Lines(Sub("where")), moved + "\n" + moved + "\n");
}

TEST_F(QueuedRunTest, RemovedWorktreeEndsItsRunFailedWithoutAnAttempt) {
  Sh("cd " + repo_ + " && git worktree remove --force " + wt1_);
  wtd::Run r = ResumeAndSettle();
  EXPECT_EQ(r.state, RunState::kFailed) << Describe(All());
  EXPECT_EQ(r.attempt, 0u) << "no attempt was made";
  EXPECT_EQ(r.error, "worktree wt1 of " + repo_ + " no longer exists");
  EXPECT_FALSE(fs::exists(Sub("where"))) << Lines(Sub("where"));
}

TEST_F(QueuedRunTest, WorktreeDirectoryMissingUnderItsAdminEntryIsAFailedStart) {
  // Not removed through git: it may come back, so this is a failed start
  // (an attempt, retried with the job's backoff), not the end of the run.
  fs::rename(wt1_, Sub("aside"));
  wtd::Run r = ResumeAndSettle();
  EXPECT_EQ(r.state, RunState::kFailed) << Describe(All());
  EXPECT_EQ(r.attempt, 1u);
  EXPECT_NE(r.error.find("worktree wt1 of " + repo_ + " has no usable directory"),
            std::string::npos)
      << r.error;
  EXPECT_FALSE(fs::exists(Sub("where"))) << Lines(Sub("where"));
}

TEST_F(DispatchLayoutsTest, SymlinkedJobRunsAndOneLeavingTheTreeIsReportedOnce) {
  std::string repo = Sub("repo");
  Sh("git init -q -b main " + repo);
  Write(repo + "/shared/ci.job", "run = echo \"$WTD_JOB\" >> " + Sub("ran") + "\n");
  fs::create_directories(repo + "/jobs");
  fs::create_symlink("../shared/ci.job", repo + "/jobs/linked.job");
  fs::create_symlink("../../ci.job", repo + "/jobs/escape.job");
  Sh("cd " + repo + " && git add -A && git commit -q -m links");
  std::string first = ShOut("git -C " + repo + " rev-parse HEAD");
  Start(repo, WorktreeSelection::kCurrent);
  ASSERT_TRUE(Pump([&] { return Settled(1); })) << Describe(All());
  std::vector<wtd::Run> runs = All();
  ASSERT_EQ(runs.size(), 1u) << Describe(runs);
  EXPECT_EQ(runs[0].key.job, "linked");
  EXPECT_EQ(runs[0].state, RunState::kSucceeded);
  EXPECT_EQ(Lines(Sub("ran")), "linked\n");
  ASSERT_EQ(poller_->job_errors().size(), 1u);
  const JobFileError& e = poller_->job_errors()[0];
  EXPECT_EQ(e.message,
            "jobs/escape.job: symlink to '../../ci.job' not followed: it leads outside the "
            "commit's tree");
  EXPECT_EQ(e.repo, repo);
  EXPECT_EQ(e.sha, first);
  EXPECT_EQ(sched_->Snapshot().job_errors.size(), 1u) << "status shows it";

  // The next commit carries the same link: not reported again.
  Sh("cd " + repo + " && git commit -q --allow-empty -m again");
  ASSERT_TRUE(Pump([&] { return Settled(2); })) << Describe(All());
  EXPECT_EQ(Lines(Sub("ran")), "linked\nlinked\n");
  EXPECT_EQ(poller_->job_errors().size(), 1u);
}

TEST_F(DispatchLayoutsTest, BranchDirectoryDeletedAndMadeAgainStillWakesTheLoop) {
  std::string repo = Sub("repo"), wt1 = Sub("wt1");
  Sh("git init -q -b main " + repo);
  Write(repo + "/jobs/effect.job", "run = echo \"$WTD_SHA\" >> " + Sub("effect") + "\n");
  Sh("cd " + repo + " && git add -A && git commit -q -m effect");
  Sh("cd " + repo + " && git worktree add -q -b x/a " + wt1);
  // Polling every hour: within this test only inotify can start a poll.
  Start(repo, WorktreeSelection::kAll, /*poll_ms=*/3'600'000);
  // One run: wt1 starts at the commit main ran.
  ASSERT_TRUE(Pump([&] { return Settled(1); })) << Describe(All());

  // refs/heads/x/ goes with its last branch and comes back with a new one,
  // both before the loop runs again.
  Sh("cd " + wt1 + " && git checkout -q --detach && git branch -q -D x/a");
  ASSERT_FALSE(fs::exists(repo + "/.git/refs/heads/x"));
  Sh("cd " + wt1 + " && git checkout -q -b x/b");
  auto on_xb = [&] {
    SchedulerSnapshot s = sched_->Snapshot();
    for (const WorktreeStatus& w : s.repos.at(0).worktrees) {
      if (w.id == "wt1") return w.branch == "x/b";
    }
    return false;
  };
  ASSERT_TRUE(Pump(on_xb)) << "the checkout of x/b in wt1 was not seen";
  // Let the polls the checkout caused finish: two quiet steps in a row.
  uint64_t ticks = sched_->Snapshot().ticks;
  int quiet = 0;
  ASSERT_TRUE(Pump([&] {
    uint64_t now = sched_->Snapshot().ticks;
    quiet = now == ticks ? quiet + 1 : 0;
    ticks = now;
    return quiet >= 2;
  }));

  // A commit on x/b made from the main worktree (HEAD on main): objects,
  // then the ref alone, as a fetch or a push would. Of the watched
  // directories only refs/heads/x/ changes.
  std::string next = ShOut("cd " + repo + " && git commit-tree x/b^{tree} -p x/b -m next");
  ASSERT_EQ(next.size(), 40u) << next;
  Sh("cd " + repo + " && git update-ref refs/heads/x/b " + next);
  EXPECT_TRUE(Pump([&] { return HasRunFor(next); }, 10000))
      << "a commit on x/b in the re-created refs/heads/x/ did not wake the loop; "
      << Describe(All());
}

}  // namespace
}  // namespace wtd
