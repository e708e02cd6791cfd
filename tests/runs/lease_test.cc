// Lock leases in the run store: acquisition with a fencing token, every
// later write checked against that token in the batch that applies it, the
// finishing and skipped states, release on every path that ends an attempt,
// and the watched repositories.
#include <gtest/gtest.h>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/string.hpp>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"
#include "runs/run_store.h"
#include "store/keys.h"
#include "store/records.h"

namespace wtd {
namespace {

using S = RunState;

constexpr char kRepo[] = "/repo";

class LeaseTest : public ::testing::Test {
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

  uint64_t NewRunId(uint32_t max_attempts = 3, const std::string& job = "build") {
    std::string sha(40, '0');
    std::string n = std::to_string(++seq_);
    sha.replace(40 - n.size(), n.size(), n);
    NewRun r;
    r.key = RunKey{kRepo, "main", job, sha};
    r.max_attempts = max_attempts;
    r.retry_backoff_ms = 1000;
    Result<std::vector<wtd::Run>> created = runs_->Enqueue({r}, std::nullopt);
    EXPECT_TRUE(created.ok() && created->size() == 1);
    return created->at(0).id;
  }

  LeaseRequest Request(const std::string& blob = std::string(40, 'a')) {
    return LeaseRequest{"host-a", "boot-a", 4000, 77, store_->incarnation(), 60'000, blob, {}};
  }

  // A new run, leased with a lease; returns its id and token.
  std::pair<uint64_t, uint64_t> Leased(uint32_t max_attempts = 3) {
    uint64_t id = NewRunId(max_attempts);
    Result<LeasedRun> r = runs_->AcquireLease(id, Request());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return {id, r->lease.fencing_token};
  }

  std::pair<uint64_t, uint64_t> Running(uint32_t max_attempts = 3) {
    auto [id, token] = Leased(max_attempts);
    EXPECT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
    Result<wtd::Run> r = runs_->MarkRunning(id, proc_, 1, "/log", LeaseUpdate{token, ""});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return {id, token};
  }

  std::string NameOf(uint64_t id) { return LockName(runs_->Get(id)->key); }

  std::optional<Lease> RowOf(uint64_t id) {
    Result<std::optional<Lease>> l = runs_->GetLease(kRepo, NameOf(id));
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : std::nullopt;
  }

  // Everything a refusal must leave unchanged.
  struct Snapshot {
    wtd::Run run;
    std::optional<Lease> row;
    uint64_t commits;
  };
  Snapshot Take(uint64_t id) { return Snapshot{*runs_->Get(id), RowOf(id), store_->commits()}; }
  void ExpectUnchanged(uint64_t id, const Snapshot& s) {
    EXPECT_EQ(*runs_->Get(id), s.run);
    EXPECT_EQ(RowOf(id), s.row);
    EXPECT_EQ(store_->commits(), s.commits);
  }

  static AttemptOutcome Exit(int code) {
    AttemptOutcome o;
    o.exit_code = code;
    o.duration_ms = 12;
    return o;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  ProcessIdentity proc_{5000, 99, "boot-a"};
  int seq_ = 0;
};

TEST_F(LeaseTest, AcquireCommitsTheRunAndAHeldRowWithAFreshTokenInOneBatch) {
  uint64_t id = NewRunId();
  uint64_t commits = store_->commits();
  Result<LeasedRun> r = runs_->AcquireLease(id, Request());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(store_->commits(), commits + 1);
  EXPECT_EQ(r->run.state, S::kLeased);
  EXPECT_EQ(r->run.lease_token, 1u);
  const Lease& l = r->lease;
  EXPECT_EQ(l.fencing_token, 1u);
  EXPECT_EQ(l.repo, kRepo);
  EXPECT_EQ(l.name, "main/build/" + runs_->Get(id)->key.sha);
  EXPECT_EQ(l.state, LeaseState::kHeld);
  EXPECT_EQ(l.run_id, id);
  EXPECT_EQ(l.host, "host-a");
  EXPECT_EQ(l.pid, 4000);
  EXPECT_EQ(l.acquired_at_ms, clock_.NowMs());
  EXPECT_EQ(l.expires_at_ms, clock_.NowMs() + 60'000);
  EXPECT_EQ(l.ref_blob, std::string(40, 'a'));
  EXPECT_EQ(RowOf(id), l);
  EXPECT_EQ(*runs_->LeaseOfRun(id), l);
  EXPECT_EQ(runs_->Get(id)->lease_token, 1u);
  EXPECT_EQ(runs_->LastFencingToken(), 1u);
  EXPECT_EQ(*store_->Get(Family::kMeta, "fencing_token"), EncodeU64Key(1));
}

TEST_F(LeaseTest, AcquireIsRefusedWhenARowExistsOrTheRunIsNotPendingAndWritesNothing) {
  auto [leased, token] = Leased();
  Snapshot s = Take(leased);
  Result<LeasedRun> again = runs_->AcquireLease(leased, Request());
  EXPECT_EQ(again.status().message(), "run " + std::to_string(leased) + " is leased, not pending");
  ExpectUnchanged(leased, s);

  // Its earlier lease still releasing: drop it first.
  ASSERT_TRUE(runs_->Requeue(leased, S::kLeased, "test").ok());
  s = Take(leased);
  again = runs_->AcquireLease(leased, Request());
  ASSERT_TRUE(again.status().IsFailedPrecondition());
  EXPECT_NE(again.status().message().find("still releasing"), std::string::npos);
  ExpectUnchanged(leased, s);
  EXPECT_EQ(runs_->LastFencingToken(), token);

  // A row of another run at the same name (cannot happen through run_keys;
  // planted here): refused.
  uint64_t other = NewRunId();
  Lease planted;
  planted.repo = kRepo;
  planted.name = NameOf(other);
  planted.run_id = 999;
  planted.fencing_token = 77;
  WriteBatch b;
  b.Put(Family::kLocks, EncodeLeaseKey(kRepo, planted.name), EncodeLease(planted));
  ASSERT_TRUE(store_->Commit(b).ok());
  s = Take(other);
  Result<LeasedRun> refused = runs_->AcquireLease(other, Request());
  EXPECT_EQ(refused.status().message(),
            "lease " + planted.name + " in /repo is held in this " + "store by run 999 (token 77)");
  ExpectUnchanged(other, s);
}

TEST_F(LeaseTest, TokensGrowAcrossContentionReacquisitionDropAndReopen) {
  auto [id, t1] = Leased();
  ASSERT_TRUE(runs_->LockContended(id, t1, clock_.NowMs(), "held by host-b").ok());
  ASSERT_TRUE(runs_->Wake(id).ok());
  Result<LeasedRun> second = runs_->AcquireLease(id, Request());
  ASSERT_TRUE(second.ok());
  uint64_t t2 = second->lease.fencing_token;
  EXPECT_GT(t2, t1);
  ASSERT_TRUE(runs_->Cancel(id, S::kLeased, "test").ok());
  ASSERT_TRUE(runs_->DropLease(kRepo, NameOf(id), t2).ok());
  EXPECT_FALSE(RowOf(id).has_value());
  Open();  // the counter is durable, not derived from the rows (all gone)
  EXPECT_EQ(runs_->LastFencingToken(), t2);
  auto [next, t3] = Leased();
  EXPECT_GT(t3, t2);
  (void)next;
}

TEST_F(LeaseTest, LockContendedWaitsWithoutAnAttemptAndCountsPerRunAndPerJob) {
  auto [id, token] = Leased();
  Snapshot s = Take(id);
  EXPECT_TRUE(runs_->LockContended(id, token + 1, 0, "x").status().IsFailedPrecondition());
  EXPECT_TRUE(runs_->LockContended(id, 0, 0, "x").status().IsInvalidArgument());
  ExpectUnchanged(id, s);
  int64_t not_before = clock_.NowMs() + 5000;
  Result<wtd::Run> r = runs_->LockContended(id, token, not_before, "lock held by host-b");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(store_->commits(), s.commits + 1);
  EXPECT_EQ(r->state, S::kRetryWait);
  EXPECT_EQ(r->attempt, 0u);
  EXPECT_EQ(r->lock_waits, 1u);
  EXPECT_EQ(r->lease_token, 0u);
  EXPECT_EQ(r->not_before_ms, not_before);
  EXPECT_EQ(r->error, "lock held by host-b");
  EXPECT_FALSE(RowOf(id).has_value());
  EXPECT_EQ(*runs_->GetJobLockWaits(kRepo, "build"), 1u);
  EXPECT_EQ(*runs_->GetJobLockWaits(kRepo, "deploy"), 0u);
  // Wrong state: no longer leased.
  EXPECT_EQ(runs_->LockContended(id, token, 0, "x").status().message(),
            "run " + std::to_string(id) + " is retry_wait, not leased");

  auto [other, other_token] = Leased();
  ASSERT_TRUE(runs_->LockContended(other, other_token, 0, "again").ok());
  Result<std::vector<JobLockWaits>> all = runs_->ListJobLockWaits();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->at(0).repo, kRepo);
  EXPECT_EQ(all->at(0).job, "build");
  EXPECT_EQ(all->at(0).waits, 2u);
}

TEST_F(LeaseTest, RenewalMovesExpiryAndBlobsAndAStaleTokenIsFenced) {
  auto [id, token] = Leased();
  std::string name = NameOf(id);
  Result<Lease> renewed = runs_->RenewLease(kRepo, name, token, 5'000, std::string(40, 'b'));
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->expires_at_ms, 5'000);
  EXPECT_EQ(renewed->ref_blob, std::string(40, 'b'));
  EXPECT_EQ(renewed->prev_ref_blob, std::string(40, 'a'));
  EXPECT_EQ(RowOf(id), *renewed);
  renewed = runs_->RenewLease(kRepo, name, token, 6'000, "");  // "" keeps the blobs
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->ref_blob, std::string(40, 'b'));
  EXPECT_EQ(renewed->prev_ref_blob, std::string(40, 'a'));

  // The run lets go and takes the lock again: the old token is stale.
  ASSERT_TRUE(runs_->LockContended(id, token, clock_.NowMs(), "held").ok());
  Result<Lease> none = runs_->RenewLease(kRepo, name, token, 7'000, "");
  EXPECT_EQ(none.status().message(),
            "lease " + name + " in /repo: no lease (token " + std::to_string(token) + ")");
  ASSERT_TRUE(runs_->Wake(id).ok());
  uint64_t current = runs_->AcquireLease(id, Request())->lease.fencing_token;
  Snapshot s = Take(id);
  Result<Lease> stale = runs_->RenewLease(kRepo, name, token, 7'000, std::string(40, 'c'));
  EXPECT_EQ(stale.status().message(), "lease " + name + " in /repo fenced: token " +
                                          std::to_string(token) + " is stale, current " +
                                          std::to_string(current));
  ExpectUnchanged(id, s);
  // A releasing lease is not renewed.
  ASSERT_TRUE(runs_->Requeue(id, S::kLeased, "test").ok());
  s = Take(id);
  Result<Lease> releasing = runs_->RenewLease(kRepo, name, current, 8'000, "");
  EXPECT_EQ(releasing.status().message(), "lease " + name + " in /repo is releasing, not held");
  ExpectUnchanged(id, s);
}

TEST_F(LeaseTest, MarkRunningRecordsTheJobOnTheLeaseInTheSameBatch) {
  auto [id, token] = Leased();
  ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
  Snapshot s = Take(id);
  // A holder must give its token, and the right one.
  EXPECT_TRUE(runs_->MarkRunning(id, proc_, 1, "/log").status().IsFailedPrecondition());
  EXPECT_TRUE(runs_->MarkRunning(id, proc_, 1, "/log", LeaseUpdate{token + 5, ""})
                  .status()
                  .IsFailedPrecondition());
  ExpectUnchanged(id, s);
  Result<wtd::Run> r =
      runs_->MarkRunning(id, proc_, 1, "/log", LeaseUpdate{token, std::string(40, 'j')});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(store_->commits(), s.commits + 1);
  EXPECT_EQ(r->state, S::kRunning);
  EXPECT_EQ(r->attempt, 1u);
  std::optional<Lease> row = RowOf(id);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->state, LeaseState::kHeld);
  EXPECT_EQ(row->job_pid, 5000);
  EXPECT_EQ(row->job_start_time, 99u);
  EXPECT_EQ(row->ref_blob, std::string(40, 'j'));
  EXPECT_EQ(row->prev_ref_blob, std::string(40, 'a'));
  // A run without a lease cannot claim one.
  uint64_t plain = NewRunId();
  ASSERT_TRUE(runs_->Lease(plain).ok());
  ASSERT_TRUE(runs_->MarkReady(plain, S::kLeased).ok());
  EXPECT_EQ(runs_->MarkRunning(plain, proc_, 1, "/l", LeaseUpdate{1, ""}).status().message(),
            "run " + std::to_string(plain) + " holds no lease (token 1 given)");
}

TEST_F(LeaseTest, FinishingRecordsTheOutcomeThenCompletingReleasesTheLease) {
  auto [id, token] = Running();
  // Finish is for runs without a lease.
  Snapshot s = Take(id);
  EXPECT_TRUE(runs_->Finish(id, Exit(0)).status().IsFailedPrecondition());
  EXPECT_TRUE(runs_->BeginFinish(id, token - 1, Exit(0)).status().IsFailedPrecondition());
  EXPECT_TRUE(runs_->CompleteFinish(id, token).status().IsFailedPrecondition());  // running
  ExpectUnchanged(id, s);

  Result<wtd::Run> f = runs_->BeginFinish(id, token, Exit(0));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->state, S::kFinishing);
  EXPECT_EQ(f->finish_state, S::kSucceeded);
  EXPECT_EQ(f->exit_code, 0);
  EXPECT_EQ(f->duration_ms, 12);
  EXPECT_EQ(f->lease_token, token);
  EXPECT_EQ(RowOf(id)->state, LeaseState::kHeld);  // renewed while the receipt is written
  EXPECT_TRUE(runs_->Get(id).ok());
  EXPECT_TRUE(store_->Get(Family::kActive, EncodeU64Key(id)).ok());
  // Not cancellable: the outcome is decided.
  EXPECT_TRUE(runs_->Cancel(id, S::kFinishing, "x").status().IsFailedPrecondition());

  s = Take(id);
  EXPECT_TRUE(runs_->CompleteFinish(id, token + 1).status().IsFailedPrecondition());
  ExpectUnchanged(id, s);
  Result<wtd::Run> done = runs_->CompleteFinish(id, token);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(store_->commits(), s.commits + 1);
  EXPECT_EQ(done->state, S::kSucceeded);
  EXPECT_EQ(done->lease_token, 0u);
  EXPECT_NE(done->finished_at_ms, 0);
  EXPECT_FALSE(store_->Get(Family::kActive, EncodeU64Key(id)).ok());
  EXPECT_EQ(RowOf(id)->state, LeaseState::kReleasing);
  EXPECT_EQ(RowOf(id)->fencing_token, token);
}

TEST_F(LeaseTest, AFailedAttemptFinishesIntoRetryWaitOrFailedAsFinishDecides) {
  auto [id, token] = Running(/*max_attempts=*/2);
  Result<wtd::Run> f = runs_->BeginFinish(id, token, Exit(3));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->finish_state, S::kRetryWait);
  EXPECT_EQ(f->not_before_ms, clock_.NowMs() + 1000);
  Result<wtd::Run> r = runs_->CompleteFinish(id, token);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, S::kRetryWait);
  EXPECT_EQ(r->attempt, 1u);

  auto [last, last_token] = Running(/*max_attempts=*/1);
  AttemptOutcome timeout = Exit(-1);
  timeout.term_signal = 9;
  timeout.timed_out = true;
  EXPECT_EQ(runs_->BeginFinish(last, last_token, timeout)->finish_state, S::kTimedOut);
  EXPECT_EQ(runs_->CompleteFinish(last, last_token)->state, S::kTimedOut);
}

TEST_F(LeaseTest, AStaleHoldersLateOutcomeIsRefused) {
  auto [id, old_token] = Running();
  // The daemon loses the attempt (as recovery does), lets the lock go and
  // takes it again for the next attempt.
  ASSERT_TRUE(runs_->Interrupt(id, "interrupted").ok());
  ASSERT_TRUE(runs_->DropLease(kRepo, NameOf(id), old_token).ok());
  ASSERT_TRUE(runs_->Wake(id).ok());
  uint64_t token = runs_->AcquireLease(id, Request())->lease.fencing_token;
  ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
  ASSERT_TRUE(runs_->MarkRunning(id, proc_, 1, "/log", LeaseUpdate{token, ""}).ok());
  Snapshot s = Take(id);
  Result<wtd::Run> late = runs_->BeginFinish(id, old_token, Exit(0));
  EXPECT_EQ(late.status().message(), "lease " + NameOf(id) + " in /repo fenced: token " +
                                         std::to_string(old_token) + " is stale, current " +
                                         std::to_string(token));
  EXPECT_TRUE(
      runs_->RenewLease(kRepo, NameOf(id), old_token, 1, "").status().IsFailedPrecondition());
  EXPECT_TRUE(runs_->DropLease(kRepo, NameOf(id), old_token).IsFailedPrecondition());
  ExpectUnchanged(id, s);
  ASSERT_TRUE(runs_->BeginFinish(id, token, Exit(0)).ok());
  s = Take(id);
  EXPECT_TRUE(runs_->CompleteFinish(id, old_token).status().IsFailedPrecondition());
  EXPECT_TRUE(runs_->SkipDone(id, old_token, "x").status().IsFailedPrecondition());
  ExpectUnchanged(id, s);
}

TEST_F(LeaseTest, SkipDoneFromLeasedOrFinishingReleasesTheLease) {
  auto [leased, t1] = Leased();
  Result<wtd::Run> r = runs_->SkipDone(leased, t1, "host-b pid 12 run 7");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, S::kSkipped);
  EXPECT_EQ(r->error, "done by host-b pid 12 run 7");
  EXPECT_EQ(r->attempt, 0u);
  EXPECT_EQ(RowOf(leased)->state, LeaseState::kReleasing);
  EXPECT_FALSE(store_->Get(Family::kActive, EncodeU64Key(leased)).ok());

  auto [finishing, t2] = Running();
  ASSERT_TRUE(runs_->BeginFinish(finishing, t2, Exit(0)).ok());
  ASSERT_TRUE(runs_->SkipDone(finishing, t2, "host-b pid 12 run 8").ok());
  EXPECT_EQ(runs_->Get(finishing)->state, S::kSkipped);
  EXPECT_EQ(RowOf(finishing)->state, LeaseState::kReleasing);

  auto [running, t3] = Running();
  Snapshot s = Take(running);
  EXPECT_EQ(runs_->SkipDone(running, t3, "x").status().message(),
            "run " + std::to_string(running) + " is running, not leased or finishing");
  ExpectUnchanged(running, s);
}

TEST_F(LeaseTest, EveryOtherPathThatEndsTheHoldMarksTheLeaseReleasing) {
  struct Case {
    const char* what;
    std::function<Result<wtd::Run>(uint64_t)> end;
    bool running;
  };
  std::vector<Case> cases = {
      {"interrupt", [&](uint64_t id) { return runs_->Interrupt(id, "stop"); }, true},
      {"cancel running", [&](uint64_t id) { return runs_->Cancel(id, S::kRunning, "x"); }, true},
      {"requeue leased", [&](uint64_t id) { return runs_->Requeue(id, S::kLeased, "x"); }, false},
      {"cancel leased", [&](uint64_t id) { return runs_->Cancel(id, S::kLeased, "x"); }, false},
  };
  for (const Case& c : cases) {
    auto [id, token] = c.running ? Running() : Leased();
    uint64_t commits = store_->commits();
    ASSERT_TRUE(c.end(id).ok()) << c.what;
    EXPECT_EQ(store_->commits(), commits + 1) << c.what;
    EXPECT_EQ(runs_->Get(id)->lease_token, 0u) << c.what;
    EXPECT_EQ(RowOf(id)->state, LeaseState::kReleasing) << c.what;
    EXPECT_EQ(RowOf(id)->fencing_token, token) << c.what;
  }
  auto [spawn, token] = Leased();
  ASSERT_TRUE(runs_->MarkReady(spawn, S::kLeased).ok());
  ASSERT_TRUE(runs_->SpawnFailed(spawn, "no shim").ok());
  EXPECT_EQ(RowOf(spawn)->state, LeaseState::kReleasing);
  (void)token;
}

TEST_F(LeaseTest, EveryLegalEdgeOutOfAHoldingStateKeepsOrReleasesTheLease) {
  int edges = 0;
  for (RunState from : {S::kLeased, S::kPreparing, S::kReady, S::kRunning, S::kFinishing}) {
    for (int t = 0; t < kRunStateCount; ++t) {
      auto to = static_cast<RunState>(t);
      if (!IsLegalTransition(from, to)) continue;
      auto [id, token] = Leased();
      if (from == S::kPreparing) {
        ASSERT_TRUE(runs_->Transition(id, S::kLeased, from).ok());
      }
      if (from >= S::kReady) {
        ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
      }
      if (from == S::kRunning || from == S::kFinishing) {
        ASSERT_TRUE(runs_->MarkRunning(id, proc_, 1, "/l", LeaseUpdate{token, ""}).ok());
      }
      if (from == S::kFinishing) {
        ASSERT_TRUE(runs_->BeginFinish(id, token, Exit(0)).ok());
      }
      ASSERT_EQ(runs_->Get(id)->state, from);
      ASSERT_TRUE(runs_->Transition(id, from, to).ok())
          << RunStateName(from) << " -> " << RunStateName(to);
      bool holds = IsLeaseHoldingState(to);
      EXPECT_EQ(RowOf(id)->state, holds ? LeaseState::kHeld : LeaseState::kReleasing)
          << RunStateName(from) << " -> " << RunStateName(to);
      EXPECT_EQ(runs_->Get(id)->lease_token, holds ? token : 0u);
      ++edges;
    }
  }
  EXPECT_EQ(edges, 28);
}

TEST_F(LeaseTest, DropDeletesAReleasingOrOrphanedRowIdempotentlyAndNeverAHeldOne) {
  auto [id, token] = Leased();
  std::string name = NameOf(id);
  Snapshot s = Take(id);
  EXPECT_EQ(runs_->DropLease(kRepo, name, token).message(),
            "lease " + name + " in /repo is held by run " + std::to_string(id) + " (leased)");
  ExpectUnchanged(id, s);
  ASSERT_TRUE(runs_->Requeue(id, S::kLeased, "x").ok());
  s = Take(id);
  EXPECT_TRUE(runs_->DropLease(kRepo, name, token + 1).IsFailedPrecondition());
  ExpectUnchanged(id, s);
  ASSERT_TRUE(runs_->DropLease(kRepo, name, token).ok());
  EXPECT_EQ(store_->commits(), s.commits + 1);
  EXPECT_FALSE(RowOf(id).has_value());
  uint64_t commits = store_->commits();
  EXPECT_TRUE(runs_->DropLease(kRepo, name, token).ok());  // missing: OK, nothing written
  EXPECT_EQ(store_->commits(), commits);

  // A held row whose run does not hold it (planted: its run is missing).
  Lease orphan;
  orphan.repo = kRepo;
  orphan.name = "main/job/" + std::string(40, 'e');
  orphan.run_id = 4242;
  orphan.fencing_token = 50;
  WriteBatch b;
  b.Put(Family::kLocks, EncodeLeaseKey(kRepo, orphan.name), EncodeLease(orphan));
  ASSERT_TRUE(store_->Commit(b).ok());
  ASSERT_TRUE(runs_->DropLease(kRepo, orphan.name, 50).ok());
  EXPECT_FALSE(runs_->GetLease(kRepo, orphan.name)->has_value());
}

TEST_F(LeaseTest, ReleaseOrphanLeaseMarksOnlyRowsTheirRunNoLongerHolds) {
  auto [id, token] = Leased();
  std::string name = NameOf(id);
  EXPECT_TRUE(runs_->ReleaseOrphanLease(kRepo, name, token).status().IsFailedPrecondition());
  EXPECT_EQ(RowOf(id)->state, LeaseState::kHeld);
  // Make the row an orphan behind the store's back: the run forgets it.
  wtd::Run r = *runs_->Get(id);
  r.lease_token = 0;
  WriteBatch b;
  b.Put(Family::kRuns, EncodeU64Key(id), EncodeRun(r));
  ASSERT_TRUE(store_->Commit(b).ok());
  Result<Lease> released = runs_->ReleaseOrphanLease(kRepo, name, token);
  ASSERT_TRUE(released.ok()) << released.status().ToString();
  EXPECT_EQ(released->state, LeaseState::kReleasing);
  EXPECT_EQ(RowOf(id)->state, LeaseState::kReleasing);
  uint64_t commits = store_->commits();
  EXPECT_TRUE(runs_->ReleaseOrphanLease(kRepo, name, token).ok());  // already: nothing written
  EXPECT_EQ(store_->commits(), commits);
  EXPECT_TRUE(runs_->ReleaseOrphanLease(kRepo, "main/x/y", 1).status().IsFailedPrecondition());
}

TEST_F(LeaseTest, ListLeasesAndLeaseOfRun) {
  auto [a, ta] = Leased();
  auto [b, tb] = Running();
  Result<std::vector<Lease>> all = runs_->ListLeases();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at(0).run_id, a);
  EXPECT_EQ(all->at(0).fencing_token, ta);
  EXPECT_EQ(all->at(1).run_id, b);
  EXPECT_EQ(all->at(1).fencing_token, tb);
  uint64_t none = NewRunId();
  EXPECT_FALSE(runs_->LeaseOfRun(none)->has_value());
  EXPECT_TRUE(runs_->LeaseOfRun(9999).status().IsNotFound());
  WriteBatch damage;
  damage.Put(Family::kLocks, EncodeLeaseKey(kRepo, "main/bad/x"), "garbage");
  ASSERT_TRUE(store_->Commit(damage).ok());
  Result<std::vector<Lease>> listed = runs_->ListLeases();
  ASSERT_TRUE(listed.status().IsCorruption());
  EXPECT_NE(listed.status().message().find("locks/main/bad/x"), std::string::npos);
}

WatchedRepos Watched(std::vector<std::string> paths) {
  WatchedRepos w;
  w.paths = std::move(paths);
  return w;
}

TEST_F(LeaseTest, WatchedReposRoundTripAndAnUnchangedSetWritesNothing) {
  EXPECT_TRUE(runs_->WatchedRepos()->paths.empty());
  EXPECT_EQ(runs_->WatchedRepos()->locks_root, "refs/wtd/locks");
  Result<bool> wrote = runs_->RecordWatchedRepos(Watched({"/srv/b", "/srv/a", "/srv/b"}));
  ASSERT_TRUE(wrote.ok());
  EXPECT_TRUE(*wrote);
  EXPECT_EQ(runs_->WatchedRepos()->paths, (std::vector<std::string>{"/srv/a", "/srv/b"}));
  uint64_t commits = store_->commits();
  wrote = runs_->RecordWatchedRepos(Watched({"/srv/a", "/srv/b"}));
  ASSERT_TRUE(wrote.ok());
  EXPECT_FALSE(*wrote);
  EXPECT_EQ(store_->commits(), commits);
  EXPECT_TRUE(*runs_->RecordWatchedRepos(Watched({"/srv/a"})));
  EXPECT_EQ(store_->commits(), commits + 1);
  EXPECT_TRUE(runs_->RecordWatchedRepos(Watched({""})).status().IsInvalidArgument());
  Open();
  EXPECT_EQ(runs_->WatchedRepos()->paths, std::vector<std::string>{"/srv/a"});
  commits = store_->commits();
  EXPECT_FALSE(*runs_->RecordWatchedRepos(Watched({"/srv/a"})));
  EXPECT_EQ(store_->commits(), commits);
  // Other lock settings are a change too.
  WatchedRepos moved = Watched({"/srv/a"});
  moved.locks_root = "refs/ci/locks";
  moved.notes_ref = "refs/notes/ci";
  moved.lock_grace_ms = 5'000;
  EXPECT_TRUE(*runs_->RecordWatchedRepos(moved));
  Open();
  EXPECT_EQ(*runs_->WatchedRepos(), moved);
  // An empty set is recorded once too.
  EXPECT_TRUE(*runs_->RecordWatchedRepos(Watched({})));
  EXPECT_FALSE(*runs_->RecordWatchedRepos(Watched({})));
  EXPECT_TRUE(runs_->WatchedRepos()->paths.empty());
}

TEST_F(LeaseTest, AVersionOneWatchedReposRecordReadsWithTheDefaultLockSettings) {
  // Version 1 was the paths alone: a count, then each string.
  std::ostringstream payload;
  {
    cereal::PortableBinaryOutputArchive ar(payload);
    uint32_t version = 1;
    ar(version, uint64_t{1}, std::string("/srv/a"));
  }
  WriteBatch b;
  b.Put(Family::kMeta, "watched_repos", SealRecord(RecordKind::kWatchedRepos, payload.str()));
  ASSERT_TRUE(store_->Commit(b).ok());
  Result<WatchedRepos> w = runs_->WatchedRepos();
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->paths, std::vector<std::string>{"/srv/a"});
  EXPECT_EQ(w->locks_root, "refs/wtd/locks");
  EXPECT_EQ(w->notes_ref, "refs/notes/wtd");
  EXPECT_EQ(w->lock_grace_ms, 60'000);
}

TEST_F(LeaseTest, AReapRecordIsCommittedUnderItsRepoNameAndBlob) {
  ASSERT_TRUE(runs_->RecordLockReap(kRepo, "main/build/abc", "b10b", "{\"by\":\"test\"}").ok());
  Result<std::string> v = store_->Get(Family::kMeta, std::string("lock_reap/") + kRepo + '\x1f' +
                                                         "main/build/abc" + '\x1f' + "b10b");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, "{\"by\":\"test\"}");
  EXPECT_TRUE(runs_->RecordLockReap("", "main/build/abc", "b", "{}").IsInvalidArgument());
}

TEST_F(LeaseTest, TheObserverHearsEachCommittedChangeAndNoRefusedOne) {
  std::vector<std::pair<RunState, RunState>> moves;
  int contended = 0;
  RunStoreObserver o;
  o.transition = [&](RunState from, const wtd::Run& after) {
    moves.emplace_back(from, after.state);
  };
  o.lock_contended = [&](const wtd::Run& run) {
    ++contended;
    EXPECT_EQ(run.state, S::kRetryWait);
    EXPECT_EQ(run.lock_waits, 1u);
  };
  runs_->SetObserver(o);
  auto [id, token] = Leased();
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0], std::make_pair(S::kPending, S::kLeased));
  // Refused: nothing heard.
  EXPECT_FALSE(runs_->LockContended(id, token + 1, 0, "x").ok());
  EXPECT_FALSE(runs_->Wake(id).ok());
  EXPECT_EQ(moves.size(), 1u);
  EXPECT_EQ(contended, 0);
  ASSERT_TRUE(runs_->LockContended(id, token, 0, "held by host-b").ok());
  EXPECT_EQ(contended, 1);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[1], std::make_pair(S::kLeased, S::kRetryWait));
  ASSERT_TRUE(runs_->Wake(id).ok());
  ASSERT_TRUE(runs_->Cancel(id, S::kPending, "test").ok());
  ASSERT_EQ(moves.size(), 4u);
  EXPECT_EQ(moves[3], std::make_pair(S::kPending, S::kCancelled));
}

}  // namespace
}  // namespace wtd
