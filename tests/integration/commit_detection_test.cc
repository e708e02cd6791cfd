// Commit detection driven the way users drive git: merges cut by the
// budget, `pull --rebase` over old upstream commits, branch switches,
// branches made while the daemon was stopped, shallow and partial clones,
// new linked worktrees, and an idle daemon that must not write. Each test
// states exactly which runs must exist (docs/design/loop.md, "New commits").
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <filesystem>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

// While alive, commits made by the git CLI carry author and committer time
// `time_s` (the daemon's lookback compares committer times).
class DatedCommits {
 public:
  explicit DatedCommits(int64_t time_s) {
    std::string date = "@" + std::to_string(time_s) + " +0000";
    setenv("GIT_COMMITTER_DATE", date.c_str(), 1);
    setenv("GIT_AUTHOR_DATE", date.c_str(), 1);
  }
  ~DatedCommits() {
    unsetenv("GIT_COMMITTER_DATE");
    unsetenv("GIT_AUTHOR_DATE");
  }
  DatedCommits(const DatedCommits&) = delete;
  DatedCommits& operator=(const DatedCommits&) = delete;
};

int64_t NowS() { return static_cast<int64_t>(time(nullptr)); }

class CommitDetectionTest : public IntegrationTest {
 protected:
  // Commits `file` at time `time_s`.
  std::string CommitAt(GitRepo& repo, const std::string& file, const std::string& message,
                       int64_t time_s) {
    DatedCommits dated(time_s);
    return repo.Commit(file, message, message);
  }
  // The commits of `rev` not reachable from `not_rev`.
  std::vector<std::string> Between(const std::string& not_rev, const std::string& rev) {
    return Lines(repo_.Git({"rev-list", rev, "^" + not_rev}));
  }
  // Waits until every sha ran `job` in `worktree` and the daemon is quiet,
  // then expects exactly those runs.
  void ExpectRunsOf(const std::vector<std::string>& shas, const std::string& job = "effect",
                    const std::string& worktree = "main") {
    ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, job, worktree));
    ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
    ExpectExactlyOnce(Runs(), shas, job, worktree);
  }
  uint64_t StoreCommits() {
    std::optional<json> s = Status();
    EXPECT_TRUE(s.has_value());
    return s ? s->value("store_commits", uint64_t{0}) : 0;
  }
  // Replaces repo_ by `git clone ARGS SOURCE repo_` of a new repository
  // `source` with `n` commits; returns the source.
  GitRepo CloneInto(const std::vector<std::string>& clone_args, int n,
                    const std::string& job_extra = "") {
    GitRepo source(dir_.Sub("source"));
    source.Init();
    source.Git({"config", "uploadpack.allowFilter", "true"});
    source.CommitJob("effect", EffectJob(job_extra));
    for (int i = 0; i < n; ++i) source.Commit("f.txt", std::to_string(i), "c" + std::to_string(i));
    std::filesystem::remove_all(repo_.dir());
    std::vector<std::string> args = {"clone", "-q"};
    args.insert(args.end(), clone_args.begin(), clone_args.end());
    args.push_back("file://" + source.dir());
    args.push_back(repo_.dir());
    GitRepo(dir_.path()).Git(args);
    repo_.Git({"config", "user.name", "Wtd Integration"});
    repo_.Git({"config", "user.email", "wtd-it@example.com"});
    return source;
  }
};

TEST_F(CommitDetectionTest, AMergeCutByABudgetOfOneRunsEveryCommitOnce) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady({"--max-per-tick", "1"});
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  repo_.Git({"checkout", "-q", "-b", "feature"});
  repo_.Commit("f1.txt", "1", "feature 1");
  repo_.Commit("f2.txt", "2", "feature 2");
  repo_.Git({"checkout", "-q", "main"});
  repo_.Commit("m1.txt", "1", "main 1");
  repo_.Commit("m2.txt", "2", "main 2");
  repo_.Git({"merge", "-q", "--no-ff", "-m", "merge feature", "feature"});
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(repo_.RevList()));
  EXPECT_EQ(Effects().size(), repo_.RevList().size());
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, AMergeWithFiveJobsAtTheDefaultBudgetRunsEveryCommitOnce) {
  for (int j = 0; j < 5; ++j) repo_.Write("jobs/j" + std::to_string(j) + ".job", "run = true\n");
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  // Stopped, so that the whole merge arrives at once.
  StopDaemon(d);
  for (int i = 0; i < 12; ++i)
    repo_.Commit("m.txt", std::to_string(i), "main " + std::to_string(i));
  repo_.Git({"checkout", "-q", "-b", "feature", "HEAD~12"});
  for (int i = 0; i < 12; ++i)
    repo_.Commit("f.txt", std::to_string(i), "feat " + std::to_string(i));
  repo_.Git({"checkout", "-q", "main"});
  repo_.Git({"merge", "-q", "--no-ff", "-m", "merge feature", "feature"});
  d = StartReady();
  std::vector<std::string> all = repo_.RevList();
  ASSERT_EQ(all.size(), 26u);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(all));
  std::vector<RunRow> runs = Runs();
  for (int j = 0; j < 5; ++j) ExpectExactlyOnce(runs, all, "j" + std::to_string(j));
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, PullRebaseOverOldUpstreamCommitsRunsThem) {
  repo_.CommitJob("effect", EffectJob());
  GitRepo upstream(dir_.Sub("upstream"));
  GitRepo(dir_.path()).Git({"clone", "-q", repo_.dir(), upstream.dir()});
  upstream.Git({"config", "user.name", "Upstream"});
  upstream.Git({"config", "user.email", "up@example.com"});
  DaemonProcess* d = StartReady();
  std::string base = repo_.Head();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({base}, "effect"));
  // Upstream work from 30 minutes ago (beyond --lookback-s 600), and a
  // local commit of now.
  for (int i = 0; i < 3; ++i)
    CommitAt(upstream, "u.txt", "upstream " + std::to_string(i), NowS() - 1800 + i);
  std::string local = repo_.Commit("l.txt", "local", "local");
  ASSERT_NO_FATAL_FAILURE(WaitSettled({base, local}, "effect"));
  repo_.Git({"pull", "-q", "--rebase", upstream.dir(), "main"});
  std::vector<std::string> want = repo_.RevList();  // base, 3 upstream, rebased local
  want.push_back(local);                            // the local commit before the rebase
  ASSERT_EQ(want.size(), 6u);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(want));
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, SwitchingToAnOldColleagueBranchRunsItsCommits) {
  repo_.CommitJob("effect", EffectJob());
  std::string base = repo_.Head();
  repo_.Git({"checkout", "-q", "-b", "colleague"});
  CommitAt(repo_, "c.txt", "colleague 1", NowS() - 2400);
  CommitAt(repo_, "c.txt", "colleague 2", NowS() - 2390);
  repo_.Git({"checkout", "-q", "main"});
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf({base}));
  repo_.Git({"checkout", "-q", "colleague"});
  // The two commits run on the colleague's branch; the base does not again.
  std::vector<std::string> mine = Between("main", "colleague");
  ASSERT_EQ(mine.size(), 2u);
  std::vector<std::string> want = mine;
  want.push_back(base);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(want));
  for (const RunRow& r : Runs()) {
    EXPECT_EQ(r.branch, r.sha == base ? "main" : "colleague") << "run " << r.id;
  }
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, ABranchBeyondMaxBackfillRunsTheNewestAndReportsTheRest) {
  repo_.CommitJob("effect", EffectJob());
  std::string base = repo_.Head();
  repo_.Git({"checkout", "-q", "-b", "ancient"});
  for (int i = 0; i < 8; ++i)
    CommitAt(repo_, "a.txt", "ancient " + std::to_string(i), NowS() - 86400 * 400 + i);
  std::vector<std::string> ancient = Between("main", "ancient");  // newest first
  repo_.Git({"checkout", "-q", "main"});
  DaemonProcess* d = StartReady({"--max-backfill", "5"});
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf({base}));
  repo_.Git({"checkout", "-q", "ancient"});
  std::vector<std::string> want(ancient.begin(), ancient.begin() + 5);
  want.push_back(base);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(want));
  std::optional<json> s = Status();
  ASSERT_TRUE(s);
  ASSERT_EQ((*s)["skipped_commits"].size(), 1u) << s->dump(2);
  const json& k = (*s)["skipped_commits"][0];
  EXPECT_EQ(k.value("count", 0), 3);
  EXPECT_EQ(k.value("sha", ""), ancient[5]);
  EXPECT_NE(k.value("reason", "").find("--max-backfill=5"), std::string::npos) << k.dump();
  CommandResult text = Wtctl({"status"});
  EXPECT_NE(text.out.find("commits skipped without runs"), std::string::npos) << text.out;
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, ABranchMadeWhileStoppedRunsAllItsCommitsHoweverOld) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  StopDaemon(d);
  repo_.Git({"switch", "-q", "-c", "weekend"});
  for (int i = 0; i < 6; ++i)
    CommitAt(repo_, "w.txt", "old " + std::to_string(i), NowS() - 3 * 86400 + i);
  repo_.Commit("w.txt", "new 1", "new 1");
  repo_.Commit("w.txt", "new 2", "new 2");
  d = StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(repo_.RevList()));
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, ANewLinkedWorktreeAtAProcessedCommitRunsNothingAgain) {
  repo_.CommitJob("effect", EffectJob());
  for (int i = 0; i < 3; ++i) repo_.Commit("f.txt", std::to_string(i), "c" + std::to_string(i));
  DaemonProcess* d = StartReady({"--worktrees", "all"});
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(repo_.RevList()));
  std::string wt_dir = dir_.Sub("wt2");
  repo_.Git({"worktree", "add", "-q", "--detach", wt_dir, "HEAD"});
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> s = Status();
        return s && (*s)["repos"][0]["worktrees"].size() == 2;
      },
      ScaledMs(30000)))
      << "the new worktree is not watched";
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  ExpectExactlyOnce(Runs(), {}, "effect", "wt2");
  GitRepo wt(wt_dir);
  std::string own = wt.Commit("w.txt", "w", "in wt2");
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf({own}, "effect", "wt2"));
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, AShallowCloneRunsAndUnshallowingRunsNothingOld) {
  CloneInto({"--depth", "2"}, 5);
  std::vector<std::string> shallow = repo_.RevList();
  ASSERT_EQ(shallow.size(), 2u);
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(shallow));
  std::string next = repo_.Commit("n.txt", "n", "after the clone");
  std::vector<std::string> want = shallow;
  want.push_back(next);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(want));
  repo_.Git({"fetch", "-q", "--unshallow"});
  ASSERT_EQ(repo_.RevList().size(), 7u);
  std::string last = repo_.Commit("n.txt", "m", "after unshallow");
  want.push_back(last);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(want));
  std::optional<json> s = Status();
  ASSERT_TRUE(s);
  EXPECT_TRUE((*s)["repos"][0]["error"].is_null()) << s->dump(2);
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, APartialCloneSkipsACommitWhoseJobFileWasNeverFetched) {
  // libgit2 cannot fetch the blobs a partial clone left out, so a commit's
  // own tree cannot be checked out: such a job runs in place.
  const std::string inplace = "isolation = inplace\n";
  GitRepo source = CloneInto({"--filter=blob:none"}, 2, inplace);
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(repo_.RevList()));
  // Upstream changes the job twice; the pull fetches no blob but those of
  // the commit it checks out.
  std::string u1 = source.CommitJob("effect", EffectJob(inplace + "env.VERSION = 1\n"), "job v1");
  std::string u2 = source.CommitJob("effect", EffectJob(inplace + "env.VERSION = 2\n"), "job v2");
  repo_.Git({"pull", "-q", "--ff-only"});
  ASSERT_EQ(repo_.Head(), u2);
  std::vector<std::string> want = repo_.RevList();
  want.erase(std::find(want.begin(), want.end(), u1));
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(want));
  std::optional<json> s = Status();
  ASSERT_TRUE(s);
  EXPECT_TRUE((*s)["repos"][0]["error"].is_null()) << s->dump(2);
  ASSERT_EQ((*s)["skipped_commits"].size(), 1u) << s->dump(2);
  EXPECT_EQ((*s)["skipped_commits"][0].value("sha", ""), u1);
  EXPECT_NE((*s)["skipped_commits"][0].value("reason", "").find("not found"), std::string::npos)
      << s->dump(2);
  StopDaemon(d);
}

TEST_F(CommitDetectionTest, AnIdleDaemonWithAMergeInItsHistoryWritesNothing) {
  repo_.CommitJob("effect", EffectJob());
  repo_.Git({"checkout", "-q", "-b", "side"});
  repo_.Commit("s.txt", "s", "side");
  repo_.Git({"checkout", "-q", "main"});
  repo_.Commit("m.txt", "m", "main");
  repo_.Git({"merge", "-q", "--no-ff", "-m", "merge side", "side"});
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectRunsOf(repo_.RevList()));
  uint64_t settled = StoreCommits();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(10));
  EXPECT_EQ(StoreCommits(), settled);
  StopDaemon(d);
  // After a restart: the start-up writes, then none while idle.
  d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(3));
  uint64_t started = StoreCommits();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(10));
  EXPECT_EQ(StoreCommits(), started);
  ExpectExactlyOnce(Runs(), repo_.RevList(), "effect");
  StopDaemon(d);
}

}  // namespace
}  // namespace wtd::itest
