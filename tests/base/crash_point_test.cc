#include "base/crash_point.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace wtd {
namespace {

TEST(CrashPointTest, UnarmedPointDoesNothing) {
  DisarmCrashPoints();
  WTD_CRASH_POINT("after_lease_commit");
  SUCCEED();
}

TEST(CrashPointTest, ArmedPointExitsWith86OnNthPass) {
  EXPECT_EXIT(
      {
        if (!ArmCrashPointSpec("after_spawn:3").ok()) _exit(1);
        WTD_CRASH_POINT("after_spawn");
        WTD_CRASH_POINT("after_lease_commit");  // another name: no effect
        WTD_CRASH_POINT("after_spawn");
        fprintf(stderr, "passed two\n");
        WTD_CRASH_POINT("after_spawn");
        _exit(0);
      },
      ::testing::ExitedWithCode(kCrashExitCode), "passed two");
}

TEST(CrashPointTest, UnknownNameAndBadCountAreRefused) {
  EXPECT_TRUE(ArmCrashPointSpec("no_such_point").IsInvalidArgument());
  EXPECT_TRUE(ArmCrashPointSpec("after_spawn:x").IsInvalidArgument());
  EXPECT_TRUE(ArmCrashPointSpec("after_spawn:0").IsInvalidArgument());
  EXPECT_TRUE(ArmCrashPointSpec("").ok());
}

TEST(CrashPointTest, ActionCanBeReplacedForInProcessTests) {
  std::string fired;
  SetCrashAction([&](std::string_view name) { fired = std::string(name); });
  ASSERT_TRUE(ArmCrashPoint("after_enqueue_commit").ok());
  WTD_CRASH_POINT("after_enqueue_commit");
  EXPECT_EQ(fired, "after_enqueue_commit");
  fired.clear();
  WTD_CRASH_POINT("after_enqueue_commit");  // fires once, then disarms
  EXPECT_EQ(fired, "");
  SetCrashAction(nullptr);
}

TEST(CrashPointTest, NamesAreUnique) {
  std::set<std::string_view> seen;
  for (std::string_view n : CrashPointNames()) EXPECT_TRUE(seen.insert(n).second) << n;
  EXPECT_GE(seen.size(), 10u);
  for (std::string_view n : WedgePointNames()) EXPECT_TRUE(seen.insert(n).second) << n;
}

TEST(CrashPointTest, AWedgePointIsArmedByNameAndFiresOnItsNthPass) {
  ASSERT_TRUE(ArmCrashPointSpec("wedge_loop:3").ok());
  std::vector<std::string> fired;
  SetCrashAction([&](std::string_view name) { fired.emplace_back(name); });
  WTD_CRASH_POINT("wedge_loop");  // a crash point of that name would count too
  WTD_WEDGE_POINT("wedge_loop");
  EXPECT_TRUE(fired.empty());
  WTD_WEDGE_POINT("after_spawn");  // another name does not count
  WTD_WEDGE_POINT("wedge_loop");
  EXPECT_EQ(fired, std::vector<std::string>{"wedge_loop"});
  WTD_WEDGE_POINT("wedge_loop");  // disarmed once it fired
  EXPECT_EQ(fired.size(), 1u);
  SetCrashAction(nullptr);
}

// Without a replaced action the thread that passes the armed point stops
// for good and the process lives on: its other threads keep working.
TEST(CrashPointTest, AWedgedThreadStopsWhileTheProcessGoesOn) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(out[1], 2);
    if (!ArmCrashPoint("wedge_loop").ok()) _exit(1);
    std::atomic<int> passes{0};
    std::atomic<pid_t> tid{0};
    std::thread t([&] {
      tid = static_cast<pid_t>(syscall(SYS_gettid));
      for (;;) {
        WTD_WEDGE_POINT("wedge_loop");
        ++passes;
      }
    });
    t.detach();
    // The main thread goes on: once the other thread sleeps (in
    // clock_nanosleep, after its message), it reports that thread's passes.
    for (int i = 0; i < 2000; ++i) {
      pid_t id = tid.load();
      std::ifstream f("/proc/self/task/" + std::to_string(id) + "/syscall");
      long nr = -1;
      if (id != 0 && (f >> nr) && (nr == SYS_clock_nanosleep || nr == SYS_nanosleep)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::string msg = "passes " + std::to_string(passes.load()) + "\n";
    ssize_t n = write(2, msg.data(), msg.size());
    (void)n;
    _exit(0);
  }
  close(out[1]);
  std::string text;
  char buf[256];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the process went on after the wedge: " << text;
  EXPECT_EQ(text, "wtd: wedge point wedge_loop: this thread stops here\npasses 0\n");
}

}  // namespace
}  // namespace wtd
