// Tests of the wtd-exec shim on its own: it runs its program only after one
// byte arrives on fd 3, a pipe.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "fakes/temp_dir.h"
#include "gtest/gtest.h"

namespace wtd {
namespace {

// What fd 3 of the shim is.
enum class Fd3 { kReleasedPipe, kClosedPipe, kDevNull, kMissing };

struct ShimRun {
  int status = -1;
  std::string stderr_text;
};

class ShimTest : public ::testing::Test {
 protected:
  void SetUp() override { signal(SIGPIPE, SIG_IGN); }

  // Spawns the shim with `args` after argv[0], fd 3 as `fd3`, and stderr into
  // a file; waits for it.
  ShimRun RunShim(const std::vector<std::string>& args, Fd3 fd3) {
    int hs[2];
    EXPECT_EQ(pipe2(hs, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    std::string err_path = dir_.Sub("stderr");
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    if (fd3 == Fd3::kReleasedPipe || fd3 == Fd3::kClosedPipe) {
      posix_spawn_file_actions_adddup2(&actions, hs[0], 3);
    } else if (fd3 == Fd3::kDevNull) {
      posix_spawn_file_actions_addopen(&actions, 3, "/dev/null", O_RDONLY, 0);
    } else {
      posix_spawn_file_actions_addclose(&actions, 3);
    }
    std::vector<std::string> all = {WTD_EXEC_SHIM};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    char* envp[] = {nullptr};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, WTD_EXEC_SHIM, &actions, nullptr, argv.data(), envp);
    posix_spawn_file_actions_destroy(&actions);
    close(hs[0]);
    EXPECT_EQ(rc, 0);
    if (fd3 == Fd3::kReleasedPipe) {
      // A shim that refuses its arguments exits without reading: EPIPE then.
      ssize_t w = write(hs[1], "g", 1);
      EXPECT_TRUE(w == 1 || errno == EPIPE) << strerror(errno);
    }
    close(hs[1]);
    ShimRun run;
    if (rc == 0) {
      EXPECT_EQ(waitpid(pid, &run.status, 0), pid);
    }
    run.stderr_text = ReadFile(err_path).value_or("");
    return run;
  }

  static int ExitCode(const ShimRun& run) {
    return WIFEXITED(run.status) ? WEXITSTATUS(run.status) : -1;
  }

  bool Ran() const {
    struct stat st;
    return stat(marker_.c_str(), &st) == 0;
  }

  TempDir dir_;
  std::string marker_ = dir_.Sub("ran");
  std::vector<std::string> touch_ = {"--", "/bin/sh", "-c", "echo > " + marker_};
};

TEST(ShimBinaryTest, IsBuilt) { EXPECT_EQ(access(WTD_EXEC_SHIM, X_OK), 0) << WTD_EXEC_SHIM; }

TEST_F(ShimTest, RunsProgramAfterTheByte) {
  ShimRun run = RunShim(touch_, Fd3::kReleasedPipe);
  EXPECT_EQ(ExitCode(run), 0) << run.stderr_text;
  EXPECT_TRUE(Ran());
}

TEST_F(ShimTest, ExitsWithoutRunningOnEof) {
  ShimRun run = RunShim(touch_, Fd3::kClosedPipe);
  EXPECT_EQ(ExitCode(run), 125);
  EXPECT_FALSE(Ran());
}

TEST_F(ShimTest, RefusesWhenFd3IsNotAPipe) {
  ShimRun run = RunShim(touch_, Fd3::kDevNull);
  EXPECT_EQ(ExitCode(run), 125);
  EXPECT_NE(run.stderr_text.find("not the handshake pipe"), std::string::npos);
  EXPECT_FALSE(Ran());
}

TEST_F(ShimTest, RefusesWhenFd3IsMissing) {
  ShimRun run = RunShim(touch_, Fd3::kMissing);
  EXPECT_EQ(ExitCode(run), 125);
  EXPECT_FALSE(Ran());
}

TEST_F(ShimTest, UsageErrorExits125) {
  ShimRun run = RunShim({"/bin/sh", "-c", "echo > " + marker_}, Fd3::kReleasedPipe);
  EXPECT_EQ(ExitCode(run), 125);
  EXPECT_NE(run.stderr_text.find("usage"), std::string::npos);
  EXPECT_FALSE(Ran());
  EXPECT_EQ(ExitCode(RunShim({"--"}, Fd3::kReleasedPipe)), 125);
}

TEST_F(ShimTest, SetsTheUmaskItIsGivenBeforeExec) {
  mode_t old = umask(077);  // as the daemon runs
  std::string out = dir_.Sub("umask");
  ShimRun run =
      RunShim({"--umask=0027", "--", "/bin/sh", "-c", "umask > " + out}, Fd3::kReleasedPipe);
  umask(old);
  EXPECT_EQ(ExitCode(run), 0) << run.stderr_text;
  EXPECT_EQ(ReadFile(out).value_or(""), "0027\n");
}

TEST_F(ShimTest, ABadUmaskIsAUsageErrorAndRunsNothing) {
  for (const char* bad : {"--umask=", "--umask=8", "--umask=01000", "--umask=22x", "--umask=-1"}) {
    std::vector<std::string> args = {bad};
    args.insert(args.end(), touch_.begin(), touch_.end());
    ShimRun run = RunShim(args, Fd3::kReleasedPipe);
    EXPECT_EQ(ExitCode(run), 125) << bad;
    EXPECT_NE(run.stderr_text.find("usage"), std::string::npos) << bad;
    EXPECT_FALSE(Ran()) << bad;
  }
}

TEST_F(ShimTest, ExecFailureExits127WithAMessage) {
  std::string missing = dir_.Sub("no-such-program");
  ShimRun run = RunShim({"--", missing}, Fd3::kReleasedPipe);
  EXPECT_EQ(ExitCode(run), 127);
  EXPECT_EQ(run.stderr_text.rfind("wtd-exec: exec " + missing + ": ", 0), 0u) << run.stderr_text;
}

}  // namespace
}  // namespace wtd
