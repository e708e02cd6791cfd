#include "base/file_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace wtd {
namespace {

TEST(FileUtilTest, AtomicWriteReplacesWholeFile) {
  char tmpl[] = "/tmp/wtd-file-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = JoinPath(tmpl, "a/b");
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
  std::string cmd = std::string("rm -rf ") + tmpl;
  ASSERT_EQ(system(cmd.c_str()), 0);
}

}  // namespace
}  // namespace wtd
