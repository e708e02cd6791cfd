// Tests of Execution and the wtd-exec shim with real processes.
#include "exec/execution.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/process_table.h"
#include "fakes/temp_dir.h"
#include "gtest/gtest.h"

namespace wtd {
namespace {

constexpr int64_t kLongMs = 20000;  // bound for waits that should end quickly

// Polls `pred` every 10 ms until it holds or `limit_ms` passes.
bool WaitFor(const std::function<bool()>& pred, int64_t limit_ms = kLongMs) {
  auto limit = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= limit) return false;
    usleep(10 * 1000);
  }
  return true;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string ReadOrEmpty(const std::string& path) { return ReadFile(path).value_or(""); }

// True once `pid` is gone or a zombie (no live process to signal).
bool ProcessGone(pid_t pid) { return !SystemProcessTable()->StartTime(pid).ok(); }

pid_t ReadPid(const std::string& path) {
  pid_t pid = 0;
  WaitFor([&] {
    pid = static_cast<pid_t>(atoi(ReadOrEmpty(path).c_str()));
    return pid > 0;
  });
  return pid;
}

// No child of this process is left unreaped.
bool NoChildren() {
  int status;
  return waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

class ExecutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_TRUE(MakeDirs(dir_.Sub("work")).ok());
  }

  SpawnRequest Request(const std::string& command) {
    SpawnRequest req;
    req.shim_path = WTD_EXEC_SHIM;
    req.command = command;
    req.cwd = dir_.Sub("work");
    req.env = {"PATH=/usr/bin:/bin", "WTD_TEST_VAR=a value with spaces"};
    req.log_path = dir_.Sub("logs/runs/1.log");
    req.run_id = 1;
    req.exit_path = dir_.Sub("runs/1.exit");
    req.group_path = dir_.Sub("runs/1.pgid");
    return req;
  }

  std::unique_ptr<Execution> StartOrDie(const SpawnRequest& req) {
    Result<std::unique_ptr<Execution>> exec = Execution::Start(req, SystemProcessTable());
    EXPECT_TRUE(exec.ok()) << exec.status().ToString();
    return exec.ok() ? std::move(exec).value() : nullptr;
  }

  // Starts, releases and waits for `command`.
  AttemptOutcome RunToEnd(const SpawnRequest& req, int64_t timeout_ms = 0,
                          int64_t grace_ms = 1000) {
    std::unique_ptr<Execution> exec = StartOrDie(req);
    if (!exec) return AttemptOutcome();
    EXPECT_TRUE(exec->Release(timeout_ms, grace_ms).ok());
    std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
    EXPECT_TRUE(outcome.has_value()) << "job did not end: " << req.command;
    return outcome.value_or(AttemptOutcome());
  }

  TempDir dir_;
};

TEST_F(ExecutionTest, RunsReleasedJobInCwdWithExactlyTheGivenEnv) {
  SpawnRequest req = Request(
      "pwd > pwd.txt; tr '\\0' '\\n' < /proc/$$/environ > env.txt; "
      "echo to-stdout; echo to-stderr >&2; exit 3");
  AttemptOutcome outcome = RunToEnd(req);
  EXPECT_EQ(outcome.exit_code, 3);
  EXPECT_EQ(outcome.term_signal, 0);
  EXPECT_FALSE(outcome.never_ran);
  EXPECT_FALSE(outcome.timed_out);
  EXPECT_EQ(ReadOrEmpty(dir_.Sub("work/pwd.txt")), req.cwd + "\n");
  EXPECT_EQ(ReadOrEmpty(dir_.Sub("work/env.txt")),
            "PATH=/usr/bin:/bin\nWTD_TEST_VAR=a value with spaces\n");
  std::string log = ReadOrEmpty(req.log_path);
  EXPECT_NE(log.find("to-stdout\n"), std::string::npos) << log;
  EXPECT_NE(log.find("to-stderr\n"), std::string::npos) << log;
  EXPECT_EQ(outcome.log_bytes, log.size());
  struct stat st;
  ASSERT_EQ(stat(req.log_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ExecutionTest, JobInheritsNoDescriptorOfTheDaemonButItsStdio) {
  // A descriptor opened without O_CLOEXEC, as a library might (Asio's
  // sockets, spdlog's log files).
  int leak = dup2(open("/dev/null", O_RDONLY), 57);
  ASSERT_EQ(leak, 57);
  SpawnRequest req = Request(
      "for fd in 3 4 57; do if [ -e /proc/$$/fd/$fd ]; then echo open $fd; fi; done > fds.txt");
  AttemptOutcome outcome = RunToEnd(req);
  close(leak);
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(ReadOrEmpty(dir_.Sub("work/fds.txt")), "");
}

TEST_F(ExecutionTest, JobsGetTheJobUmaskNotTheDaemonsOwn) {
  mode_t old = umask(077);  // the daemon's own, for its private files
  SetJobUmask(022);         // the one it was started with
  AttemptOutcome given = RunToEnd(Request("umask > given.txt"));
  SetJobUmask(-1);
  AttemptOutcome inherited = RunToEnd(Request("umask > inherited.txt"));
  umask(old);
  EXPECT_EQ(given.exit_code, 0);
  EXPECT_EQ(inherited.exit_code, 0);
  EXPECT_EQ(ReadOrEmpty(dir_.Sub("work/given.txt")), "0022\n");
  EXPECT_EQ(ReadOrEmpty(dir_.Sub("work/inherited.txt")), "0077\n") << "-1: the process's umask";
}

TEST_F(ExecutionTest, HeldJobHasNotRunAndIsItsOwnLiveGroupLeader) {
  SpawnRequest req = Request("touch ran");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  const ProcessIdentity& id = exec->identity();
  EXPECT_EQ(id.boot_id, SystemProcessTable()->BootId());
  bool zombie = true;
  Result<uint64_t> proc_start =
      ParseProcStatStartTime(ReadOrEmpty("/proc/" + std::to_string(id.pid) + "/stat"), &zombie);
  ASSERT_TRUE(proc_start.ok()) << proc_start.status().ToString();
  EXPECT_EQ(id.start_time, *proc_start);
  EXPECT_FALSE(zombie);
  EXPECT_TRUE(SystemProcessTable()->IsAlive(id));
  EXPECT_EQ(getpgid(id.pid), id.pid);
  // The shim is blocked on the handshake: it stays alive and has not run.
  EXPECT_FALSE(exec->Wait(200).has_value());
  EXPECT_TRUE(SystemProcessTable()->IsAlive(id));
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));

  ASSERT_TRUE(exec->Release(0, 1000).ok());
  std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->exit_code, 0);
  EXPECT_TRUE(Exists(dir_.Sub("work/ran")));
  EXPECT_TRUE(exec->Release(0, 1000).IsFailedPrecondition());
}

TEST_F(ExecutionTest, AbortedJobNeverRuns) {
  SpawnRequest req = Request("touch ran");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  pid_t pid = exec->identity().pid;
  exec->Abort();
  ASSERT_TRUE(exec->Done());
  std::optional<AttemptOutcome> outcome = exec->Wait(0);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->never_ran);
  EXPECT_EQ(outcome->exit_code, -1);
  EXPECT_EQ(kill(pid, 0), -1);  // reaped
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));
  EXPECT_TRUE(exec->Release(0, 1000).IsFailedPrecondition());
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));
}

TEST_F(ExecutionTest, ReleaseOfAShimThatDiedIsAnErrorAndNeverRan) {
  SpawnRequest req = Request("touch ran");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  ASSERT_EQ(kill(exec->identity().pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return ProcessGone(exec->identity().pid); }));
  Status released = exec->Release(0, 1000);  // EPIPE, and no SIGPIPE kills the caller
  EXPECT_TRUE(released.IsIOError()) << released.ToString();
  std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->never_ran);
  EXPECT_EQ(outcome->exit_code, -1);
  EXPECT_FALSE(outcome->error.empty());
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));
}

TEST_F(ExecutionTest, TerminateBeforeReleaseAbortsTheJob) {
  SpawnRequest req = Request("touch ran");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  exec->Terminate();
  std::optional<AttemptOutcome> outcome = exec->Wait(0);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->never_ran);
  EXPECT_TRUE(NoChildren());
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));
}

TEST_F(ExecutionTest, DestroyingAHeldJobAbortsIt) {
  SpawnRequest req = Request("touch ran");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  exec.reset();
  EXPECT_TRUE(NoChildren());
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));
}

TEST_F(ExecutionTest, TimeoutKillsTheWholeGroupIncludingGrandchildren) {
  SpawnRequest req = Request("sleep 1000 & echo $! > pidfile; sleep 1000");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  ASSERT_TRUE(exec->Release(300, 1000).ok());
  pid_t grandchild = ReadPid(dir_.Sub("work/pidfile"));
  ASSERT_GT(grandchild, 0);
  std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->timed_out);
  EXPECT_EQ(outcome->term_signal, SIGTERM);
  EXPECT_EQ(outcome->exit_code, -1);
  EXPECT_GE(outcome->duration_ms, 300);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }));
}

TEST_F(ExecutionTest, JobIgnoringSigtermIsKilledAfterTheGrace) {
  SpawnRequest req = Request("trap '' TERM; echo trapped; while :; do sleep 0.05; done");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  ASSERT_TRUE(exec->Release(800, 300).ok());
  std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->timed_out);
  EXPECT_EQ(outcome->term_signal, SIGKILL);
  EXPECT_GE(outcome->duration_ms, 800 + 300);
  EXPECT_NE(ReadOrEmpty(req.log_path).find("trapped"), std::string::npos);
}

TEST_F(ExecutionTest, BackgroundGrandchildIsKilledWhenTheLeaderExits) {
  // The grandchild keeps the output pipe open; Wait must not wait for it.
  SpawnRequest req = Request("sleep 1000 & echo $! > pidfile; echo leader done");
  AttemptOutcome outcome = RunToEnd(req);
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_FALSE(outcome.timed_out);
  pid_t grandchild = ReadPid(dir_.Sub("work/pidfile"));
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }));
  EXPECT_EQ(ReadOrEmpty(req.log_path), "leader done\n");
}

TEST_F(ExecutionTest, OutputBeyondTheCapIsDiscardedAndMarked) {
  SpawnRequest req = Request("head -c 300000 /dev/zero | tr '\\0' x; echo; echo end");
  req.log_cap_bytes = 1000;
  AttemptOutcome outcome = RunToEnd(req);
  EXPECT_EQ(outcome.exit_code, 0);  // the job was not stopped by a full log
  EXPECT_TRUE(outcome.log_truncated);
  std::string log = ReadOrEmpty(req.log_path);
  const std::string marker = "\n[wtd: log truncated at 1000 bytes]\n";
  EXPECT_EQ(log, std::string(1000, 'x') + marker);
  EXPECT_EQ(outcome.log_bytes, log.size()) << "the true size of the log, marker included";
}

// `attempt` of one run: the same log path, as the scheduler gives every
// attempt of a run.
SpawnRequest AttemptOf(SpawnRequest req, uint32_t attempt) {
  req.attempt = attempt;
  return req;
}

TEST_F(ExecutionTest, LaterAttemptsAppendAfterAHeaderNamingTheAttempt) {
  SpawnRequest req = Request("echo \"output of $WTD_TEST_VAR\"; exit 1");
  AttemptOutcome first = RunToEnd(AttemptOf(req, 1));
  EXPECT_EQ(ReadOrEmpty(req.log_path), "output of a value with spaces\n");
  EXPECT_EQ(first.log_bytes, ReadOrEmpty(req.log_path).size());
  AttemptOutcome second = RunToEnd(AttemptOf(Request("printf 'no newline'; exit 1"), 2));
  EXPECT_EQ(second.log_bytes, ReadOrEmpty(req.log_path).size());
  AttemptOutcome third = RunToEnd(AttemptOf(Request("echo last"), 3));
  std::string log = ReadOrEmpty(req.log_path);
  EXPECT_EQ(log,
            "output of a value with spaces\n"
            "[wtd: attempt 2]\n"
            "no newline\n"  // the header of the next attempt starts on a line of its own
            "[wtd: attempt 3]\n"
            "last\n");
  EXPECT_EQ(third.log_bytes, log.size());
  EXPECT_FALSE(first.log_truncated || second.log_truncated || third.log_truncated);
}

TEST_F(ExecutionTest, TheCapBoundsTheWholeRunAcrossAttempts) {
  // Three failing attempts of 3000 bytes each against a 4 KiB cap: before,
  // each attempt had a cap of its own (12 KiB written, log_bytes 4096).
  const uint64_t cap = 4096;
  SpawnRequest req = Request("head -c 3000 /dev/zero | tr '\\0' x; exit 1");
  req.log_cap_bytes = cap;
  AttemptOutcome first = RunToEnd(AttemptOf(req, 1));
  EXPECT_FALSE(first.log_truncated);
  EXPECT_EQ(first.log_bytes, 3000u);
  AttemptOutcome second = RunToEnd(AttemptOf(req, 2));
  EXPECT_TRUE(second.log_truncated);
  AttemptOutcome third = RunToEnd(AttemptOf(req, 3));
  EXPECT_TRUE(third.log_truncated) << "the run's log stays truncated";
  EXPECT_EQ(third.exit_code, 1) << "the job ran although nothing of it was logged";

  const std::string header = "\n[wtd: attempt 2]\n";  // attempt 1 ended without a newline
  const std::string marker = "\n[wtd: log truncated at 4096 bytes]\n";
  std::string log = ReadOrEmpty(req.log_path);
  EXPECT_EQ(log,
            std::string(3000, 'x') + header + std::string(cap - 3000 - header.size(), 'x') + marker)
      << "attempt 2 stops at the remaining budget; attempt 3 adds nothing, not even a header";
  EXPECT_LE(log.size(), cap + marker.size());
  EXPECT_EQ(second.log_bytes, log.size());
  EXPECT_EQ(third.log_bytes, log.size());
}

TEST_F(ExecutionTest, AHeaderThatDoesNotFitCutsTheAttemptWhole) {
  SpawnRequest req = Request("echo 12345678");
  req.log_cap_bytes = 12;
  RunToEnd(AttemptOf(req, 1));  // 9 of 12 bytes: no room for "[wtd: attempt 2]\n"
  AttemptOutcome second = RunToEnd(AttemptOf(req, 2));
  EXPECT_TRUE(second.log_truncated);
  std::string log = ReadOrEmpty(req.log_path);
  EXPECT_EQ(log, "12345678\n[wtd: log truncated at 12 bytes]\n");
  EXPECT_EQ(second.log_bytes, log.size());
}

TEST_F(ExecutionTest, AnAbortedOrUnreleasedLaterAttemptWritesNoHeader) {
  SpawnRequest req = Request("echo first");
  RunToEnd(AttemptOf(req, 1));
  std::unique_ptr<Execution> exec = StartOrDie(AttemptOf(req, 2));
  ASSERT_TRUE(exec);
  exec->Abort();
  EXPECT_EQ(ReadOrEmpty(req.log_path), "first\n") << "attempt 2 never ran: nothing to head";
}

TEST_F(ExecutionTest, ARunLogThatIsASymlinkIsRefused) {
  std::string target = dir_.Sub("elsewhere");
  ASSERT_TRUE(WriteFileAtomic(target, "keep\n").ok());
  ASSERT_TRUE(MakeDirs(dir_.Sub("logs/runs")).ok());
  SpawnRequest req = Request("echo clobber");
  ASSERT_EQ(symlink(target.c_str(), req.log_path.c_str()), 0);
  Result<std::unique_ptr<Execution>> exec = Execution::Start(req, SystemProcessTable());
  EXPECT_FALSE(exec.ok());
  EXPECT_NE(exec.status().message().find(req.log_path), std::string::npos)
      << exec.status().ToString();
  EXPECT_EQ(ReadOrEmpty(target), "keep\n");
  EXPECT_TRUE(NoChildren());
}

TEST_F(ExecutionTest, OutputWithinTheCapIsNotMarked) {
  SpawnRequest req = Request("echo small");
  req.log_cap_bytes = 6;
  AttemptOutcome outcome = RunToEnd(req);
  EXPECT_FALSE(outcome.log_truncated);
  EXPECT_EQ(ReadOrEmpty(req.log_path), "small\n");
}

TEST_F(ExecutionTest, ExitBySignalIsRecorded) {
  AttemptOutcome outcome = RunToEnd(Request("kill -USR1 $$"));
  EXPECT_EQ(outcome.term_signal, SIGUSR1);
  EXPECT_EQ(outcome.exit_code, -1);
  EXPECT_FALSE(outcome.timed_out);
}

TEST_F(ExecutionTest, ShimExecFailureMessageBecomesTheError) {
  // What the shim prints before exiting 127 when it cannot exec /bin/sh.
  AttemptOutcome outcome =
      RunToEnd(Request("echo 'wtd-exec: exec /bin/sh: No such file or directory' >&2; exit 127"));
  EXPECT_EQ(outcome.exit_code, 127);
  EXPECT_EQ(outcome.error, "wtd-exec: exec /bin/sh: No such file or directory");
  EXPECT_EQ(RunToEnd(Request("exit 127")).error, "");
}

TEST_F(ExecutionTest, TerminateStopsARunningJobAndWaitTimesOutBefore) {
  SpawnRequest req = Request("echo started; sleep 1000");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  std::atomic<int> calls{0};
  int32_t seen_signal = 0;
  exec->OnDone([&](const AttemptOutcome& o) {
    seen_signal = o.term_signal;
    ++calls;
  });
  ASSERT_TRUE(exec->Release(0, 1000).ok());
  ASSERT_TRUE(WaitFor([&] { return ReadOrEmpty(req.log_path) == "started\n"; }));
  EXPECT_FALSE(exec->Wait(50).has_value());
  EXPECT_FALSE(exec->Done());
  exec->Terminate();
  std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->term_signal, SIGTERM);
  EXPECT_FALSE(outcome->timed_out);
  EXPECT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  exec.reset();  // joins the worker
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(seen_signal, SIGTERM);
}

TEST_F(ExecutionTest, MissingShimIsAnErrorAndLeavesNothingRunning) {
  SpawnRequest req = Request("touch ran");
  req.shim_path = dir_.Sub("no-such-wtd-exec");
  Result<std::unique_ptr<Execution>> exec = Execution::Start(req, SystemProcessTable());
  ASSERT_FALSE(exec.ok());
  EXPECT_NE(exec.status().message().find("no-such-wtd-exec"), std::string::npos)
      << exec.status().ToString();
  EXPECT_TRUE(NoChildren());
  EXPECT_FALSE(Exists(dir_.Sub("work/ran")));
}

TEST_F(ExecutionTest, BadCwdIsAnErrorAndLeavesNothingRunning) {
  SpawnRequest req = Request("touch ran");
  req.cwd = dir_.Sub("missing-worktree");
  Result<std::unique_ptr<Execution>> exec = Execution::Start(req, SystemProcessTable());
  ASSERT_FALSE(exec.ok());
  EXPECT_NE(exec.status().message().find("missing-worktree"), std::string::npos)
      << exec.status().ToString();
  EXPECT_TRUE(NoChildren());
}

TEST_F(ExecutionTest, ASupervisorKilledWithoutAnOutcomeIsLostAndItsJobGroupKilled) {
  SpawnRequest req = Request("sleep 1000 & echo $! > bg.pid; exec sleep 1000");
  std::unique_ptr<Execution> exec = StartOrDie(req);
  ASSERT_TRUE(exec);
  ASSERT_TRUE(exec->Release(0, 1000).ok());
  pid_t background = ReadPid(dir_.Sub("work/bg.pid"));
  ASSERT_GT(background, 0);
  ASSERT_EQ(kill(exec->identity().pid, SIGKILL), 0);
  std::optional<AttemptOutcome> outcome = exec->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(outcome->lost);
  EXPECT_NE(outcome->error.find("was killed by signal 9 without recording the job's outcome"),
            std::string::npos)
      << outcome->error;
  EXPECT_NE(outcome->error.find("killed its job's process group"), std::string::npos)
      << outcome->error;
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(background); })) << "the job's group outlived it";
}

TEST_F(ExecutionTest, ADetachedSupervisorGoesOnAndIsAdoptedWithItsOutcome) {
  SpawnRequest req = Request("echo started; while [ ! -e go ]; do sleep 0.02; done; exit 5");
  req.attempt = 2;
  std::unique_ptr<Execution> first = StartOrDie(req);
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->Release(0, 1000).ok());
  ProcessIdentity supervisor = first->identity();
  EXPECT_TRUE(supervisor.supervisor);
  ASSERT_TRUE(
      WaitFor([&] { return ReadOrEmpty(req.log_path).find("started") != std::string::npos; }));
  first->Detach();  // as the daemon does before it re-executes itself
  EXPECT_FALSE(first->Done());
  first.reset();
  EXPECT_FALSE(ProcessGone(supervisor.pid)) << "detaching ends nothing";

  AdoptRequest adopt;
  adopt.run_id = req.run_id;
  adopt.attempt = 2;
  adopt.supervisor = supervisor;
  adopt.exit_path = req.exit_path;
  adopt.group_path = req.group_path;
  Result<std::unique_ptr<Execution>> again = Execution::Adopt(adopt, SystemProcessTable());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  std::atomic<int> calls{0};
  (*again)->OnDone([&](const AttemptOutcome&) { ++calls; });
  (*again)->Watch();
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("work/go"), "").ok());
  std::optional<AttemptOutcome> outcome = (*again)->Wait(kLongMs);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->exit_code, 5);
  EXPECT_FALSE(outcome->lost);
  EXPECT_EQ(outcome->log_bytes, ReadOrEmpty(req.log_path).size());
  EXPECT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  EXPECT_TRUE(NoChildren()) << "an adopted child of this process is reaped";
}

TEST_F(ExecutionTest, AdoptingAGoneOrReusedPidIsNotFound) {
  AdoptRequest adopt;
  adopt.run_id = 1;
  adopt.attempt = 1;
  adopt.exit_path = dir_.Sub("runs/1.exit");
  adopt.group_path = dir_.Sub("runs/1.pgid");
  Result<ProcessIdentity> self = SystemProcessTable()->Self();
  ASSERT_TRUE(self.ok());
  adopt.supervisor = *self;
  adopt.supervisor.start_time += 1;  // this pid, another process
  EXPECT_TRUE(Execution::Adopt(adopt, SystemProcessTable()).status().IsNotFound());
  adopt.supervisor.pid = 0;
  EXPECT_TRUE(Execution::Adopt(adopt, SystemProcessTable()).status().IsNotFound());
}

TEST_F(ExecutionTest, RelativeShimPathIsRejected) {
  SpawnRequest req = Request("true");
  req.shim_path = "wtd-exec";
  EXPECT_TRUE(Execution::Start(req, SystemProcessTable()).status().IsInvalidArgument());
}

TEST_F(ExecutionTest, UnwritableLogDirectoryIsAnError) {
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("file"), "x").ok());
  SpawnRequest req = Request("touch ran");
  req.log_path = dir_.Sub("file/runs/1.log");
  EXPECT_FALSE(Execution::Start(req, SystemProcessTable()).ok());
  EXPECT_TRUE(NoChildren());
}

}  // namespace
}  // namespace wtd
