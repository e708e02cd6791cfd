#include "daemon/pid_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "base/file_util.h"
#include "fakes/temp_dir.h"

namespace wtd {
namespace {

TEST(PidFileTest, SecondHolderIsRefusedNamingTheRunningPid) {
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  Result<PidFile> first = PidFile::Acquire(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<int> live = PidFile::ReadLive(path);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(*live, getpid());
  // flock locks belong to the open file description: a second open in this
  // process conflicts just as another process would.
  Result<PidFile> second = PidFile::Acquire(path);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsBusy());
  EXPECT_NE(second.status().message().find(std::to_string(getpid())), std::string::npos)
      << second.status().message();
  // The refused open did not truncate: the running pid is still there.
  EXPECT_EQ(ReadFile(path).value_or(""), std::to_string(getpid()) + "\n");
}

TEST(PidFileTest, AWtdStartedWhileWtctlHoldsTheStateDirSaysSo) {
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  Result<PidFile> wtctl = PidFile::Acquire(path, "wtctl");
  ASSERT_TRUE(wtctl.ok()) << wtctl.status().ToString();
  EXPECT_EQ(ReadFile(path).value_or(""), std::to_string(getpid()) + " wtctl\n");
  Result<PidFile> wtd = PidFile::Acquire(path);
  ASSERT_TRUE(wtd.status().IsBusy()) << wtd.status().ToString();
  EXPECT_EQ(wtd.status().message(), "state dir busy: held by wtctl pid " +
                                        std::to_string(getpid()) + " (pid file " + path + ")");
  Result<int> live = PidFile::ReadLive(path);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(*live, getpid());
}

TEST(PidFileTest, ASymlinkIsRefusedAndItsTargetLeftAlone) {
  TempDir dir;
  std::string target = dir.Sub("precious");
  ASSERT_TRUE(WriteFileAtomic(target, "precious data\n").ok());
  std::string path = dir.Sub("wtd.pid");
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
  Result<PidFile> p = PidFile::Acquire(path);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(p.status().IsFailedPrecondition()) << p.status().ToString();
  EXPECT_NE(p.status().message().find("pid file " + path + " is a symbolic link"),
            std::string::npos)
      << p.status().message();
  EXPECT_EQ(ReadFile(target).value_or(""), "precious data\n");
  EXPECT_TRUE(PidFile::ReadLive(path).status().IsFailedPrecondition());

  // A dangling one: its target is not created either.
  std::string absent = dir.Sub("absent");
  std::string dangling = dir.Sub("other.pid");
  ASSERT_EQ(symlink(absent.c_str(), dangling.c_str()), 0);
  EXPECT_TRUE(PidFile::Acquire(dangling).status().IsFailedPrecondition());
  EXPECT_NE(access(absent.c_str(), F_OK), 0);
}

TEST(PidFileTest, AHardLinkToAnotherFileIsRefusedAndThatFileLeftAlone) {
  TempDir dir;
  std::string victim = dir.Sub("victim");
  ASSERT_TRUE(WriteFileAtomic(victim, "keep\n").ok());
  std::string path = dir.Sub("wtd.pid");
  ASSERT_EQ(link(victim.c_str(), path.c_str()), 0);
  Result<PidFile> p = PidFile::Acquire(path);
  ASSERT_TRUE(p.status().IsFailedPrecondition()) << p.status().ToString();
  EXPECT_NE(p.status().message().find("2 hard links"), std::string::npos) << p.status().message();
  EXPECT_EQ(ReadFile(victim).value_or(""), "keep\n");
}

TEST(PidFileTest, AFifoIsRefused) {
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  Result<PidFile> p = PidFile::Acquire(path);
  ASSERT_TRUE(p.status().IsFailedPrecondition()) << p.status().ToString();
  EXPECT_NE(p.status().message().find("not a regular file"), std::string::npos);
}

TEST(PidFileTest, IsCreatedPrivateAndALongerLeftoverIsCutToThePid) {
  mode_t old = umask(022);
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  std::ofstream(path) << "123456789012345\n";  // a leftover longer than any pid
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  Result<PidFile> p = PidFile::Acquire(path);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(ReadFile(path).value_or(""), std::to_string(getpid()) + "\n");
  std::string fresh = dir.Sub("fresh.pid");
  Result<PidFile> q = PidFile::Acquire(fresh);
  umask(old);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  struct stat st;
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(PidFileTest, FileLeftByADeadHolderIsTakenOver) {
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  std::ofstream(path) << "999999\n";  // no lock held: a killed daemon's leftover
  EXPECT_TRUE(PidFile::ReadLive(path).status().IsNotFound());
  Result<PidFile> p = PidFile::Acquire(path);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*PidFile::ReadLive(path), getpid());
}

TEST(PidFileTest, RemoveDeletesTheFileAndReleasesTheLock) {
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  {
    Result<PidFile> p = PidFile::Acquire(path);
    ASSERT_TRUE(p.ok());
    p->Remove();
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_TRUE(PidFile::Acquire(path).ok());
}

TEST(PidFileTest, LockDiesWithItsProcess) {
  TempDir dir;
  std::string path = dir.Sub("wtd.pid");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    Result<PidFile> p = PidFile::Acquire(path);
    char c = p.ok() ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  EXPECT_EQ(*PidFile::ReadLive(path), child);
  EXPECT_TRUE(PidFile::Acquire(path).status().IsBusy());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(PidFile::Acquire(path).ok());
}

}  // namespace
}  // namespace wtd
