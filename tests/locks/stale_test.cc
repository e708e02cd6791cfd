#include "locks/stale.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fakes/fake_process_table.h"

namespace wtd::locks {
namespace {

constexpr int64_t kNow = 1'700'000'100'000;
constexpr int64_t kGrace = 60'000;

LockOwner Owner(const std::string& host, const std::string& boot, int64_t expires_at_ms) {
  LockOwner o;
  o.host = host;
  o.boot_id = boot;
  o.pid = 100;
  o.pid_start_time = 1000;
  o.incarnation = 1;
  o.run_id = 7;
  o.token = 3;
  o.acquired_at_ms = kNow - 30'000;
  o.expires_at_ms = expires_at_ms;
  return o;
}

struct Case {
  std::string what;
  std::string host, boot;
  int64_t expires_at_ms;
  int32_t job_pid;  // 0: no job recorded
  bool daemon_alive, daemon_reused, job_alive, job_reused;
  bool stale;
  LockReason reason;
};

TEST(StaleTest, RulesTable) {
  const int64_t fresh = kNow + 20'000;           // not expired
  const int64_t in_grace = kNow - kGrace;        // expired, but only by the grace: held
  const int64_t past_grace = kNow - kGrace - 1;  // expired beyond the grace
  const std::vector<Case> cases = {
      // {what, host, boot, expires, job pid, daemon alive, daemon pid reused, job alive,
      //  job pid reused, stale, reason}
      {"daemon alive", "me", "boot-A", fresh, 0, true, false, false, false, false,
       LockReason::kHeld},
      {"daemon gone, no job", "me", "boot-A", fresh, 0, false, false, false, false, true,
       LockReason::kPidGone},
      {"daemon pid reused", "me", "boot-A", fresh, 0, false, true, false, false, true,
       LockReason::kPidReused},
      {"daemon gone, job alive", "me", "boot-A", fresh, 200, false, false, true, false, false,
       LockReason::kHeld},
      {"daemon gone, job gone", "me", "boot-A", fresh, 200, false, false, false, false, true,
       LockReason::kPidGone},
      {"daemon gone, job reused", "me", "boot-A", fresh, 200, false, false, false, true, true,
       LockReason::kPidGone},
      {"daemon reused, job gone", "me", "boot-A", fresh, 200, false, true, false, false, true,
       LockReason::kPidReused},
      {"daemon alive, job gone", "me", "boot-A", fresh, 200, true, false, false, false, false,
       LockReason::kHeld},
      {"same host, other boot", "me", "boot-B", fresh, 200, true, false, true, false, true,
       LockReason::kOtherBoot},
      {"alive but expired past grace", "me", "boot-A", past_grace, 0, true, false, false, false,
       true, LockReason::kExpired},
      {"alive, expired within grace", "me", "boot-A", in_grace, 0, true, false, false, false, false,
       LockReason::kHeld},
      {"other host, before expiry", "them", "boot-Z", fresh, 0, false, false, false, false, false,
       LockReason::kHeld},
      {"other host, same pid dead here", "them", "boot-A", fresh, 0, false, false, false, false,
       false, LockReason::kHeld},
      {"other host, within grace", "them", "boot-Z", in_grace, 0, false, false, false, false, false,
       LockReason::kHeld},
      {"other host, past grace", "them", "boot-Z", past_grace, 0, false, false, false, false, true,
       LockReason::kExpired},
      {"owner boot unknown: pids not trusted", "me", "unknown-boot", fresh, 0, false, false, false,
       false, false, LockReason::kHeld},
      {"owner boot unknown, past grace", "me", "", past_grace, 0, false, false, false, false, true,
       LockReason::kExpired},
  };
  for (const Case& c : cases) {
    FakeProcessTable procs("boot-A");
    if (c.daemon_alive) procs.Start(100, 1000);
    if (c.daemon_reused) procs.Start(100, 5555);
    if (c.job_alive) procs.Start(200, 2000);
    if (c.job_reused) procs.Start(200, 6666);
    LockOwner o = Owner(c.host, c.boot, c.expires_at_ms);
    if (c.job_pid != 0) {
      o.job_pid = c.job_pid;
      o.job_start_time = 2000;
    }
    JudgeContext ctx{&procs, kNow, "me", "boot-A", kGrace};
    LockVerdict v = JudgeLock(o, ctx);
    EXPECT_EQ(v.stale, c.stale) << c.what << ": " << v.detail;
    EXPECT_EQ(ReasonName(v.reason), ReasonName(c.reason)) << c.what << ": " << v.detail;
  }
}

TEST(StaleTest, UnreadableIsHeldByUnknownWhateverTheTime) {
  FakeProcessTable procs("boot-A");
  JudgeContext ctx{&procs, INT64_MAX, "me", "boot-A", 0};
  LockVerdict v = JudgeLock(std::optional<LockOwner>(), ctx);
  EXPECT_FALSE(v.stale);
  EXPECT_EQ(ReasonName(v.reason), "unreadable");
  EXPECT_NE(v.detail.find("unknown"), std::string::npos);
  LockEntry e;
  e.error = "blob: not JSON";
  EXPECT_EQ(JudgeLock(e, ctx).reason, LockReason::kUnreadable);
  EXPECT_EQ(JudgeLock(e, procs, INT64_MAX, "me", "boot-A", 0).reason, LockReason::kUnreadable);
}

TEST(StaleTest, AnEntryIsJudgedByItsOwner) {
  FakeProcessTable procs("boot-A");
  LockEntry e;
  e.owner = Owner("me", "boot-A", kNow + 1);
  LockVerdict gone = JudgeLock(e, procs, kNow, "me", "boot-A", kGrace);
  EXPECT_TRUE(gone.stale);
  EXPECT_EQ(gone.reason, LockReason::kPidGone);
  EXPECT_EQ(gone.detail, "daemon pid 100 gone");
  procs.Start(100, 1000);
  EXPECT_FALSE(JudgeLock(e, procs, kNow, "me", "boot-A", kGrace).stale);
}

TEST(StaleTest, ThisHostsUnknownBootTrustsOnlyExpiry) {
  FakeProcessTable procs("unknown-boot");
  JudgeContext ctx{&procs, kNow, "me", "unknown-boot", kGrace};
  EXPECT_FALSE(JudgeLock(Owner("me", "unknown-boot", kNow + 1), ctx).stale);
  EXPECT_FALSE(JudgeLock(Owner("me", "boot-B", kNow + 1), ctx).stale);
  EXPECT_TRUE(JudgeLock(Owner("me", "boot-B", kNow - kGrace - 1), ctx).stale);
}

TEST(StaleTest, ExtremeTimesDoNotOverflow) {
  FakeProcessTable procs("boot-A");
  JudgeContext ctx{&procs, kNow, "me", "boot-A", kGrace};
  LockVerdict v = JudgeLock(Owner("them", "boot-Z", INT64_MIN), ctx);
  EXPECT_TRUE(v.stale);
  EXPECT_EQ(v.reason, LockReason::kExpired);
  ctx.now_ms = INT64_MIN;
  EXPECT_FALSE(JudgeLock(Owner("them", "boot-Z", INT64_MAX), ctx).stale);
  ctx.grace_ms = INT64_MAX;
  ctx.now_ms = INT64_MAX;
  EXPECT_TRUE(JudgeLock(Owner("them", "boot-Z", INT64_MIN), ctx).stale);  // 2^64-1 ms late
  EXPECT_FALSE(JudgeLock(Owner("them", "boot-Z", 0), ctx).stale);
}

TEST(StaleTest, ReasonNames) {
  EXPECT_EQ(ReasonName(LockReason::kHeld), "held");
  EXPECT_EQ(ReasonName(LockReason::kPidGone), "pid gone");
  EXPECT_EQ(ReasonName(LockReason::kPidReused), "pid reused");
  EXPECT_EQ(ReasonName(LockReason::kOtherBoot), "other boot");
  EXPECT_EQ(ReasonName(LockReason::kExpired), "expired");
  EXPECT_EQ(ReasonName(LockReason::kUnreadable), "unreadable");
}

}  // namespace
}  // namespace wtd::locks
