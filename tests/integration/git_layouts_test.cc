// The real daemon against repositories laid out in the less common ways git
// allows: symlinked job files, a git dir apart from its work tree, worktrees
// moved or removed while their runs wait, and a branch directory deleted and
// made again under inotify.
#include <signal.h>

#include <chrono>
#include <filesystem>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

namespace fs = std::filesystem;

class GitLayoutsTest : public IntegrationTest {
 protected:
  // Starts wtd on repo_ as StartDaemon does, but with `poll_ms`.
  DaemonProcess* StartPolling(int64_t poll_ms, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--repo",   repo_.dir(), "--state-dir",
                                     state_dir_, "--poll-ms", std::to_string(poll_ms)};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string log = dir_.Sub("wtd-" + std::to_string(daemons_.size() + 1) + ".log");
    daemons_.push_back(std::make_unique<DaemonProcess>(args, std::vector<std::string>{}, log));
    return daemons_.back().get();
  }

  // The worktree `id` in `wtctl --json status`, or null.
  std::optional<json> StatusWorktree(const std::string& id) const {
    std::optional<json> s = Status();
    if (!s || !(*s)["repos"].is_array() || (*s)["repos"].empty()) return std::nullopt;
    for (const json& w : (*s)["repos"][0]["worktrees"]) {
      if (w.value("id", "") == id) return w;
    }
    return std::nullopt;
  }

  // Every run of `worktree`.
  std::vector<RunRow> RunsOf(const std::string& worktree) const {
    std::vector<RunRow> out;
    for (const RunRow& r : Runs()) {
      if (r.worktree == worktree) out.push_back(r);
    }
    return out;
  }

  static std::string Real(const std::string& path) { return fs::canonical(path).string(); }
};

TEST_F(GitLayoutsTest, SymlinkedJobFileRunsAndOneLeavingTheTreeIsReported) {
  // The escaping link's target exists on disk: only the commit's tree counts.
  WriteFileOrDie(dir_.Sub("outside.job"), "run = echo escaped >> " + effect_ + "\n");
  repo_.Write("shared/ci.job", EffectJob());
  fs::create_directories(repo_.dir() + "/jobs");
  fs::create_symlink("../shared/ci.job", repo_.dir() + "/jobs/linked.job");
  fs::create_symlink("../../outside.job", repo_.dir() + "/jobs/escape.job");
  std::string sha = repo_.Commit("README", "links\n", "symlinked jobs");
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "linked"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  std::vector<RunRow> runs = Runs();
  ExpectExactlyOnce(runs, {sha}, "linked");
  ExpectExactlyOnce(runs, {}, "escape");
  EXPECT_EQ(Effects(), std::vector<std::string>{sha}) << "the linked job ran once, nothing else";

  std::optional<json> s = Status();
  ASSERT_TRUE(s);
  const std::string want =
      "jobs/escape.job: symlink to '../../outside.job' not followed: it leads outside the "
      "commit's tree";
  bool reported = false;
  for (const json& e : (*s)["job_errors"]) {
    if (e.value("message", "") != want) continue;
    reported = true;
    EXPECT_EQ(e.value("sha", ""), sha) << e.dump();
    EXPECT_EQ(e.value("repo", ""), repo_.dir()) << e.dump();
  }
  EXPECT_TRUE(reported) << "no job error says '" << want << "': " << (*s)["job_errors"].dump(2);
  EXPECT_NE(d->Log().find(want), std::string::npos) << "the log does not say it either";
  StopDaemon(d);
}

TEST_F(GitLayoutsTest, SeparateGitDirRunsJobsInTheWorkTree) {
  std::string work = dir_.Sub("work"), meta = dir_.Sub("meta.git"), wt1 = dir_.Sub("wt1");
  CommandResult init =
      RunCommand({"git", "init", "-q", "-b", "main", "--separate-git-dir", meta, work});
  ASSERT_EQ(init.exit_code, 0) << init.Describe();
  repo_ = GitRepo(work);
  repo_.Git({"config", "user.name", "Wtd Integration"});
  repo_.Git({"config", "user.email", "wtd-it@example.com"});
  std::string where = dir_.Sub("where");
  repo_.CommitJob("where", "run = echo \"$WTD_WORKTREE_ID|$(pwd -P)|$WTD_WORKTREE_ROOT|" +
                               std::string("$WTD_REPO_ROOT|$(ls | tr '\\n' ' ')\" >> ") + where +
                               "\nisolation = inplace\n");
  repo_.Git({"worktree", "add", "-q", "-b", "side", wt1});
  // wt1 starts at the commit main runs: it runs only a commit of its own.
  std::string side = GitRepo(wt1).Commit("s.txt", "s", "on side");
  DaemonProcess* d = StartReady({"--worktrees", "all"});
  std::string sha = repo_.Head();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "where", "main"));
  ASSERT_NO_FATAL_FAILURE(WaitSettled({side}, "where", "wt1"));
  for (const RunRow& r : Runs()) EXPECT_EQ(r.state, "succeeded") << RunsToString(Runs());

  std::string lines = ReadFileOr(where);
  std::string w = Real(work), l = Real(wt1);
  // Run in the work tree (which holds jobs/), not in the git dir's parent
  // (which holds meta.git, work, ...).
  EXPECT_NE(lines.find("main|" + w + "|" + w + "|" + w + "|jobs \n"), std::string::npos) << lines;
  EXPECT_NE(lines.find("wt1|" + l + "|" + l + "|" + w + "|jobs s.txt \n"), std::string::npos)
      << lines;
  CommandResult raw = Wtctl({"--json", "runs", "--limit", "0"});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  for (const json& r : json::parse(raw.out)) EXPECT_EQ(r.value("repo", ""), w) << r.dump();
  std::optional<json> s = Status();
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["repos"][0].value("root", ""), w) << s->dump(2);
  StopDaemon(d);

  // From the linked worktree nothing says where the main worktree is: a
  // clear refusal at start, not a guess.
  repo_ = GitRepo(wt1);
  DaemonProcess* refused = StartDaemon();
  std::optional<int> code = refused->WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "wtd --repo " << wt1 << " did not exit";
  EXPECT_EQ(*code, 2) << refused->Log();
  EXPECT_NE(refused->Log().find("main worktree"), std::string::npos) << refused->Log();
}

// A linked worktree wt1 on branch `side` whose runs of `where` are queued
// while dispatch is paused.
class QueuedRunsTest : public GitLayoutsTest {
 protected:
  void SetUp() override {
    GitLayoutsTest::SetUp();
    where_ = dir_.Sub("where");
    wt1_ = dir_.Sub("wt1");
    repo_.CommitJob("where", "run = pwd -P >> " + where_ + "; echo \"$WTD_WORKTREE_ROOT\" >> " +
                                 where_ + "\nbranches = side\nmax_attempts = 2\n" +
                                 "retry_backoff_s = 0\nisolation = inplace\n");
    daemon_ = StartReady({"--worktrees", "all"});
    CommandResult pause = Wtctl({"pause"});
    ASSERT_EQ(pause.exit_code, 0) << pause.Describe();
    repo_.Git({"worktree", "add", "-q", "-b", "side", wt1_});
    // The commit wt1 starts from ran in main: only its own commits are new.
    shas_ = {GitRepo(wt1_).Commit("s.txt", "s", "on side"),
             GitRepo(wt1_).Commit("t.txt", "t", "on side again")};
    bool queued = WaitFor(
        [&] {
          std::optional<std::vector<RunRow>> runs = TryRuns();
          return runs && runs->size() == 2 && (*runs)[0].state == "pending" &&
                 (*runs)[1].state == "pending";
        },
        ScaledMs(30000));
    ASSERT_TRUE(queued) << "two runs were not queued in wt1; " << RunsToString(Runs());
    for (const RunRow& r : Runs()) ASSERT_EQ(r.worktree, "wt1") << RunsToString(Runs());
  }

  std::string where_, wt1_;
  std::vector<std::string> shas_;
  DaemonProcess* daemon_ = nullptr;
};

TEST_F(QueuedRunsTest, QueuedRunsFollowAWorktreeMovedBeforeTheyStart) {
  std::string moved = dir_.Sub("elsewhere/wt1");
  fs::create_directories(dir_.Sub("elsewhere"));
  repo_.Git({"worktree", "move", wt1_, moved});
  CommandResult resume = Wtctl({"resume"});
  ASSERT_EQ(resume.exit_code, 0) << resume.Describe();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas_, "where", "wt1"));
  ExpectExactlyOnce(Runs(), shas_, "where", "wt1");
  for (const RunRow& r : Runs()) EXPECT_EQ(r.attempt, 1) << RunsToString(Runs());
  std::string m = Real(moved);
  EXPECT_EQ(Lines(ReadFileOr(where_)), (std::vector<std::string>{m, m, m, m}))
      << "both runs ran in the worktree's new path";
  StopDaemon(daemon_);
}

TEST_F(QueuedRunsTest, QueuedRunsOfARemovedWorktreeEndFailedWithAClearError) {
  repo_.Git({"worktree", "remove", "--force", wt1_});
  CommandResult resume = Wtctl({"resume"});
  ASSERT_EQ(resume.exit_code, 0) << resume.Describe();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas_, "where", "wt1"));
  std::vector<RunRow> runs = Runs();
  ExpectExactlyOnce(runs, shas_, "where", "wt1", "failed");
  for (const RunRow& r : runs) {
    EXPECT_EQ(r.attempt, 0) << "no attempt was burnt; " << RunsToString(runs);
    EXPECT_EQ(r.error, "worktree wt1 of " + repo_.dir() + " no longer exists")
        << RunsToString(runs);
  }
  EXPECT_FALSE(fs::exists(where_)) << ReadFileOr(where_);
  StopDaemon(daemon_);
}

TEST_F(GitLayoutsTest, ReCreatedBranchDirectoryStillWakesTheDaemonThroughInotify) {
  repo_.CommitJob("effect", EffectJob());
  std::string wt1 = dir_.Sub("wt1");
  repo_.Git({"worktree", "add", "-q", "-b", "x/a", wt1});
  // Polling once an hour: a run within seconds can only come from inotify.
  constexpr int64_t kPollMs = 3'600'000;
  DaemonProcess* d = StartPolling(kPollMs, {"--worktrees", "all"});
  ASSERT_NO_FATAL_FAILURE(WaitReady(d));
  ASSERT_NO_FATAL_FAILURE(WaitSettled({repo_.Head()}, "effect", "main"));

  // refs/heads/x/ goes with its last branch and comes back with a new one,
  // while the daemon is stopped: it then sees the deletion and the
  // re-creation in one batch of events, as a daemon busy with a long tick
  // would (awake, it would poll in between and drop the watch anyway).
  GitRepo wt(wt1);
  d->Signal(SIGSTOP);
  wt.Git({"checkout", "-q", "--detach"});
  wt.Git({"branch", "-q", "-D", "x/a"});
  bool deleted = !fs::exists(repo_.dir() + "/.git/refs/heads/x");
  wt.Git({"checkout", "-q", "-b", "x/b"});
  d->Signal(SIGCONT);
  ASSERT_TRUE(deleted) << "refs/heads/x/ was not deleted with x/a";
  bool seen = WaitFor(
      [&] {
        std::optional<json> w = StatusWorktree("wt1");
        return w && w->value("branch", "") == "x/b";
      },
      ScaledMs(30000));
  ASSERT_TRUE(seen) << "the checkout of x/b in wt1 was not seen";
  // The polls the checkout caused are over once three status reads in a row
  // show the same tick count.
  int64_t ticks = -1;
  int same = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> s = Status();
        int64_t now = s ? s->value("ticks", int64_t{-1}) : -2;
        same = now == ticks ? same + 1 : 0;
        ticks = now;
        return same >= 2;
      },
      ScaledMs(30000)));

  // A commit on x/b from the main worktree (HEAD on main): objects, then
  // the ref alone, as a fetch or a push would. Of the watched directories
  // only refs/heads/x/ changes.
  std::string next = repo_.Git({"commit-tree", "x/b^{tree}", "-p", "x/b", "-m", "next"});
  ASSERT_EQ(next.size(), 40u) << next;
  repo_.Git({"update-ref", "refs/heads/x/b", next});
  auto started = std::chrono::steady_clock::now();
  bool queued = WaitFor(
      [&] {
        std::optional<std::vector<RunRow>> runs = TryRuns();
        if (!runs) return false;
        for (const RunRow& r : *runs) {
          if (r.sha == next) return true;
        }
        return false;
      },
      ScaledMs(20000));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
  ASSERT_TRUE(queued) << "the commit on x/b in the re-created refs/heads/x/ did not wake the "
                         "daemon (the next poll is an hour away); "
                      << RunsToString(Runs());
  EXPECT_LT(took, kPollMs / 10);
  ASSERT_NO_FATAL_FAILURE(WaitSettled({next}, "effect", "wt1"));
  StopDaemon(d);
}

}  // namespace
}  // namespace wtd::itest
