#include "recovery/recovery.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <utility>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "exec/exit_record.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "fakes/temp_dir.h"
#include "store/keys.h"

namespace wtd {
namespace {

using S = RunState;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_, RetryPolicy(60'000, 0.0, 1));
    ASSERT_TRUE(runs_->Init().ok());
  }

  uint64_t Make(RunState target, uint32_t max_attempts = 3, ProcessIdentity proc = {},
                uint64_t incarnation = 1) {
    std::string sha(40, 'a' + static_cast<char>(next_++ % 6));
    sha[0] = static_cast<char>('0' + next_ % 10);
    sha[1] = static_cast<char>('0' + next_ / 10);
    NewRun n;
    n.key = RunKey{"/repo", "main", "job", sha};
    n.max_attempts = max_attempts;
    n.retry_backoff_ms = 500;
    uint64_t id = runs_->Enqueue({n}, std::nullopt)->at(0).id;
    if (target == S::kPending) return id;
    EXPECT_TRUE(runs_->Lease(id).ok());
    if (target == S::kLeased) return id;
    if (target == S::kPreparing) {
      EXPECT_TRUE(runs_->Transition(id, S::kLeased, S::kPreparing).ok());
      return id;
    }
    EXPECT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
    if (target == S::kReady) return id;
    EXPECT_TRUE(runs_->MarkRunning(id, proc, incarnation, "/log").ok());
    return id;
  }

  Result<RecoveryReport> Recover(uint64_t incarnation = 2) {
    return RunRecovery(runs_.get(), &procs_, &clock_, hooks_, incarnation,
                       RecoveryOptions{/*kill_wait_ms=*/100});
  }

  RunState StateOf(uint64_t id) { return runs_->Get(id)->state; }

  // A run with a lock lease, driven to `target` (leased, ready, running or
  // finishing) by incarnation `incarnation`; returns its id and token.
  std::pair<uint64_t, uint64_t> MakeLeased(RunState target, ProcessIdentity proc = {},
                                           uint64_t incarnation = 1, int exit_code = 0) {
    uint64_t id = Make(S::kPending);
    Result<LeasedRun> l = runs_->AcquireLease(
        id,
        LeaseRequest{"host-a", "boot-A", 10, 20, incarnation, 60'000, std::string(40, 'a'), {}});
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    uint64_t token = l->lease.fencing_token;
    if (target == S::kLeased) return {id, token};
    EXPECT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
    if (target == S::kReady) return {id, token};
    EXPECT_TRUE(runs_->MarkRunning(id, proc, incarnation, "/log", LeaseUpdate{token, ""}).ok());
    if (target == S::kRunning) return {id, token};
    AttemptOutcome o;
    o.exit_code = exit_code;
    EXPECT_TRUE(runs_->BeginFinish(id, token, o).ok());
    return {id, token};
  }

  LeaseState LeaseStateOf(uint64_t id) { return (*runs_->LeaseOfRun(id))->state; }

  std::vector<std::string> Kinds(const RecoveryReport& r) {
    std::vector<std::string> kinds;
    for (const RecoveryAction& a : r.actions) kinds.push_back(a.kind);
    return kinds;
  }

  TempDir dir_;
  FakeClock clock_;
  FakeProcessTable procs_{"boot-A"};
  RecoveryHooks hooks_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  int next_ = 0;
};

// A supervised run (Run::supervised): its pid is the supervisor's, which
// leaves runs/<id>.exit and runs/<id>.pgid under the state dir.
class SupervisedRecoveryTest : public RecoveryTest {
 protected:
  uint64_t MakeSupervised(int32_t supervisor_pid, bool alive) {
    ProcessIdentity sup{supervisor_pid, 500, "boot-A", /*supervisor=*/true};
    if (alive) procs_.Start(supervisor_pid, 500);
    uint64_t id = Make(S::kRunning, 3, sup, 1);
    EXPECT_TRUE(runs_->Get(id)->supervised);
    EXPECT_TRUE(MakeDirs(dir_.Sub("state/runs")).ok());
    return id;
  }
  void WriteExit(uint64_t id, uint32_t attempt, int exit_code, bool stopped = false) {
    ExitRecord r;
    r.run_id = id;
    r.attempt = attempt;
    r.outcome.exit_code = exit_code;
    r.outcome.stopped = stopped;
    r.outcome.log_bytes = 12;
    r.outcome.duration_ms = 40;
    ASSERT_TRUE(WriteExitRecord(RunExitPath(dir_.Sub("state"), id), r).ok());
  }
  Result<RecoveryReport> RecoverSupervised(bool plan = false) {
    RecoveryOptions o{/*kill_wait_ms=*/100};
    o.plan_only = plan;
    o.state_dir = dir_.Sub("state");
    return RunRecovery(runs_.get(), &procs_, &clock_, hooks_, 2, o);
  }
  static const RecoveryAction* Find(const RecoveryReport& r, const std::string& kind) {
    for (const RecoveryAction& a : r.actions) {
      if (a.kind == kind) return &a;
    }
    return nullptr;
  }
  bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }
};

TEST_F(SupervisedRecoveryTest, TheJobFinishedWhileDownIsRecordedWithItsOwnOutcomeNotRetried) {
  uint64_t id = MakeSupervised(4100, /*alive=*/false);
  WriteExit(id, 1, 0);
  ASSERT_TRUE(WriteFileAtomic(RunGroupPath(dir_.Sub("state"), id), "4101 77\n").ok());
  Result<RecoveryReport> planned = RecoverSupervised(/*plan=*/true);
  ASSERT_TRUE(planned.ok());
  ASSERT_NE(Find(*planned, "record_outcome"), nullptr);
  EXPECT_EQ(Find(*planned, "record_outcome")->to, S::kSucceeded);
  EXPECT_EQ(StateOf(id), S::kRunning) << "a plan changes nothing";

  Result<RecoveryReport> r = RecoverSupervised();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const RecoveryAction* a = Find(*r, "record_outcome");
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->detail.find("exit 0"), std::string::npos) << a->detail;
  wtd::Run run = *runs_->Get(id);
  EXPECT_EQ(run.state, S::kSucceeded);
  EXPECT_EQ(run.attempt, 1u) << "no re-run";
  EXPECT_EQ(run.log_bytes, 12u);
  EXPECT_TRUE(procs_.signals().empty()) << "nothing to kill";
  EXPECT_FALSE(Exists(RunExitPath(dir_.Sub("state"), id))) << "the file goes once recorded";
  EXPECT_FALSE(Exists(RunGroupPath(dir_.Sub("state"), id)));
  // Idempotent: the next pass has nothing left.
  Result<RecoveryReport> again = RecoverSupervised();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->actions.empty());
}

TEST_F(SupervisedRecoveryTest, AFailedOrStoppedOutcomeGoesWhereTheLoopWouldHaveTakenIt) {
  uint64_t failed = MakeSupervised(4200, false);
  WriteExit(failed, 1, 7);
  uint64_t stopped = MakeSupervised(4300, false);
  WriteExit(stopped, 1, -1, /*stopped=*/true);
  ASSERT_TRUE(RecoverSupervised().ok());
  EXPECT_EQ(StateOf(failed), S::kRetryWait);  // attempt 1 of 3
  EXPECT_EQ(runs_->Get(failed)->exit_code, 7);
  EXPECT_EQ(StateOf(stopped), S::kRetryWait);
  EXPECT_NE(runs_->Get(stopped)->error.find("interrupted"), std::string::npos);
}

TEST_F(SupervisedRecoveryTest, ALiveSupervisorIsAdoptedNotKilled) {
  uint64_t id = MakeSupervised(4400, /*alive=*/true);
  std::vector<uint64_t> adopted;
  hooks_.adopt = [&](const wtd::Run& r) -> Result<wtd::Run> {
    adopted.push_back(r.id);
    return runs_->Adopt(r.id, r.incarnation, 2);
  };
  Result<RecoveryReport> r = RecoverSupervised();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(adopted, std::vector<uint64_t>{id});
  ASSERT_NE(Find(*r, "adopt_run"), nullptr);
  EXPECT_EQ(StateOf(id), S::kRunning);
  EXPECT_EQ(runs_->Get(id)->incarnation, 2u) << "this incarnation's now";
  EXPECT_TRUE(procs_.signals().empty());
  // The job still running at the next recovery (another crash): adopted again.
  Result<RecoveryReport> next = RunRecovery(runs_.get(), &procs_, &clock_, hooks_, 3, [&] {
    RecoveryOptions o{100};
    o.state_dir = dir_.Sub("state");
    return o;
  }());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(adopted.size(), 2u);
}

TEST_F(SupervisedRecoveryTest, WithoutAnAdopterALiveSupervisorIsLeftForTheDaemon) {
  uint64_t id = MakeSupervised(4500, true);
  Result<RecoveryReport> r = RecoverSupervised();
  ASSERT_TRUE(r.ok());
  ASSERT_NE(Find(*r, "leave_running"), nullptr);
  EXPECT_EQ(StateOf(id), S::kRunning);
  EXPECT_EQ(runs_->Get(id)->incarnation, 1u);
  EXPECT_TRUE(procs_.signals().empty());
}

TEST_F(SupervisedRecoveryTest, ASupervisorThatEndedDuringAdoptionHasItsOutcomeLookedForAgain) {
  uint64_t id = MakeSupervised(4600, true);
  hooks_.adopt = [&](const wtd::Run& r) -> Result<wtd::Run> {
    procs_.Exit(4600);
    WriteExit(r.id, 1, 0);
    return Status::NotFound("supervisor gone");
  };
  ASSERT_TRUE(RecoverSupervised().ok());
  EXPECT_EQ(StateOf(id), S::kSucceeded);
}

TEST_F(SupervisedRecoveryTest, ASupervisorThatDiedDuringAdoptionHasItsJobKilledAndIsRetried) {
  uint64_t id = MakeSupervised(4650, true);
  procs_.Start(4651, 99);  // its job lives on
  ASSERT_TRUE(WriteFileAtomic(RunGroupPath(dir_.Sub("state"), id), "4651 99\n").ok());
  hooks_.adopt = [&](const wtd::Run&) -> Result<wtd::Run> {
    procs_.Exit(4650);  // killed, no exit file
    return Status::NotFound("supervisor gone");
  };
  Result<RecoveryReport> r = RecoverSupervised();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(StateOf(id), S::kRetryWait);
  EXPECT_EQ(procs_.signals(), (std::vector<std::pair<int32_t, int>>{{4651, SIGKILL}}))
      << "the retry must not run beside the old job";
}

TEST_F(SupervisedRecoveryTest, AGoneSupervisorIsRetriedAndWhatItsJobLeftIsKilled) {
  uint64_t id = MakeSupervised(4700, /*alive=*/false);
  procs_.Start(4701, 88);  // its job, orphaned but alive
  ASSERT_TRUE(WriteFileAtomic(RunGroupPath(dir_.Sub("state"), id), "4701 88\n").ok());
  Result<RecoveryReport> r = RecoverSupervised();
  ASSERT_TRUE(r.ok());
  const RecoveryAction* a = Find(*r, "interrupt_run");
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->detail.find("killed its job's process group 4701"), std::string::npos) << a->detail;
  EXPECT_EQ(StateOf(id), S::kRetryWait);
  EXPECT_EQ(procs_.signals(), (std::vector<std::pair<int32_t, int>>{{4701, SIGKILL}}));
}

TEST_F(SupervisedRecoveryTest, ATornOrStaleExitFileIsNoOutcomeAndIsReported) {
  uint64_t torn = MakeSupervised(4800, false);
  ASSERT_TRUE(WriteFileAtomic(RunExitPath(dir_.Sub("state"), torn), "{\"format\":\"wtd-e").ok());
  uint64_t stale = MakeSupervised(4900, false);
  WriteExit(stale, /*attempt=*/7, 0);  // another attempt's
  Result<RecoveryReport> r = RecoverSupervised();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(StateOf(torn), S::kRetryWait);
  EXPECT_EQ(StateOf(stale), S::kRetryWait);
  int reported = 0;
  for (const RecoveryAction& a : r->actions) {
    if (a.kind == "interrupt_run" && a.detail.find("exit file not used") != std::string::npos) {
      ++reported;
    }
  }
  EXPECT_EQ(reported, 2);
}

TEST_F(SupervisedRecoveryTest, AnUnknownBootSignalsNothingAndAdoptsNothing) {
  uint64_t id = MakeSupervised(5000, true);
  procs_.SetBootId(kUnknownBootId);
  bool asked = false;
  hooks_.adopt = [&](const wtd::Run&) -> Result<wtd::Run> {
    asked = true;
    return Status::Aborted("never");
  };
  ASSERT_TRUE(RecoverSupervised().ok());
  EXPECT_FALSE(asked);
  EXPECT_EQ(StateOf(id), S::kRetryWait);
  EXPECT_TRUE(procs_.signals().empty());
}

TEST_F(RecoveryTest, RunningWithDeadProcessIsRetriedAndSecondPassDoesNothing) {
  uint64_t id = Make(S::kRunning, 3, {100, 5, "boot-A"});  // pid 100 not in the table
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->actions.size(), 1u);
  EXPECT_EQ(r->actions[0].from, S::kRunning);
  EXPECT_EQ(r->actions[0].to, S::kRetryWait);
  EXPECT_EQ(StateOf(id), S::kRetryWait);
  EXPECT_EQ(runs_->Get(id)->attempt, 1u);
  EXPECT_TRUE(procs_.signals().empty());
  Result<RecoveryReport> again = Recover();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->actions.empty());
}

TEST_F(RecoveryTest, InterruptedRunRetriesBeyondMaxAttemptsByTheAllowanceThenFails) {
  uint64_t id = Make(S::kRunning, 1, {100, 5, "boot-A"});
  uint64_t incarnation = 2;
  for (uint32_t attempt = 1; attempt < 1 + kInterruptAllowance; ++attempt) {
    ASSERT_TRUE(Recover(incarnation).ok());
    ASSERT_EQ(StateOf(id), S::kRetryWait) << "attempt " << attempt;
    ASSERT_TRUE(runs_->Wake(id).ok());  // retried at once: no backoff
    ASSERT_TRUE(runs_->Lease(id).ok());
    ASSERT_TRUE(runs_->MarkReady(id, S::kLeased).ok());
    ASSERT_TRUE(runs_->MarkRunning(id, {100, 5, "boot-A"}, incarnation++, "/log").ok());
  }
  ASSERT_TRUE(Recover(incarnation).ok());
  EXPECT_EQ(StateOf(id), S::kFailed);
  EXPECT_EQ(runs_->Get(id)->attempt, 1 + kInterruptAllowance);
}

TEST_F(RecoveryTest, SurvivorFromAnEarlierIncarnationIsKilledOnlyWhenIdentityMatches) {
  procs_.Start(200, 77);
  procs_.Start(300, 88);
  procs_.Start(400, 99);
  uint64_t match = Make(S::kRunning, 3, {200, 77, "boot-A"});
  uint64_t reused = Make(S::kRunning, 3, {300, 12, "boot-A"});      // pid reused since
  uint64_t old_boot = Make(S::kRunning, 3, {400, 99, "boot-OLD"});  // before a reboot
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  std::vector<std::pair<int32_t, int>> expected = {{200, SIGKILL}};
  EXPECT_EQ(procs_.signals(), expected);
  EXPECT_EQ(StateOf(match), S::kRetryWait);
  EXPECT_EQ(StateOf(reused), S::kRetryWait);
  EXPECT_EQ(StateOf(old_boot), S::kRetryWait);
  EXPECT_TRUE(procs_.StartTime(300).ok());  // the unrelated processes live on
  EXPECT_TRUE(procs_.StartTime(400).ok());
}

TEST_F(RecoveryTest, WhatAGoneProcessLeftInItsGroupIsKilled) {
  uint64_t left = Make(S::kRunning, 3, {500, 5, "boot-A"});
  uint64_t reused = Make(S::kRunning, 3, {600, 6, "boot-A"});
  uint64_t old_boot = Make(S::kRunning, 3, {700, 7, "boot-OLD"});
  procs_.LeaveGroup(500);
  procs_.Start(600, 66);  // pid 600 now belongs to a stranger
  procs_.LeaveGroup(600);
  procs_.LeaveGroup(700);
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  std::vector<std::pair<int32_t, int>> expected = {{-500, SIGKILL}};
  EXPECT_EQ(procs_.signals(), expected);
  for (uint64_t id : {left, reused, old_boot}) EXPECT_EQ(StateOf(id), S::kRetryWait);
  ASSERT_EQ(r->actions.size(), 3u);
  EXPECT_NE(r->actions[0].detail.find("killed what was left of its process group"),
            std::string::npos)
      << r->actions[0].detail;
  EXPECT_EQ(r->actions[1].detail, "process 600 gone");
}

// /proc/sys/kernel/random/boot_id could not be read, neither by the daemon
// that recorded the runs nor now: every boot is "unknown-boot", so a pid and
// start time that match may be another boot's unrelated process.
TEST_F(RecoveryTest, OnAnUnknownBootNothingIsSignalledAndTheRunsAreRetried) {
  procs_.SetBootId(kUnknownBootId);
  procs_.Start(200, 77);   // pid and start time match the record
  procs_.LeaveGroup(300);  // pid 300 is free, its group has members
  uint64_t alive = Make(S::kRunning, 3, {200, 77, kUnknownBootId});
  uint64_t leftover = Make(S::kRunning, 3, {300, 33, kUnknownBootId});
  EXPECT_FALSE(procs_.IsAlive({200, 77, kUnknownBootId})) << "not provably the same process";
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(procs_.signals().empty()) << "something was signalled";
  EXPECT_TRUE(procs_.StartTime(200).ok());
  EXPECT_TRUE(procs_.HasLeftoverGroup(300));
  ASSERT_EQ(r->actions.size(), 2u);
  for (const RecoveryAction& a : r->actions) {
    EXPECT_EQ(a.to, S::kRetryWait);
    EXPECT_NE(a.detail.find("the boot id is unknown (/proc/sys/kernel/random/boot_id cannot be "
                            "read), so process "),
              std::string::npos)
        << a.detail;
    EXPECT_NE(a.detail.find("nothing signalled"), std::string::npos) << a.detail;
  }
  for (uint64_t id : {alive, leftover}) {
    EXPECT_EQ(StateOf(id), S::kRetryWait);
    EXPECT_NE(runs_->Get(id)->error.find("cannot be proved to be this run's"), std::string::npos)
        << runs_->Get(id)->error;
  }
}

TEST_F(RecoveryTest, ARunRecordedOnAnUnknownBootIsNeverSignalledOnAKnownOne) {
  procs_.Start(200, 77);
  procs_.LeaveGroup(300);
  uint64_t unknown = Make(S::kRunning, 3, {200, 77, kUnknownBootId});
  uint64_t empty = Make(S::kRunning, 3, {300, 33, ""});
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(procs_.signals().empty());
  ASSERT_EQ(r->actions.size(), 2u);
  for (const RecoveryAction& a : r->actions) {
    EXPECT_NE(a.detail.find("recorded with an unknown boot id"), std::string::npos) << a.detail;
  }
  EXPECT_EQ(StateOf(unknown), S::kRetryWait);
  EXPECT_EQ(StateOf(empty), S::kRetryWait);
}

TEST_F(RecoveryTest, SurvivorsThatDoNotDieAreReportedAndEveryOneIsSignalled) {
  procs_.SetSignalsKill(false);  // e.g. stuck in uninterruptible I/O
  procs_.Start(200, 2);
  procs_.Start(300, 3);
  Make(S::kRunning, 3, {200, 2, "boot-A"});
  Make(S::kRunning, 3, {300, 3, "boot-A"});
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  std::vector<std::pair<int32_t, int>> expected = {{200, SIGKILL}, {300, SIGKILL}};
  EXPECT_EQ(procs_.signals(), expected);
  EXPECT_EQ(Kinds(*r), (std::vector<std::string>{"kill_orphan_group", "kill_orphan_group",
                                                 "interrupt_run", "interrupt_run"}));
  for (const RecoveryAction& a : r->actions) {
    EXPECT_NE(a.detail.find("did not exit within 100 ms"), std::string::npos) << a.detail;
  }
}

TEST_F(RecoveryTest, AnUnreadableRunIsReportedAndTheOthersAreRecovered) {
  uint64_t bad = Make(S::kRunning, 3, {800, 8, "boot-A"});
  uint64_t good = Make(S::kRunning, 3, {900, 9, "boot-A"});
  std::string value = *store_->Get(Family::kRuns, EncodeU64Key(bad));
  value[value.size() / 2] ^= 0x10;
  WriteBatch w;
  w.Put(Family::kRuns, EncodeU64Key(bad), value);
  ASSERT_TRUE(store_->Commit(w).ok());
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->active_scanned, 2u);
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_NE(r->errors[0].find("runs/" + std::to_string(bad)), std::string::npos) << r->errors[0];
  EXPECT_EQ(StateOf(good), S::kRetryWait);
}

TEST_F(RecoveryTest, RunsOfTheCurrentIncarnationAreLeftAlone) {
  procs_.Start(200, 77);
  uint64_t id = Make(S::kRunning, 3, {200, 77, "boot-A"}, /*incarnation=*/2);
  Result<RecoveryReport> r = Recover(/*incarnation=*/2);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->actions.empty());
  EXPECT_EQ(StateOf(id), S::kRunning);
  EXPECT_TRUE(procs_.signals().empty());
}

TEST_F(RecoveryTest, UnstartedRunsReleaseTheirResourcesAndGoBackToPending) {
  std::vector<uint64_t> released;
  hooks_.release_unstarted = [&](const wtd::Run& r) {
    released.push_back(r.id);
    return Status::OK();
  };
  uint64_t leased = Make(S::kLeased);
  uint64_t preparing = Make(S::kPreparing);
  uint64_t ready = Make(S::kReady);
  uint64_t pending = Make(S::kPending);
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->active_scanned, 4u);
  EXPECT_EQ(released, (std::vector<uint64_t>{leased, preparing, ready}));
  for (uint64_t id : {leased, preparing, ready, pending}) {
    EXPECT_EQ(StateOf(id), S::kPending);
    EXPECT_EQ(runs_->Get(id)->attempt, 0u);
  }
  EXPECT_EQ(r->actions.size(), 3u);
}

TEST_F(RecoveryTest, AFailingHookLeavesThatRunForTheNextPassAndGoesOn) {
  uint64_t stuck = Make(S::kLeased);
  uint64_t fine = Make(S::kReady);
  hooks_.release_unstarted = [&](const wtd::Run& r) {
    return r.id == stuck ? Status::IOError("cannot delete lock ref") : Status::OK();
  };
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_NE(r->errors[0].find("cannot delete lock ref"), std::string::npos);
  EXPECT_EQ(StateOf(stuck), S::kLeased);
  EXPECT_EQ(StateOf(fine), S::kPending);
  hooks_.release_unstarted = nullptr;
  ASSERT_TRUE(Recover().ok());
  EXPECT_EQ(StateOf(stuck), S::kPending);
}

TEST_F(RecoveryTest, RunsOfAnEarlierIncarnationReleaseTheirLeasesAndTheReportListsThem) {
  auto [leased, t1] = MakeLeased(S::kLeased);
  auto [ready, t2] = MakeLeased(S::kReady);
  auto [running, t3] = MakeLeased(S::kRunning, {100, 5, "boot-A"});  // pid 100 is gone
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(Kinds(*r), (std::vector<std::string>{"requeue_run", "requeue_run", "interrupt_run"}));
  EXPECT_EQ(r->actions[0].lock, LockName(runs_->Get(leased)->key));
  for (uint64_t id : {leased, ready, running}) {
    EXPECT_EQ(LeaseStateOf(id), LeaseState::kReleasing) << id;
    EXPECT_EQ(runs_->Get(id)->lease_token, 0u);
  }
  ASSERT_EQ(r->releasing.size(), 3u);
  EXPECT_EQ(StateOf(running), S::kRetryWait);
  // Idempotent: a second pass does nothing and lists the same leases.
  Result<RecoveryReport> again = Recover();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->actions.empty());
  EXPECT_EQ(again->releasing, r->releasing);
  // The caller deletes the refs, then the rows.
  for (const Lease& l : r->releasing)
    ASSERT_TRUE(runs_->DropLease(l.repo, l.name, l.fencing_token).ok());
  EXPECT_TRUE(Recover()->releasing.empty());
  (void)t1, (void)t2, (void)t3;
}

TEST_F(RecoveryTest, AFinishingRunIsCompletedAfterItsReceiptOrSkippedForAnothers) {
  auto [done, t1] = MakeLeased(S::kFinishing, {100, 5, "boot-A"}, 1, /*exit_code=*/0);
  auto [other, t2] = MakeLeased(S::kFinishing, {101, 5, "boot-A"}, 1, /*exit_code=*/1);
  auto [stuck, t3] = MakeLeased(S::kFinishing, {102, 5, "boot-A"}, 1, /*exit_code=*/0);
  auto [ours, t4] = MakeLeased(S::kFinishing, {103, 5, "boot-A"}, 2, /*exit_code=*/0);
  std::vector<uint64_t> receipts;
  hooks_.write_receipt = [&](const wtd::Run& r) -> Result<std::string> {
    receipts.push_back(r.id);
    if (r.id == stuck) return Status::IOError("notes ref busy");
    return r.id == other ? std::string("host-b pid 7 run 3") : std::string();
  };
  Result<RecoveryReport> r = Recover(/*incarnation=*/2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(receipts, (std::vector<uint64_t>{done, other, stuck}));  // not incarnation 2's own
  EXPECT_EQ(Kinds(*r), (std::vector<std::string>{"finish_release", "finish_release"}));
  EXPECT_EQ(StateOf(done), S::kSucceeded);
  EXPECT_EQ(LeaseStateOf(done), LeaseState::kReleasing);
  EXPECT_EQ(StateOf(other), S::kSkipped);
  EXPECT_EQ(runs_->Get(other)->error, "done by host-b pid 7 run 3");
  EXPECT_EQ(LeaseStateOf(other), LeaseState::kReleasing);
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_NE(r->errors[0].find("notes ref busy"), std::string::npos);
  EXPECT_EQ(StateOf(stuck), S::kFinishing);
  EXPECT_EQ(LeaseStateOf(stuck), LeaseState::kHeld);
  EXPECT_EQ(StateOf(ours), S::kFinishing);
  EXPECT_EQ(LeaseStateOf(ours), LeaseState::kHeld);
  hooks_.write_receipt = nullptr;  // no receipts: completed as recorded
  Result<RecoveryReport> again = Recover(/*incarnation=*/2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->actions.size(), 1u);
  EXPECT_EQ(StateOf(stuck), S::kSucceeded);
  (void)t1, (void)t2, (void)t3, (void)t4;
}

TEST_F(RecoveryTest, AHeldLeaseWhoseRunDoesNotHoldItIsReleased) {
  uint64_t terminal = Make(S::kPending);
  ASSERT_TRUE(runs_->Cancel(terminal, S::kPending, "x").ok());
  auto [held, token] = MakeLeased(S::kRunning, {100, 5, "boot-A"}, /*incarnation=*/2);
  WriteBatch b;
  for (auto [run_id, name] :
       {std::pair<uint64_t, std::string>{terminal, "main/job/t"}, {9999, "main/job/missing"}}) {
    Lease l;
    l.repo = "/repo";
    l.name = name;
    l.run_id = run_id;
    l.fencing_token = 500 + run_id;
    b.Put(Family::kLocks, EncodeLeaseKey(l.repo, l.name), EncodeLease(l));
  }
  ASSERT_TRUE(store_->Commit(b).ok());
  Result<RecoveryReport> r = Recover(/*incarnation=*/2);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->errors.empty());
  ASSERT_EQ(Kinds(*r), (std::vector<std::string>{"release_lease", "release_lease"}));
  EXPECT_EQ(r->actions[0].lock, "main/job/missing");
  EXPECT_NE(r->actions[0].detail.find("run 9999 is missing"), std::string::npos);
  EXPECT_EQ(r->actions[1].lock, "main/job/t");
  EXPECT_NE(r->actions[1].detail.find("is cancelled"), std::string::npos);
  EXPECT_EQ(r->releasing.size(), 2u);
  EXPECT_EQ(LeaseStateOf(held), LeaseState::kHeld);  // incarnation 2's running run keeps it
  EXPECT_TRUE(Recover(/*incarnation=*/2)->actions.empty());
  (void)token;
}

struct Crashed : std::runtime_error {
  Crashed() : std::runtime_error("crash") {}
};

TEST_F(RecoveryTest, ACrashInsideRecoveryIsFinishedByTheNextPass) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Make(S::kRunning, 3, {1000 + i, 1, "boot-A"}));
  SetCrashAction([](std::string_view) { throw Crashed(); });
  ASSERT_TRUE(ArmCrashPoint("during_recovery", 3).ok());
  EXPECT_THROW((void)Recover(), Crashed);
  SetCrashAction(nullptr);
  DisarmCrashPoints();
  int moved = 0;
  for (uint64_t id : ids) moved += StateOf(id) == S::kRetryWait;
  EXPECT_EQ(moved, 3);
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->actions.size(), 2u);
  for (uint64_t id : ids) {
    EXPECT_EQ(StateOf(id), S::kRetryWait);
    EXPECT_EQ(runs_->Get(id)->attempt, 1u);  // each interruption counted once
  }
}

TEST_F(RecoveryTest, ACrashBetweenLeaseReleasesIsFinishedByTheNextPass) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(MakeLeased(S::kRunning, {1000 + i, 1, "boot-A"}).first);
  for (int nth = 1; nth <= 2; ++nth) {
    SetCrashAction([](std::string_view) { throw Crashed(); });
    ASSERT_TRUE(ArmCrashPoint("during_recovery", 2).ok());
    EXPECT_THROW((void)Recover(), Crashed);
    SetCrashAction(nullptr);
    DisarmCrashPoints();
  }
  Result<RecoveryReport> r = Recover();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->errors.empty());
  for (uint64_t id : ids) {
    EXPECT_EQ(StateOf(id), S::kRetryWait);
    EXPECT_EQ(LeaseStateOf(id), LeaseState::kReleasing);  // released with the interrupt
    EXPECT_EQ(runs_->Get(id)->attempt, 1u);
  }
  EXPECT_EQ(r->releasing.size(), 4u);
}

}  // namespace
}  // namespace wtd

namespace wtd {
namespace {

// Plan mode: the same decisions, nothing done; then the pass does exactly
// what was planned.
TEST_F(RecoveryTest, PlanChangesNothingAndApplyThenDoesWhatWasPlanned) {
  procs_.Start(200, 2);
  uint64_t alive = Make(S::kRunning, 3, {200, 2, "boot-A"});
  uint64_t gone = Make(S::kRunning, 1, {300, 3, "boot-A"});
  auto [ready, ready_token] = MakeLeased(S::kReady);
  auto [finishing, fin_token] = MakeLeased(S::kFinishing, {400, 4, "boot-A"});
  uint64_t pending = Make(S::kPending);
  std::vector<std::pair<uint64_t, RunState>> before;
  for (uint64_t id : {alive, gone, ready, finishing, pending}) before.push_back({id, StateOf(id)});
  uint64_t commits = store_->commits();

  RecoveryOptions plan{/*kill_wait_ms=*/100};
  plan.plan_only = true;
  Result<RecoveryReport> planned =
      RunRecovery(runs_.get(), &procs_, &clock_, hooks_, /*incarnation=*/2, plan);
  ASSERT_TRUE(planned.ok()) << planned.status().ToString();
  EXPECT_TRUE(planned->planned);
  EXPECT_EQ(store_->commits(), commits) << "planning committed something";
  EXPECT_TRUE(procs_.signals().empty()) << "planning signalled";
  for (auto [id, state] : before) EXPECT_EQ(StateOf(id), state) << "run " << id;
  EXPECT_EQ(LeaseStateOf(ready), LeaseState::kHeld);
  EXPECT_EQ(LeaseStateOf(finishing), LeaseState::kHeld);
  EXPECT_EQ(planned->releasing.size(), 2u);

  Result<RecoveryReport> applied = Recover();
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ASSERT_EQ(Kinds(*planned), Kinds(*applied));
  for (size_t i = 0; i < planned->actions.size(); ++i) {
    const RecoveryAction &p = planned->actions[i], &a = applied->actions[i];
    EXPECT_EQ(p.run_id, a.run_id) << i;
    EXPECT_EQ(p.lock, a.lock) << i;
    EXPECT_EQ(p.from, a.from) << i;
    EXPECT_EQ(p.to, a.to) << i << " " << p.kind;
  }
  ASSERT_EQ(planned->releasing.size(), applied->releasing.size());
  for (size_t i = 0; i < planned->releasing.size(); ++i) {
    EXPECT_EQ(planned->releasing[i], applied->releasing[i]) << i;
  }
  EXPECT_EQ(StateOf(gone), S::kRetryWait);
  EXPECT_EQ(StateOf(ready), S::kPending);
  EXPECT_EQ(StateOf(pending), S::kPending);
}

TEST_F(RecoveryTest, PlanListsOrphanLeasesWithoutReleasingThem) {
  auto [id, token] = MakeLeased(S::kReady);
  ASSERT_TRUE(runs_->Requeue(id, S::kReady, "x").ok());  // the row becomes releasing
  RecoveryOptions plan;
  plan.plan_only = true;
  Result<RecoveryReport> planned = RunRecovery(runs_.get(), &procs_, &clock_, hooks_, 2, plan);
  ASSERT_TRUE(planned.ok());
  ASSERT_EQ(planned->releasing.size(), 1u);
  EXPECT_EQ(planned->releasing[0].fencing_token, token);
  Result<RecoveryReport> applied = Recover();
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(Kinds(*planned), Kinds(*applied));
  EXPECT_EQ(planned->releasing, applied->releasing);
}

}  // namespace
}  // namespace wtd
