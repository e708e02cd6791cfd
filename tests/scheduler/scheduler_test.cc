#include "scheduler/scheduler.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/file_util.h"
#include "fakes/temp_dir.h"
#include "scheduler/poller.h"

namespace wtd {
namespace {

// Drives a real Scheduler (real git repo, real wtd-exec, real processes)
// step by step.
class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_.Sub("repo");
    Sh("git init -q -b main " + repo_);
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), SystemClock());
    ASSERT_TRUE(runs_->Init().ok());
    poller_ = std::make_unique<Poller>(runs_.get(), SystemClock(), PollerOptions{});
    poller_->SetRepos({RepoSpec{repo_, WorktreeSelection::kCurrent, {}}});
    waker_ = *Waker::Create(true);
    SchedulerOptions o;
    o.poll_ms = 50;
    o.concurrency = 2;
    o.exec_shim = WTD_EXEC_SHIM;
    o.state_dir = dir_.Sub("state");
    o.kill_grace_ms = 500;
    launcher_ = NewShimLauncher(SystemProcessTable());
    sched_ = std::make_unique<Scheduler>(runs_.get(), poller_.get(), launcher_.get(), SystemClock(),
                                         waker_.get(), store_->incarnation(), o);
  }

  void Sh(const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
  }
  void CommitJob(const std::string& name, const std::string& body) {
    std::filesystem::create_directories(repo_ + "/jobs");
    std::ofstream(repo_ + "/jobs/" + name + ".job") << body;
    Sh("cd " + repo_ + " && git add -A && git -c user.name=t -c user.email=t@e commit -q -m '" +
       name + "'");
  }
  // Steps until every run is terminal (or the deadline passes).
  bool RunUntilSettled(int64_t timeout_ms = 30000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int64_t sleep = sched_->Step(false);
      Result<std::vector<wtd::Run>> active = runs_->ListActive();
      RunFilter f;
      f.limit = 0;
      if (active.ok() && active->empty() && !runs_->List(f)->empty() && sched_->in_flight() == 0) {
        return true;
      }
      waker_->Wait(std::min<int64_t>(sleep, 50));
    }
    return false;
  }
  wtd::Run Only() {
    RunFilter f;
    f.limit = 0;
    std::vector<wtd::Run> all = *runs_->List(f);
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? wtd::Run{} : all[0];
  }

  TempDir dir_;
  std::string repo_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<Launcher> launcher_;
  std::unique_ptr<Scheduler> sched_;
};

TEST_F(SchedulerTest, RunsAJobWithItsEnvironmentAndContext) {
  std::string out = dir_.Sub("env.txt");
  // Addressed to the daemon, not to its jobs.
  setenv("WTD_CRASH_AT", "after_release:1000000", 1);
  setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  CommitJob("show", "run = env | grep -E '^(WTD_|EXTRA=|NOTIFY_SOCKET=)' | sort > " + out +
                        "; cat \"$WTD_CONTEXT\" >> " + out + "; echo hello\nenv.EXTRA = 42\n");
  bool settled = RunUntilSettled();
  unsetenv("WTD_CRASH_AT");
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(settled);
  wtd::Run r = Only();
  EXPECT_EQ(r.state, RunState::kSucceeded);
  EXPECT_EQ(r.attempt, 1u);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_GT(r.pid, 0);
  EXPECT_GT(r.pid_start_time, 0u);
  EXPECT_FALSE(r.boot_id.empty());
  std::string env = *ReadFile(out);
  for (const std::string& want : std::vector<std::string>{
           "EXTRA=42", "WTD_JOB=show", "WTD_ATTEMPT=1", "WTD_BRANCH=main", "WTD_WORKTREE_ID=main",
           "WTD_RUN_ID=" + std::to_string(r.id), "WTD_SHA=" + r.key.sha,
           "WTD_WORKTREE_ROOT=" + r.worktree_path, "WTD_REPO_ROOT=" + r.key.repo}) {
    EXPECT_NE(env.find(want + "\n"), std::string::npos) << want << " in\n" << env;
  }
  EXPECT_EQ(env.find("WTD_CRASH_AT="), std::string::npos) << env;
  EXPECT_EQ(env.find("NOTIFY_SOCKET="), std::string::npos) << env;
  nlohmann::json ctx = nlohmann::json::parse(env.substr(env.find('{')));
  EXPECT_EQ(ctx["head"], r.key.sha);
  EXPECT_EQ(ctx["worktree"]["id"], "main");
  EXPECT_EQ(ctx["commit"]["subject"], "show");
  EXPECT_EQ(*ReadFile(r.log_path), "hello\n");
}

TEST_F(SchedulerTest, FailingJobIsRetriedThenFails) {
  std::string count = dir_.Sub("count");
  CommitJob("flaky",
            "run = echo x >> " + count + "; exit 3\nmax_attempts = 2\nretry_backoff_s = 0\n");
  ASSERT_TRUE(RunUntilSettled());
  wtd::Run r = Only();
  EXPECT_EQ(r.state, RunState::kFailed);
  EXPECT_EQ(r.attempt, 2u);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(*ReadFile(count), "x\nx\n");
}

TEST_F(SchedulerTest, TimeoutEndsTheRunTimedOut) {
  CommitJob("slow", "run = sleep 60\ntimeout_s = 1\nmax_attempts = 1\n");
  ASSERT_TRUE(RunUntilSettled());
  wtd::Run r = Only();
  EXPECT_EQ(r.state, RunState::kTimedOut);
  EXPECT_LT(r.duration_ms, 30000);
}

TEST_F(SchedulerTest, ShutdownPastTheGraceRecordsTheRunInterrupted) {
  CommitJob("long", "run = sleep 60\nmax_attempts = 1\n");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sched_->in_flight() == 0 && std::chrono::steady_clock::now() < deadline) {
    waker_->Wait(std::min<int64_t>(sched_->Step(false), 50));
  }
  ASSERT_EQ(sched_->in_flight(), 1u);
  sched_->Shutdown(/*grace_ms=*/100);
  EXPECT_EQ(sched_->in_flight(), 0u);
  wtd::Run r = Only();
  EXPECT_EQ(r.state, RunState::kRetryWait);  // retried by the next start
  EXPECT_NE(r.error.find("interrupted"), std::string::npos) << r.error;
}

TEST_F(SchedulerTest, OptionsSetFromAnotherThreadTakeEffectOnTheLoopThread) {
  for (const char* name : {"a", "b", "c", "d"}) {
    std::filesystem::create_directories(repo_ + "/jobs");
    std::ofstream(repo_ + "/jobs/" + name + ".job") << "run = sleep 60\nmax_attempts = 1\n";
  }
  CommitJob("e", "run = sleep 60\nmax_attempts = 1\n");
  auto step_until = [&](size_t running) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (sched_->in_flight() < running && std::chrono::steady_clock::now() < deadline) {
      waker_->Wait(std::min<int64_t>(sched_->Step(false), 50));
    }
    return sched_->in_flight();
  };
  ASSERT_EQ(step_until(2), 2u);  // the fixture's concurrency
  sched_->Step(false);
  EXPECT_EQ(sched_->in_flight(), 2u);
  SchedulerOptions o;
  o.poll_ms = 50;
  o.concurrency = 4;
  o.exec_shim = WTD_EXEC_SHIM;
  o.state_dir = dir_.Sub("state");
  o.kill_grace_ms = 500;
  std::thread reload([&] { sched_->SetOptions(o); });  // as a reload does
  reload.join();
  EXPECT_EQ(sched_->in_flight(), 2u) << "nothing changes before the loop's next step";
  EXPECT_EQ(step_until(4), 4u);
  sched_->Step(false);
  EXPECT_EQ(sched_->in_flight(), 4u);
  sched_->Shutdown(/*grace_ms=*/0);
}

TEST_F(SchedulerTest, LoopStopsWithTheShutdownGraceOfTheLastOptions) {
  CommitJob("long", "run = sleep 60\nmax_attempts = 1\n");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sched_->in_flight() == 0 && std::chrono::steady_clock::now() < deadline) {
    waker_->Wait(std::min<int64_t>(sched_->Step(false), 50));
  }
  ASSERT_EQ(sched_->in_flight(), 1u);
  SchedulerOptions o;
  o.poll_ms = 50;
  o.concurrency = 2;
  o.exec_shim = WTD_EXEC_SHIM;
  o.state_dir = dir_.Sub("state");
  o.kill_grace_ms = 500;
  ASSERT_EQ(o.shutdown_grace_s, 10) << "the default this test shortens";
  o.shutdown_grace_s = 0;
  sched_->SetOptions(o);  // posted after the last step: applied before the stop
  sched_->RequestStop();
  auto start = std::chrono::steady_clock::now();
  sched_->Loop();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(8)) << "waited for the default 10 s grace";
  EXPECT_EQ(sched_->in_flight(), 0u);
  wtd::Run r = Only();
  EXPECT_EQ(r.state, RunState::kRetryWait);
  EXPECT_NE(r.error.find("interrupted"), std::string::npos) << r.error;
}

TEST_F(SchedulerTest, OldEventsAreTrimmedToTheRetention) {
  SchedulerOptions o;
  o.poll_ms = 50;
  o.exec_shim = WTD_EXEC_SHIM;
  o.state_dir = dir_.Sub("state");
  o.events_keep = 2;
  o.events_trim_ms = 0;  // every step
  sched_->SetOptions(o);
  CommitJob("quick", "run = true\n");
  ASSERT_TRUE(RunUntilSettled());
  sched_->Step(false);
  std::vector<std::string> events;
  ASSERT_TRUE(store_
                  ->Scan(Family::kEvents, "",
                         [&](std::string_view k, std::string_view) {
                           events.emplace_back(k);
                           return true;
                         })
                  .ok());
  // A run's life is five events (enqueue, lease, ready, running, succeeded).
  EXPECT_EQ(events.size(), 2u);
}

TEST_F(SchedulerTest, PausedSchedulerStartsNothing) {
  sched_->SetPaused(true);
  CommitJob("quick", "run = true\n");
  for (int i = 0; i < 5; ++i) sched_->Step(true);
  EXPECT_EQ(Only().state, RunState::kPending);
  EXPECT_TRUE(sched_->Snapshot().paused);
  sched_->SetPaused(false);
  ASSERT_TRUE(RunUntilSettled());
  EXPECT_EQ(Only().state, RunState::kSucceeded);
}

// Operator commands (a reload's SetOptions, status) come from other threads
// while the loop dispatches. This test passes either way in a plain build;
// the ThreadSanitizer build (docs/design/concurrency.md) checks that the
// threads share nothing unguarded (Dispatch once read options_ unlocked).
TEST_F(SchedulerTest, OperatorCommandsDuringDispatchShareNothingUnguarded) {
  CommitJob("a", "run = true\n");
  CommitJob("b", "run = true\n");  // runs a and b again: three runs
  SchedulerOptions o;
  o.poll_ms = 50;
  o.concurrency = 2;
  o.exec_shim = WTD_EXEC_SHIM;
  o.state_dir = dir_.Sub("state");
  o.kill_grace_ms = 500;
  std::atomic<bool> settled_flag{false};
  std::atomic<int> commands{0};
  std::thread operator_thread([&] {
    do {
      sched_->SetOptions(o);
      SchedulerSnapshot snapshot = sched_->Snapshot();
      EXPECT_FALSE(snapshot.paused);
      commands.fetch_add(1);
    } while (!settled_flag.load());
  });
  bool settled = RunUntilSettled();
  settled_flag.store(true);
  operator_thread.join();
  ASSERT_TRUE(settled);
  EXPECT_GT(commands.load(), 0);
  RunFilter f;
  f.limit = 0;
  std::vector<wtd::Run> all = *runs_->List(f);
  EXPECT_EQ(all.size(), 3u);
  for (const wtd::Run& r : all) EXPECT_EQ(r.state, RunState::kSucceeded) << "run " << r.id;
}

// `wtctl trigger --again` makes a second series of one key while the first
// runs: without locks too, the second waits until the first has ended.
// `wtctl cancel` of a running job kills it and records it cancelled, not
// retried; the waiting series then runs, and is cancelled in turn.
TEST_F(SchedulerTest, TwoSeriesNeverRunAtOnceAndCancelEndsTheRunningOne) {
  std::string starts = dir_.Sub("starts");
  // No branch matches: only a trigger runs it. Three attempts: none is used.
  CommitJob("slow", "run = echo $WTD_RUN_ID >> " + starts +
                        "; exec sleep 600\nbranches = release/*\nmax_attempts = 3\n");
  sched_->Step(false);  // the poller opens the repository
  Result<TriggeredRun> first = poller_->Trigger("", "main", "slow", "", false);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<TriggeredRun> second = poller_->Trigger("", "main", "slow", "", true);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_EQ(second->run.key.series, 1u);
  uint64_t a = first->run.id, b = second->run.id;

  auto step_until = [&](const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      waker_->Wait(std::min<int64_t>(sched_->Step(false), 20));
    }
    return done();
  };
  auto state = [&](uint64_t id) { return runs_->Get(id)->state; };
  auto starts_seen = [&] {  // jobs that got as far as their first line
    Result<std::string> text = ReadFile(starts);
    return text.ok() ? std::count(text->begin(), text->end(), '\n') : 0;
  };
  ASSERT_TRUE(step_until([&] { return state(a) == RunState::kRunning && starts_seen() == 1; }));
  for (int i = 0; i < 5; ++i) sched_->Step(false);  // concurrency 2: room, but not for b
  EXPECT_EQ(state(b), RunState::kPending);
  EXPECT_EQ(sched_->in_flight(), 1u);
  int32_t pid = runs_->Get(a)->pid;

  std::optional<Result<wtd::Run>> answer;
  sched_->Cancel(a, "cancelled by wtctl", [&](Result<wtd::Run> r) { answer = std::move(r); });
  ASSERT_TRUE(step_until([&] { return answer.has_value(); }));
  ASSERT_TRUE(answer->ok()) << answer->status().ToString();
  EXPECT_EQ((*answer)->state, RunState::kCancelled);
  EXPECT_EQ((*answer)->error, "cancelled by wtctl");
  EXPECT_EQ((*answer)->attempt, 1u);
  EXPECT_EQ(kill(pid, 0), -1) << "the job " << pid << " outlived its cancel";

  ASSERT_TRUE(step_until([&] { return state(b) == RunState::kRunning && starts_seen() == 2; }));
  answer.reset();
  sched_->Cancel(b, "cancelled by wtctl", [&](Result<wtd::Run> r) { answer = std::move(r); });
  ASSERT_TRUE(step_until([&] { return answer.has_value(); }));
  EXPECT_EQ(state(b), RunState::kCancelled);
  // An ended run is refused, naming its state.
  answer.reset();
  sched_->Cancel(a, "again", [&](Result<wtd::Run> r) { answer = std::move(r); });
  ASSERT_TRUE(step_until([&] { return answer.has_value(); }));
  EXPECT_EQ(answer->status().message(), "run " + std::to_string(a) + " is already cancelled");
  for (int i = 0; i < 5; ++i) sched_->Step(false);
  EXPECT_EQ(state(a), RunState::kCancelled);  // not retried
  EXPECT_EQ(starts_seen(), 2);
}

}  // namespace
}  // namespace wtd
