// LoopNotifier and StartProgress: what the daemon tells systemd, and when,
// with a fake clock and the messages recorded instead of sent. The real
// daemon on a real NOTIFY_SOCKET is tested in tests/integration/service_test.cc.
#include "daemon/service.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fakes/fake_clock.h"

namespace wtd {
namespace {

class NotifierTest : public ::testing::Test {
 protected:
  NotifySink Sink() {
    return [this](const std::string& m) { sent_.push_back(m); };
  }
  // Every message sent since the last call.
  std::vector<std::string> Take() {
    std::vector<std::string> out;
    out.swap(sent_);
    return out;
  }
  FakeClock clock_;
  std::vector<std::string> sent_;
};

TEST_F(NotifierTest, ReadyOnlyAfterTheFirstStepThenOnce) {
  int readies = 0;
  LoopNotifier n(&clock_, 0, Sink(), [&] { ++readies; });
  EXPECT_FALSE(n.ready());
  LoopHeartbeat beat;
  EXPECT_EQ(n.OnStep(beat), -1) << "no watchdog: no sleep limit";
  EXPECT_TRUE(n.ready());
  EXPECT_EQ(readies, 1);
  EXPECT_EQ(Take(), std::vector<std::string>{
                        "READY=1\nSTATUS=0 queued, 0 running, 0 waiting to retry; no errors"});
  n.OnStep(beat);
  EXPECT_EQ(readies, 1);
  EXPECT_TRUE(Take().empty()) << "nothing changed, no watchdog: nothing to say";
}

TEST_F(NotifierTest, StatusIsSentWhenItChanges) {
  LoopNotifier n(&clock_, 0, Sink(), nullptr);
  LoopHeartbeat beat;
  n.OnStep(beat);
  Take();
  beat.queued = 3;
  beat.running = 2;
  beat.retry_wait = 1;
  beat.last_error = "repository /r: gone\nreally";
  n.OnStep(beat);
  EXPECT_EQ(Take(), std::vector<std::string>{"STATUS=3 queued, 2 running, 1 waiting to retry; "
                                             "last error: repository /r: gone really"});
}

TEST_F(NotifierTest, WatchdogPingsAtLeastEveryHalfIntervalAndBoundsTheSleep) {
  const int64_t w_ms = 2000;
  LoopNotifier n(&clock_, w_ms * 1000, Sink(), nullptr);
  LoopHeartbeat beat;
  EXPECT_EQ(n.OnStep(beat), w_ms / 2) << "the next step at most W/2 after the ping";
  std::vector<std::string> first = Take();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_NE(first[0].find("READY=1\nWATCHDOG=1"), std::string::npos) << first[0];
  // A step soon after: no ping (at most one per W/4), the limit counts from
  // the last ping.
  clock_.AdvanceMs(100);
  int64_t limit = n.OnStep(beat);
  EXPECT_EQ(limit, w_ms / 2 - 100);
  EXPECT_TRUE(Take().empty());
  // Sleeping the limit it gave: each next step pings, so pings are never
  // further apart than W/2 (plus the step's own time).
  for (int i = 0; i < 5; ++i) {
    clock_.AdvanceMs(limit);
    limit = n.OnStep(beat);
    EXPECT_EQ(limit, w_ms / 2);
    EXPECT_EQ(Take(), std::vector<std::string>{"WATCHDOG=1"});
  }
}

TEST_F(NotifierTest, StoppingIsSaidOnceWithTheStopBudget) {
  LoopNotifier n(&clock_, 0, Sink(), nullptr);
  LoopHeartbeat beat;
  n.OnStep(beat);
  Take();
  beat.stopping = true;
  beat.running = 2;
  beat.stop_budget_ms = 15000;
  n.OnStep(beat);
  EXPECT_EQ(Take(), std::vector<std::string>{
                        "STOPPING=1\nEXTEND_TIMEOUT_USEC=25000000\nSTATUS=stopping: 2 running; "
                        "no errors"});
  beat.running = 1;
  n.OnStep(beat);
  EXPECT_EQ(Take(), std::vector<std::string>{"STATUS=stopping: 1 running; no errors"});
}

TEST_F(NotifierTest, StartProgressExtendsTheTimeoutAtMostOnceASecond) {
  StartProgress p(&clock_, Sink());
  p.Phase("recovering", 5'000'000);
  EXPECT_EQ(Take(), std::vector<std::string>{"STATUS=recovering\nEXTEND_TIMEOUT_USEC=65000000"});
  p.RunHandled();
  p.RunHandled();
  EXPECT_TRUE(Take().empty()) << "within a second of the last message";
  clock_.AdvanceMs(1000);
  p.RunHandled();
  EXPECT_EQ(Take(), std::vector<std::string>{
                        "STATUS=recovering: 3 run(s) handled\nEXTEND_TIMEOUT_USEC=60000000"});
  EXPECT_EQ(p.runs_handled(), 3u);
}

}  // namespace
}  // namespace wtd
