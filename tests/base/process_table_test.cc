#include "base/process_table.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakes/fake_process_table.h"

namespace wtd {
namespace {

// A child in its own process group that sleeps until killed.
pid_t StartSleeper() {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    for (;;) pause();
  }
  setpgid(pid, pid);
  return pid;
}

TEST(ProcessTableTest, RealChildIsAliveUntilReaped) {
  ProcessTable* table = SystemProcessTable();
  pid_t pid = StartSleeper();
  Result<uint64_t> start = table->StartTime(pid);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  ProcessIdentity id{pid, *start, table->BootId()};
  EXPECT_TRUE(table->IsAlive(id));

  // Same pid, other start time: not the same process.
  ProcessIdentity reused = id;
  reused.start_time += 1;
  EXPECT_FALSE(table->IsAlive(reused));
  EXPECT_TRUE(table->SignalGroup(reused, SIGKILL).IsNotFound());
  // Other boot: not the same process.
  ProcessIdentity other_boot = id;
  other_boot.boot_id = "another-boot";
  EXPECT_FALSE(table->IsAlive(other_boot));

  ASSERT_TRUE(table->SignalGroup(id, SIGKILL).ok());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(table->IsAlive(id));
  EXPECT_TRUE(table->StartTime(pid).status().IsNotFound());
}

TEST(ProcessTableTest, ZombieIsNotAlive) {
  ProcessTable* table = SystemProcessTable();
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  // Until reaped, the child is a zombie: poll /proc until it reports so.
  for (int i = 0; i < 2000 && table->StartTime(pid).ok(); ++i) usleep(1000);
  EXPECT_TRUE(table->StartTime(pid).status().IsNotFound());
  waitpid(pid, nullptr, 0);
}

TEST(ProcessTableTest, SelfIsAlive) {
  Result<ProcessIdentity> self = SystemProcessTable()->Self();
  ASSERT_TRUE(self.ok());
  EXPECT_EQ(self->pid, getpid());
  EXPECT_FALSE(self->boot_id.empty());
  EXPECT_TRUE(SystemProcessTable()->IsAlive(*self));
}

TEST(ProcessTableTest, ParsesCommWithSpacesAndParens) {
  std::string stat = "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 ";
  stat += "1000 100 18446744073709551615";
  bool zombie = true;
  Result<uint64_t> st = ParseProcStatStartTime(stat, &zombie);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(*st, 987654u);
  EXPECT_FALSE(zombie);
  EXPECT_FALSE(ParseProcStatStartTime("1234 (x) S 1 2", &zombie).ok());
  EXPECT_FALSE(ParseProcStatStartTime("garbage", &zombie).ok());
}

TEST(FakeProcessTableTest, PidReuseIsNotTheSameProcess) {
  FakeProcessTable table;
  table.Start(42, 1000);
  ProcessIdentity id{42, 1000, "boot-A"};
  EXPECT_TRUE(table.IsAlive(id));
  table.Exit(42);
  table.Start(42, 5000);  // pid reused by another process
  EXPECT_FALSE(table.IsAlive(id));
  EXPECT_TRUE(table.SignalGroup(id, SIGKILL).IsNotFound());
  EXPECT_TRUE(table.signals().empty());
}

}  // namespace
}  // namespace wtd
