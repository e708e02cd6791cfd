// Runs in their commit's own tree: the daemon-owned worktrees (slots) of
// runs with isolation = commit, their creation with rollback, the operator
// commands on them, and the leftovers recovery removes
// (docs/design/worktrees.md). The real wtd and wtctl on real repositories.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "base/crash_point.h"
#include "integration/fixture.h"

namespace wtd::itest {
namespace {

namespace fs = std::filesystem;

std::string Canonical(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

class WorktreesTest : public IntegrationTest {
 protected:
  // wtctl on the test's state dir with `env` added (a crash point).
  CommandResult WtctlEnv(const std::vector<std::string>& args,
                         const std::vector<std::string>& env) const {
    std::vector<std::string> argv = {WTCTL_BIN, "--state-dir", state_dir_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, env);
  }

  // `wtctl --json worktree list`, parsed.
  json Worktrees() const {
    CommandResult r = Wtctl({"--json", "worktree", "list"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    return j.is_object() ? j["worktrees"] : json::array();
  }

  // A store exists (wtctl's direct mode opens it, never creates it).
  void MakeStore() {
    DaemonProcess* d = StartReady();
    StopDaemon(d);
  }

  std::string Root() const { return Canonical(state_dir_ + "/worktrees"); }
};

// Commits arrive faster than four concurrent jobs finish, while the
// watched worktree holds an uncommitted change and an untracked file: each
// job sees exactly its commit's tree, and no two jobs share a directory
// (each holds a flock on a file in its root for its whole run).
TEST_F(WorktreesTest, IsolatedRunsSeeExactlyTheirCommitAndNeverShareADirectory) {
  std::string versions = dir_.Sub("versions"), shared = dir_.Sub("shared");
  repo_.Write("version.txt", "0\n");
  repo_.CommitJob("effect",
                  TreeCheckedJob().substr(0, TreeCheckedJob().size() - 1) +
                      "; exec 9> \"$WTD_WORKTREE_ROOT/.run-lock\"; flock -n 9 || echo \"$WTD_SHA\" "
                      ">> " +
                      shared + "; echo \"$WTD_SHA $(cat version.txt) $WTD_SOURCE_WORKTREE\" >> " +
                      versions + "; sleep 0.3\n");
  DaemonProcess* d = StartReady({"--concurrency", "4"});
  repo_.Write("version.txt", "uncommitted\n");
  repo_.Write("untracked.txt", "x\n");
  std::map<std::string, std::string> want;  // sha -> version
  for (int i = 1; i <= 8; ++i) {
    std::string v = std::to_string(i);
    repo_.Write("version.txt", v + "\n");
    repo_.Git({"add", "version.txt"});
    repo_.Git({"commit", "-q", "-m", "v" + v});
    want[repo_.Head()] = v;
    repo_.Write("version.txt", "uncommitted\n");
  }
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  ExpectExactlyOnce(Runs(), shas, "effect");
  EXPECT_EQ(ReadFileOr(shared), "") << "two jobs held one directory at once";
  std::vector<std::string> effects = Effects();
  EXPECT_EQ(std::set<std::string>(effects.begin(), effects.end()),
            std::set<std::string>(shas.begin(), shas.end()));
  for (const std::string& line : Lines(ReadFileOr(versions))) {
    std::string sha = line.substr(0, 40);
    if (!want.count(sha)) continue;  // the job's own commit: version 0
    EXPECT_EQ(line, sha + " " + want[sha] + " " + Canonical(repo_.dir())) << line;
  }
  json slots = Worktrees();
  EXPECT_GE(slots.size(), 1u);
  EXPECT_LE(slots.size(), 4u) << slots.dump(2);
  for (const json& s : slots) {
    EXPECT_EQ(s.value("state", ""), "free") << s.dump();
    EXPECT_EQ(Canonical(s.value("repo", "")), Canonical(repo_.dir())) << s.dump();
  }
  // The watched worktree was not touched.
  EXPECT_EQ(ReadFileOr(repo_.dir() + "/version.txt"), "uncommitted\n");
  EXPECT_TRUE(fs::exists(repo_.dir() + "/untracked.txt"));
  StopDaemon(d);
  ExpectWorktreesOwned(state_dir_);
}

// isolation = inplace: the job runs in the watched worktree, one run of it
// at a time however high the concurrency.
TEST_F(WorktreesTest, InplaceRunsShareNoDirectoryAtAnyConcurrency) {
  std::string shared = dir_.Sub("shared"), where = dir_.Sub("where");
  repo_.CommitJob("effect",
                  "run = exec 9> \"$WTD_WORKTREE_ROOT/.run-lock\"; flock -n 9 || echo "
                  "\"$WTD_SHA\" >> " +
                      shared + "; pwd -P >> " + where + "; echo \"$WTD_SHA\" >> " + effect_ +
                      "; sleep 0.2\nisolation = inplace\n");
  repo_.Write(".gitignore", ".run-lock\n");
  repo_.Git({"add", ".gitignore"});
  repo_.Git({"commit", "-q", "-m", "ignore the lock"});
  DaemonProcess* d = StartReady({"--concurrency", "4"});
  for (int i = 0; i < 5; ++i) repo_.Commit("f.txt", std::to_string(i), "c" + std::to_string(i));
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  ExpectExactlyOnce(Runs(), shas, "effect");
  EXPECT_EQ(ReadFileOr(shared), "") << "two inplace runs at once";
  for (const std::string& line : Lines(ReadFileOr(where))) {
    EXPECT_EQ(line, Canonical(repo_.dir()));
  }
  EXPECT_TRUE(Worktrees().empty()) << "inplace runs made worktrees";
  StopDaemon(d);
}

// keep_worktree = on_failure keeps a failed run's worktree aside, listed,
// until --keep-failed newer ones exist; `wtctl worktree remove` removes one.
TEST_F(WorktreesTest, AFailedRunsWorktreeIsKeptUntilNewerOnesPushItOut) {
  repo_.CommitJob("effect", "run = echo \"$WTD_SHA\" >> " + effect_ +
                                "; touch evidence; test ! -e fail\nmax_attempts = 1\n"
                                "keep_worktree = on_failure\n");
  DaemonProcess* d = StartReady({"--keep-failed", "1", "--concurrency", "1"});
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  std::string bad1 = repo_.Commit("fail", "1", "fails once");
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  json kept;
  for (const json& s : Worktrees()) {
    if (s.value("state", "") == "kept") kept = s;
  }
  ASSERT_TRUE(kept.is_object()) << Worktrees().dump(2);
  EXPECT_EQ(kept.value("sha", ""), bad1);
  EXPECT_TRUE(kept["run_id"].is_number()) << kept.dump();
  std::string kept_path = kept.value("path", "");
  EXPECT_TRUE(fs::exists(kept_path + "/evidence")) << "the failed run's files are kept";

  std::string bad2 = repo_.Commit("fail", "2", "fails again");
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  std::vector<std::string> kept_now;
  for (const json& s : Worktrees()) {
    if (s.value("state", "") == "kept") kept_now.push_back(s.value("sha", ""));
  }
  EXPECT_EQ(kept_now, std::vector<std::string>{bad2}) << Worktrees().dump(2);
  EXPECT_FALSE(fs::exists(kept_path)) << "the older kept worktree stays";

  std::string name;
  for (const json& s : Worktrees()) {
    if (s.value("state", "") == "kept") name = s.value("name", "");
  }
  CommandResult rm = Wtctl({"worktree", "remove", name});
  ASSERT_EQ(rm.exit_code, 0) << rm.Describe();
  for (const json& s : Worktrees()) EXPECT_NE(s.value("name", ""), name);
  CommandResult again = Wtctl({"worktree", "remove", name});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_NE(again.err.find(name), std::string::npos) << again.Describe();
  StopDaemon(d);
  ExpectWorktreesOwned(state_dir_);
}

// `wtctl worktree create` is idempotent, with the daemon up or down.
TEST_F(WorktreesTest, CreateTwiceReturnsTheSameWorktree) {
  repo_.CommitJob("effect", EffectJob());
  std::string base = repo_.Head();
  repo_.Commit("later.txt", "l", "later");
  DaemonProcess* d = StartReady();
  CommandResult first = Wtctl({"--json", "worktree", "create", "mine", "--base", base});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  CommandResult second = Wtctl({"--json", "worktree", "create", "mine", "--base", base});
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  EXPECT_EQ(json::parse(first.out), json::parse(second.out));
  json w = json::parse(first.out)["worktree"];
  EXPECT_EQ(w.value("state", ""), "manual");
  EXPECT_EQ(w.value("sha", ""), base);
  EXPECT_EQ(GitRepo(w.value("path", "")).Head(), base);
  CommandResult other = Wtctl({"worktree", "create", "mine"});
  EXPECT_EQ(other.exit_code, 1) << "a second worktree of that name: " << other.Describe();
  CommandResult bad = Wtctl({"worktree", "create", "../escape"});
  EXPECT_EQ(bad.exit_code, 2) << bad.Describe();
  StopDaemon(d);
  // Daemon down: the store answers, the same worktree again.
  CommandResult down = Wtctl({"--json", "worktree", "create", "mine", "--base", base});
  ASSERT_EQ(down.exit_code, 0) << down.Describe();
  EXPECT_EQ(json::parse(down.out), json::parse(first.out));
  ExpectWorktreesOwned(state_dir_);
}

// A kill at every step of a creation: the plan names what is left, changes
// nothing; the next create (or recover) completes or rolls back and retries.
TEST_F(WorktreesTest, ACreationCutShortAtEveryStepIsFinishedOrRolledBack) {
  repo_.CommitJob("effect", EffectJob());
  std::string base = repo_.Head();
  MakeStore();
  for (const char* point : {"after_slot_record", "after_intent_commit", "after_branch_create",
                            "after_worktree_add", "after_idem_complete"}) {
    SCOPED_TRACE(point);
    std::string name = std::string("cut-") + point;
    std::replace(name.begin(), name.end(), '_', '-');
    CommandResult cut = WtctlEnv({"worktree", "create", name, "--base", base},
                                 {std::string("WTD_CRASH_AT=") + point});
    ASSERT_EQ(cut.exit_code, kCrashExitCode) << cut.Describe();
    std::string before =
        repo_.Git({"worktree", "list", "--porcelain"}) + repo_.Git({"for-each-ref"});
    CommandResult plan = Wtctl({"--json", "recover", "--dry-run"});
    ASSERT_EQ(plan.exit_code, 0) << plan.Describe();
    json p = json::parse(plan.out);
    bool named = false;
    for (const json& a : p["actions"]) named = named || a.value("worktree", "") == name;
    EXPECT_TRUE(named) << "the plan does not name " << name << ": " << p.dump(2);
    EXPECT_EQ(repo_.Git({"worktree", "list", "--porcelain"}) + repo_.Git({"for-each-ref"}), before)
        << "the dry run changed something";
    // Creating it again finishes the job (after a rollback where needed).
    CommandResult again = Wtctl({"--json", "worktree", "create", name, "--base", base});
    ASSERT_EQ(again.exit_code, 0) << again.Describe();
    json w = json::parse(again.out)["worktree"];
    EXPECT_EQ(GitRepo(w.value("path", "")).Head(), base);
    EXPECT_EQ(GitRepo(w.value("path", "")).Git({"status", "--porcelain"}), "");
    ASSERT_NO_FATAL_FAILURE(ExpectWorktreesOwned(state_dir_));
  }
  // And a cut creation left to `wtctl recover` is rolled back by it.
  CommandResult cut =
      WtctlEnv({"worktree", "create", "left", "--base", base}, {"WTD_CRASH_AT=after_worktree_add"});
  ASSERT_EQ(cut.exit_code, kCrashExitCode) << cut.Describe();
  CommandResult rec = Wtctl({"--json", "recover"});
  ASSERT_EQ(rec.exit_code, 0) << rec.Describe();
  std::set<std::string> kinds;
  json done = json::parse(rec.out);
  for (const json& a : done["actions"]) kinds.insert(a.value("kind", ""));
  EXPECT_TRUE(kinds.count("rollback_idempotency")) << rec.out;
  EXPECT_TRUE(kinds.count("rollback_worktree")) << rec.out;
  for (const json& s : Worktrees()) EXPECT_NE(s.value("name", ""), "left");
  ExpectWorktreesOwned(state_dir_);
  CommandResult twice = Wtctl({"--json", "recover"});
  json again = json::parse(twice.out);
  for (const json& a : again["actions"]) {
    EXPECT_NE(a.value("kind", ""), "rollback_worktree") << twice.out;
  }
}

// A removal cut short after its record or its directory is finished by the
// next recovery.
TEST_F(WorktreesTest, ARemovalCutShortIsFinishedByRecover) {
  repo_.CommitJob("effect", EffectJob());
  MakeStore();
  for (const char* point : {"after_slot_removing", "after_slot_dir_remove"}) {
    SCOPED_TRACE(point);
    CommandResult made = Wtctl({"worktree", "create", "gone"});
    ASSERT_EQ(made.exit_code, 0) << made.Describe();
    CommandResult cut =
        WtctlEnv({"worktree", "remove", "gone"}, {std::string("WTD_CRASH_AT=") + point});
    ASSERT_EQ(cut.exit_code, kCrashExitCode) << cut.Describe();
    json gone;
    for (const json& s : Worktrees()) {
      if (s.value("name", "") == "gone") gone = s;
    }
    EXPECT_EQ(gone.value("state", ""), "removing") << Worktrees().dump(2);
    CommandResult rec = Wtctl({"--json", "recover"});
    ASSERT_EQ(rec.exit_code, 0) << rec.Describe();
    for (const json& s : Worktrees()) EXPECT_NE(s.value("name", ""), "gone") << rec.out;
    ASSERT_NO_FATAL_FAILURE(ExpectWorktreesOwned(state_dir_));
  }
}

// What recovery finds at start that no record owns, and a slot damaged on
// disk, each handled as documented; a user's worktree outside the root is
// never touched.
TEST_F(WorktreesTest, LeftoversAreRemovedAndADamagedSlotRebuiltAtStart) {
  repo_.CommitJob("effect", EffectJob());
  std::string base = repo_.Head();
  MakeStore();
  std::string user_wt = dir_.Sub("user-wt");
  repo_.Git({"worktree", "add", "-q", "--detach", user_wt});
  // A slot whose work dir is lost (an admin entry with no work dir).
  CommandResult made = Wtctl({"--json", "worktree", "create", "damaged", "--base", base});
  ASSERT_EQ(made.exit_code, 0) << made.Describe();
  std::string damaged = json::parse(made.out)["worktree"].value("path", "");
  fs::remove_all(damaged);
  // An interrupted `git worktree add` into the root: admin entry locked
  // "initializing", a half-made directory.
  std::string common = repo_.dir() + "/.git/worktrees/ghost";
  fs::create_directories(common);
  WriteFileOrDie(common + "/locked", "initializing\n");
  WriteFileOrDie(common + "/gitdir", Root() + "/ghost/.git\n");
  fs::create_directories(Root() + "/ghost");
  WriteFileOrDie(Root() + "/ghost/half.txt", "x");
  // A work dir with no admin entry and no record.
  fs::create_directories(Root() + "/stray/sub");
  WriteFileOrDie(Root() + "/stray/sub/file", "x");

  CommandResult plan = Wtctl({"--json", "recover", "--dry-run"});
  ASSERT_EQ(plan.exit_code, 0) << plan.Describe();
  std::string p = plan.out;
  EXPECT_NE(p.find("rebuild_slot"), std::string::npos) << p;
  EXPECT_NE(p.find("ghost"), std::string::npos) << p;
  EXPECT_NE(p.find("stray"), std::string::npos) << p;
  EXPECT_TRUE(fs::exists(common + "/locked")) << "the dry run removed something";

  DaemonProcess* d = StartReady();
  EXPECT_FALSE(fs::exists(common)) << "the locked admin entry stays";
  EXPECT_FALSE(fs::exists(Root() + "/ghost"));
  EXPECT_FALSE(fs::exists(Root() + "/stray"));
  EXPECT_EQ(GitRepo(damaged).Head(), base) << "the damaged slot was not rebuilt";
  EXPECT_TRUE(fs::exists(user_wt + "/.git")) << "a user's worktree was touched";
  EXPECT_NE(repo_.Git({"worktree", "list"}).find(user_wt), std::string::npos);
  StopDaemon(d);
  ExpectWorktreesOwned(state_dir_);
}

// A branch a creation made, moved on by someone before the rollback: the
// rollback removes the worktree but not the branch, and says so.
TEST_F(WorktreesTest, ABranchThatMovedOnIsNotDeletedByTheRollback) {
  repo_.CommitJob("effect", EffectJob());
  std::string base = repo_.Head();
  std::string other = repo_.Commit("o.txt", "o", "other");
  MakeStore();
  CommandResult cut = WtctlEnv({"worktree", "create", "moved", "--base", base},
                               {"WTD_CRASH_AT=after_branch_create"});
  ASSERT_EQ(cut.exit_code, kCrashExitCode) << cut.Describe();
  ASSERT_EQ(repo_.Git({"rev-parse", "refs/heads/wtd/slots/moved"}), base);
  repo_.Git({"update-ref", "refs/heads/wtd/slots/moved", other});
  CommandResult rec = Wtctl({"--json", "recover"});
  ASSERT_EQ(rec.exit_code, 0) << rec.Describe();
  EXPECT_NE(rec.out.find("moved on"), std::string::npos) << rec.out;
  EXPECT_EQ(repo_.Git({"rev-parse", "refs/heads/wtd/slots/moved"}), other);
  for (const json& s : Worktrees()) EXPECT_NE(s.value("name", ""), "moved");
  EXPECT_FALSE(fs::exists(Root() + "/moved"));
}

// kill -9 while isolated jobs run and commits keep coming; `wtctl recover`
// with the daemon down leaves only owned worktrees, and the next start runs
// every commit once, each in its own tree.
TEST_F(WorktreesTest, AKillMidStreamThenRecoverWithTheDaemonDownLeavesOnlyOwnedWorktrees) {
  std::string hold = dir_.Sub("hold");
  repo_.CommitJob("effect", TreeCheckedJob().substr(0, TreeCheckedJob().size() - 1) +
                                "; while [ -e " + hold + " ]; do sleep 0.05; done\n");
  WriteFileOrDie(hold, "");
  DaemonProcess* d = StartReady({"--concurrency", "2"});
  for (int i = 0; i < 4; ++i) repo_.Commit("f.txt", std::to_string(i), "c" + std::to_string(i));
  // The jobs themselves started (`running` is committed before the release:
  // a supervisor not yet released when the daemon dies runs nothing).
  ASSERT_TRUE(WaitFor([&] { return Effects().size() == 2; }, ScaledMs(60000)))
      << "two jobs did not start";
  d->Signal(SIGKILL);
  ASSERT_TRUE(d->WaitExit(ScaledMs(30000)).has_value());
  // The two jobs end on their own under their supervisors, which record
  // their outcomes with no daemon there.
  std::remove(hold.c_str());
  auto exit_files = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(state_dir_ + "/runs")) {
      n += e.path().extension() == ".exit";
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return exit_files() == 2; }, ScaledMs(30000)));
  CommandResult rec = Wtctl({"--json", "recover"});
  ASSERT_EQ(rec.exit_code, 0) << rec.Describe();
  json r = json::parse(rec.out);
  int released = 0, recorded = 0;
  for (const json& a : r["actions"]) {
    released += a.value("kind", "") == "release_slot";
    recorded += a.value("kind", "") == "record_outcome";
  }
  EXPECT_EQ(recorded, 2) << rec.out;
  EXPECT_EQ(released, 2) << rec.out;
  EXPECT_EQ(exit_files(), 0) << "recorded outcomes' files are removed";
  ASSERT_NO_FATAL_FAILURE(ExpectWorktreesOwned(state_dir_));
  for (const json& w : Worktrees()) EXPECT_EQ(w.value("state", ""), "free") << w.dump();

  repo_.Commit("g.txt", "g", "after the kill");
  DaemonProcess* again = StartReady({"--concurrency", "2"});
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  ExpectExactlyOnce(Runs(), shas, "effect");
  for (const std::string& line : Effects()) {
    EXPECT_EQ(line.rfind("dirty", 0), std::string::npos) << "a job ran in a tree not at its commit";
  }
  StopDaemon(again);
  ExpectWorktreesOwned(state_dir_);
}

}  // namespace
}  // namespace wtd::itest
