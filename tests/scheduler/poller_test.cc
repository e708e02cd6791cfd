#include "scheduler/poller.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"

namespace wtd {
namespace {

constexpr int64_t kNowS = 1'700'000'000;

class PollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_.Sub("repo");
    Git("init -q -b main " + repo_, "");
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
  }

  // Runs git in the repo with commit dates at `time_s`.
  void Git(const std::string& args, const std::string& cwd, int64_t time_s = kNowS) {
    std::string date = "@" + std::to_string(time_s) + " +0000";
    std::string cmd = "cd '" + (cwd.empty() ? dir_.path() : cwd) + "' && GIT_AUTHOR_DATE='" + date +
                      "' GIT_COMMITTER_DATE='" + date +
                      "' git -c user.name=t -c user.email=t@e -c advice.detachedHead=false " +
                      args + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void Write(const std::string& rel, const std::string& content, std::string root = "") {
    std::string path = (root.empty() ? repo_ : root) + "/" + rel;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << content;
  }
  void Commit(const std::string& msg, int64_t time_s = kNowS, std::string root = "") {
    Git("add -A", root.empty() ? repo_ : root, time_s);
    Git("commit -q --allow-empty -m '" + msg + "'", root.empty() ? repo_ : root, time_s);
  }
  std::string Head(const std::string& root = "") {
    std::string out = dir_.Sub("head.txt");
    std::string cmd = "git -C '" + (root.empty() ? repo_ : root) + "' rev-parse HEAD > " + out;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    std::ifstream in(out);
    std::string sha;
    in >> sha;
    return sha;
  }
  std::unique_ptr<Poller> MakePoller(WorktreeSelection sel = WorktreeSelection::kCurrent,
                                     PollerOptions o = PollerOptions{}) {
    auto p = std::make_unique<Poller>(runs_.get(), &clock_, o);
    p->SetRepos({RepoSpec{repo_, sel, {}}});
    return p;
  }
  std::vector<wtd::Run> All() {
    RunFilter f;
    f.limit = 0;
    std::vector<wtd::Run> v = *runs_->List(f);
    std::reverse(v.begin(), v.end());  // oldest first
    return v;
  }

  TempDir dir_;
  std::string repo_;
  FakeClock clock_{kNowS * 1000};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
};

TEST_F(PollerTest, FirstTickTakesOnlyCommitsWithinTheLookbackOldestFirst) {
  Write("jobs/build.job", "run = true\n");
  Commit("old", kNowS - 3600);
  Commit("recent-1", kNowS - 60);
  std::string first = Head();
  Commit("recent-2", kNowS - 30);
  std::string second = Head();
  auto p = MakePoller();
  PollStats st = p->Tick();
  EXPECT_EQ(st.runs_enqueued, 2u);
  std::vector<wtd::Run> all = All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key.sha, first);
  EXPECT_EQ(all[1].key.sha, second);
  EXPECT_EQ(all[0].key.job, "build");
  EXPECT_EQ(all[0].key.worktree, "main");
  EXPECT_EQ(all[0].branch, "main");
  std::optional<Cursor> c = *runs_->GetCursor(all[0].key.repo, "main", "main");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->sha, second);
}

TEST_F(PollerTest, NewCommitsAfterTheCursorRunHoweverOld) {
  Write("jobs/build.job", "run = true\n");
  Commit("a");
  auto p = MakePoller();
  p->Tick();
  ASSERT_EQ(All().size(), 1u);
  EXPECT_EQ(p->Tick().runs_enqueued, 0u);  // nothing new: nothing enqueued
  clock_.AdvanceMs(86'400'000);            // a day later: far beyond the lookback
  Commit("b", kNowS + 10);
  Commit("c", kNowS + 20);
  EXPECT_EQ(p->Tick().runs_enqueued, 2u);
  // A fresh poller (restart) over the same store enqueues nothing again.
  EXPECT_EQ(MakePoller()->Tick().runs_enqueued, 0u);
  EXPECT_EQ(All().size(), 3u);
}

TEST_F(PollerTest, MaxPerTickDefersTheRestToTheNextTick) {
  Write("jobs/a.job", "run = true\n");
  Write("jobs/b.job", "run = true\n");
  Commit("c0");
  PollerOptions o;
  o.max_per_tick = 3;
  auto p = MakePoller(WorktreeSelection::kCurrent, o);
  p->Tick();
  for (int i = 1; i <= 4; ++i) Commit("c" + std::to_string(i), kNowS + i);
  PollStats st = p->Tick();
  EXPECT_EQ(st.runs_enqueued, 2u);  // a commit is never split: 2 + 2 > 3
  EXPECT_TRUE(st.more);
  EXPECT_EQ(p->Tick().runs_enqueued, 2u);
  EXPECT_EQ(p->Tick().runs_enqueued, 2u);
  EXPECT_EQ(p->Tick().runs_enqueued, 2u);
  EXPECT_EQ(p->Tick().runs_enqueued, 0u);
  EXPECT_EQ(All().size(), 10u);
}

TEST_F(PollerTest, FiltersOnBranchPathsAndMessage) {
  Write("jobs/docs.job", "run = true\npaths = docs/**\n");
  Write("jobs/rel.job", "run = true\nbranches = release/*\n");
  Write("jobs/fix.job", "run = true\nmessage = ^fix\n");
  Commit("init");
  auto p = MakePoller();
  p->Tick();
  Write("docs/a/b.md", "x");
  Commit("fix: docs");
  Write("src/x.cc", "x");
  Commit("feat: code");
  p->Tick();
  std::map<std::string, int> per_job;
  for (const wtd::Run& r : All()) ++per_job[r.key.job];
  EXPECT_EQ(per_job["docs"], 1);  // only the commit that changed docs/a/b.md
  EXPECT_EQ(per_job["rel"], 0);
  EXPECT_EQ(per_job["fix"], 1);
}

TEST_F(PollerTest, BrokenJobFileIsReportedAndTheOthersRun) {
  Write("jobs/good.job", "run = true\n");
  Write("jobs/bad.job", "run = true\ntimeout_s = soon\n");
  Commit("init");
  auto p = MakePoller();
  EXPECT_EQ(p->Tick().runs_enqueued, 1u);
  ASSERT_EQ(p->job_errors().size(), 1u);
  EXPECT_NE(p->job_errors()[0].message.find("jobs/bad.job:2: timeout_s"), std::string::npos)
      << p->job_errors()[0].message;
}

TEST_F(PollerTest, RewrittenHistoryRunsOnlyTheNewCommit) {
  Write("jobs/build.job", "run = true\n");
  Commit("a");
  Commit("b", kNowS + 1);
  auto p = MakePoller();
  p->Tick();
  ASSERT_EQ(All().size(), 2u);
  Git("reset -q --hard HEAD~1", repo_);
  Commit("b-rewritten", kNowS + 2);
  EXPECT_EQ(p->Tick().runs_enqueued, 1u);  // only the new commit: "a" already has its run
  EXPECT_EQ(All().size(), 3u);
}

// Ticks until nothing more is pending (at most `limit` ticks); returns how
// many ticks it took.
int Drain(Poller* p, int limit = 100) {
  for (int i = 1; i <= limit; ++i) {
    if (!p->Tick().more) return i;
  }
  return limit + 1;
}

TEST_F(PollerTest, AMergeCutByTheBudgetRunsEveryCommitOnceAndCompletes) {
  Write("jobs/a.job", "run = true\n");
  Commit("base", kNowS - 100);
  std::string base = Head();
  PollerOptions o;
  o.max_per_tick = 1;
  auto p = MakePoller(WorktreeSelection::kCurrent, o);
  p->Tick();
  Git("checkout -q -b feature", repo_);
  for (int i = 0; i < 4; ++i) Commit("f" + std::to_string(i), kNowS + 10 + i);
  Git("checkout -q main", repo_);
  for (int i = 0; i < 4; ++i) Commit("m" + std::to_string(i), kNowS + 20 + i);
  Git("merge -q --no-ff -m merge feature", repo_, kNowS + 30);
  std::string head = Head();
  // 9 new commits, one run each, one run per tick: 9 ticks, never more.
  EXPECT_EQ(Drain(p.get()), 9);
  std::vector<wtd::Run> all = All();
  ASSERT_EQ(all.size(), 10u);
  std::set<std::string> shas;
  for (const wtd::Run& r : all) shas.insert(r.key.sha);
  EXPECT_EQ(shas.size(), 10u);
  EXPECT_EQ(all.back().key.sha, head);  // the merge comes after both sides
  std::optional<Cursor> c = *runs_->GetCursor(all[0].key.repo, "main", "main");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->sha, head);
  EXPECT_TRUE(c->frontier.empty());
  // A restart in the middle of a cut walk resumes from the durable frontier.
  Commit("after", kNowS + 40);
  EXPECT_EQ(MakePoller(WorktreeSelection::kCurrent, o)->Tick().runs_enqueued, 1u);
  EXPECT_EQ(All().size(), 11u);
  (void)base;
}

TEST_F(PollerTest, TheBudgetIsChargedOnlyForRunsThatDoNotExist) {
  Write("jobs/a.job", "run = true\n");
  Commit("c0", kNowS - 10);
  PollerOptions o;
  o.max_per_tick = 1;
  auto p = MakePoller(WorktreeSelection::kCurrent, o);
  p->Tick();
  for (int i = 1; i <= 3; ++i) Commit("c" + std::to_string(i), kNowS + i);
  std::string top = Head();
  EXPECT_EQ(Drain(p.get()), 3);
  // Rewind and come back: the three commits are walked again, but their
  // runs exist, so one tick takes them all.
  Git("reset -q --hard HEAD~3", repo_);
  EXPECT_FALSE(p->Tick().more);
  Git("reset -q --hard " + top, repo_);
  PollStats st = p->Tick();
  EXPECT_EQ(st.runs_enqueued, 0u);
  EXPECT_FALSE(st.more);
  EXPECT_EQ(All().size(), 4u);
}

TEST_F(PollerTest, RebasedOntoOldUpstreamCommitsRunsThemAll) {
  Write("jobs/a.job", "run = true\n");
  Commit("a", kNowS - 5000);
  auto p = MakePoller();
  p->Tick();  // "a" is older than the lookback: no run, but a cursor
  EXPECT_EQ(All().size(), 0u);
  Git("checkout -q -b upstream", repo_);
  for (int i = 0; i < 3; ++i) Commit("u" + std::to_string(i), kNowS - 1800 + i);
  Git("checkout -q main", repo_);
  Commit("local", kNowS);
  p->Tick();
  ASSERT_EQ(All().size(), 1u);
  Git("rebase -q upstream", repo_, kNowS + 5);
  p->Tick();
  // The three upstream commits (30 minutes old) and the rebased local one.
  EXPECT_EQ(All().size(), 5u);
}

TEST_F(PollerTest, SwitchingToAnOldBranchRunsItsCommitsAndNotTheBaseAgain) {
  Write("jobs/a.job", "run = true\n");
  Commit("base", kNowS - 60);
  auto p = MakePoller();
  p->Tick();
  ASSERT_EQ(All().size(), 1u);
  Git("checkout -q -b colleague", repo_);
  Commit("x1", kNowS - 2400);
  Commit("x2", kNowS - 2399);
  std::string x2 = Head();
  Git("checkout -q main", repo_);
  p->Tick();
  Git("checkout -q colleague", repo_);
  p->Tick();
  std::vector<wtd::Run> all = All();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].key.sha, x2);
  EXPECT_EQ(all[2].branch, "colleague");
}

TEST_F(PollerTest, MoreThanMaxBackfillNewCommitsTakesTheNewestAndReportsTheSkip) {
  Write("jobs/a.job", "run = true\n");
  Commit("base", kNowS - 60);
  PollerOptions o;
  o.max_backfill = 4;
  auto p = MakePoller(WorktreeSelection::kCurrent, o);
  p->Tick();
  Git("checkout -q -b old", repo_);
  std::vector<std::string> shas;
  for (int i = 0; i < 10; ++i) {
    Commit("o" + std::to_string(i), kNowS - 900'000 + i);
    shas.push_back(Head());
  }
  EXPECT_FALSE(p->Tick().more);
  std::vector<wtd::Run> all = All();
  ASSERT_EQ(all.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(all[1 + i].key.sha, shas[6 + i]);
  ASSERT_EQ(p->skipped().size(), 1u);
  EXPECT_EQ(p->skipped()[0].count, 6u);
  EXPECT_EQ(p->skipped()[0].sha, shas[5]);
  EXPECT_NE(p->skipped()[0].reason.find("--max-backfill=4"), std::string::npos);
  std::optional<Cursor> c = *runs_->GetCursor(all[0].key.repo, "main", "old");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->skipped, 6u);
  // The skipped commits count as processed: a restart does not take them.
  EXPECT_EQ(MakePoller(WorktreeSelection::kCurrent, o)->Tick().runs_enqueued, 0u);
}

TEST_F(PollerTest, ShallowCloneRunsItsCommitsAndEndsAtTheBoundary) {
  Write("jobs/a.job", "run = true\n");
  for (int i = 0; i < 5; ++i) Commit("c" + std::to_string(i), kNowS - 50 + i);
  std::string clone = dir_.Sub("shallow");
  Git("clone -q --depth 2 file://" + repo_ + " " + clone, "");
  auto p = std::make_unique<Poller>(runs_.get(), &clock_, PollerOptions{});
  p->SetRepos({RepoSpec{clone, WorktreeSelection::kCurrent, {}}});
  p->Tick();
  EXPECT_TRUE(p->Snapshot()[0].error.empty()) << p->Snapshot()[0].error;
  EXPECT_EQ(All().size(), 2u);
  Commit("new", kNowS + 1, clone);
  EXPECT_EQ(p->Tick().runs_enqueued, 1u);
}

TEST_F(PollerTest, ACommitWhoseJobFileCannotBeReadIsSkippedAndReported) {
  Write("jobs/a.job", "run = true\n");
  Commit("c0", kNowS - 10);
  auto p = MakePoller();
  p->Tick();
  Write("jobs/a.job", "run = echo 1\n");
  Commit("c1", kNowS + 1);
  std::string c1 = Head();
  Write("jobs/a.job", "run = echo 2\n");
  Commit("c2", kNowS + 2);
  // Drop c1's job blob (as in a partial clone that never fetched it).
  std::string blob_file = dir_.Sub("blob.txt");
  ASSERT_EQ(std::system(
                ("git -C '" + repo_ + "' rev-parse " + c1 + ":jobs/a.job > " + blob_file).c_str()),
            0);
  std::string blob;
  std::ifstream(blob_file) >> blob;
  std::filesystem::remove(repo_ + "/.git/objects/" + blob.substr(0, 2) + "/" + blob.substr(2));
  PollStats st = p->Tick();
  EXPECT_EQ(st.runs_enqueued, 1u);  // c2 runs; c1 is skipped, not a stall
  EXPECT_TRUE(p->Snapshot()[0].error.empty()) << p->Snapshot()[0].error;
  ASSERT_EQ(p->skipped().size(), 1u);
  EXPECT_EQ(p->skipped()[0].sha, c1);
  EXPECT_NE(p->skipped()[0].reason.find("not found"), std::string::npos) << p->skipped()[0].reason;
}

TEST_F(PollerTest, AnIdleRestartWritesNothingToTheStore) {
  Write("jobs/a.job", "run = true\n");
  Commit("base", kNowS - 10);
  Git("checkout -q -b side", repo_);
  Commit("s", kNowS - 5);
  Git("checkout -q main", repo_);
  Commit("m", kNowS - 4);
  Git("merge -q --no-ff -m merge side", repo_, kNowS - 3);
  MakePoller()->Tick();
  ASSERT_EQ(All().size(), 4u);
  uint64_t before = store_->commits();
  auto p = MakePoller();
  for (int i = 0; i < 3; ++i) p->Tick();
  EXPECT_EQ(store_->commits(), before);
}

TEST_F(PollerTest, LinkedWorktreesRunTheirOwnJobsInAllMode) {
  Write("jobs/build.job", "run = true\n");
  Commit("init");
  std::string wt = dir_.Sub("wt-feature");
  Git("worktree add -q -b feature " + wt, repo_);
  auto current = MakePoller(WorktreeSelection::kCurrent);
  current->Tick();
  ASSERT_EQ(All().size(), 1u);
  // The linked worktree starts at a commit main processed: nothing new.
  auto all = MakePoller(WorktreeSelection::kAll);
  all->Tick();
  ASSERT_EQ(All().size(), 1u);
  Commit("on feature", kNowS + 5, wt);
  EXPECT_EQ(all->Tick().runs_enqueued, 1u);
  std::vector<wtd::Run> runs = All();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].key.worktree, "wt-feature");
  EXPECT_EQ(runs[1].branch, "feature");
  EXPECT_EQ(runs[1].worktree_path, std::filesystem::canonical(wt).string());
}

TEST_F(PollerTest, VanishedRepositoryIsReportedAndBacksOff) {
  Write("jobs/build.job", "run = true\n");
  Commit("init");
  auto p = MakePoller();
  p->Tick();
  std::filesystem::rename(repo_, repo_ + ".moved");
  p->Tick();
  std::vector<RepoStatus> s = p->Snapshot();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0].error.empty());
  EXPECT_EQ(s[0].consecutive_failures, 1u);
  p->Tick();  // still backing off: not retried yet
  EXPECT_EQ(p->Snapshot()[0].consecutive_failures, 1u);
  std::filesystem::rename(repo_ + ".moved", repo_);
  clock_.AdvanceMs(120'000);
  Commit("back", kNowS + 60);
  EXPECT_EQ(p->Tick().runs_enqueued, 1u);
  EXPECT_TRUE(p->Snapshot()[0].error.empty());
}

TEST_F(PollerTest, DryRunEnqueuesNothing) {
  Write("jobs/build.job", "run = true\n");
  Commit("init");
  PollerOptions o;
  o.dry_run = true;
  MakePoller(WorktreeSelection::kCurrent, o)->Tick();
  EXPECT_TRUE(All().empty());
}

TEST_F(PollerTest, EndingDryRunByReloadEnqueuesWhatItOnlyLogged) {
  Write("jobs/build.job", "run = true\n");
  Commit("init");
  PollerOptions o;
  o.dry_run = true;
  auto p = MakePoller(WorktreeSelection::kCurrent, o);
  p->Tick();
  p->Tick();  // HEAD unchanged: nothing to do
  EXPECT_TRUE(All().empty());
  o.dry_run = false;
  p->SetOptions(o);
  EXPECT_EQ(p->Tick().runs_enqueued, 1u) << "the same HEAD, no longer only logged";
  ASSERT_EQ(All().size(), 1u);
  EXPECT_EQ(All()[0].key.sha, Head());
}

TEST_F(PollerTest, ReloadedBackoffAppliesToARepositoryAlreadyFailing) {
  Write("jobs/build.job", "run = true\n");
  Commit("init");
  PollerOptions o;
  o.backoff_ms = 60'000;
  o.max_backoff_ms = 60'000;
  auto p = MakePoller(WorktreeSelection::kCurrent, o);
  std::filesystem::rename(repo_, repo_ + ".moved");
  p->Tick();  // failure 1: next try within 30..60 s
  ASSERT_EQ(p->Snapshot()[0].consecutive_failures, 1u);
  o.backoff_ms = 10;
  o.max_backoff_ms = 20;
  p->SetOptions(o);
  clock_.AdvanceMs(60'000);
  p->Tick();  // failure 2, now with the new base and cap: at most 20 ms
  ASSERT_EQ(p->Snapshot()[0].consecutive_failures, 2u);
  clock_.AdvanceMs(20);
  p->Tick();
  EXPECT_EQ(p->Snapshot()[0].consecutive_failures, 3u) << "retried after the new cap";
}

}  // namespace
}  // namespace wtd
