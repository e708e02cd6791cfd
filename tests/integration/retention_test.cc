// Retention with the real wtd, wtctl and git: runs older than
// --retention-days are collected (record, log, context file) by the daemon's
// own pass after a restart with a short retention, and by `wtctl gc` with
// the daemon down (dry run first); a crash between the records' deletion and
// the files' (WTD_CRASH_AT=after_gc_commit) is finished by the next start;
// and a commit whose run was collected never runs again.
//
// wtd has no fake clock: the retention is 0.00002 days (about 1.7 s), and
// the tests wait until that much time has passed since the runs finished.
#include <sys/stat.h>

#include <chrono>

#include "base/crash_point.h"
#include "integration/fixture.h"

namespace wtd::itest {
namespace {

constexpr char kShortRetention[] = "0.00002";  // days: 1728 ms

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

class RetentionTest : public IntegrationTest {
 protected:
  // Commits `n` commits with the effect job, runs them, stops the daemon
  // and waits until the runs are older than the short retention. Returns
  // the run ids.
  std::vector<uint64_t> MakeOldRuns(int n) {
    repo_.CommitJob("effect", EffectJob());
    for (int i = 1; i < n; ++i)
      repo_.Commit("f" + std::to_string(i), "x\n", "c" + std::to_string(i));
    shas_ = repo_.RevList();
    DaemonProcess* d = StartReady();
    WaitSettled(shas_, "effect");
    std::vector<uint64_t> ids;
    for (const RunRow& r : Runs()) ids.push_back(r.id);
    StopDaemon(d);
    auto stopped = std::chrono::steady_clock::now();
    // Every file a run left: its log. Its context file went when its outcome
    // was recorded; one is planted as a crash between that commit and the
    // removal leaves it, for retention to find too.
    for (uint64_t id : ids) {
      EXPECT_TRUE(Exists(LogOf(id))) << LogOf(id);
      EXPECT_FALSE(Exists(ContextOf(id))) << ContextOf(id);
      WriteFileOrDie(ContextOf(id), "{}\n");
    }
    // Not a hope: a wait until a known amount of time has passed.
    EXPECT_TRUE(WaitFor(
        [&] {
          return std::chrono::steady_clock::now() - stopped > std::chrono::milliseconds(2500);
        },
        10000));
    return ids;
  }
  std::string LogOf(uint64_t id) const {
    return state_dir_ + "/logs/runs/" + std::to_string(id) + ".log";
  }
  std::string ContextOf(uint64_t id) const {
    return state_dir_ + "/runs/" + std::to_string(id) + ".json";
  }
  void ExpectFilesGone(const std::vector<uint64_t>& ids) {
    for (uint64_t id : ids) {
      EXPECT_FALSE(Exists(LogOf(id))) << LogOf(id);
      EXPECT_FALSE(Exists(ContextOf(id))) << ContextOf(id);
    }
  }
  // No run comes back and no job runs again over a few ticks.
  void ExpectNothingRunsAgain() {
    ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(5));
    EXPECT_TRUE(Runs().empty()) << RunsToString(Runs());
    EXPECT_EQ(Effects().size(), shas_.size()) << "a collected commit ran again";
  }

  std::vector<std::string> shas_;
};

TEST_F(RetentionTest, ARestartWithAShortRetentionCollectsOldRunsThatThenNeverRunAgain) {
  std::vector<uint64_t> ids = MakeOldRuns(3);
  ASSERT_EQ(ids.size(), 3u);
  DaemonProcess* d = StartReady({"--retention-days", kShortRetention});
  std::vector<RunRow> left;
  EXPECT_TRUE(WaitFor(
      [&] {
        left = Runs();
        return left.empty();
      },
      ScaledMs(30000)))
      << RunsToString(left);
  ExpectFilesGone(ids);
  EXPECT_NE(d->Log().find("retention: 3 run(s), 3 log file(s), 3 context file(s)"),
            std::string::npos)
      << d->Log();
  // Their events stay, naming a run no longer stored.
  CommandResult events = Wtctl({"--json", "events", "--last", "100"});
  ASSERT_EQ(events.exit_code, 0) << events.Describe();
  std::vector<std::string> ev = Lines(events.out);  // one JSON object per event
  ASSERT_FALSE(ev.empty());
  for (const std::string& line : ev) EXPECT_TRUE(json::parse(line)["job"].is_null()) << line;
  ASSERT_NO_FATAL_FAILURE(ExpectNothingRunsAgain());
  // A restart with the default retention (nothing else reset) does not run
  // them either.
  StopDaemon(d);
  StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectNothingRunsAgain());
}

TEST_F(RetentionTest, GcWithTheDaemonDownPlansThenCollectsAndTheDaemonKeepsTheCommitsDone) {
  std::vector<uint64_t> ids = MakeOldRuns(2);
  ASSERT_EQ(ids.size(), 2u);
  CommandResult plan = Wtctl({"--json", "gc", "--dry-run", "--retention-days", kShortRetention});
  ASSERT_EQ(plan.exit_code, 0) << plan.Describe();
  json p = json::parse(plan.out);
  EXPECT_EQ(p["dry_run"], true);
  EXPECT_EQ(p["retention_from"], "--retention-days");
  EXPECT_EQ(p["runs"], 2);
  EXPECT_EQ(p["log_files"], 2);
  EXPECT_EQ(p["context_files"], 2);
  EXPECT_GT(p["bytes_freed"].get<int64_t>(), 0);
  EXPECT_EQ(p["caught_up"], true);
  EXPECT_EQ(Runs().size(), 2u) << "the dry run removed runs";
  for (uint64_t id : ids) EXPECT_TRUE(Exists(LogOf(id)) && Exists(ContextOf(id))) << id;

  CommandResult gc = Wtctl({"gc", "--retention-days", kShortRetention});
  ASSERT_EQ(gc.exit_code, 0) << gc.Describe();
  EXPECT_NE(gc.out.find("removed 2 run(s)"), std::string::npos) << gc.out;
  EXPECT_NE(gc.out.find("2 log file(s), 2 context file(s)"), std::string::npos) << gc.out;
  EXPECT_NE(gc.out.find("wtctl --retention-days"), std::string::npos) << gc.out;
  EXPECT_TRUE(Runs().empty()) << RunsToString(Runs());
  ExpectFilesGone(ids);

  CommandResult again = Wtctl({"--json", "gc"});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  json a = json::parse(again.out);
  EXPECT_EQ(a["retention_from"], "default");
  EXPECT_EQ(a["retention_days"], 30);
  EXPECT_EQ(a["runs"], 0);

  StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectNothingRunsAgain());
  CommandResult up = Wtctl({"--json", "gc", "--dry-run", "--retention-days", "1"});
  ASSERT_EQ(up.exit_code, 0) << up.Describe();
  json u = json::parse(up.out);
  EXPECT_EQ(u["retention_from"], "daemon");
  EXPECT_EQ(u["retention_days"], 30);
  EXPECT_TRUE(u["note"].is_string()) << "the ignored --retention-days is not mentioned";
}

TEST_F(RetentionTest, ACrashBetweenTheRecordsAndTheFilesIsFinishedByTheNextStart) {
  std::vector<uint64_t> ids = MakeOldRuns(2);
  ASSERT_EQ(ids.size(), 2u);
  DaemonProcess* d =
      StartDaemon({"--retention-days", kShortRetention}, {"WTD_CRASH_AT=after_gc_commit"});
  std::optional<int> code = d->WaitExit(ScaledMs(60000));
  ASSERT_TRUE(code.has_value()) << "wtd did not reach after_gc_commit";
  ASSERT_EQ(*code, kCrashExitCode) << d->Log();
  EXPECT_TRUE(Runs().empty()) << "the records' batch was committed";
  for (uint64_t id : ids) EXPECT_TRUE(Exists(LogOf(id)) && Exists(ContextOf(id))) << id;

  DaemonProcess* next = StartReady({"--retention-days", kShortRetention});
  EXPECT_TRUE(WaitFor(
      [&] {
        for (uint64_t id : ids) {
          if (Exists(LogOf(id)) || Exists(ContextOf(id))) return false;
        }
        return true;
      },
      ScaledMs(30000)))
      << next->Log();
  EXPECT_NE(next->Log().find("retention: 0 run(s), 2 log file(s), 2 context file(s) (4 orphan)"),
            std::string::npos)
      << next->Log();
  CommandResult rest = Wtctl({"--json", "gc", "--dry-run"});
  ASSERT_EQ(rest.exit_code, 0) << rest.Describe();
  json r = json::parse(rest.out);
  EXPECT_EQ(r["runs"], 0);
  EXPECT_EQ(r["log_files"], 0);
  EXPECT_EQ(r["context_files"], 0);
  ASSERT_NO_FATAL_FAILURE(ExpectNothingRunsAgain());
}

}  // namespace
}  // namespace wtd::itest
