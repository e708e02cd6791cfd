#include "base/file_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fakes/file_mode.h"
#include "fakes/temp_dir.h"

namespace wtd {
namespace {

TEST(FileUtilTest, AtomicWriteReplacesWholeFile) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  std::string dir = tmp.Sub("a/b");
  ASSERT_TRUE(MakeDirs(dir).ok());
  std::string path = JoinPath(dir, "f");
  ASSERT_TRUE(WriteFileAtomic(path, "first version, longer").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second").ok());
  Result<std::string> got = ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "second");
  EXPECT_TRUE(ReadFile(JoinPath(dir, "missing")).status().IsNotFound());
  EXPECT_TRUE(MakeDirs(path).IsInvalidArgument());  // a file is in the way
  EXPECT_EQ(DirName("/x/y/z"), "/x/y");
  EXPECT_EQ(DirName("z"), ".");
  EXPECT_EQ(JoinPath("/a/", "/b"), "/a/b");
}

TEST(FileUtilTest, DirectoriesAndFilesArePrivateByDefault) {
  ScopedUmask mask(022);  // a usual umask, which would leave 0755 and 0644
  TempDir tmp;
  std::string dir = tmp.Sub("state/runs");
  ASSERT_TRUE(MakeDirs(dir).ok());
  EXPECT_EQ(ModeOf(tmp.Sub("state")), 0700) << "a missing parent is made private too";
  EXPECT_EQ(ModeOf(dir), 0700);
  std::string path = JoinPath(dir, "1.json");
  ASSERT_TRUE(WriteFileAtomic(path, "{}").ok());
  EXPECT_EQ(ModeOf(path), 0600);
  // An explicit mode is still honoured (less the umask).
  std::string shared = JoinPath(dir, "shared");
  ASSERT_TRUE(WriteFileAtomic(shared, "x", 0644).ok());
  EXPECT_EQ(ModeOf(shared), 0644);
}

TEST(FileUtilTest, AStaleTempFileDoesNotLendTheNewFileItsMode) {
  ScopedUmask mask(022);
  TempDir tmp;
  std::string path = tmp.Sub("ctx.json");
  std::string stale = path + ".tmp." + std::to_string(getpid());
  int fd = open(stale.c_str(), O_WRONLY | O_CREAT, 0666);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fchmod(fd, 0666), 0);
  ASSERT_EQ(write(fd, "old", 3), 3);
  close(fd);
  ASSERT_TRUE(WriteFileAtomic(path, "new").ok());
  EXPECT_EQ(ModeOf(path), 0600);
  EXPECT_EQ(*ReadFile(path), "new");
  EXPECT_NE(access(stale.c_str(), F_OK), 0) << "the temp file was renamed into place";
}

TEST(FileUtilTest, AStaleTempSymlinkIsNotFollowed) {
  TempDir tmp;
  std::string victim = tmp.Sub("victim");
  ASSERT_TRUE(WriteFileAtomic(victim, "keep me").ok());
  std::string path = tmp.Sub("ctx.json");
  std::string stale = path + ".tmp." + std::to_string(getpid());
  ASSERT_EQ(symlink(victim.c_str(), stale.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(path, "new").ok());
  EXPECT_EQ(*ReadFile(victim), "keep me");
  EXPECT_EQ(*ReadFile(path), "new");
}

}  // namespace
}  // namespace wtd
