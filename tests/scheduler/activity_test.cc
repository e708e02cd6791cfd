#include "scheduler/activity.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "base/file_util.h"
#include "base/paths.h"
#include "exec/exit_record.h"
#include "fakes/temp_dir.h"

namespace wtd {
namespace {

TEST(ParseProcStatTimesTest, ReadsGroupAndTimesPastACommandWithSpacesAndParens) {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime ...
  Result<ProcStatTimes> t = ParseProcStatTimes(
      "4242 (a) b (c)) S 1 4240 4240 0 -1 4194304 10 0 0 0 77 13 5 2 20 0 1 0 12345 0 0\n");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->pgrp, 4240);
  EXPECT_EQ(t->utime, 77u);
  EXPECT_EQ(t->stime, 13u);
  EXPECT_EQ(t->cutime, 5u);
  EXPECT_EQ(t->cstime, 2u);
}

TEST(ParseProcStatTimesTest, RefusesWhatIsNotAStatLine) {
  EXPECT_FALSE(ParseProcStatTimes("").ok());
  EXPECT_FALSE(ParseProcStatTimes("12 (sh) S 1 2 3").ok());
  EXPECT_FALSE(ParseProcStatTimes("12 (sh) S 1 x 3 0 -1 0 0 0 0 0 1 1 1 1 20").ok());
}

// A child in a group of its own that spins, or sleeps.
pid_t StartGroup(bool spin) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    if (spin) {
      volatile uint64_t spins = 0;
      for (;;) spins = spins + 1;
    }
    pause();
    _exit(0);
  }
  setpgid(pid, pid);
  return pid;
}

void StopGroup(pid_t pid) {
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(GroupCpuTicksTest, ASpinningGroupUsesCpuAndASleepingOneDoesNot) {
  pid_t spin = StartGroup(true);
  pid_t idle = StartGroup(false);
  Result<uint64_t> spin0 = GroupCpuTicks(spin);
  Result<uint64_t> idle0 = GroupCpuTicks(idle);
  ASSERT_TRUE(spin0.ok()) << spin0.status().ToString();
  ASSERT_TRUE(idle0.ok()) << idle0.status().ToString();
  // A tick is 10 ms; the spinner reaches a few within seconds even on a
  // loaded machine.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint64_t spun = *spin0;
  while (spun < *spin0 + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    spun = *GroupCpuTicks(spin);
  }
  EXPECT_GE(spun, *spin0 + 3);
  EXPECT_EQ(*GroupCpuTicks(idle), *idle0);
  StopGroup(spin);
  StopGroup(idle);
  EXPECT_TRUE(GroupCpuTicks(spin).status().IsNotFound());
}

TEST(SystemActivityProbeTest, CountsTheLogFileAndTheGroupsCpu) {
  TempDir dir;
  std::string log = dir.Sub("run.log");
  std::ofstream(log) << "twelve bytes";
  pid_t idle = StartGroup(false);
  wtd::Run run;
  run.id = 1;
  run.pid = idle;
  run.log_path = log;
  std::unique_ptr<ActivityProbe> probe = NewSystemActivityProbe(dir.path());
  Result<Activity> a = probe->Sample(run);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->output_bytes, 12u);
  std::ofstream(log, std::ios::app) << "+3!";
  EXPECT_EQ(probe->Sample(run)->output_bytes, 15u);
  StopGroup(idle);
  EXPECT_FALSE(probe->Sample(run).ok()) << "the job is gone";
}

TEST(SystemActivityProbeTest, ASupervisedRunIsMeasuredByItsJobsGroupNotItsSupervisors) {
  TempDir dir;
  pid_t supervisor = StartGroup(false);  // its own group holds only itself
  pid_t job = StartGroup(true);          // the job's group spins
  wtd::Run run;
  run.id = 7;
  run.pid = supervisor;
  run.supervised = true;
  std::unique_ptr<ActivityProbe> probe = NewSystemActivityProbe(dir.path());
  Result<Activity> before = probe->Sample(run);
  ASSERT_TRUE(before.ok()) << "no group file yet: the supervisor's group";
  ASSERT_TRUE(MakeDirs(dir.Sub("runs")).ok());
  ASSERT_TRUE(WriteFileAtomic(RunGroupPath(dir.path(), 7), EncodeJobGroup(JobGroup{job, 1})).ok());
  Result<uint64_t> job0 = GroupCpuTicks(job);
  ASSERT_TRUE(job0.ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint64_t seen = probe->Sample(run)->cpu_ticks;
  while (seen < *job0 + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seen = probe->Sample(run)->cpu_ticks;
  }
  EXPECT_GE(seen, *job0 + 3) << "the job's CPU is the run's";
  StopGroup(job);
  StopGroup(supervisor);
}

}  // namespace
}  // namespace wtd
