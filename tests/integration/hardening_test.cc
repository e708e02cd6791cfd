// The daemon's hardening, end to end with the real binaries: one log per
// run capped across its attempts, a private state dir, a PID file that
// refuses a symlink, what the start says of the previous run, and a stop
// that does not wait for a tick.
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "fakes/file_mode.h"
#include "integration/fixture.h"

namespace wtd::itest {
namespace {

namespace fs = std::filesystem;

class HardeningTest : public IntegrationTest {
 protected:
  // `wtctl --json runs --limit 0` as JSON, with the fields the harness's
  // RunRow leaves out (log_bytes, log_truncated).
  json RawRuns() const {
    CommandResult r = Wtctl({"--json", "runs", "--limit", "0"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_array()) << r.out;
    return j.is_array() ? j : json::array();
  }

  // Files in the state dir's logs/runs.
  std::vector<std::string> RunLogs() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(state_dir_ + "/logs/runs", ec)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }
};

TEST_F(HardeningTest, AFailingRunKeepsOneLogCappedAcrossItsAttempts) {
  // 1500 bytes per attempt, three attempts, a 4096-byte cap: the third
  // attempt stops at what is left. Before, every attempt had a cap of its own.
  repo_.CommitJob("noisy",
                  "run = head -c 1500 /dev/zero | tr '\\0' x; exit 1\n"
                  "max_attempts = 3\nretry_backoff_s = 0\n");
  DaemonProcess* d = StartReady({"--log-cap-bytes", "4096"});
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "noisy"));
  json runs = RawRuns();
  ASSERT_EQ(runs.size(), 1u) << runs.dump(2);
  const json& run = runs[0];
  EXPECT_EQ(run.value("state", ""), "failed") << run.dump(2);
  EXPECT_EQ(run.value("attempt", 0), 3) << run.dump(2);

  EXPECT_EQ(RunLogs(), (std::vector<std::string>{std::to_string(run.value("id", 0)) + ".log"}))
      << "one log for the whole run";
  std::string log_path = run.value("log_path", "");
  std::string log = ReadFileOr(log_path);
  const std::string marker = "\n[wtd: log truncated at 4096 bytes]\n";
  const std::string x1500(1500, 'x');
  std::string want = x1500 + "\n[wtd: attempt 2]\n" + x1500 + "\n[wtd: attempt 3]\n" +
                     std::string(4096 - 3000 - 36, 'x') + marker;
  size_t differ =
      std::mismatch(log.begin(), log.end(), want.begin(), want.end()).first - log.begin();
  EXPECT_TRUE(log == want) << "the log (" << log.size() << " bytes) differs from the expected ("
                           << want.size() << " bytes) at byte " << differ << ": '"
                           << log.substr(differ > 20 ? differ - 20 : 0, 60) << "'";
  EXPECT_LE(log.size(), 4096 + marker.size());
  EXPECT_EQ(run.value("log_bytes", uint64_t{0}), log.size())
      << "log_bytes is the size of the file; " << run.dump(2);
  EXPECT_EQ(fs::file_size(log_path), log.size());
  EXPECT_TRUE(run.value("log_truncated", false)) << run.dump(2);
  StopDaemon(d);
}

TEST_F(HardeningTest, AnAttemptInterruptedByAKilledDaemonIsFollowedInTheSameLog) {
  std::string once = dir_.Sub("once");
  repo_.CommitJob("slow", "run = echo \"out $WTD_ATTEMPT\"; if [ ! -e " + once + " ]; then touch " +
                              once + "; sleep 60; fi\nmax_attempts = 2\n");
  DaemonProcess* first = StartReady();
  std::string log_path = state_dir_ + "/logs/runs/1.log";
  ASSERT_TRUE(WaitFor([&] { return ReadFileOr(log_path) == "out 1\n"; }, ScaledMs(30000)))
      << "attempt 1 never wrote its output; log: " << ReadFileOr(log_path);
  // The daemon and the attempt's supervisor die: recovery finds no outcome,
  // kills what is left of the job and retries it.
  std::optional<json> s = Status();
  ASSERT_TRUE(s && (*s)["running_jobs"].size() == 1) << (s ? s->dump(2) : "no status");
  pid_t supervisor = (*s)["running_jobs"][0].value("pid", 0);
  ASSERT_GT(supervisor, 0) << s->dump(2);
  first->Kill9();
  ASSERT_EQ(kill(supervisor, SIGKILL), 0);
  DaemonProcess* second = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "slow"));
  json runs = RawRuns();
  ASSERT_EQ(runs.size(), 1u) << runs.dump(2);
  EXPECT_EQ(runs[0].value("state", ""), "succeeded") << runs.dump(2);
  std::string log = ReadFileOr(log_path);
  EXPECT_EQ(log, "out 1\n[wtd: attempt 2]\nout 2\n");
  EXPECT_EQ(runs[0].value("log_bytes", uint64_t{0}), log.size()) << runs.dump(2);
  StopDaemon(second);
}

TEST_F(HardeningTest, StateFilesArePrivateAndJobsKeepTheUmaskWtdWasStartedWith) {
  ScopedUmask mask(022);  // would make 0755 directories and 0644 files
  std::string seen = dir_.Sub("umask");
  std::string ctx_mode = dir_.Sub("ctx-mode");
  repo_.CommitJob("ctx", "run = umask > " + seen + "; test -r \"$WTD_CONTEXT\"; stat -c %a " +
                             "\"$WTD_CONTEXT\" > " + ctx_mode + "\n");
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "ctx"));
  EXPECT_EQ(Runs().at(0).state, "succeeded");
  EXPECT_EQ(ReadFileOr(seen), "0022\n") << "the job runs with the umask wtd was started with";

  // The context file and its directory in particular, then everything.
  EXPECT_EQ(ModeOf(state_dir_ + "/runs"), 0700);
  // The context file goes once the outcome is recorded: its mode as the
  // job saw it.
  EXPECT_EQ(ReadFileOr(ctx_mode), "600\n");
  EXPECT_LT(ModeOf(state_dir_ + "/runs/1.json"), 0) << "removed with the outcome recorded";
  EXPECT_EQ(ModeOf(state_dir_ + "/logs/runs/1.log"), 0600);
  EXPECT_EQ(ModeOf(state_dir_ + "/wtd.pid"), 0600);
  EXPECT_EQ(ModeOf(state_dir_), 0700);
  int checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(state_dir_)) {
    std::string path = e.path().string();
    int mode = ModeOf(path);
    if (e.is_directory()) {
      EXPECT_EQ(mode, 0700) << path;
    } else {
      EXPECT_EQ(mode & 077, 0) << path << " has mode " << std::oct << mode;
    }
    ++checked;
  }
  EXPECT_GT(checked, 10) << "the store, the logs, the socket, the PID file were all looked at";
  StopDaemon(d);
}

TEST_F(HardeningTest, AStateDirOthersCanWriteIsRefusedAndOneTheyCanReadIsTightened) {
  repo_.CommitJob("effect", EffectJob());
  ASSERT_EQ(mkdir(state_dir_.c_str(), 0700), 0);
  ASSERT_EQ(chmod(state_dir_.c_str(), 0775), 0);
  DaemonProcess* refused = StartDaemon();
  std::optional<int> code = refused->WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "wtd kept running on a group-writable state dir";
  EXPECT_EQ(*code, 1);
  EXPECT_NE(refused->Log().find("state dir " + state_dir_ +
                                " has mode 0775, writable by group "
                                "or others; refusing to use it"),
            std::string::npos)
      << refused->Log();
  EXPECT_TRUE(fs::is_empty(state_dir_)) << "nothing was created in the refused dir";
  EXPECT_EQ(ModeOf(state_dir_), 0775) << "a refused dir is left as it is";

  ASSERT_EQ(chmod(state_dir_.c_str(), 0755), 0);
  DaemonProcess* d = StartReady();
  EXPECT_EQ(ModeOf(state_dir_), 0700);
  EXPECT_NE(d->Log().find(state_dir_ + " (mode 0755, now 0700) was open to group or others"),
            std::string::npos)
      << d->Log();
  StopDaemon(d);
}

TEST_F(HardeningTest, APidFileSymlinkIsRefusedAndItsTargetLeftAlone) {
  repo_.CommitJob("effect", EffectJob());
  std::string precious = dir_.Sub("precious");
  WriteFileOrDie(precious, "precious data\n");
  ASSERT_EQ(mkdir(state_dir_.c_str(), 0700), 0);
  ASSERT_EQ(symlink(precious.c_str(), (state_dir_ + "/wtd.pid").c_str()), 0);
  DaemonProcess* d = StartDaemon();
  std::optional<int> code = d->WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "wtd kept running with a symlinked PID file";
  EXPECT_EQ(*code, 1);
  EXPECT_NE(d->Log().find("pid file " + state_dir_ + "/wtd.pid is a symbolic link"),
            std::string::npos)
      << d->Log();
  EXPECT_EQ(ReadFileOr(precious), "precious data\n");
}

TEST_F(HardeningTest, OnlyAStoreThatWasNotStoppedCleanlyIsSaidNotToHaveStoppedCleanly) {
  repo_.CommitJob("effect", EffectJob());
  const std::string unclean = "previous run did not stop cleanly";
  DaemonProcess* fresh = StartReady();
  EXPECT_NE(fresh->Log().find("incarnation 1 (new state store)"), std::string::npos)
      << fresh->Log();
  EXPECT_EQ(fresh->Log().find(unclean), std::string::npos) << fresh->Log();
  StopDaemon(fresh);

  DaemonProcess* after_stop = StartReady();
  EXPECT_EQ(after_stop->Log().find(unclean), std::string::npos) << after_stop->Log();
  EXPECT_EQ(after_stop->Kill9(), 137);

  DaemonProcess* after_kill = StartReady();
  EXPECT_NE(after_kill->Log().find("incarnation 3 (" + unclean + ")"), std::string::npos)
      << after_kill->Log();
  StopDaemon(after_kill);
}

// The thread of `pid` named `name`, or 0.
pid_t ThreadNamed(pid_t pid, const std::string& name) {
  std::error_code ec;
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& e : fs::directory_iterator(task_dir, ec)) {
    if (ReadFileOr(e.path().string() + "/comm") == name + "\n") {
      return static_cast<pid_t>(std::stol(e.path().filename().string()));
    }
  }
  return 0;
}

TEST_F(HardeningTest, AnIdleDaemonsSignalThreadHasNoTimeoutAndSigtermStopsIt) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  pid_t tid = ThreadNamed(d->pid(), "wtd-signals");
  ASSERT_GT(tid, 0) << "no wtd-signals thread in wtd pid " << d->pid();
  // Where that thread sleeps: ppoll(fds, 2, NULL, ...), no timeout, so it
  // never wakes on its own (the old one woke every second).
  std::string path = "/proc/" + std::to_string(d->pid()) + "/task/" + std::to_string(tid);
  std::vector<std::string> fields;
  bool in_ppoll = WaitFor(
      [&] {
        fields = Lines(ReadFileOr(path + "/syscall"));
        if (fields.empty()) return true;  // the kernel does not say
        std::istringstream in(fields[0]);
        fields.clear();
        for (std::string f; in >> f;) fields.push_back(f);
        return !fields.empty() && fields[0] == std::to_string(SYS_ppoll);
      },
      ScaledMs(10000), 10);
  if (!fields.empty()) {
    ASSERT_TRUE(in_ppoll) << "the signal thread is not in ppoll: " << fields[0];
    ASSERT_GE(fields.size(), 4u);
    EXPECT_EQ(fields[3], "0x0") << "ppoll's timeout is NULL";
  }

  d->Signal(SIGTERM);
  std::optional<int> code = d->WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "wtd did not exit after SIGTERM";
  EXPECT_EQ(*code, 0);
  std::string log = d->Log();
  EXPECT_NE(log.find("SIGTERM received: stopping"), std::string::npos) << log;
  EXPECT_NE(log.find("stopping: 0 job(s) running"), std::string::npos) << log;
  EXPECT_NE(log.find(" stopped\n"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(state_dir_ + "/wtd.pid"));
  EXPECT_FALSE(fs::exists(state_dir_ + "/wtd.sock"));
}

}  // namespace
}  // namespace wtd::itest
