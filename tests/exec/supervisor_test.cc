// Tests of the supervisor wtd-exec on its own, spoken to as the daemon
// speaks to it: fd 3 the handshake pipe, fd 4 the run log. It runs nothing
// before the release line, stays the job's parent, and leaves the job's
// process group and outcome in files.
#include "exec/supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/process_table.h"
#include "exec/exit_record.h"
#include "fakes/temp_dir.h"
#include "gtest/gtest.h"

namespace wtd {
namespace {

// What fd 3 of the supervisor is.
enum class Fd3 { kReleased, kClosedPipe, kDevNull, kMissing, kHeld };

struct Supervised {
  pid_t pid = -1;
  int handshake = -1;  // write end, while held
};

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override { signal(SIGPIPE, SIG_IGN); }

  std::vector<std::string> Args(const std::string& command, uint32_t attempt = 1) {
    return {"--run=7",
            "--attempt=" + std::to_string(attempt),
            "--log-cap=4096",
            "--exit-file=" + exit_,
            "--group-file=" + group_,
            "--",
            "/bin/sh",
            "-c",
            command};
  }

  // Spawns the supervisor with `args`, fd 3 as `fd3` (released with
  // `release` for kReleased), fd 4 the log, stderr into a file.
  Supervised Spawn(const std::vector<std::string>& args, Fd3 fd3,
                   const std::string& release = "go 0 1000\n", const char* crash_at = nullptr) {
    int hs[2];
    EXPECT_EQ(pipe2(hs, O_CLOEXEC), 0);
    int log = open(log_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    EXPECT_GE(log, 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd3 == Fd3::kDevNull) {
      posix_spawn_file_actions_addopen(&actions, 3, "/dev/null", O_RDONLY, 0);
    } else if (fd3 == Fd3::kMissing) {
      posix_spawn_file_actions_addclose(&actions, 3);
    } else {
      posix_spawn_file_actions_adddup2(&actions, hs[0], 3);
    }
    posix_spawn_file_actions_adddup2(&actions, log, 4);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    std::vector<std::string> all = {WTD_EXEC_SHIM};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::string crash = crash_at ? std::string("WTD_EXEC_CRASH_AT=") + crash_at : "";
    std::string path = "PATH=/usr/bin:/bin";
    std::vector<char*> envp = {path.data()};
    if (crash_at) envp.push_back(crash.data());
    envp.push_back(nullptr);
    Supervised s;
    int rc = posix_spawn(&s.pid, WTD_EXEC_SHIM, &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(hs[0]);
    close(log);
    EXPECT_EQ(rc, 0);
    if (fd3 == Fd3::kHeld) {
      s.handshake = hs[1];
      return s;
    }
    if (fd3 == Fd3::kReleased) {
      ssize_t w = write(hs[1], release.data(), release.size());
      EXPECT_TRUE(w == static_cast<ssize_t>(release.size()) || errno == EPIPE) << strerror(errno);
    }
    close(hs[1]);
    return s;
  }

  int Reap(pid_t pid) {
    int status = -1;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    return status;
  }

  // Runs to the end; the supervisor's exit code (-1 when killed).
  int Run(const std::vector<std::string>& args, Fd3 fd3, const std::string& release = "go 0 1000\n",
          const char* crash_at = nullptr) {
    int status = Reap(Spawn(args, fd3, release, crash_at).pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  ExitRecord Outcome(uint32_t attempt = 1) {
    Result<std::optional<ExitRecord>> r = ReadExitRecord(exit_, 7, attempt);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r.ok() && r->has_value()) << "no exit file " << exit_;
    return r.ok() && *r ? **r : ExitRecord();
  }

  bool Exists(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0;
  }

  TempDir dir_;
  std::string log_ = dir_.Sub("7.log");
  std::string exit_ = dir_.Sub("7.exit");
  std::string group_ = dir_.Sub("7.pgid");
  std::string err_ = dir_.Sub("stderr");
  std::string marker_ = dir_.Sub("ran");
};

// Live (not zombie) processes of process group `pgid`, from /proc.
int LiveMembers(pid_t pgid) {
  int n = 0;
  DIR* proc = opendir("/proc");
  while (struct dirent* e = proc ? readdir(proc) : nullptr) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string stat = ReadFile(std::string("/proc/") + e->d_name + "/stat").value_or("");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0, pgrp = 0;
    if (sscanf(stat.c_str() + close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') ++n;
  }
  if (proc) closedir(proc);
  return n;
}

TEST(SupervisorBinaryTest, IsBuilt) { EXPECT_EQ(access(WTD_EXEC_SHIM, X_OK), 0) << WTD_EXEC_SHIM; }

TEST_F(SupervisorTest, RunsTheJobAfterTheReleaseAndRecordsItsOutcome) {
  EXPECT_EQ(Run(Args("echo out; echo err >&2; touch " + marker_ + "; exit 3"), Fd3::kReleased),
            kSupervisorOutcomeWritten)
      << ReadFile(err_).value_or("");
  EXPECT_TRUE(Exists(marker_));
  ExitRecord r = Outcome();
  EXPECT_EQ(r.outcome.exit_code, 3);
  EXPECT_EQ(r.outcome.term_signal, 0);
  EXPECT_FALSE(r.outcome.timed_out || r.outcome.stopped || r.outcome.lost);
  std::string log = ReadFile(log_).value_or("");
  EXPECT_EQ(log, "out\nerr\n");
  EXPECT_EQ(r.outcome.log_bytes, log.size());
  EXPECT_GT(r.started_at_ms, 0);
  EXPECT_GE(r.ended_at_ms, r.started_at_ms);
  // The job's group was on record before it ran: its leader, the job.
  Result<std::optional<JobGroup>> g = ReadJobGroup(group_);
  ASSERT_TRUE(g.ok() && g->has_value()) << g.status().ToString();
  EXPECT_GT((*g)->pgid, 1);
  EXPECT_GT((*g)->start_time, 0u);
}

TEST_F(SupervisorTest, EofOrAnotherLineRunsNothing) {
  EXPECT_EQ(Run(Args("touch " + marker_), Fd3::kClosedPipe), kSupervisorNotRun);
  EXPECT_EQ(Run(Args("touch " + marker_), Fd3::kReleased, "g"), kSupervisorNotRun);
  EXPECT_EQ(Run(Args("touch " + marker_), Fd3::kReleased, "stop 0 0\n"), kSupervisorNotRun);
  EXPECT_EQ(Run(Args("touch " + marker_), Fd3::kReleased, "go x 0\n"), kSupervisorNotRun);
  EXPECT_FALSE(Exists(marker_));
  EXPECT_FALSE(Exists(exit_));
  EXPECT_FALSE(Exists(group_));
}

TEST_F(SupervisorTest, RefusesWithoutItsPipe) {
  EXPECT_EQ(Run(Args("touch " + marker_), Fd3::kDevNull), kSupervisorNotRun);
  EXPECT_NE(ReadFile(err_).value_or("").find("not the handshake pipe"), std::string::npos);
  EXPECT_EQ(Run(Args("touch " + marker_), Fd3::kMissing), kSupervisorNotRun);
  EXPECT_FALSE(Exists(marker_));
}

TEST_F(SupervisorTest, UsageErrorsRunNothing) {
  std::vector<std::vector<std::string>> bad = {
      {"--", "/bin/sh", "-c", "touch " + marker_},  // no run, no files
      {"--run=7", "--attempt=1", "--exit-file=" + exit_, "--group-file=" + group_, "--"},
      {"--run=0", "--attempt=1", "--exit-file=" + exit_, "--group-file=" + group_, "--",
       "/bin/true"},
      {"--bogus", "--", "/bin/true"}};
  for (const char* mask : {"--umask=", "--umask=8", "--umask=01000", "--umask=22x"}) {
    std::vector<std::string> args = Args("touch " + marker_);
    args.insert(args.begin(), mask);
    bad.push_back(args);
  }
  for (const auto& args : bad) {
    EXPECT_EQ(Run(args, Fd3::kReleased), kSupervisorNotRun) << args[0];
    EXPECT_NE(ReadFile(err_).value_or("").find("usage"), std::string::npos) << args[0];
  }
  EXPECT_FALSE(Exists(marker_));
}

TEST_F(SupervisorTest, SetsTheJobsUmaskNotItsOwn) {
  mode_t old = umask(077);  // as the daemon runs
  std::string out = dir_.Sub("umask");
  std::vector<std::string> args = Args("umask > " + out);
  args.insert(args.begin(), "--umask=0027");
  int code = Run(args, Fd3::kReleased);
  umask(old);
  EXPECT_EQ(code, kSupervisorOutcomeWritten);
  EXPECT_EQ(ReadFile(out).value_or(""), "0027\n");
  struct stat st;
  ASSERT_EQ(stat(exit_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the supervisor's own files keep the daemon's umask";
}

TEST_F(SupervisorTest, AJobThatCannotExecIsRecorded127WithWhy) {
  std::string missing = dir_.Sub("no-such-program");
  std::vector<std::string> args = Args("");
  args.resize(args.size() - 3);  // drop /bin/sh -c ""
  args.push_back(missing);
  EXPECT_EQ(Run(args, Fd3::kReleased), kSupervisorOutcomeWritten);
  ExitRecord r = Outcome();
  EXPECT_EQ(r.outcome.exit_code, kJobExecFailed);
  EXPECT_EQ(r.outcome.error.rfind(std::string(kExecFailurePrefix) + missing + ": ", 0), 0u)
      << r.outcome.error;
}

TEST_F(SupervisorTest, TheTimeoutIsItsOwnToEnforce) {
  // A job ignoring SIGTERM, with a background child: the group gets TERM at
  // 300 ms and KILL 300 ms later.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Run(Args("trap '' TERM; sleep 1000 & sleep 1000"), Fd3::kReleased, "go 300 300\n"),
            kSupervisorOutcomeWritten);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ExitRecord r = Outcome();
  EXPECT_TRUE(r.outcome.timed_out);
  EXPECT_FALSE(r.outcome.stopped);
  EXPECT_EQ(r.outcome.term_signal, SIGKILL);
  JobGroup g = ReadJobGroup(group_).value().value();
  EXPECT_EQ(LiveMembers(g.pgid), 0) << "nothing of the job's group is left";
}

TEST_F(SupervisorTest, SigtermStopsTheJobAndIsRecordedStopped) {
  Supervised s = Spawn(Args("echo up; exec sleep 1000"), Fd3::kReleased);
  for (int i = 0; i < 2000 && ReadFile(log_).value_or("") != "up\n"; ++i) usleep(5000);
  ASSERT_EQ(kill(s.pid, SIGTERM), 0);
  int status = Reap(s.pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kSupervisorOutcomeWritten);
  ExitRecord r = Outcome();
  EXPECT_TRUE(r.outcome.stopped);
  EXPECT_FALSE(r.outcome.timed_out);
  EXPECT_EQ(r.outcome.term_signal, SIGTERM);
}

TEST_F(SupervisorTest, LaterAttemptsAppendAfterAHeader) {
  EXPECT_EQ(Run(Args("printf first"), Fd3::kReleased), kSupervisorOutcomeWritten);
  EXPECT_EQ(Run(Args("echo second", 2), Fd3::kReleased), kSupervisorOutcomeWritten);
  EXPECT_EQ(ReadFile(log_).value_or(""), "first\n[wtd: attempt 2]\nsecond\n");
  EXPECT_EQ(Outcome(2).attempt, 2u);
}

TEST_F(SupervisorTest, KilledBeforeTheExitFileLeavesNoneAndAfterItLeavesAWholeOne) {
  EXPECT_EQ(Run(Args("exit 4"), Fd3::kReleased, "go 0 1000\n", "exec_before_exit_write"), -1);
  EXPECT_FALSE(Exists(exit_));
  EXPECT_EQ(Run(Args("exit 4"), Fd3::kReleased, "go 0 1000\n", "exec_after_exit_write"), -1);
  EXPECT_EQ(Outcome().outcome.exit_code, 4);
}

TEST_F(SupervisorTest, ItsCrashVariableDoesNotReachTheJob) {
  std::string env = dir_.Sub("env");
  EXPECT_EQ(Run(Args("env > " + env), Fd3::kReleased, "go 0 1000\n", "no_such_point"),
            kSupervisorOutcomeWritten);
  EXPECT_EQ(ReadFile(env).value_or("").find("WTD_EXEC_CRASH_AT"), std::string::npos);
}

TEST_F(SupervisorTest, TheJobGoesOnWhenTheDaemonSideGoesAway) {
  // Released, the supervisor needs nothing more of its parent: the write end
  // of the pipe closed at once, the job still runs to its end.
  EXPECT_EQ(Run(Args("sleep 0.2; touch " + marker_), Fd3::kReleased), kSupervisorOutcomeWritten);
  EXPECT_TRUE(Exists(marker_));
}

TEST_F(SupervisorTest, AnExitFileThatCannotBeWrittenExits126) {
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("file"), "x").ok());
  std::vector<std::string> args = Args("touch " + marker_);
  args[3] = "--exit-file=" + dir_.Sub("file/7.exit");  // under a regular file: ENOTDIR
  EXPECT_EQ(Run(args, Fd3::kReleased), kSupervisorOutcomeLost);
  EXPECT_TRUE(Exists(marker_));
  EXPECT_NE(ReadFile(err_).value_or("").find("cannot record the outcome"), std::string::npos);
}

}  // namespace
}  // namespace wtd
