// The run controls: `wtctl trigger` (a run by hand, idempotent, --again for
// a new attempt series), `wtctl cancel` (a running job's group killed, the
// run cancelled and never retried) and `wtctl jobs` (the jobs at HEAD, a
// broken job file reported), each against a real wtd and git repository.
#include <signal.h>

#include <algorithm>
#include <cstdlib>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class ControlTest : public IntegrationTest {
 protected:
  // `wtctl --json ARGS`, expected to succeed; its JSON.
  json WtctlJson(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--json"};
    all.insert(all.end(), args.begin(), args.end());
    CommandResult r = Wtctl(all);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << r.Describe();
    return j;
  }

  std::vector<RunRow> RunsOf(const std::string& job) const {
    std::vector<RunRow> out;
    for (const RunRow& r : Runs()) {
      if (r.job == job) out.push_back(r);
    }
    return out;
  }

  // Waits until every run of `job` is terminal and there are `n` of them.
  void WaitTerminal(const std::string& job, size_t n) {
    std::vector<RunRow> runs;
    bool ok = WaitFor(
        [&] {
          runs = RunsOf(job);
          return runs.size() == n && std::all_of(runs.begin(), runs.end(), [](const RunRow& r) {
                   return IsTerminalState(r.state);
                 });
        },
        ScaledMs(60000));
    ASSERT_TRUE(ok) << "waiting for " << n << " ended run(s) of " << job << ": "
                    << RunsToString(runs);
  }
};

// True when `pid` names no live process (gone, or a zombie).
bool ProcessGone(pid_t pid) {
  std::string stat = ReadFileOr("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// A job the poller never runs by itself (its branch filter matches no
// branch of the repository): only a trigger runs it.
constexpr char kNoBranch[] = "branches = release/*\nmax_attempts = 1\n";

TEST_F(ControlTest, TriggerRunsOnceAnswersTheSameRunAndAgainRunsItOnceMore) {
  std::string sha = repo_.CommitJob("manual", EffectJob(kNoBranch));
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  ASSERT_TRUE(RunsOf("manual").empty()) << "the branch filter should keep the poller off it";

  json first = WtctlJson({"trigger", "manual"});
  ASSERT_TRUE(first.value("created", false)) << first.dump(2);
  uint64_t id = first["run"]["id"].get<uint64_t>();
  EXPECT_EQ(first["run"]["sha"], sha);
  EXPECT_EQ(first["run"]["series"], 0);
  ASSERT_NO_FATAL_FAILURE(WaitTerminal("manual", 1));
  EXPECT_EQ(RunsOf("manual")[0].state, "succeeded") << RunsToString(RunsOf("manual"));
  EXPECT_EQ(Effects(), std::vector<std::string>{sha});

  // The same key: the same run, nothing enqueued.
  json second = WtctlJson({"trigger", "manual"});
  EXPECT_FALSE(second.value("created", true)) << second.dump(2);
  EXPECT_EQ(second["run"]["id"].get<uint64_t>(), id);
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  EXPECT_EQ(RunsOf("manual").size(), 1u);

  // --again: a new series, run although series 0's receipt is in the note.
  json again = WtctlJson({"trigger", "manual", "--again"});
  ASSERT_TRUE(again.value("created", false)) << again.dump(2);
  EXPECT_NE(again["run"]["id"].get<uint64_t>(), id);
  EXPECT_EQ(again["run"]["series"], 1);
  ASSERT_NO_FATAL_FAILURE(WaitTerminal("manual", 2));
  for (const RunRow& r : RunsOf("manual")) EXPECT_EQ(r.state, "succeeded") << r.error;
  EXPECT_EQ(Effects(), (std::vector<std::string>{sha, sha}));
  // Each series has its own receipt.
  EXPECT_EQ(Receipts(sha, "manual").size(), 2u);

  // A run that has ended cannot be cancelled.
  CommandResult c = Wtctl({"cancel", std::to_string(id)});
  EXPECT_EQ(c.exit_code, 1) << c.Describe();
  EXPECT_NE(c.err.find("succeeded"), std::string::npos) << c.Describe();
  StopDaemon(d);
}

TEST_F(ControlTest, TriggerOfAnOlderCommitByShortSha) {
  std::string older = repo_.CommitJob("manual", EffectJob(kNoBranch));
  repo_.Commit("README", "later\n", "a later commit");
  DaemonProcess* d = StartReady();
  json r = WtctlJson({"trigger", "manual", "--sha", older.substr(0, 9)});
  ASSERT_TRUE(r.value("created", false)) << r.dump(2);
  EXPECT_EQ(r["run"]["sha"], older);
  ASSERT_NO_FATAL_FAILURE(WaitTerminal("manual", 1));
  EXPECT_EQ(Effects(), std::vector<std::string>{older});
  StopDaemon(d);
}

TEST_F(ControlTest, TriggerErrorsNameWhatIsMissing) {
  repo_.CommitJob("manual", EffectJob(kNoBranch));
  std::string sha = repo_.Commit("jobs/broken.job", "run = true\ntimeout_s = soon\n", "broken");
  DaemonProcess* d = StartReady();

  CommandResult r = Wtctl({"trigger", "nope"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("jobs/nope.job"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find(sha), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("jobs there: manual"), std::string::npos) << r.Describe();

  r = Wtctl({"trigger", "broken"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("jobs/broken.job:2"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find(sha), std::string::npos) << r.Describe();

  r = Wtctl({"trigger", "manual", "--worktree", "elsewhere"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("worktree elsewhere"), std::string::npos) << r.Describe();

  r = Wtctl({"trigger", "manual", "--sha", "0123456789abcdef"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("0123456789abcdef"), std::string::npos) << r.Describe();

  r = Wtctl({"trigger", "manual", "--repo", dir_.Sub("not-a-repo")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("not-a-repo"), std::string::npos) << r.Describe();

  r = Wtctl({"trigger"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  EXPECT_TRUE(RunsOf("manual").empty());
  StopDaemon(d);
}

TEST_F(ControlTest, CancelKillsTheRunningJobsGroupAndTheRunIsNotRetried) {
  std::string pidfile = dir_.Sub("sleep.pid");
  repo_.CommitJob("slow", "run = sleep 600 & echo $! > " + pidfile +
                              "; wait\nmax_attempts = 3\nretry_backoff_s = 0\n");
  DaemonProcess* d = StartReady();
  pid_t sleeper = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        sleeper = static_cast<pid_t>(std::atoi(ReadFileOr(pidfile).c_str()));
        return sleeper > 0;
      },
      ScaledMs(30000)))
      << "the job never wrote " << pidfile;
  std::vector<RunRow> runs = RunsOf("slow");
  ASSERT_EQ(runs.size(), 1u) << RunsToString(runs);
  ASSERT_EQ(runs[0].state, "running") << RunsToString(runs);

  json r = WtctlJson({"cancel", std::to_string(runs[0].id)});
  EXPECT_EQ(r["from"], "running") << r.dump(2);
  EXPECT_EQ(r["run"]["state"], "cancelled") << r.dump(2);
  EXPECT_EQ(r["run"]["error"], "cancelled by wtctl") << r.dump(2);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(sleeper); }, ScaledMs(20000)))
      << "the job's sleep " << sleeper << " outlived the cancel";
  if (!ProcessGone(sleeper)) kill(sleeper, SIGKILL);

  // Cancelled once more: an error naming its state.
  CommandResult again = Wtctl({"cancel", std::to_string(runs[0].id)});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_NE(again.err.find("cancelled"), std::string::npos) << again.Describe();

  // Not retried, now or after a restart.
  StopDaemon(d);
  d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  runs = RunsOf("slow");
  ASSERT_EQ(runs.size(), 1u) << RunsToString(runs);
  EXPECT_EQ(runs[0].state, "cancelled");
  EXPECT_EQ(runs[0].attempt, 1);
  ExpectLocksReleased(state_dir_, {}, "slow");
  StopDaemon(d);
}

TEST_F(ControlTest, CancelOfAPendingRunWithTheDaemonDown) {
  repo_.CommitJob("manual", EffectJob(kNoBranch));
  DaemonProcess* d = StartReady();
  ASSERT_EQ(Wtctl({"pause"}).exit_code, 0);
  json r = WtctlJson({"trigger", "manual"});
  uint64_t id = r["run"]["id"].get<uint64_t>();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(3, /*idle=*/false));
  EXPECT_EQ(RunsOf("manual")[0].state, "pending") << "pausing holds a triggered run too";
  StopDaemon(d);

  json c = WtctlJson({"cancel", std::to_string(id)});
  EXPECT_EQ(c["from"], "pending") << c.dump(2);
  EXPECT_EQ(c["run"]["state"], "cancelled") << c.dump(2);

  d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  EXPECT_EQ(RunsOf("manual")[0].state, "cancelled");
  EXPECT_TRUE(Effects().empty());
  StopDaemon(d);
}

TEST_F(ControlTest, JobsListsTheJobsAndABrokenFileWithTheDaemonUpAndDown) {
  repo_.CommitJob("build",
                  "run = make\nbranches = main release/*\npaths = src/**\ntimeout_s = 60\n");
  std::string sha = repo_.Commit("jobs/broken.job", "run = true\n\ntimeout_s = soon\n", "broken");
  auto check = [&](const json& j) {
    ASSERT_EQ(j["repos"].size(), 1u) << j.dump(2);
    const json& wts = j["repos"][0]["worktrees"];
    ASSERT_EQ(wts.size(), 1u) << j.dump(2);
    EXPECT_EQ(wts[0]["id"], "main");
    EXPECT_EQ(wts[0]["sha"], sha);
    ASSERT_EQ(wts[0]["jobs"].size(), 1u) << j.dump(2);
    const json& job = wts[0]["jobs"][0];
    EXPECT_EQ(job["name"], "build");
    EXPECT_EQ(job["file"], "jobs/build.job");
    EXPECT_EQ(job["run"], "make");
    EXPECT_EQ(job["branches"], json::array({"main", "release/*"}));
    EXPECT_EQ(job["paths"], json::array({"src/**"}));
    EXPECT_EQ(job["timeout_s"], 60);
    EXPECT_EQ(job["isolation"], "commit");
    ASSERT_EQ(wts[0]["errors"].size(), 1u) << j.dump(2);
    EXPECT_EQ(wts[0]["errors"][0]["file"], "jobs/broken.job");
    EXPECT_EQ(wts[0]["errors"][0]["line"], 3);
    EXPECT_NE(wts[0]["errors"][0]["message"].get<std::string>().find("timeout_s"),
              std::string::npos);
  };
  DaemonProcess* d = StartReady();
  check(WtctlJson({"jobs"}));
  CommandResult human = Wtctl({"jobs"});
  EXPECT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("jobs/broken.job:3"), std::string::npos) << human.Describe();
  StopDaemon(d);
  check(WtctlJson({"jobs"}));
}

TEST_F(ControlTest, ATriggeredRunSurvivesAKill9RightAfterTheAnswer) {
  repo_.CommitJob("manual", EffectJob(kNoBranch));
  DaemonProcess* d = StartReady();
  ASSERT_EQ(Wtctl({"pause"}).exit_code, 0);  // so it is still pending when killed
  json r = WtctlJson({"trigger", "manual"});
  d->Kill9();
  uint64_t id = r["run"]["id"].get<uint64_t>();
  json shown = WtctlJson({"show", std::to_string(id)});
  EXPECT_EQ(shown["job"], "manual") << shown.dump(2);
  d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitTerminal("manual", 1));
  EXPECT_EQ(RunsOf("manual")[0].id, id);
  EXPECT_EQ(RunsOf("manual")[0].state, "succeeded");
  EXPECT_EQ(Effects().size(), 1u);
  StopDaemon(d);
}

}  // namespace
}  // namespace wtd::itest
