// DaemonMetrics: what each hook the daemon sets does to the rendered text
// (terminal states counted by job and state, durations only for runs that
// ran, contention, recovery kinds, queue depths, ticks, store writes).
#include <string>

#include "daemon/metrics.h"
#include "gtest/gtest.h"

namespace wtd {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

Run Ended(const std::string& job, RunState state, int64_t duration_ms) {
  Run r;
  r.key.job = job;
  r.state = state;
  r.duration_ms = duration_ms;
  return r;
}

TEST(DaemonMetricsTest, EachHookMovesItsSeries) {
  DaemonMetrics m;
  std::string text = m.registry()->Render();
  EXPECT_TRUE(Has(text, "wtd_up 1")) << text;
  EXPECT_TRUE(Has(text, std::string("wtd_build_info{version=\"") + WTD_VERSION + "\"} 1"));
  EXPECT_TRUE(Has(text, "wtd_queue_depth{state=\"queued\"} 0"));

  RunStoreObserver o = m.RunObserver();
  o.transition(RunState::kRunning, Ended("build", RunState::kSucceeded, 1500));
  o.transition(RunState::kFinishing, Ended("build", RunState::kFailed, 200));
  o.transition(RunState::kPending, Ended("build", RunState::kCancelled, 0));    // never ran
  o.transition(RunState::kRunning, Ended("build", RunState::kRetryWait, 100));  // not an end
  o.lock_contended(Ended("build", RunState::kRetryWait, 0));
  m.CountRecovery("requeue_run");
  m.CountRecovery("requeue_run");
  LoopHeartbeat beat;
  beat.queued = 3;
  beat.retry_wait = 1;
  beat.running = 2;
  m.OnHeartbeat(beat);
  PollStats stats;
  stats.commits_seen = 4;
  m.TickHook()(stats, 2000);  // 2 ms
  m.StoreObserver()(300);     // 0.3 ms

  text = m.registry()->Render();
  EXPECT_TRUE(Has(text, "wtd_runs_total{job=\"build\",state=\"succeeded\"} 1")) << text;
  EXPECT_TRUE(Has(text, "wtd_runs_total{job=\"build\",state=\"failed\"} 1"));
  EXPECT_TRUE(Has(text, "wtd_runs_total{job=\"build\",state=\"cancelled\"} 1"));
  EXPECT_EQ(text.find("wtd_runs_total{job=\"build\",state=\"retry_wait\""), std::string::npos)
      << "retry_wait is no terminal state";
  EXPECT_TRUE(Has(text, "wtd_run_duration_seconds_bucket{job=\"build\",le=\"0.1\"} 0"));
  EXPECT_TRUE(Has(text, "wtd_run_duration_seconds_bucket{job=\"build\",le=\"0.5\"} 1"));
  EXPECT_TRUE(Has(text, "wtd_run_duration_seconds_bucket{job=\"build\",le=\"5\"} 2"));
  EXPECT_TRUE(Has(text, "wtd_run_duration_seconds_count{job=\"build\"} 2"))
      << "the cancelled run never ran: no duration";
  EXPECT_TRUE(Has(text, "wtd_run_duration_seconds_sum{job=\"build\"} 1.7"));
  EXPECT_TRUE(Has(text, "wtd_lock_contention_total 1"));
  EXPECT_TRUE(Has(text, "wtd_recovery_actions_total{kind=\"requeue_run\"} 2"));
  EXPECT_TRUE(Has(text, "wtd_queue_depth{state=\"queued\"} 3"));
  EXPECT_TRUE(Has(text, "wtd_queue_depth{state=\"retry_wait\"} 1"));
  EXPECT_TRUE(Has(text, "wtd_queue_depth{state=\"running\"} 2"));
  EXPECT_TRUE(Has(text, "wtd_commits_seen_total 4"));
  EXPECT_TRUE(Has(text, "wtd_poll_tick_seconds_bucket{le=\"0.001\"} 0"));
  EXPECT_TRUE(Has(text, "wtd_poll_tick_seconds_bucket{le=\"0.0025\"} 1"));
  EXPECT_TRUE(Has(text, "wtd_store_write_seconds_bucket{le=\"0.001\"} 1"));
  EXPECT_TRUE(Has(text, "wtd_store_write_seconds_count 1"));
}

}  // namespace
}  // namespace wtd
