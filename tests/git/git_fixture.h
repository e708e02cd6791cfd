// GitFixture: builds throw-away repositories with the git CLI for the git
// module's tests. Identity, dates and config are pinned through the
// environment so fixtures are reproducible and ignore the user's config.
#ifndef WTD_TESTS_GIT_GIT_FIXTURE_H_
#define WTD_TESTS_GIT_GIT_FIXTURE_H_

#include <gtest/gtest.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fakes/temp_dir.h"

namespace wtd::git {

class GitFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    char buf[PATH_MAX];
    ASSERT_NE(realpath(tmp_.path().c_str(), buf), nullptr);
    base_ = buf;
    setenv("GIT_AUTHOR_NAME", "Ada Tester", 1);
    setenv("GIT_AUTHOR_EMAIL", "ada@example.com", 1);
    setenv("GIT_COMMITTER_NAME", "Ada Tester", 1);
    setenv("GIT_COMMITTER_EMAIL", "ada@example.com", 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  }

  // Absolute, symlink-free path of `name` under the test's temp dir.
  std::string Path(const std::string& name) const { return base_ + "/" + name; }

  static std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }

  // Runs `git -C dir args...`; fails the test unless it exits 0. Returns
  // stdout without the trailing newline.
  std::string Git(const std::string& dir, const std::vector<std::string>& args,
                  const std::string& env = "") {
    std::string cmd = env + " git -C " + Quote(dir);
    for (const std::string& a : args) cmd += " " + Quote(a);
    cmd += " 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) {
      ADD_FAILURE() << "popen failed: " << cmd;
      return "";
    }
    std::string out;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) out.append(chunk, n);
    int status = pclose(pipe);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  // `git init -b main` in Path(name); returns its path.
  std::string InitRepo(const std::string& name) {
    std::string dir = Path(name);
    std::filesystem::create_directories(dir);
    Git(dir, {"init", "-q", "-b", "main"});
    return dir;
  }

  static void WriteFile(const std::string& path, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  }

  // Stages everything in `dir` and commits it with committer/author time
  // `time_s` (0: the next of an increasing sequence). Returns the new sha.
  std::string CommitAll(const std::string& dir, const std::string& message, int64_t time_s = 0) {
    if (time_s == 0) time_s = next_time_s_++;
    Git(dir, {"add", "-A"});
    std::string date = "@" + std::to_string(time_s) + " +0000";
    std::string env = "GIT_COMMITTER_DATE=" + Quote(date) + " GIT_AUTHOR_DATE=" + Quote(date);
    Git(dir, {"commit", "-q", "--allow-empty", "-m", message}, env);
    return Head(dir);
  }

  // Writes `file` (relative to dir) and commits.
  std::string Commit(const std::string& dir, const std::string& file, const std::string& content,
                     const std::string& message, int64_t time_s = 0) {
    WriteFile(dir + "/" + file, content);
    return CommitAll(dir, message, time_s);
  }

  std::string Head(const std::string& dir) { return Git(dir, {"rev-parse", "HEAD"}); }

  TempDir tmp_;
  std::string base_;
  int64_t next_time_s_ = 1700000000;
};

}  // namespace wtd::git

#endif  // WTD_TESTS_GIT_GIT_FIXTURE_H_
