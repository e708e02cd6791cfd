#include "daemon/pid_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

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
