// The daemon's life against a real repository: one run per commit, linked
// worktrees, stop and restart, and the single-instance lock.
#include <filesystem>
#include <set>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class LifecycleTest : public IntegrationTest {};

TEST_F(LifecycleTest, RunsAJobOncePerCommitOnTheWatchedBranch) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  // One commit at a time, then a burst of three that the daemon may see at
  // once: every intermediate commit must run, not only the new HEAD.
  repo_.Commit("a.txt", "a\n", "one");
  ASSERT_NO_FATAL_FAILURE(WaitSettled({repo_.Head()}, "effect"));
  for (const char* name : {"b", "c", "d"}) repo_.Commit(std::string(name) + ".txt", name, name);
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_EQ(shas.size(), 5u);
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());

  std::vector<RunRow> runs = Runs();
  ExpectExactlyOnce(runs, shas, "effect");
  for (const RunRow& r : runs) {
    EXPECT_EQ(r.branch, "main") << "run " << r.id;
    EXPECT_EQ(r.attempt, 1) << "run " << r.id;
    EXPECT_EQ(r.exit_code, 0) << "run " << r.id;
  }
  std::vector<std::string> effects = Effects();
  EXPECT_EQ(std::multiset<std::string>(effects.begin(), effects.end()),
            std::multiset<std::string>(shas.begin(), shas.end()))
      << "each commit's job ran exactly once (no crash happened)";
  StopDaemon(d);
}

TEST_F(LifecycleTest, CommitsMadeWhileStoppedRunAfterRestart) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* first = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  StopDaemon(first);

  for (const char* name : {"x", "y", "z"}) repo_.Commit(std::string(name) + ".txt", name, name);
  std::vector<std::string> shas = repo_.RevList();
  DaemonProcess* second = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  ExpectExactlyOnce(Runs(), shas, "effect");
  std::vector<std::string> effects = Effects();
  EXPECT_EQ(std::multiset<std::string>(effects.begin(), effects.end()),
            std::multiset<std::string>(shas.begin(), shas.end()));
  StopDaemon(second);
}

TEST_F(LifecycleTest, LinkedWorktreesRunTheirOwnJobsInAllMode) {
  std::string where = dir_.Sub("where");
  repo_.Write("jobs/effect.job", EffectJob());
  repo_.CommitJob("where", "run = echo \"$WTD_WORKTREE_ID $WTD_BRANCH $WTD_SHA $(pwd -P)\" >> " +
                               where + "\nisolation = inplace\n");
  DaemonProcess* d = StartReady({"--worktrees", "all"});
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));

  std::string wt_dir = dir_.Sub("wt1");
  repo_.Git({"worktree", "add", "-q", "-b", "feature", wt_dir});
  GitRepo wt(wt_dir);
  std::string f1 = wt.Commit("f1.txt", "1", "feature one");
  std::string f2 = wt.Commit("f2.txt", "2", "feature two");
  repo_.Commit("m.txt", "m", "main again");
  // The linked worktree runs only what main had not processed: its own
  // commits, not those it branched from.
  std::vector<std::string> wt_shas = {f1, f2}, main_shas = repo_.RevList();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(wt_shas, "effect", "wt1"));
  ASSERT_NO_FATAL_FAILURE(WaitSettled(main_shas, "effect", "main"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());

  std::vector<RunRow> runs = Runs();
  // Each worktree runs each commit new to the repository once.
  for (const char* job : {"effect", "where"}) {
    ExpectExactlyOnce(runs, wt_shas, job, "wt1");
    ExpectExactlyOnce(runs, main_shas, job, "main");
  }
  for (const RunRow& r : runs) {
    EXPECT_EQ(r.branch, r.worktree == "wt1" ? "feature" : "main") << "run " << r.id;
  }
  std::string lines = ReadFileOr(where);
  std::string wt_real = std::filesystem::canonical(wt_dir).string();
  for (const std::string& sha : {f1, f2}) {
    EXPECT_NE(lines.find("wt1 feature " + sha + " " + wt_real + "\n"), std::string::npos)
        << "the job for " << Short(sha) << " ran in the linked worktree; got\n"
        << lines;
  }
  std::optional<json> s = Status();
  ASSERT_TRUE(s);
  std::set<std::string> ids;
  for (const json& w : (*s)["repos"][0]["worktrees"]) ids.insert(w.value("id", ""));
  EXPECT_EQ(ids, (std::set<std::string>{"main", "wt1"})) << s->dump(2);
  StopDaemon(d);
}

TEST_F(LifecycleTest, CurrentModeIgnoresLinkedWorktrees) {
  repo_.CommitJob("effect", EffectJob());
  std::string wt_dir = dir_.Sub("wt1");
  repo_.Git({"worktree", "add", "-q", "-b", "feature", wt_dir});
  GitRepo wt(wt_dir);
  wt.Commit("f1.txt", "1", "feature one");
  DaemonProcess* d = StartReady();  // --worktrees current (the default)
  repo_.Commit("m.txt", "m", "main again");
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  ExpectExactlyOnce(Runs(), repo_.RevList(), "effect", "main");
  ExpectExactlyOnce(Runs(), {}, "effect", "wt1");
  StopDaemon(d);
}

TEST_F(LifecycleTest, SecondDaemonOnTheSameStateDirIsRefused) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* first = StartReady();
  DaemonProcess* second = StartDaemon();
  std::optional<int> code = second->WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "the second wtd did not exit";
  EXPECT_NE(*code, 0);
  EXPECT_EQ(*code, 1) << "docs/design/loop.md: a second wtd exits 1";
  std::string log = second->Log();
  EXPECT_NE(log.find("pid " + std::to_string(first->pid())), std::string::npos)
      << "the refusal names the running pid " << first->pid() << "; it said:\n"
      << log;
  std::optional<json> s = Status();
  ASSERT_TRUE(s) << "the first daemon still answers";
  EXPECT_EQ(s->value("pid", 0), first->pid());
  EXPECT_TRUE(first->Running());
  StopDaemon(first);
}

}  // namespace
}  // namespace wtd::itest
