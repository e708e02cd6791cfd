// The scheduler's loop against a fake launcher, a fake commit source and a
// fake clock: no git, no process, no sleeping. Each test takes runs through
// one path of docs/design/loop.md and checks the recorded states.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "base/file_util.h"
#include "base/paths.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_launcher.h"
#include "fakes/temp_dir.h"
#include "scheduler/scheduler.h"

namespace wtd {
namespace {

constexpr char kRepo[] = "/srv/repo";

// Enqueues what the test gives it, on the next Tick.
class FakeSource final : public CommitSource {
 public:
  explicit FakeSource(RunStore* runs) : runs_(runs) {}
  PollStats Tick() override {
    PollStats s;
    Result<std::vector<Run>> made = runs_->Enqueue(pending_, std::nullopt);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (made.ok()) s.runs_enqueued = made->size();
    pending_.clear();
    return s;
  }
  std::vector<std::string> WatchDirs() const override { return {}; }
  void Report(SchedulerSnapshot* s) const override {
    if (repo_error.empty()) return;
    RepoStatus repo;
    repo.path = kRepo;
    repo.error = repo_error;
    s->repos.push_back(repo);
  }
  Result<std::optional<std::string>> CurrentWorktreePath(const std::string&,
                                                         const std::string& id) override {
    if (unwatched) return Status::NotFound("repository /srv/repo is not watched now");
    if (removed.count(id)) return std::optional<std::string>();
    return std::optional<std::string>("/srv/" + id);
  }
  Status ResolveJob(Run* run) override {
    ++resolved;
    run->command = "resolved " + run->key.job;
    return Status::OK();
  }

  void Add(const std::string& sha, uint32_t max_attempts = 1, const std::string& command = "make",
           const std::string& worktree = "main") {
    NewRun r;
    r.key = RunKey{kRepo, worktree, "build", sha};
    r.branch = "main";
    r.worktree_path = "/srv/" + worktree;
    r.max_attempts = max_attempts;
    r.retry_backoff_ms = 10'000;
    r.timeout_ms = 60'000;
    r.command = command;
    r.env = {{"MODE", "ci"}};
    r.isolation = isolation;
    r.keep_worktree = keep;
    pending_.push_back(r);
  }
  // What the next Add enqueues.
  Isolation isolation = Isolation::kCommit;
  KeepWorktree keep = KeepWorktree::kNever;

  std::set<std::string> removed;
  std::string repo_error;  // reported for kRepo when not empty
  bool unwatched = false;
  int resolved = 0;

 private:
  RunStore* runs_;
  std::vector<NewRun> pending_;
};

// Slots by number, as many as `limit`: records who holds which, and every
// call.
class FakeSlots final : public RunSlots {
 public:
  bool CanTake(const Run&) override { return held.size() < limit; }
  Result<RunSlot> Take(const Run& run) override {
    if (!fail_next.ok()) {
      Status st = fail_next;
      fail_next = Status::OK();
      return st;
    }
    EXPECT_LT(held.size(), limit) << "a slot was taken past the limit";
    EXPECT_FALSE(held.count(run.id)) << "run " << run.id << " took a second slot";
    std::string name = "slot-" + std::to_string(++made);
    held[run.id] = name;
    return RunSlot{name, "/slots/" + name};
  }
  Status Give(const Run& run, bool keep) override {
    auto it = held.find(run.id);
    EXPECT_NE(it, held.end()) << "run " << run.id << " gave back a slot it did not hold";
    if (it != held.end()) {
      given.push_back({run.id, keep});
      held.erase(it);
    }
    return Status::OK();
  }
  size_t limit = 1;
  Status fail_next;
  int made = 0;
  std::map<uint64_t, std::string> held;          // run -> slot
  std::vector<std::pair<uint64_t, bool>> given;  // (run, kept)
};

class SchedulerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
    source_ = std::make_unique<FakeSource>(runs_.get());
    Result<std::unique_ptr<Waker>> w = Waker::Create(false);
    ASSERT_TRUE(w.ok());
    waker_ = std::move(*w);
    Make(1);
  }
  void Make(int64_t concurrency) {
    SchedulerOptions o;
    o.concurrency = concurrency;
    o.state_dir = dir_.Sub("state");
    o.exec_shim = "/fake/wtd-exec";
    sched_ = std::make_unique<Scheduler>(runs_.get(), source_.get(), &launcher_, &clock_,
                                         waker_.get(), 7, o);
  }
  void Step() { sched_->Step(/*refs_changed=*/true); }
  wtd::Run Get(uint64_t id) {
    Result<wtd::Run> r = runs_->Get(id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : wtd::Run{};
  }
  std::string Sha(char c) { return std::string(40, c); }

  TempDir dir_;
  FakeClock clock_;
  FakeLauncher launcher_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<FakeSource> source_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<Scheduler> sched_;
};

TEST_F(SchedulerLoopTest, ARunIsLeasedStartedFromItsRecordAndSucceeds) {
  source_->Add(Sha('a'));
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  FakeLaunched* job = launcher_.started[0];
  EXPECT_TRUE(job->released);
  EXPECT_EQ(job->timeout, 60'000);
  const SpawnRequest& req = job->request();
  EXPECT_EQ(req.command, "make");
  EXPECT_EQ(req.cwd, "/srv/main");
  EXPECT_EQ(req.attempt, 1u);
  EXPECT_EQ(req.log_path, dir_.Sub("state") + "/logs/runs/1.log");
  auto has = [&](const std::string& kv) {
    return std::find(req.env.begin(), req.env.end(), kv) != req.env.end();
  };
  EXPECT_TRUE(has("MODE=ci"));
  EXPECT_TRUE(has("WTD_SHA=" + Sha('a')));
  EXPECT_TRUE(has("WTD_ATTEMPT=1"));
  wtd::Run running = Get(1);
  EXPECT_EQ(running.state, RunState::kRunning);
  EXPECT_EQ(running.pid, 100);
  EXPECT_EQ(running.incarnation, 7u);
  EXPECT_EQ(source_->resolved, 0) << "a record that carries its job needs no git";
  job->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_EQ(Get(1).exit_code, 0);
}

TEST_F(SchedulerLoopTest, AFailedAttemptIsRetriedAfterItsBackoffThenFails) {
  source_->Add(Sha('a'), /*max_attempts=*/2);
  Step();
  launcher_.started[0]->Exit(3);
  Step();
  wtd::Run r = Get(1);
  EXPECT_EQ(r.state, RunState::kRetryWait);
  EXPECT_GE(r.not_before_ms, clock_.NowMs() + 5'000);  // 10 s, with jitter
  Step();
  EXPECT_EQ(launcher_.started.size(), 1u) << "retried before its backoff";
  clock_.AdvanceMs(20'000);
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u);
  EXPECT_EQ(launcher_.started[1]->request().attempt, 2u);
  launcher_.started[1]->Exit(3);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kFailed);
  EXPECT_EQ(Get(1).attempt, 2u);
}

TEST_F(SchedulerLoopTest, ATimedOutAttemptIsRecordedTimedOut) {
  source_->Add(Sha('a'));
  Step();
  AttemptOutcome o;
  o.term_signal = 15;
  o.timed_out = true;
  launcher_.started[0]->Finish(o);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kTimedOut);
}

TEST_F(SchedulerLoopTest, ASpawnThatFailsUsesAnAttemptAndSaysWhy) {
  source_->Add(Sha('a'), /*max_attempts=*/2);
  launcher_.fail_next = Status::IOError("posix_spawn wtd-exec: no such file");
  Step();
  wtd::Run r = Get(1);
  EXPECT_EQ(r.state, RunState::kRetryWait);
  EXPECT_NE(r.error.find("posix_spawn wtd-exec"), std::string::npos) << r.error;
  EXPECT_TRUE(launcher_.started.empty());
}

TEST_F(SchedulerLoopTest, NoMoreRunsStartThanTheConcurrencyLimit) {
  Make(2);
  for (char c : {'a', 'b', 'c'}) source_->Add(Sha(c));
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u);
  EXPECT_EQ(Get(3).state, RunState::kPending);
  launcher_.started[0]->Exit(0);
  Step();
  ASSERT_EQ(launcher_.started.size(), 3u);
  EXPECT_EQ(Get(3).state, RunState::kRunning);
}

TEST_F(SchedulerLoopTest, PausedStartsNothingUntilResumed) {
  sched_->SetPaused(true);
  source_->Add(Sha('a'));
  Step();
  EXPECT_TRUE(launcher_.started.empty());
  EXPECT_EQ(Get(1).state, RunState::kPending);
  sched_->SetPaused(false);
  Step();
  EXPECT_EQ(launcher_.started.size(), 1u);
}

TEST_F(SchedulerLoopTest, ARunWhoseWorktreeIsGoneFailsWithoutAnAttempt) {
  source_->Add(Sha('a'), 3, "make", "wt1");
  source_->removed.insert("wt1");
  Step();
  wtd::Run r = Get(1);
  EXPECT_EQ(r.state, RunState::kFailed);
  EXPECT_EQ(r.attempt, 0u);
  EXPECT_EQ(r.error, "worktree wt1 of /srv/repo no longer exists");
  EXPECT_TRUE(launcher_.started.empty());
}

TEST_F(SchedulerLoopTest, ARunOfARepositoryNoLongerWatchedRunsWhereItWasRecorded) {
  source_->Add(Sha('a'), 1, "make", "wt1");
  source_->unwatched = true;  // dropped by a reload after the run was queued
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  EXPECT_EQ(launcher_.started[0]->request().cwd, "/srv/wt1");
  EXPECT_EQ(source_->resolved, 0);
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
}

TEST_F(SchedulerLoopTest, ARecordWithoutItsJobIsResolvedAtDispatch) {
  source_->Add(Sha('a'), 1, /*command=*/"");
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  EXPECT_EQ(source_->resolved, 1);
  EXPECT_EQ(launcher_.started[0]->request().command, "resolved build");
}

TEST_F(SchedulerLoopTest, AStopInterruptsARunningJobAndItRunsAgainLater) {
  source_->Add(Sha('a'));
  Step();
  sched_->RequestStop();
  sched_->Shutdown(/*grace_ms=*/0);
  ASSERT_EQ(launcher_.started.size(), 1u);
  wtd::Run r = Get(1);
  EXPECT_EQ(r.state, RunState::kRetryWait);
  EXPECT_NE(r.error.find("interrupted"), std::string::npos) << r.error;
  EXPECT_EQ(r.not_before_ms, r.updated_at_ms) << "an interrupted attempt is retried at once";
}

TEST_F(SchedulerLoopTest, AJobThatEndsAsTheGraceRunsOutKeepsItsOwnOutcome) {
  launcher_.on_terminate = FakeLaunched::OnTerminate::kExitsFirst;
  source_->Add(Sha('a'));
  Step();
  sched_->RequestStop();
  sched_->Shutdown(/*grace_ms=*/0);
  EXPECT_EQ(launcher_.terminations, 1);
  EXPECT_EQ(Get(1).state, RunState::kSucceeded) << Get(1).error;
}

TEST_F(SchedulerLoopTest, AJobWhoseSupervisorLostItsOutcomeIsInterruptedAndItsFilesGo) {
  source_->Add(Sha('a'));
  Step();
  ASSERT_TRUE(MakeDirs(dir_.Sub("state/runs")).ok());
  for (const std::string& f :
       {RunExitPath(dir_.Sub("state"), 1), RunGroupPath(dir_.Sub("state"), 1),
        RunContextPath(dir_.Sub("state"), 1)}) {
    ASSERT_TRUE(WriteFileAtomic(f, "x").ok());
  }
  AttemptOutcome lost;
  lost.lost = true;
  lost.error = "supervisor 100 was killed by signal 9 without recording the job's outcome";
  sched_->SetPaused(true);  // so that the retry does not start in the same step
  launcher_.started[0]->Finish(lost);
  Step();
  wtd::Run r = Get(1);
  EXPECT_EQ(r.state, RunState::kRetryWait);
  EXPECT_EQ(r.not_before_ms, r.updated_at_ms) << "retried at once, as an interruption";
  EXPECT_NE(r.error.find("interrupted: supervisor 100 was killed"), std::string::npos) << r.error;
  for (const std::string& f :
       {RunExitPath(dir_.Sub("state"), 1), RunGroupPath(dir_.Sub("state"), 1),
        RunContextPath(dir_.Sub("state"), 1)}) {
    EXPECT_NE(access(f.c_str(), F_OK), 0) << f << " outlived the recorded outcome";
  }
}

TEST_F(SchedulerLoopTest, AnAdoptedRunIsInFlightAndRecordedWhenItEnds) {
  // Started by incarnation 6, adopted by this one (7).
  source_->Add(Sha('a'));
  sched_->SetPaused(true);
  Step();  // enqueued, not started
  sched_->SetPaused(false);
  ASSERT_TRUE(runs_->Lease(1).ok());
  ASSERT_TRUE(runs_->MarkReady(1, RunState::kLeased).ok());
  ASSERT_TRUE(runs_->MarkRunning(1, ProcessIdentity{900, 5, "fake-boot", true}, 6, "/log").ok());
  Result<wtd::Run> adopted = runs_->Adopt(1, 6, 7);
  ASSERT_TRUE(adopted.ok()) << adopted.status().ToString();
  AdoptRequest req;
  req.run_id = 1;
  req.attempt = 1;
  req.supervisor = ProcessIdentity{900, 5, "fake-boot", true};
  Result<std::unique_ptr<Launched>> exec = launcher_.Adopt(req);
  ASSERT_TRUE(exec.ok());
  sched_->AdoptRunning(*adopted, std::move(*exec));
  ASSERT_EQ(launcher_.adopted.size(), 1u);
  EXPECT_TRUE(launcher_.adopted[0]->watched);
  Step();
  EXPECT_TRUE(launcher_.started.empty()) << "an adopted run is not started again";
  SchedulerSnapshot snap = sched_->Snapshot();
  ASSERT_EQ(snap.running_detail.size(), 1u);
  EXPECT_TRUE(snap.running_detail[0].adopted);
  launcher_.adopted[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_EQ(Get(1).attempt, 1u);
}

TEST_F(SchedulerLoopTest, ARestartLeavesRunningJobsToTheirSupervisors) {
  source_->Add(Sha('a'));
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  sched_->RequestRestart();
  EXPECT_TRUE(sched_->stop_requested());
  sched_->Loop();  // ends at once: the restart detaches instead of stopping
  EXPECT_EQ(launcher_.terminations, 0);
  EXPECT_EQ(Get(1).state, RunState::kRunning) << "nothing recorded: the next one adopts it";
  EXPECT_EQ(sched_->in_flight(), 0u);
}

// The step hook (the daemon's systemd notifier) is called on the loop thread
// after each step with the queue as that step left it, bounds the loop's
// sleep, and is told when the stop begins and during it.
TEST_F(SchedulerLoopTest, TheStepHookSeesEachStepAndTheStop) {
  for (char c : {'a', 'b', 'c'}) source_->Add(Sha(c));
  std::vector<LoopHeartbeat> beats;
  sched_->SetStepHook([&](const LoopHeartbeat& beat) -> int64_t {
    beats.push_back(beat);
    if (beats.size() == 1) return 0;  // step again at once
    if (!beat.stopping) {
      sched_->RequestStop();
    } else {
      clock_.AdvanceMs(60'000);  // the grace runs out on the fake clock
    }
    return -1;
  });
  sched_->Loop();
  ASSERT_GE(beats.size(), 3u);
  EXPECT_EQ(beats[0].running, 1u) << "concurrency 1";
  EXPECT_EQ(beats[0].queued, 2u);
  EXPECT_EQ(beats[0].retry_wait, 0u);
  EXPECT_EQ(beats[0].last_error, "");
  EXPECT_FALSE(beats[0].stopping);
  EXPECT_EQ(beats[1].running, 1u) << "the fake job has not ended";
  EXPECT_FALSE(beats[1].stopping);
  EXPECT_TRUE(beats[2].stopping);
  EXPECT_EQ(beats[2].stop_budget_ms, 10'000 + 5'000) << "shutdown grace + kill grace";
  EXPECT_EQ(Get(1).state, RunState::kRetryWait) << "interrupted by the stop";
}

TEST_F(SchedulerLoopTest, TheStepHookSeesARepositorysErrorUntilItClears) {
  std::vector<std::string> errors;
  sched_->SetStepHook([&](const LoopHeartbeat& beat) -> int64_t {
    errors.push_back(beat.last_error);
    if (errors.size() == 1) source_->repo_error = "cannot open: gone";
    if (errors.size() == 2) source_->repo_error.clear();
    if (errors.size() == 3) sched_->RequestStop();
    return 0;
  });
  sched_->Loop();
  ASSERT_GE(errors.size(), 3u);
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "repository /srv/repo: cannot open: gone");
  EXPECT_EQ(errors[2], "") << "a repository that recovered is no longer the last error";
}

TEST_F(SchedulerLoopTest, AJobThatEndedBeforeTheStopIsRecordedAsItEnded) {
  source_->Add(Sha('a'));
  Step();
  launcher_.started[0]->Exit(0);
  sched_->RequestStop();
  sched_->Shutdown(/*grace_ms=*/0);
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
}

TEST_F(SchedulerLoopTest, ACommitRunRunsInItsSlotAndGivesItBack) {
  FakeSlots slots;
  sched_->SetRunSlots(&slots);
  source_->Add(Sha('a'));
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  const SpawnRequest& req = launcher_.started[0]->request();
  EXPECT_EQ(req.cwd, "/slots/slot-1");
  auto has = [&](const std::string& kv) {
    return std::find(req.env.begin(), req.env.end(), kv) != req.env.end();
  };
  EXPECT_TRUE(has("WTD_WORKTREE_ROOT=/slots/slot-1"));
  EXPECT_TRUE(has("WTD_SOURCE_WORKTREE=/srv/main"));
  EXPECT_EQ(Get(1).slot, "slot-1");
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_TRUE(slots.held.empty());
  EXPECT_EQ(slots.given, (std::vector<std::pair<uint64_t, bool>>{{1, false}}));
}

TEST_F(SchedulerLoopTest, NoSlotLeavesTheRunPendingWithoutALeaseOrAnAttempt) {
  Make(4);
  FakeSlots slots;
  slots.limit = 1;
  sched_->SetRunSlots(&slots);
  source_->Add(Sha('a'));
  source_->Add(Sha('b'));
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u) << "two runs for one slot";
  EXPECT_EQ(Get(2).state, RunState::kPending);
  EXPECT_EQ(Get(2).attempt, 0u);
  launcher_.started[0]->Exit(0);
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u);
  EXPECT_EQ(launcher_.started[1]->request().cwd, "/slots/slot-2");
  launcher_.started[1]->Exit(0);
  Step();
  EXPECT_EQ(Get(2).state, RunState::kSucceeded);
}

TEST_F(SchedulerLoopTest, AFailedSpawnGivesTheSlotBackAndAFailedTakeStartsNothing) {
  FakeSlots slots;
  sched_->SetRunSlots(&slots);
  source_->Add(Sha('a'), /*max_attempts=*/3);
  launcher_.fail_next = Status::IOError("posix_spawn wtd-exec: no such file");
  Step();
  EXPECT_EQ(Get(1).state, RunState::kRetryWait);
  EXPECT_TRUE(slots.held.empty()) << "the slot of a spawn that failed is kept";
  ASSERT_EQ(slots.given.size(), 1u);

  source_->Add(Sha('b'), /*max_attempts=*/3);
  slots.fail_next = Status::IOError("check out b: disk full");
  Step();
  wtd::Run r = Get(2);
  EXPECT_EQ(r.state, RunState::kRetryWait);
  EXPECT_NE(r.error.find("disk full"), std::string::npos) << r.error;
  EXPECT_TRUE(launcher_.started.empty());
  EXPECT_TRUE(slots.held.empty());
}

TEST_F(SchedulerLoopTest, AFailedRunKeepsItsSlotOnlyWhenItsJobAsks) {
  Make(2);
  FakeSlots slots;
  slots.limit = 2;
  sched_->SetRunSlots(&slots);
  source_->keep = KeepWorktree::kOnFailure;
  source_->Add(Sha('a'));
  source_->keep = KeepWorktree::kNever;
  source_->Add(Sha('b'));
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u);
  launcher_.started[0]->Exit(1);
  launcher_.started[1]->Exit(1);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kFailed);
  EXPECT_EQ(Get(2).state, RunState::kFailed);
  std::map<uint64_t, bool> kept(slots.given.begin(), slots.given.end());
  EXPECT_EQ(kept, (std::map<uint64_t, bool>{{1, true}, {2, false}}));
}

TEST_F(SchedulerLoopTest, InplaceRunsOfOneWorktreeRunOneAtATime) {
  Make(4);
  FakeSlots slots;
  sched_->SetRunSlots(&slots);
  source_->isolation = Isolation::kInplace;
  source_->Add(Sha('a'));
  source_->Add(Sha('b'));
  source_->Add(Sha('c'), 1, "make", "wt1");
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u) << "one per worktree";
  EXPECT_EQ(launcher_.started[0]->request().cwd, "/srv/main");
  EXPECT_EQ(launcher_.started[1]->request().cwd, "/srv/wt1");
  EXPECT_EQ(Get(2).state, RunState::kPending);
  EXPECT_EQ(slots.made, 0) << "an inplace run took a slot";
  launcher_.started[0]->Exit(0);
  Step();
  ASSERT_EQ(launcher_.started.size(), 3u);
  EXPECT_EQ(launcher_.started[2]->request().cwd, "/srv/main");
}

// Answers what the test sets per run id; a run it has no answer for has
// ended (NotFound).
class FakeProbe final : public ActivityProbe {
 public:
  Result<Activity> Sample(const Run& run) override {
    ++samples;
    auto it = activity.find(run.id);
    if (it == activity.end()) return Status::NotFound("no process");
    return it->second;
  }
  std::map<uint64_t, Activity> activity;
  int samples = 0;
};

TEST_F(SchedulerLoopTest, ARunningJobWithoutOutputOrCpuIsFlaggedStuckAndUnflaggedWhenItMoves) {
  SchedulerOptions o;
  o.concurrency = 2;
  o.state_dir = dir_.Sub("state");
  o.exec_shim = "/fake/wtd-exec";
  o.stuck_after_s = 60;
  sched_ = std::make_unique<Scheduler>(runs_.get(), source_.get(), &launcher_, &clock_,
                                       waker_.get(), 7, o);
  FakeProbe probe;
  sched_->SetActivityProbe(&probe);
  source_->Add(Sha('a'));
  source_->Add(Sha('b'));
  probe.activity[1] = Activity{10, 100};
  probe.activity[2] = Activity{10, 100};
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u);
  auto stuck = [&](uint64_t id) {
    for (const RunningStatus& r : sched_->Snapshot().running_detail) {
      if (r.id == id) return r.stuck;
    }
    ADD_FAILURE() << "run " << id << " is not listed as running";
    return false;
  };
  EXPECT_FALSE(stuck(1));
  // Run 1 does nothing; run 2 prints a little every 15 s (a quarter of the
  // threshold, the sampling interval).
  for (int i = 1; i <= 4; ++i) {
    clock_.AdvanceMs(15'000);
    probe.activity[2].output_bytes += 1;
    Step();
  }
  EXPECT_TRUE(stuck(1)) << "60 s without output or CPU";
  EXPECT_FALSE(stuck(2)) << "it printed within every sample";
  // Run 2 goes quiet but burns CPU: still not stuck.
  for (int i = 1; i <= 4; ++i) {
    clock_.AdvanceMs(15'000);
    probe.activity[2].cpu_ticks += 5;
    Step();
  }
  EXPECT_FALSE(stuck(2));
  // Run 1 wakes up: the flag clears at the next sample.
  probe.activity[1].cpu_ticks += 1;
  clock_.AdvanceMs(15'000);
  Step();
  EXPECT_FALSE(stuck(1));
  int before = probe.samples;
  Step();
  EXPECT_EQ(probe.samples, before) << "sampled again before its interval";
  // Once a job ends it is no longer listed.
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(sched_->Snapshot().running_detail.size(), 1u);
  EXPECT_EQ(sched_->Snapshot().stuck_after_ms, 60'000);
}

TEST_F(SchedulerLoopTest, WithoutAProbeNothingIsEverFlaggedStuck) {
  source_->Add(Sha('a'));
  Step();
  clock_.AdvanceMs(3'600'000);
  Step();
  SchedulerSnapshot s = sched_->Snapshot();
  ASSERT_EQ(s.running_detail.size(), 1u);
  EXPECT_FALSE(s.running_detail[0].stuck);
  EXPECT_EQ(s.running_detail[0].active_at_ms, 0);
}

}  // namespace
}  // namespace wtd
