#include "base/crash_point.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

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
}

}  // namespace
}  // namespace wtd
