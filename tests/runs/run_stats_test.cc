// Run statistics: the histogram's bucket edges, percentiles from buckets,
// merging, `--since` parsing, and the RunStats records RunStore keeps in the
// batch that ends each run (exactly once per terminal transition, never on
// another, and nothing of either when that batch does not commit).
#include "runs/run_stats.h"

#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <limits>
#include <memory>

#include "fakes/fake_clock.h"
#include "fakes/fault_injection_fs.h"
#include "fakes/temp_dir.h"
#include "runs/run_store.h"
#include "store/keys.h"

namespace wtd {
namespace {

RunFilter AllRuns() {
  RunFilter f;
  f.limit = 0;
  return f;
}

using S = RunState;

// 2026-12-03T10:30:00Z.
constexpr int64_t kNow = 1'796'293'800'000;
constexpr int64_t kNowHour = 1'796'292'000'000;  // 10:00

TEST(RunStatsMath, EveryBoundIsTheLastValueOfItsBucket) {
  EXPECT_EQ(kRunStatsBuckets, 26u);
  EXPECT_EQ(BucketOf(0), 0u);
  EXPECT_EQ(BucketOf(-5), 0u);
  for (size_t i = 0; i + 1 < kRunStatsBuckets; ++i) {
    int64_t bound = *BucketUpperMs(i);
    EXPECT_EQ(BucketOf(bound), i) << bound;
    EXPECT_EQ(BucketOf(bound + 1), i + 1) << bound + 1;
    EXPECT_EQ(BucketLowerMs(i + 1), bound);
    if (i > 0) {
      EXPECT_GT(bound, *BucketUpperMs(i - 1));
    }
  }
  EXPECT_EQ(BucketOf(3), 2u);  // (2, 5]
  EXPECT_EQ(BucketOf(1'000), 9u);
  EXPECT_EQ(BucketOf(std::numeric_limits<int64_t>::max()), kRunStatsBuckets - 1);
  EXPECT_FALSE(BucketUpperMs(kRunStatsBuckets - 1).has_value());
  EXPECT_EQ(BucketLowerMs(0), -1);
}

std::vector<uint64_t> Histogram(std::initializer_list<std::pair<int64_t, uint64_t>> durations) {
  std::vector<uint64_t> h(kRunStatsBuckets, 0);
  for (auto [d, n] : durations) h[BucketOf(d)] += n;
  return h;
}

TEST(RunStatsMath, PercentilesAreTheUpperBoundOfTheNearestRanksBucketCappedAtMax) {
  // 50 x 8 ms, 45 x 40 ms, 5 x 700 ms.
  std::vector<uint64_t> h = Histogram({{8, 50}, {40, 45}, {700, 5}});
  EXPECT_EQ(PercentileMs(h, 0.50, 700), 10);   // rank 50: the 10 ms bucket
  EXPECT_EQ(PercentileMs(h, 0.51, 700), 50);   // rank 51
  EXPECT_EQ(PercentileMs(h, 0.95, 700), 50);   // rank 95
  EXPECT_EQ(PercentileMs(h, 0.96, 700), 700);  // rank 96: (500, 1000] capped at max
  EXPECT_EQ(PercentileMs(h, 0.99, 700), 700);
  EXPECT_EQ(PercentileMs(h, 1.0, 700), 700);
  EXPECT_EQ(PercentileMs(std::vector<uint64_t>(kRunStatsBuckets, 0), 0.5, 0), std::nullopt);
  EXPECT_EQ(PercentileMs({}, 0.5, 0), std::nullopt);
  // The +Inf bucket answers the exact max.
  std::vector<uint64_t> inf = Histogram({{200'000'000, 3}});
  EXPECT_EQ(PercentileMs(inf, 0.5, 250'000'000), 250'000'000);
  // One run: every percentile is in its bucket.
  std::vector<uint64_t> one = Histogram({{0, 1}});
  EXPECT_EQ(PercentileMs(one, 0.99, 0), 0);
}

Run Terminal(uint64_t id, RunState state, int64_t duration_ms, int64_t at_ms,
             const std::string& job = "build") {
  wtd::Run r;
  r.id = id;
  r.key = RunKey{"/repo", "main", job, std::string(40, 'a')};
  r.state = state;
  r.attempt = duration_ms < 0 ? 0 : 1;
  r.started_at_ms = duration_ms < 0 ? 0 : at_ms - duration_ms;
  r.duration_ms = duration_ms < 0 ? 0 : duration_ms;
  r.finished_at_ms = at_ms;
  return r;
}

TEST(RunStatsMath, AddingRunsCountsEachStateAndOnlyStartedRunsHaveADuration) {
  RunStats s;
  AddRunToStats(s, Terminal(1, S::kSucceeded, 10, kNow));
  AddRunToStats(s, Terminal(2, S::kFailed, 3000, kNow + 1));
  AddRunToStats(s, Terminal(3, S::kCancelled, -1, kNow + 2));  // never started
  AddRunToStats(s, Terminal(4, S::kTimedOut, 60'000, kNow + 3));
  AddRunToStats(s, Terminal(5, S::kSkipped, -1, kNow + 4));
  AddRunToStats(s, Terminal(6, S::kRunning, 5, kNow + 5));  // not terminal: ignored
  EXPECT_EQ(s.repo, "/repo");
  EXPECT_EQ(s.job, "build");
  EXPECT_EQ(s.hour_ms, kNowHour);
  EXPECT_EQ(s.runs(), 5u);
  EXPECT_EQ(s.succeeded + s.failed + s.timed_out + s.cancelled + s.skipped, 5u);
  EXPECT_EQ(s.timed, 3u);
  EXPECT_EQ(s.duration_sum_ms, 63'010);
  EXPECT_EQ(s.attempts, 3u);
  uint64_t in_histogram = 0;
  for (uint64_t c : s.histogram) in_histogram += c;
  EXPECT_EQ(in_histogram, 3u);
  ASSERT_EQ(s.slowest.size(), 3u);
  EXPECT_EQ(s.slowest[0].run_id, 4u);
  EXPECT_EQ(s.slowest[1].run_id, 2u);
  EXPECT_EQ(s.slowest[2].run_id, 1u);
  ASSERT_EQ(s.failures.size(), 2u);
  EXPECT_EQ(s.failures[0].run_id, 4u);  // newest first
  EXPECT_EQ(s.failures[0].state, S::kTimedOut);
  EXPECT_EQ(s.failures[1].run_id, 2u);
  // The record round-trips through its sealed encoding.
  Result<RunStats> back = DecodeRunStats(EncodeRunStats(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
}

TEST(RunStatsMath, MergingKeepsExactTotalsAndTheTrueTopRunsOfTheWindow) {
  RunStats a, b, brute;
  // a: the three slowest of all; b: the newest failures.
  for (uint64_t i = 1; i <= 6; ++i) {
    wtd::Run r = Terminal(i, S::kSucceeded, 1000 * static_cast<int64_t>(i), kNow);
    AddRunToStats(a, r);
    AddRunToStats(brute, r);
  }
  for (uint64_t i = 7; i <= 14; ++i) {
    wtd::Run r = Terminal(i, S::kFailed, 5, kNow + kHourMs + static_cast<int64_t>(i));
    AddRunToStats(b, r);
    AddRunToStats(brute, r);
  }
  RunStats merged;
  MergeStats(merged, b);
  MergeStats(merged, a);
  EXPECT_EQ(merged.runs(), 14u);
  EXPECT_EQ(merged.succeeded, 6u);
  EXPECT_EQ(merged.failed, 8u);
  EXPECT_EQ(merged.duration_sum_ms, brute.duration_sum_ms);
  EXPECT_EQ(merged.histogram, brute.histogram);
  EXPECT_EQ(merged.slowest, brute.slowest);
  ASSERT_EQ(merged.slowest.size(), kRunStatsSlowest);
  EXPECT_EQ(merged.slowest[0].run_id, 6u);
  EXPECT_EQ(merged.failures, brute.failures);
  ASSERT_EQ(merged.failures.size(), kRunStatsFailures);
  EXPECT_EQ(merged.failures[0].run_id, 14u);
  EXPECT_EQ(merged.failures[4].run_id, 10u);
}

TEST(RunStatsMath, SinceAcceptsEachFormAndStartsAtAWholeHour) {
  auto since = [](std::string_view v) {
    Result<int64_t> r = ParseSince(v, kNow);
    EXPECT_TRUE(r.ok()) << v << ": " << r.status().ToString();
    return r.ok() ? *r : -1;
  };
  EXPECT_EQ(since("1h"), kNowHour - kHourMs);  // 09:30 -> 09:00
  EXPECT_EQ(since("24h"), kNowHour - 24 * kHourMs);
  EXPECT_EQ(since("7d"), kNowHour - 7 * 24 * kHourMs);
  EXPECT_EQ(since("30m"), kNowHour);  // 10:00
  EXPECT_EQ(since("31m"), kNowHour - kHourMs);
  EXPECT_EQ(since("2026-12-01"), kNowHour - 2 * 24 * kHourMs - 10 * kHourMs);
  EXPECT_EQ(since("2026-12-03T08:15:00Z"), kNowHour - 2 * kHourMs);
  EXPECT_EQ(since("2026-12-03T08:15:00.5Z"), kNowHour - 2 * kHourMs);
  EXPECT_EQ(since("2026-12-03T09:15:00+01:00"), kNowHour - 2 * kHourMs);
  EXPECT_EQ(since("2026-12-03T07:15:00-01:00"), kNowHour - 2 * kHourMs);
  EXPECT_EQ(since("2024-02-29"), 1'709'164'800'000);
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:01.250Z").value_or(-1), 1250);
}

TEST(RunStatsMath, SinceRefusesBadValuesNamingTheFlag) {
  for (const char* bad : {"",
                          "h",
                          "0h",
                          "-1h",
                          "1x",
                          "1.5h",
                          "24",
                          "h1",
                          "2026-13-01",
                          "2026-02-30",
                          "2025-02-29",
                          "2026-1-01",
                          "2026-12-03T25:00:00Z",
                          "2026-12-03T05:00:00",
                          "2026-12-03T05:00Z",
                          "2026-12-03T05:00:00+1:00",
                          "2026-12-03T05:00:00Zjunk",
                          "yesterday",
                          "99999999999999999999d",
                          "9999999999d"}) {
    Result<int64_t> r = ParseSince(bad, kNow);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message().rfind("--since=" + std::string(bad) + ":", 0), 0u)
        << r.status().message();
  }
}

TEST(RunStatsMath, KeysSortByHourFirst) {
  EXPECT_LT(RunStatsKey(kNowHour, "/z", "main", "z"),
            RunStatsKey(kNowHour + kHourMs, "/a", "a", "a"));
  EXPECT_EQ(RunStatsKey(kNowHour, "/r", "w", "j").rfind(RunStatsStartKey(kNowHour), 0), 0u);
  EXPECT_EQ(RunStatsStartKey(kNowHour).rfind(std::string(RunStatsPrefix()), 0), 0u);
  EXPECT_EQ(RunStatsStartKey(-kHourMs), RunStatsStartKey(0));
}

// The store side: RunStore's transitions and their RunStats records.
class RunStatsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    runs_.reset();
    store_.reset();
    StoreOptions o{dir_.Sub("db")};
    o.env = env_.get();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_, RetryPolicy(0, 0.0, 1));
    ASSERT_TRUE(runs_->Init().ok());
  }

  uint64_t NewRunId(uint32_t max_attempts = 1) {
    std::string sha(40, '0');
    std::string n = std::to_string(++seq_);
    sha.replace(40 - n.size(), n.size(), n);
    NewRun r;
    r.key = RunKey{"/repo", "main", "build", sha};
    r.max_attempts = max_attempts;
    Result<std::vector<wtd::Run>> created = runs_->Enqueue({r}, std::nullopt);
    EXPECT_TRUE(created.ok() && created->size() == 1);
    return created->at(0).id;
  }

  LeaseRequest Request() {
    return LeaseRequest{
        "host", "boot", 4000, 77, store_->incarnation(), 60'000, std::string(40, 'a'), {}};
  }

  // The merged record of every hour.
  RunStats All() {
    RunStats all;
    Status st = runs_->ScanRunStats(0, [&](const RunStats& s) {
      MergeStats(all, s);
      ++records_;
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return all;
  }

  void Must(const Result<wtd::Run>& r) { ASSERT_TRUE(r.ok()) << r.status().ToString(); }

  // A run without a lease, running its first attempt.
  uint64_t Running(uint32_t max_attempts = 1) {
    uint64_t id = NewRunId(max_attempts);
    Must(runs_->Lease(id));
    Must(runs_->MarkReady(id, S::kLeased));
    Must(runs_->MarkRunning(id, proc_, 1, "/log"));
    return id;
  }

  TempDir dir_;
  std::shared_ptr<FaultInjectionFs> fs_ = std::make_shared<FaultInjectionFs>();
  std::unique_ptr<rocksdb::Env> env_ = rocksdb::NewCompositeEnv(fs_);
  FakeClock clock_{kNow};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  ProcessIdentity proc_{1234, 99, "boot"};
  int seq_ = 0;
  int records_ = 0;
};

TEST_F(RunStatsStoreTest, EachTerminalTransitionCountsOnceAndNoOtherCounts) {
  AttemptOutcome ok;
  ok.exit_code = 0;
  ok.duration_ms = 1500;
  AttemptOutcome bad;
  bad.exit_code = 1;
  bad.duration_ms = 20;

  // Non-terminal transitions: lease, ready, running, a failed attempt with
  // attempts left (retry_wait), an interrupt with its allowance left, wake.
  uint64_t retried = Running(/*max_attempts=*/2);
  Must(runs_->Finish(retried, bad));
  EXPECT_EQ(runs_->Get(retried)->state, S::kRetryWait);
  Must(runs_->Wake(retried));
  Must(runs_->Lease(retried));
  Must(runs_->MarkReady(retried, S::kLeased));
  Must(runs_->MarkRunning(retried, proc_, 1, "/log"));
  Must(runs_->Interrupt(retried, "daemon stopped"));
  EXPECT_EQ(runs_->Get(retried)->state, S::kRetryWait);
  EXPECT_EQ(All().runs(), 0u);
  EXPECT_EQ(records_, 0);

  // Finish -> succeeded.
  Must(runs_->Finish(Running(), ok));
  EXPECT_EQ(All().succeeded, 1u);
  // Finish -> failed.
  Must(runs_->Finish(Running(), bad));
  EXPECT_EQ(All().failed, 1u);
  // Cancel from pending: counted, with no duration.
  Must(runs_->Cancel(NewRunId(), S::kPending, "operator"));
  RunStats s = All();
  EXPECT_EQ(s.cancelled, 1u);
  EXPECT_EQ(s.timed, 2u);
  // Interrupt -> failed once the allowance is spent.
  uint64_t interrupted = Running();
  for (int i = 0; runs_->Get(interrupted)->state != S::kFailed; ++i) {
    ASSERT_LT(i, 10);
    Must(runs_->Interrupt(interrupted, "lost"));
    if (runs_->Get(interrupted)->state == S::kFailed) break;
    EXPECT_EQ(All().failed, 1u) << "a retried interrupt counted";
    Must(runs_->Wake(interrupted));
    Must(runs_->Lease(interrupted));
    Must(runs_->MarkReady(interrupted, S::kLeased));
    Must(runs_->MarkRunning(interrupted, proc_, 1, "/log"));
  }
  EXPECT_EQ(All().failed, 2u);

  // With a lease: BeginFinish (not terminal), then CompleteFinish.
  uint64_t leased_id = NewRunId();
  Result<LeasedRun> lr = runs_->AcquireLease(leased_id, Request());
  ASSERT_TRUE(lr.ok()) << lr.status().ToString();
  uint64_t token = lr->lease.fencing_token;
  Must(runs_->MarkReady(leased_id, S::kLeased));
  Must(runs_->MarkRunning(leased_id, proc_, 1, "/log", LeaseUpdate{token, ""}));
  Must(runs_->BeginFinish(leased_id, token, ok));
  EXPECT_EQ(All().succeeded, 1u) << "finishing counted";
  Must(runs_->CompleteFinish(leased_id, token));
  EXPECT_EQ(All().succeeded, 2u);
  ASSERT_TRUE(runs_->DropLease("/repo", LockName(runs_->Get(leased_id)->key), token).ok());

  // SkipDone from leased (never started: no duration).
  uint64_t skipped = NewRunId();
  lr = runs_->AcquireLease(skipped, Request());
  ASSERT_TRUE(lr.ok()) << lr.status().ToString();
  Must(runs_->SkipDone(skipped, lr->lease.fencing_token, "host-b pid 1 run 9"));
  s = All();
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.runs(), 6u);
  EXPECT_EQ(s.timed, 4u);  // 2 Finish, 1 interrupted, 1 CompleteFinish
  EXPECT_EQ(s.duration_sum_ms, 1500 + 20 + 0 + 1500);

  // A refused transition of a terminal run changes nothing.
  EXPECT_FALSE(runs_->Cancel(skipped, S::kSkipped, "again").ok());
  EXPECT_EQ(All().runs(), 6u);
  // Every run counted is terminal, and every terminal run is counted.
  Result<std::vector<wtd::Run>> all_runs = runs_->List(AllRuns());
  ASSERT_TRUE(all_runs.ok());
  uint64_t terminal = 0;
  for (const wtd::Run& r : *all_runs) terminal += IsTerminal(r.state) ? 1 : 0;
  EXPECT_EQ(terminal, All().runs());
}

TEST_F(RunStatsStoreTest, RecordsAreKeptPerHourOfFinishAndSurviveReopen) {
  AttemptOutcome ok;
  ok.exit_code = 0;
  ok.duration_ms = 7;
  uint64_t a = Running();
  Must(runs_->Finish(a, ok));
  clock_.AdvanceMs(kHourMs);
  uint64_t b = Running();
  Must(runs_->Finish(b, ok));
  Open();
  Result<RunStats> first = runs_->GetRunStats(kNowHour, "/repo", "main", "build");
  Result<RunStats> second = runs_->GetRunStats(kNowHour + kHourMs, "/repo", "main", "build");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->succeeded, 1u);
  EXPECT_EQ(first->slowest.at(0).run_id, a);
  EXPECT_EQ(second->succeeded, 1u);
  EXPECT_EQ(second->slowest.at(0).run_id, b);
  // A window from the second hour sees only it.
  int seen = 0;
  ASSERT_TRUE(runs_
                  ->ScanRunStats(kNowHour + kHourMs,
                                 [&](const RunStats& s) {
                                   EXPECT_EQ(s.hour_ms, kNowHour + kHourMs);
                                   ++seen;
                                   return true;
                                 })
                  .ok());
  EXPECT_EQ(seen, 1);
}

TEST_F(RunStatsStoreTest, AFailedCommitLeavesNeitherTheRunNorItsRecordChanged) {
  uint64_t id = Running();
  AttemptOutcome ok;
  ok.exit_code = 0;
  ok.duration_ms = 100;
  // The disk refuses the batch that would end the run: as if the process
  // died before its commit.
  fs_->SetNoSpace(true);
  EXPECT_FALSE(runs_->Finish(id, ok).ok());
  runs_.reset();
  store_.reset();
  fs_->SetNoSpace(false);
  ASSERT_TRUE(fs_->DropUnsyncedData().ok());
  Open();
  EXPECT_EQ(runs_->Get(id)->state, S::kRunning);
  EXPECT_EQ(All().runs(), 0u);
  EXPECT_EQ(records_, 0);
  // The same transition, committed, writes both; a power cut keeps both.
  Must(runs_->Finish(id, ok));
  runs_.reset();
  store_.reset();
  ASSERT_TRUE(fs_->DropUnsyncedData().ok());
  Open();
  EXPECT_EQ(runs_->Get(id)->state, S::kSucceeded);
  EXPECT_EQ(All().succeeded, 1u);
}

TEST_F(RunStatsStoreTest, AnUndecodableRecordFailsTheScanNamingItAndIsReplacedByTheNextRun) {
  WriteBatch b;
  b.Put(Family::kMeta, RunStatsKey(kNowHour, "/repo", "main", "build"), "junk");
  ASSERT_TRUE(store_->Commit(b).ok());
  Status st = runs_->ScanRunStats(0, [](const RunStats&) { return true; });
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("meta/run_stats/2026-12-03T10:00:00.000Z"), std::string::npos)
      << st.ToString();
  // A run that ends in that hour is not held up by it: the record is started
  // afresh, counting that run.
  uint64_t id = Running();
  AttemptOutcome ok;
  ok.exit_code = 0;
  Must(runs_->Finish(id, ok));
  EXPECT_EQ(runs_->Get(id)->state, S::kSucceeded);
  RunStats s = All();
  EXPECT_EQ(s.runs(), 1u);
  EXPECT_EQ(s.succeeded, 1u);
}

}  // namespace
}  // namespace wtd
