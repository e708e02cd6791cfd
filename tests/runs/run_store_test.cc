#include "runs/run_store.h"

#include <gtest/gtest.h>

#include <memory>

#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"
#include "store/keys.h"

namespace wtd {
namespace {

using S = RunState;

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    runs_.reset();
    store_.reset();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_, RetryPolicy(60'000, 0.0, 1));
    ASSERT_TRUE(runs_->Init().ok());
  }

  NewRun MakeNew(const std::string& sha, uint32_t max_attempts = 3) {
    NewRun n;
    n.key = RunKey{"/repo", "main", "build", sha};
    n.branch = "main";
    n.worktree_path = "/repo";
    n.max_attempts = max_attempts;
    n.retry_backoff_ms = 1000;
    n.timeout_ms = 60'000;
    return n;
  }

  uint64_t NewRunId(uint32_t max_attempts = 3) {
    std::string sha(40, '0');
    std::string n = std::to_string(++seq_);
    sha.replace(40 - n.size(), n.size(), n);
    Result<std::vector<wtd::Run>> r = runs_->Enqueue({MakeNew(sha, max_attempts)}, std::nullopt);
    EXPECT_TRUE(r.ok() && r->size() == 1);
    return r->at(0).id;
  }

  // Drives a fresh run to `target` along legal transitions.
  uint64_t RunIn(RunState target) {
    uint64_t id = NewRunId(target == S::kFailed || target == S::kTimedOut ? 1 : 3);
    auto must = [](const Result<wtd::Run>& r) { ASSERT_TRUE(r.ok()) << r.status().ToString(); };
    ProcessIdentity proc{1234, 99, "boot"};
    switch (target) {
      case S::kPending:
        break;
      case S::kLeased:
        must(runs_->Lease(id));
        break;
      case S::kPreparing:
        must(runs_->Lease(id));
        must(runs_->Transition(id, S::kLeased, S::kPreparing));
        break;
      case S::kReady:
        must(runs_->Lease(id));
        must(runs_->MarkReady(id, S::kLeased));
        break;
      case S::kRunning:
      case S::kRetryWait:
      case S::kSucceeded:
      case S::kFailed:
      case S::kTimedOut: {
        must(runs_->Lease(id));
        must(runs_->MarkReady(id, S::kLeased));
        must(runs_->MarkRunning(id, proc, 1, "/log"));
        AttemptOutcome o;
        o.exit_code = target == S::kSucceeded ? 0 : 1;
        o.timed_out = target == S::kTimedOut;
        if (target == S::kRetryWait) must(runs_->Interrupt(id, "test"));
        if (target != S::kRunning && target != S::kRetryWait) must(runs_->Finish(id, o));
        break;
      }
      case S::kCancelled:
        must(runs_->Cancel(id, S::kPending, "test"));
        break;
      case S::kFinishing: {
        must(runs_->Lease(id));
        must(runs_->MarkReady(id, S::kLeased));
        must(runs_->MarkRunning(id, proc, 1, "/log"));
        AttemptOutcome o;
        o.exit_code = 0;
        must(runs_->BeginFinish(id, /*token=*/0, o));
        break;
      }
      case S::kSkipped:
        must(runs_->Lease(id));
        must(runs_->SkipDone(id, /*token=*/0, "host-b pid 7 run 3"));
        break;
    }
    Result<wtd::Run> r = runs_->Get(id);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->state, target);
    return id;
  }

  size_t CountFamily(Family f) {
    size_t n = 0;
    EXPECT_TRUE(store_
                    ->Scan(f, "",
                           [&](std::string_view, std::string_view) {
                             ++n;
                             return true;
                           })
                    .ok());
    return n;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  int seq_ = 0;
};

TEST_F(RunStoreTest, EveryLegalTransitionCommitsAndEveryIllegalOneWritesNothing) {
  int legal = 0, illegal = 0;
  for (int f = 0; f < kRunStateCount; ++f) {
    for (int t = 0; t < kRunStateCount; ++t) {
      auto from = static_cast<RunState>(f), to = static_cast<RunState>(t);
      uint64_t id = RunIn(from);
      wtd::Run before = *runs_->Get(id);
      size_t events = CountFamily(Family::kEvents);
      Result<wtd::Run> r = runs_->Transition(id, from, to);
      if (IsLegalTransition(from, to)) {
        ++legal;
        ASSERT_TRUE(r.ok()) << RunStateName(from) << "->" << RunStateName(to) << ": "
                            << r.status().ToString();
        EXPECT_EQ(runs_->Get(id)->state, to);
        EXPECT_EQ(CountFamily(Family::kEvents), events + 1);
        bool active = store_->Get(Family::kActive, EncodeU64Key(id)).ok();
        EXPECT_EQ(active, !IsTerminal(to));
      } else {
        ++illegal;
        ASSERT_FALSE(r.ok()) << RunStateName(from) << "->" << RunStateName(to);
        EXPECT_TRUE(r.status().IsFailedPrecondition());
        EXPECT_EQ(*runs_->Get(id), before);
        EXPECT_EQ(CountFamily(Family::kEvents), events);
      }
    }
  }
  EXPECT_EQ(legal, 32);  // the edges drawn in docs/design/state-machine.md
  EXPECT_EQ(illegal, 144 - 32);
}

TEST_F(RunStoreTest, TransitionFromTheWrongStateIsRefused) {
  uint64_t id = RunIn(S::kLeased);
  Result<wtd::Run> r = runs_->Transition(id, S::kPending, S::kLeased);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is leased, not pending"), std::string::npos);
  EXPECT_TRUE(runs_->Lease(id).status().IsFailedPrecondition());
}

TEST_F(RunStoreTest, EnqueueIsIdempotentOnKeyAndCommitsTheCursorWithTheRuns) {
  NewRun a = MakeNew(std::string(40, 'a'));
  NewRun b = MakeNew(std::string(40, 'b'));
  CursorUpdate cur{"/repo", "main", "main", Cursor{std::string(40, 'b'), 100, 0, {}, 0}};
  Result<std::vector<wtd::Run>> first = runs_->Enqueue({a, b, a}, cur);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 2u);
  Result<std::vector<wtd::Run>> again = runs_->Enqueue({a, b}, std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  EXPECT_EQ(CountFamily(Family::kRuns), 2u);
  Result<std::optional<Cursor>> c = runs_->GetCursor("/repo", "main", "main");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->sha, std::string(40, 'b'));
  EXPECT_EQ(*runs_->FindByKey(a.key), first->at(0).id);
  EXPECT_TRUE(runs_->FindByKey(MakeNew(std::string(40, 'c')).key).status().IsNotFound());
}

TEST_F(RunStoreTest, EnqueueRefusesEmptyOrNulKeyParts) {
  NewRun bad = MakeNew(std::string(40, 'a'));
  bad.key.job = std::string("a\0b", 3);
  EXPECT_TRUE(runs_->Enqueue({bad}, std::nullopt).status().IsInvalidArgument());
  bad.key.job = "";
  EXPECT_TRUE(runs_->Enqueue({bad}, std::nullopt).status().IsInvalidArgument());
  EXPECT_EQ(CountFamily(Family::kRuns), 0u);
}

TEST_F(RunStoreTest, IdsAndEventsContinueAfterReopen) {
  uint64_t first = NewRunId();
  Open();
  uint64_t second = NewRunId();
  EXPECT_GT(second, first);
  EXPECT_EQ(CountFamily(Family::kEvents), 2u);
}

TEST_F(RunStoreTest, FailedAttemptsRetryWithBackoffUntilAttemptsAreSpent) {
  uint64_t id = NewRunId(/*max_attempts=*/2);
  ProcessIdentity proc{1, 2, "b"};
  AttemptOutcome fail;
  fail.exit_code = 3;
  ASSERT_TRUE(runs_->Lease(id).ok());
  ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
  ASSERT_TRUE(runs_->MarkRunning(id, proc, 1, "/l").ok());
  Result<wtd::Run> r = runs_->Finish(id, fail);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, S::kRetryWait);
  EXPECT_EQ(r->attempt, 1u);
  EXPECT_EQ(r->not_before_ms, clock_.NowMs() + 1000);
  EXPECT_TRUE(runs_->Wake(id).status().IsFailedPrecondition());  // too early
  clock_.AdvanceMs(1000);
  ASSERT_TRUE(runs_->Wake(id).ok());
  ASSERT_TRUE(runs_->Lease(id).ok());
  ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
  ASSERT_TRUE(runs_->MarkRunning(id, proc, 1, "/l").ok());
  r = runs_->Finish(id, fail);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, S::kFailed);
  EXPECT_EQ(r->attempt, 2u);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_NE(r->finished_at_ms, 0);
  EXPECT_FALSE(store_->Get(Family::kActive, EncodeU64Key(id)).ok());
}

TEST_F(RunStoreTest, TimeoutOnLastAttemptIsTimedOut) {
  uint64_t id = RunIn(S::kTimedOut);
  EXPECT_EQ(runs_->Get(id)->state, S::kTimedOut);
}

TEST_F(RunStoreTest, SpawnFailureUsesAnAttempt) {
  uint64_t id = NewRunId(1);
  ASSERT_TRUE(runs_->Lease(id).ok());
  ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
  Result<wtd::Run> r = runs_->SpawnFailed(id, "no shim");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, S::kFailed);
  EXPECT_EQ(r->error, "no shim");
}

TEST_F(RunStoreTest, ListsActiveAndFiltersHistoryNewestFirst) {
  uint64_t done = RunIn(S::kSucceeded);
  uint64_t pending = RunIn(S::kPending);
  uint64_t running = RunIn(S::kRunning);
  Result<std::vector<wtd::Run>> active = runs_->ListActive();
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 2u);
  EXPECT_EQ(active->at(0).id, pending);
  EXPECT_EQ(active->at(1).id, running);
  Result<std::vector<wtd::Run>> all = runs_->List(RunFilter{});
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(all->at(0).id, running);
  RunFilter only_done;
  only_done.state = S::kSucceeded;
  EXPECT_EQ(runs_->List(only_done)->at(0).id, done);
  RunFilter limited;
  limited.limit = 1;
  EXPECT_EQ(runs_->List(limited)->size(), 1u);
  RunFilter other_job;
  other_job.job = "deploy";
  EXPECT_TRUE(runs_->List(other_job)->empty());
}

TEST_F(RunStoreTest, CorruptRunRecordIsReportedNamingTheKeyAndOthersStillRead) {
  uint64_t good = RunIn(S::kPending);
  uint64_t bad = RunIn(S::kPending);
  WriteBatch b;
  b.Put(Family::kRuns, EncodeU64Key(bad), "garbage");
  ASSERT_TRUE(store_->Commit(b).ok());
  Result<wtd::Run> r = runs_->Get(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption());
  EXPECT_NE(r.status().message().find("runs/" + std::to_string(bad)), std::string::npos);
  EXPECT_TRUE(runs_->Get(good).ok());
  EXPECT_EQ(runs_->Get(999).status(), Status::NotFound("run 999 not found"));
}

TEST_F(RunStoreTest, TrimEventsKeepsTheNewest) {
  for (int i = 0; i < 5; ++i) RunIn(S::kSucceeded);  // 5 * 5 events
  size_t before = CountFamily(Family::kEvents);
  ASSERT_TRUE(runs_->TrimEvents(10).ok());
  EXPECT_EQ(CountFamily(Family::kEvents), 10u);
  EXPECT_GT(before, 10u);
}

}  // namespace
}  // namespace wtd
