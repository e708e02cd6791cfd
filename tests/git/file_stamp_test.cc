// FileStamps: cheap "may this file have changed?" with git's racy rule.
#include "git/file_stamp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "fakes/temp_dir.h"

namespace wtd::git {
namespace {

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

// Sets the file's mtime `seconds` into the past (ctime moves to now).
void Age(const std::string& path, int seconds = 10) {
  timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= seconds;
  times[1] = times[0];
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

class FileStampTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string a_ = dir_.Sub("a"), b_ = dir_.Sub("b");
};

TEST_F(FileStampTest, AgedUntouchedFilesStayValid) {
  Write(a_, "one");
  Write(b_, "two");
  Age(a_);
  Age(b_);
  FileStamps s = FileStamps::Take({a_, b_});
  EXPECT_TRUE(s.StillValid());
  EXPECT_TRUE(s.StillValid());
}

TEST_F(FileStampTest, AnyWriteInvalidates) {
  Write(a_, "one");
  Age(a_);
  FileStamps s = FileStamps::Take({a_});
  ASSERT_TRUE(s.StillValid());
  Write(a_, "two");  // same size, written now
  EXPECT_FALSE(s.StillValid());
}

TEST_F(FileStampTest, RenameOverWithSameSizeAndMtimeInvalidates) {
  Write(a_, "one");
  Age(a_);
  FileStamps s = FileStamps::Take({a_});
  ASSERT_TRUE(s.StillValid());
  struct stat st;
  ASSERT_EQ(stat(a_.c_str(), &st), 0);
  Write(b_, "two");
  timespec times[2] = {st.st_mtim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, b_.c_str(), times, 0), 0);  // same mtime, same size
  ASSERT_EQ(rename(b_.c_str(), a_.c_str()), 0);  // as git replaces a ref with its lock file
  EXPECT_FALSE(s.StillValid());
}

TEST_F(FileStampTest, RecentlyWrittenFileIsNeverTrusted) {
  Write(a_, "one");  // mtime now: a second write in the same clock tick could look the same
  FileStamps s = FileStamps::Take({a_});
  EXPECT_FALSE(s.StillValid());
}

TEST_F(FileStampTest, MissingFileStaysValidUntilItAppears) {
  Write(a_, "one");
  Age(a_);
  FileStamps s = FileStamps::Take({a_, b_});  // b_ does not exist
  EXPECT_TRUE(s.StillValid());
  Write(b_, "now here");
  EXPECT_FALSE(s.StillValid());
}

TEST_F(FileStampTest, RemovedFileInvalidatesAndEmptySetIsNeverValid) {
  Write(a_, "one");
  Age(a_);
  FileStamps s = FileStamps::Take({a_});
  ASSERT_TRUE(s.StillValid());
  ASSERT_EQ(unlink(a_.c_str()), 0);
  EXPECT_FALSE(s.StillValid());
  EXPECT_FALSE(FileStamps().StillValid());
}

}  // namespace
}  // namespace wtd::git
