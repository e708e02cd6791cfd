#include "runs/retry_policy.h"

#include <gtest/gtest.h>

namespace wtd {
namespace {

TEST(RetryPolicyTest, GrowsExponentiallyWithinJitterBoundsAndCap) {
  RetryPolicy p(/*cap_ms=*/10'000, /*jitter=*/0.5, /*seed=*/7);
  for (int trial = 0; trial < 200; ++trial) {
    for (uint32_t n = 1; n <= 10; ++n) {
      int64_t full = std::min<int64_t>(10'000, 1000LL << (n - 1));
      int64_t d = p.Delay(1000, n);
      EXPECT_LE(d, full) << "n=" << n;
      EXPECT_GE(d, full / 2) << "n=" << n;
    }
  }
}

TEST(RetryPolicyTest, JitterSpreadsDelays) {
  RetryPolicy p(60'000, 0.5, 42);
  int64_t lo = INT64_MAX, hi = 0;
  for (int i = 0; i < 100; ++i) {
    int64_t d = p.Delay(1000, 3);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_LT(lo, hi);
}

TEST(RetryPolicyTest, NoJitterIsExactAndHugeAttemptsDoNotOverflow) {
  RetryPolicy p(60'000, 0.0, 1);
  EXPECT_EQ(p.Delay(1000, 1), 1000);
  EXPECT_EQ(p.Delay(1000, 2), 2000);
  EXPECT_EQ(p.Delay(1000, 4), 8000);
  EXPECT_EQ(p.Delay(1000, 4000000000u), 60'000);
  EXPECT_EQ(p.Delay(0, 5), 0);
}

TEST(RetryPolicyTest, CopyAndAssignmentContinueTheSameSequence) {
  RetryPolicy a(60'000, 0.5, 9);
  a.Delay(1000, 1);  // the copies start mid-sequence
  RetryPolicy copied(a);
  RetryPolicy assigned(1, 0.0, 1);
  assigned = a;
  EXPECT_EQ(assigned.cap_ms(), 60'000);
  EXPECT_EQ(assigned.jitter(), 0.5);
  for (int i = 0; i < 20; ++i) {
    int64_t d = a.Delay(1000, 3);
    EXPECT_EQ(copied.Delay(1000, 3), d) << i;
    EXPECT_EQ(assigned.Delay(1000, 3), d) << i;
  }
}

TEST(BackoffTest, FailuresPushTheNextTryOutAndSuccessResets) {
  Backoff b(1000, 60'000, 3);
  EXPECT_TRUE(b.Ready(0));
  b.Failure(0);
  EXPECT_FALSE(b.Ready(0));
  EXPECT_TRUE(b.Ready(1000));
  b.Failure(1000);
  b.Failure(1000);
  EXPECT_EQ(b.failures(), 3u);
  EXPECT_GE(b.next_ms(), 1000 + 2000);
  b.Success();
  EXPECT_TRUE(b.Ready(0));
}

TEST(BackoffTest, NewLimitsApplyFromTheNextFailure) {
  Backoff b(60'000, 60'000, 3);
  b.Failure(0);
  EXPECT_GE(b.next_ms(), 30'000);
  b.SetLimits(10, 40);
  EXPECT_GE(b.next_ms(), 30'000) << "the retry already scheduled stays";
  b.Failure(100'000);  // failure 2: min(40, 10 * 2) less jitter
  EXPECT_EQ(b.failures(), 2u);
  EXPECT_LE(b.next_ms(), 100'020);
  b.Failure(100'000);  // failure 3: the new cap
  EXPECT_LE(b.next_ms(), 100'040);
}

}  // namespace
}  // namespace wtd
