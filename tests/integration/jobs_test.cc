// What happens to a job's processes and files: timeouts kill the whole
// process group, broken job files are reported while the others run, and a
// run's output is in its log.
#include <signal.h>

#include <cstdlib>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class JobsTest : public IntegrationTest {};

// True when `pid` names no live process (gone, or a zombie nobody reaped
// yet: it can no longer run anything).
bool ProcessGone(pid_t pid) {
  std::string stat = ReadFileOr("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

pid_t ReadPid(const std::string& path) {
  pid_t pid = 0;
  WaitFor(
      [&] {
        pid = static_cast<pid_t>(std::atoi(ReadFileOr(path).c_str()));
        return pid > 0;
      },
      ScaledMs(30000));
  return pid;
}

TEST_F(JobsTest, TimeoutKillsTheWholeProcessGroupIncludingGrandchildren) {
  // The job (sh) starts a shell that starts a background sleep and waits,
  // and a grandchild that ignores SIGTERM, so only SIGKILL ends it.
  std::string pidfile = dir_.Sub("grandchild.pid"), stubborn = dir_.Sub("stubborn.pid");
  repo_.CommitJob("slow", "run = sh -c 'sleep 100 & echo $! > " + pidfile +
                              "; wait' & sh -c 'trap \"\" TERM; echo $$ > " + stubborn +
                              "; exec sleep 100' & wait\ntimeout_s = 1\nmax_attempts = 1\n");
  DaemonProcess* d = StartReady();
  pid_t grandchild = ReadPid(pidfile), stubborn_pid = ReadPid(stubborn);
  ASSERT_GT(grandchild, 0) << "the job never wrote " << pidfile;
  ASSERT_GT(stubborn_pid, 0) << "the job never wrote " << stubborn;
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "slow"));

  std::vector<RunRow> runs = Runs();
  ASSERT_EQ(runs.size(), 1u) << RunsToString(runs);
  EXPECT_EQ(runs[0].state, "timed_out") << RunsToString(runs);
  EXPECT_EQ(runs[0].attempt, 1);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }, ScaledMs(10000)))
      << "grandchild " << grandchild << " (sleep 100) outlived the timed-out job";
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(stubborn_pid); }, ScaledMs(10000)))
      << "grandchild " << stubborn_pid << " (ignoring SIGTERM) outlived the timed-out job";
  if (!ProcessGone(grandchild)) kill(grandchild, SIGKILL);
  if (!ProcessGone(stubborn_pid)) kill(stubborn_pid, SIGKILL);
  StopDaemon(d);
}

TEST_F(JobsTest, BrokenJobFileIsReportedAndTheOtherJobsStillRun) {
  repo_.Commit("jobs/good.job", EffectJob(), "good job");
  std::string sha =
      repo_.Commit("jobs/broken.job", "run = true\n# a comment\ntimeout_s = soon\n", "broken job");
  DaemonProcess* d = StartReady();
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "good"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  ExpectExactlyOnce(Runs(), shas, "good");
  ExpectExactlyOnce(Runs(), {}, "broken");
  EXPECT_EQ(Lines(ReadFileOr(effect_)).size(), shas.size());

  CommandResult r = Wtctl({"--json", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json status = json::parse(r.out);
  const json& errors = status["job_errors"];
  ASSERT_TRUE(errors.is_array() && !errors.empty()) << status.dump(2);
  bool named = false;
  for (const json& e : errors) {
    std::string message = e.value("message", "");
    // <file>:<line>: <key>: <what>
    if (message.find("broken.job:3: timeout_s: ") != std::string::npos) {
      named = true;
      EXPECT_EQ(e.value("sha", ""), sha) << e.dump();
      EXPECT_EQ(e.value("repo", ""), repo_.dir()) << e.dump();
    }
  }
  EXPECT_TRUE(named) << "no job error names broken.job, line 3, key timeout_s: " << errors.dump(2);
  // The human status shows it too.
  CommandResult human = Wtctl({"status"});
  EXPECT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("broken.job:3: timeout_s"), std::string::npos) << human.out;
  StopDaemon(d);
}

TEST_F(JobsTest, LogsShowTheJobsOutput) {
  repo_.CommitJob("talk",
                  "run = echo \"out of $WTD_JOB\"; echo 'to stderr' >&2; exit 3\n"
                  "max_attempts = 1\n");
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "talk"));
  std::vector<RunRow> runs = Runs();
  ASSERT_EQ(runs.size(), 1u) << RunsToString(runs);
  EXPECT_EQ(runs[0].state, "failed");
  EXPECT_EQ(runs[0].exit_code, 3);
  std::string id = std::to_string(runs[0].id);
  CommandResult logs = Wtctl({"logs", id});
  EXPECT_EQ(logs.exit_code, 0) << logs.Describe();
  EXPECT_EQ(logs.out, "out of talk\nto stderr\n");
  CommandResult follow = Wtctl({"logs", id, "--follow"});
  EXPECT_EQ(follow.exit_code, 0) << follow.Describe();
  EXPECT_EQ(follow.out, "out of talk\nto stderr\n");
  StopDaemon(d);
  CommandResult direct = Wtctl({"logs", id});  // from the store, no daemon
  EXPECT_EQ(direct.exit_code, 0) << direct.Describe();
  EXPECT_EQ(direct.out, "out of talk\nto stderr\n");
}

}  // namespace
}  // namespace wtd::itest
