#include "base/process_table.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "fakes/fake_process_table.h"
#include "fakes/temp_dir.h"

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

// Polls until `pid` is gone or a zombie (5 s at most).
bool GoneSoon(ProcessTable* table, pid_t pid) {
  for (int i = 0; i < 5000 && table->StartTime(pid).ok(); ++i) usleep(1000);
  return !table->StartTime(pid).ok();
}

TEST(ProcessTableTest, LeftoverGroupOfAGoneLeaderIsKilledOnlyOnceTheLeaderIsGone) {
  ProcessTable* table = SystemProcessTable();
  int go[2], report[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(report), 0);
  pid_t leader = fork();
  if (leader == 0) {
    setpgid(0, 0);
    pid_t member = fork();
    if (member == 0) {
      for (;;) pause();  // a background child left in the leader's group
    }
    (void)!write(report[1], &member, sizeof member);
    char c;
    (void)!read(go[0], &c, 1);
    _exit(0);
  }
  setpgid(leader, leader);
  pid_t member = 0;
  ASSERT_EQ(read(report[0], &member, sizeof member), static_cast<ssize_t>(sizeof member));
  Result<uint64_t> start = table->StartTime(leader);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  ProcessIdentity id{leader, *start, table->BootId()};

  // While the leader lives, its group is SignalGroup's business.
  EXPECT_TRUE(table->SignalLeftoverGroup(id, SIGKILL).IsNotFound());
  EXPECT_TRUE(table->StartTime(member).ok());
  // The leader exits and is reaped; its pid is free, its group lives on.
  ASSERT_EQ(write(go[1], "g", 1), 1);
  ASSERT_EQ(waitpid(leader, nullptr, 0), leader);
  ASSERT_TRUE(table->StartTime(member).ok()) << "the member must outlive its leader";
  ProcessIdentity other_boot = id;
  other_boot.boot_id = "another-boot";
  EXPECT_TRUE(table->SignalLeftoverGroup(other_boot, SIGKILL).IsNotFound());
  EXPECT_TRUE(table->StartTime(member).ok());

  ASSERT_TRUE(table->SignalLeftoverGroup(id, SIGKILL).ok());
  EXPECT_TRUE(GoneSoon(table, member)) << "member " << member << " survived";
  for (int fd : {go[0], go[1], report[0], report[1]}) close(fd);
}

TEST(ProcessTableTest, LeftoverGroupIsNotSignalledWhenThePidWasReused) {
  ProcessTable* table = SystemProcessTable();
  pid_t stranger = StartSleeper();  // plays the process that got the pid
  Result<uint64_t> start = table->StartTime(stranger);
  ASSERT_TRUE(start.ok());
  ProcessIdentity recorded{stranger, *start - 1, table->BootId()};  // an older process
  EXPECT_TRUE(table->SignalLeftoverGroup(recorded, SIGKILL).IsNotFound());
  EXPECT_TRUE(table->StartTime(stranger).ok()) << "a stranger's group was signalled";
  kill(stranger, SIGKILL);
  waitpid(stranger, nullptr, 0);
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

TEST(ProcessTableTest, BootIdIsUnknownWhenItCannotBeReadAndThenNothingIsSignalled) {
  TempDir dir;
  std::unique_ptr<ProcessTable> table = NewProcProcessTable(dir.Sub("no-such-boot_id"));
  EXPECT_EQ(table->BootId(), kUnknownBootId);
  EXPECT_FALSE(IsKnownBootId(table->BootId()));
  // A live process of ours, recorded while the boot id was just as unknown:
  // pid and start time match, and yet it is not "the same process", since
  // the record may come from an earlier boot.
  pid_t pid = StartSleeper();
  Result<uint64_t> start = table->StartTime(pid);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  ProcessIdentity id{pid, *start, table->BootId()};
  EXPECT_FALSE(table->IsAlive(id));
  Status signalled = table->SignalGroup(id, SIGKILL);
  EXPECT_TRUE(signalled.IsNotFound()) << signalled.ToString();
  EXPECT_NE(signalled.message().find("boot id is unknown"), std::string::npos)
      << signalled.message();
  EXPECT_TRUE(table->SignalLeftoverGroup(id, SIGKILL).IsNotFound());
  // A record with a real boot id does not match an unknown current one either.
  ProcessIdentity real = id;
  real.boot_id = SystemProcessTable()->BootId();
  EXPECT_FALSE(table->IsAlive(real));
  EXPECT_TRUE(table->SignalGroup(real, SIGKILL).IsNotFound());
  EXPECT_TRUE(table->StartTime(pid).ok()) << "the process was signalled";
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(ProcessTableTest, ARecordWithAnUnknownBootIdIsNeverAliveOnAKnownBoot) {
  ProcessTable* table = SystemProcessTable();
  ASSERT_TRUE(IsKnownBootId(table->BootId())) << "this machine has a boot id";
  pid_t pid = StartSleeper();
  Result<uint64_t> start = table->StartTime(pid);
  ASSERT_TRUE(start.ok());
  for (const std::string& boot : {std::string(kUnknownBootId), std::string()}) {
    ProcessIdentity id{pid, *start, boot};
    EXPECT_FALSE(table->IsAlive(id)) << "'" << boot << "'";
    EXPECT_TRUE(table->SignalGroup(id, SIGKILL).IsNotFound()) << "'" << boot << "'";
  }
  EXPECT_TRUE(table->StartTime(pid).ok()) << "the process was signalled";
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(ProcessTableTest, BootIdIsReadFromItsFile) {
  TempDir dir;
  std::ofstream(dir.Sub("boot_id")) << "0f1e2d3c-aaaa-bbbb-cccc-123456789abc\n";
  EXPECT_EQ(NewProcProcessTable(dir.Sub("boot_id"))->BootId(),
            "0f1e2d3c-aaaa-bbbb-cccc-123456789abc");
  std::ofstream(dir.Sub("empty"));
  EXPECT_EQ(NewProcProcessTable(dir.Sub("empty"))->BootId(), kUnknownBootId);
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
