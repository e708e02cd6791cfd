// Crash-and-restart at every named crash point of the lifecycle
// (src/base/crash_point.cc): wtd is started with WTD_CRASH_AT=<name>[:<nth>]
// so it _exit(86)s there, then restarted without crash points. After the
// restart every commit must have exactly one recorded run, succeeded, and
// the job's effect must be there for every commit (the job may have run
// more than once: execution is at-least-once, the recorded outcome exactly
// once). Then the supervisor's own crash points (WTD_EXEC_CRASH_AT), hit by
// every supervisor while the daemon lives.
#include <signal.h>

#include <cstdio>
#include <map>
#include <ostream>
#include <set>

#include "base/crash_point.h"
#include "integration/fixture.h"

namespace wtd::itest {
namespace {

struct Scenario {
  std::string point;
  int nth = 1;
  // Jobs stay running (sleeping) until the crash, and the daemon is stopped
  // with --shutdown-grace-s 0 while they run: the stop path that terminates
  // in-flight jobs.
  bool jobs_in_flight = false;
  // during_recovery only: the crash that leaves work for recovery comes
  // after the release, with jobs still running under their supervisors, so
  // the pass crashes after adopting one.
  bool adopting = false;
  std::string Spec() const { return point + ":" + std::to_string(nth); }
  std::string Name() const {
    return point + "_" + std::to_string(nth) + (jobs_in_flight ? "_jobs_in_flight" : "") +
           (adopting ? "_adopting" : "");
  }
};

// gtest shows this beside the test's name.
void PrintTo(const Scenario& sc, std::ostream* os) {
  *os << "WTD_CRASH_AT=" << sc.Spec() << (sc.jobs_in_flight ? " with jobs in flight" : "")
      << (sc.adopting ? " while adopting" : "");
}

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> out;
  // Points a single daemon on an uncontended repository never passes: the
  // contention, reap and skip paths (another owner's lock or receipt), and a
  // renewal (a job running for a third of the lease TTL). locks_test.cc
  // crashes at the reap.
  // The removal of a worktree is an operator's (worktrees_test.cc crashes
  // `wtctl worktree remove` there).
  static const std::set<std::string_view> kNotOnTheDaemonsPath = {
      "after_lock_contended_commit", "after_lease_renew_commit", "after_skip_commit",
      "after_reap_record",           "after_slot_removing",      "after_slot_dir_remove"};
  // Nor does it collect history here: nothing is 30 days old
  // (retention_test.cc crashes at after_gc_commit).
  for (std::string_view name : CrashPointNames()) {
    if (!kNotOnTheDaemonsPath.count(name) && name != "after_gc_commit") {
      out.push_back({std::string(name)});
    }
  }
  // Later hits: mid-stream, with earlier runs already recorded.
  out.push_back({"after_enqueue_commit", 2});
  out.push_back({"after_lease_commit", 3});
  out.push_back({"after_running_commit", 2});
  out.push_back({"after_release", 3});
  out.push_back({"after_outcome_commit", 2});
  out.push_back({"during_recovery", 2});
  out.push_back({"during_shutdown", 1, /*jobs_in_flight=*/true});
  out.push_back({"during_recovery", 1, /*jobs_in_flight=*/false, /*adopting=*/true});
  return out;
}

// True when the crash leaves a run recorded `running` whose job never ran
// (its supervisor was never released), so its attempt is interrupted and
// retried after the restart. A crash after the release leaves the job to its
// supervisor: its outcome is recorded from the exit file, or it is adopted,
// and it runs once. (A crash in a stop with jobs in flight may come before or
// after the supervisors passed on the stop: the jobs are then retried or
// finish on their own; either is right, neither is required.)
bool RetriesARun(const Scenario& sc) {
  static const std::set<std::string> kLeavesRunning = {"after_running_commit", "during_recovery"};
  return kLeavesRunning.count(sc.point) && !sc.adopting && !sc.jobs_in_flight;
}

class CrashPointTest : public IntegrationTest, public ::testing::WithParamInterface<Scenario> {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    hold_ = dir_.Sub("hold");
    // While hold_ is present the job waits after its effect, so it is still
    // running when the daemon stops (or dies).
    // The job checks that it runs in a tree at exactly its commit.
    repo_.CommitJob("effect", TreeCheckedJob().substr(0, TreeCheckedJob().size() - 1) +
                                  "; while [ -e " + hold_ + " ]; do sleep 0.05; done\n");
    repo_.Commit("a.txt", "a", "second");
    repo_.Commit("b.txt", "b", "third");
  }

  DaemonProcess* StartCrashing(const std::string& spec, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--concurrency", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartDaemon(args, {"WTD_CRASH_AT=" + spec});
  }

  // Waits for d to die at its crash point; fails unless it exits 86.
  void ExpectCrash(DaemonProcess* d, const std::string& spec) {
    std::optional<int> code = d->WaitExit(ScaledMs(60000));
    ASSERT_TRUE(code.has_value()) << "wtd with WTD_CRASH_AT=" << spec << " did not die";
    ASSERT_EQ(*code, kCrashExitCode) << "wtd with WTD_CRASH_AT=" << spec;
  }

  // Commits a few more times while d lives, each time waiting until d has
  // run everything or died, so later hits of the crash point happen too.
  void CommitWhileAlive(DaemonProcess* d) {
    for (int i = 0; i < 3; ++i) {
      std::string why;
      WaitFor([&] { return !d->Running() || IsSettled(repo_.RevList(), "effect", "main", &why); },
              ScaledMs(60000), 50);
      if (!d->Running()) return;
      repo_.Commit("more" + std::to_string(i), std::to_string(i), "more " + std::to_string(i));
    }
    std::string why;
    WaitFor([&] { return !d->Running() || IsSettled(repo_.RevList(), "effect", "main", &why); },
            ScaledMs(60000), 50);
  }

  // Stops d gracefully (SIGTERM) once its jobs are running (hold_ exists).
  void StopWithJobsInFlight(DaemonProcess* d) {
    ASSERT_NO_FATAL_FAILURE(WaitReady(d));
    std::optional<json> s;
    ASSERT_TRUE(WaitFor(
        [&] {
          s = Status();
          return s && s->value("active_by_state", json::object()).value("running", 0) > 0;
        },
        ScaledMs(60000)))
        << "no job started: " << (s ? s->dump() : "no status");
    d->Signal(SIGTERM);
  }

  std::string hold_;
};

TEST_P(CrashPointTest, RestartRecordsEveryCommitExactlyOnce) {
  const Scenario& sc = GetParam();
  std::vector<std::string> extra;
  if (sc.jobs_in_flight) extra = {"--shutdown-grace-s", "0"};

  if (sc.point == "during_recovery" && !sc.adopting) {
    // Leave `running` records behind (released never: the supervisor sees
    // EOF) for the next start's recovery pass to act on.
    std::string prime = "after_running_commit:" + std::to_string(sc.nth);
    ASSERT_NO_FATAL_FAILURE(ExpectCrash(StartCrashing(prime, {}), prime));
  }
  if (sc.adopting) {
    // Jobs released and held running by hold_: the next pass adopts them,
    // and dies after the first adoption; the one after adopts again.
    ASSERT_NO_FATAL_FAILURE(WriteFileOrDie(hold_, ""));
    ASSERT_NO_FATAL_FAILURE(ExpectCrash(StartCrashing("after_release:2", {}), "after_release:2"));
  }
  if (sc.jobs_in_flight) {
    ASSERT_NO_FATAL_FAILURE(WriteFileOrDie(hold_, ""));
  }
  DaemonProcess* d = StartCrashing(sc.Spec(), extra);
  if (sc.jobs_in_flight) {
    ASSERT_NO_FATAL_FAILURE(StopWithJobsInFlight(d));
  } else {
    CommitWhileAlive(d);
    if (sc.point == "during_shutdown" && d->Running()) d->Signal(SIGTERM);
  }
  // Every named point is on this path; one that no code passes fails here.
  ASSERT_NO_FATAL_FAILURE(ExpectCrash(d, sc.Spec()));
  std::remove(hold_.c_str());

  // Restart without crash points: everything converges.
  DaemonProcess* again = StartReady();
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  std::vector<RunRow> runs = Runs();
  ExpectExactlyOnce(runs, shas, "effect");
  if (RetriesARun(sc)) {
    // The crash left a `running` record: recovery interrupted it and the
    // restart ran it again.
    bool retried = false;
    for (const RunRow& r : runs) retried = retried || r.attempt >= 2;
    EXPECT_TRUE(retried) << "no run was retried after the crash; " << RunsToString(runs);
  }
  std::vector<std::string> effects = Effects();
  std::set<std::string> ran(effects.begin(), effects.end());
  for (const std::string& sha : shas) {
    EXPECT_TRUE(ran.count(sha)) << "the job never ran for " << Short(sha);
  }
  std::set<std::string> known(shas.begin(), shas.end());
  for (const std::string& line : ran) {
    EXPECT_TRUE(known.count(line)) << "the effect file holds an unknown line '" << line << "'";
  }
  if (!sc.jobs_in_flight) {
    // No job was stopped or killed: none ran twice, whatever the daemon's
    // crash (a released job finishes under its supervisor).
    EXPECT_EQ(effects.size(), ran.size()) << "a job ran more than once; " << RunsToString(runs);
  }
  ASSERT_NO_FATAL_FAILURE(StopDaemon(again));
  // And a clean stop leaves it so: the store read directly agrees, and no
  // lock ref or lease is left, with one receipt per commit.
  ExpectExactlyOnce(Runs(), shas, "effect");
  ExpectLocksReleased(state_dir_, shas, "effect");
  ExpectWorktreesOwned(state_dir_);
}

INSTANTIATE_TEST_SUITE_P(EveryCrashPoint, CrashPointTest, ::testing::ValuesIn(Scenarios()),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           return info.param.Name();
                         });

// The supervisor's own crash points (docs/design/crash-points.md):
// WTD_EXEC_CRASH_AT given to wtd reaches every supervisor it starts, which
// SIGKILLs itself there, each time, while the daemon lives.
class SupervisorCrashPointTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    execs_ = dir_.Sub("execs");
    crash_env_ = dir_.Sub("crash-env");
    // The job appends its execution, and what it sees of the supervisor's
    // crash variable (removed before the job runs).
    repo_.CommitJob("effect", "run = echo \"$WTD_SHA $WTD_ATTEMPT\" >> " + execs_ +
                                  "; echo \"${WTD_EXEC_CRASH_AT:-unset}\" >> " + crash_env_ +
                                  "\nmax_attempts = 1\n");
    repo_.Commit("a.txt", "a", "second");
    repo_.Commit("b.txt", "b", "third");
  }

  // Runs the daemon with every supervisor crashing at `point` until every
  // commit's run has ended.
  DaemonProcess* RunCrashing(const std::string& point) {
    DaemonProcess* d = StartDaemon({"--concurrency", "2"}, {"WTD_EXEC_CRASH_AT=" + point});
    EXPECT_NO_FATAL_FAILURE(WaitReady(d));
    EXPECT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
    EXPECT_NO_FATAL_FAILURE(WaitQuietTicks());
    EXPECT_TRUE(d->Running()) << "a supervisor's crash took its daemon with it";
    std::vector<std::string> seen = Lines(ReadFileOr(crash_env_));
    EXPECT_FALSE(seen.empty());
    for (const std::string& v : seen) EXPECT_EQ(v, "unset") << "the job saw WTD_EXEC_CRASH_AT";
    return d;
  }

  // The attempts each sha's job executed, in order.
  std::map<std::string, std::vector<int>> Executions() const {
    std::map<std::string, std::vector<int>> out;
    for (const std::string& line : Lines(ReadFileOr(execs_))) {
      size_t space = line.find(' ');
      out[line.substr(0, space)].push_back(std::stoi(line.substr(space + 1)));
    }
    return out;
  }

  std::string execs_;
  std::string crash_env_;
};

TEST_F(SupervisorCrashPointTest, AnOutcomeWrittenBeforeTheSupervisorDiedIsRecordedOnce) {
  DaemonProcess* d = RunCrashing("exec_after_exit_write");
  std::vector<std::string> shas = repo_.RevList();
  std::vector<RunRow> runs = Runs();
  ExpectExactlyOnce(runs, shas, "effect");
  for (const RunRow& r : runs) {
    EXPECT_EQ(r.attempt, 1) << "the written outcome counts: no retry; " << RunsToString(runs);
    EXPECT_EQ(r.exit_code, 0) << RunsToString(runs);
  }
  std::map<std::string, std::vector<int>> executions = Executions();
  EXPECT_EQ(executions.size(), shas.size());
  for (const std::string& sha : shas) {
    EXPECT_EQ(executions[sha], std::vector<int>{1}) << "executions of " << Short(sha);
  }
  ASSERT_NO_FATAL_FAILURE(StopDaemon(d));
  ExpectLocksReleased(state_dir_, shas, "effect");
}

TEST_F(SupervisorCrashPointTest, AnOutcomeLostBeforeItsWriteIsRetriedUntilTheAllowanceIsSpent) {
  DaemonProcess* d = RunCrashing("exec_before_exit_write");
  std::vector<std::string> shas = repo_.RevList();
  std::vector<RunRow> runs = Runs();
  // Each attempt ran and lost its outcome: interrupted, retried at once
  // while attempt < max_attempts + 3 (docs/design/loop.md, "Retries"), then
  // failed. One run per commit all the same.
  ExpectExactlyOnce(runs, shas, "effect", "main", "failed");
  constexpr int kAttempts = 1 + 3;
  for (const RunRow& r : runs) {
    EXPECT_EQ(r.attempt, kAttempts) << RunsToString(runs);
    EXPECT_NE(r.error.find("supervisor"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("without recording the job's outcome"), std::string::npos) << r.error;
  }
  std::map<std::string, std::vector<int>> executions = Executions();
  EXPECT_EQ(executions.size(), shas.size());
  for (const std::string& sha : shas) {
    EXPECT_EQ(executions[sha], (std::vector<int>{1, 2, 3, 4})) << "executions of " << Short(sha);
  }
  ASSERT_NO_FATAL_FAILURE(StopDaemon(d));
  EXPECT_EQ(repo_.Git({"for-each-ref", "refs/wtd/locks"}), "") << "lock refs left behind";
}

}  // namespace
}  // namespace wtd::itest
