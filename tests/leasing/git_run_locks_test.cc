// The scheduler's loop with GitRunLocks against a real repository made with
// the git CLI: lock refs, receipts in notes, contention, skipping, renewal
// and a lost lock. Fakes only for the launcher, the clock and the process
// table; nothing sleeps.
#include "leasing/git_run_locks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/fake_launcher.h"
#include "fakes/fake_process_table.h"
#include "git/git_fixture.h"
#include "locks/lock_refs.h"
#include "locks/receipts.h"
#include "scheduler/scheduler.h"

namespace wtd {
namespace {

constexpr char kHost[] = "this-host";

// Enqueues what the test gives it, on the next Tick; the worktree is the
// repository itself.
class RepoSource final : public CommitSource {
 public:
  RepoSource(RunStore* runs, std::string repo) : runs_(runs), repo_(std::move(repo)) {}
  PollStats Tick() override {
    PollStats s;
    Result<std::vector<Run>> made = runs_->Enqueue(pending_, std::nullopt);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (made.ok()) s.runs_enqueued = made->size();
    pending_.clear();
    return s;
  }
  std::vector<std::string> WatchDirs() const override { return {}; }
  void Report(SchedulerSnapshot*) const override {}
  Result<std::optional<std::string>> CurrentWorktreePath(const std::string&,
                                                         const std::string&) override {
    return std::optional<std::string>(repo_);
  }
  Status ResolveJob(Run*) override { return Status::OK(); }

  void Add(const std::string& sha, const std::string& job = "build") {
    NewRun r;
    r.key = RunKey{repo_, "main", job, sha};
    r.branch = "main";
    r.worktree_path = repo_;
    r.max_attempts = 2;
    r.retry_backoff_ms = 10'000;
    r.timeout_ms = 60'000;
    r.command = "make";
    pending_.push_back(r);
  }

 private:
  RunStore* runs_;
  std::string repo_;
  std::vector<NewRun> pending_;
};

class GitRunLocksTest : public git::GitFixture {
 protected:
  void SetUp() override {
    GitFixture::SetUp();
    repo_ = InitRepo("repo");
    sha_ = Commit(repo_, "a.txt", "a\n", "first");
    processes_.Start(getpid(), 777);  // this daemon, as the lease names it
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{Path("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
    source_ = std::make_unique<RepoSource>(runs_.get(), repo_);
    Result<std::unique_ptr<Waker>> w = Waker::Create(false);
    ASSERT_TRUE(w.ok());
    waker_ = std::move(*w);
    GitRunLocksDeps deps;
    deps.runs = runs_.get();
    deps.processes = &processes_;
    deps.clock = &clock_;
    deps.incarnation = 7;
    deps.host = kHost;
    deps.options.lease_ttl_s = 60;
    deps.options.lock_grace_s = 60;
    locks_ = std::make_unique<GitRunLocks>(deps);
    SchedulerOptions o;
    o.concurrency = 1;
    o.state_dir = Path("state");
    o.exec_shim = "/fake/wtd-exec";
    sched_ = std::make_unique<Scheduler>(runs_.get(), source_.get(), &launcher_, &clock_,
                                         waker_.get(), 7, o);
    sched_->SetRunLocks(locks_.get());
    Result<std::unique_ptr<locks::LockRefs>> refs = locks::LockRefs::Open(repo_);
    ASSERT_TRUE(refs.ok()) << refs.status().ToString();
    refs_ = std::move(*refs);
  }

  void Step() { sched_->Step(/*refs_changed=*/true); }
  wtd::Run Get(uint64_t id) {
    Result<wtd::Run> r = runs_->Get(id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : wtd::Run{};
  }
  locks::LockName Name() const { return {"main", "build", sha_}; }
  std::string LockRefsNow() { return Git(repo_, {"for-each-ref", "refs/wtd/locks"}); }
  std::optional<locks::LockOwner> RefOwner() {
    Result<locks::LockEntry> e = refs_->Read(Name());
    if (!e.ok()) return std::nullopt;
    return e->owner;
  }
  std::vector<Lease> Leases() {
    Result<std::vector<Lease>> l = runs_->ListLeases();
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : std::vector<Lease>{};
  }
  // A lock planted by another daemon of this host and boot.
  void PlantForeign(int32_t pid) {
    locks::LockOwner o;
    o.host = kHost;
    o.boot_id = "boot-A";
    o.pid = pid;
    o.pid_start_time = 5;
    o.incarnation = 1;
    o.run_id = 99;
    o.token = 1;
    o.acquired_at_ms = clock_.NowMs();
    o.expires_at_ms = clock_.NowMs() + 60'000;
    ASSERT_TRUE(refs_->Create(Name(), o).ok());
  }

  std::string repo_, sha_;
  FakeClock clock_;
  FakeProcessTable processes_;
  FakeLauncher launcher_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<RepoSource> source_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<GitRunLocks> locks_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<locks::LockRefs> refs_;
};

TEST_F(GitRunLocksTest, ARunHoldsItsLockWhileItRunsThenWritesItsReceiptAndReleases) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  EXPECT_TRUE(launcher_.started[0]->released);
  // The ref names the job before the job was released.
  std::optional<locks::LockOwner> owner = RefOwner();
  ASSERT_TRUE(owner.has_value()) << LockRefsNow();
  EXPECT_EQ(owner->run_id, 1u);
  EXPECT_EQ(owner->host, kHost);
  EXPECT_EQ(owner->pid, getpid());
  EXPECT_EQ(owner->job_pid, launcher_.started[0]->identity().pid);
  std::vector<Lease> held = Leases();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].fencing_token, owner->token);
  EXPECT_EQ(held[0].ref_blob, *locks::BlobIdOf(*owner));

  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
  std::string note = Git(repo_, {"notes", "--ref=wtd", "show", sha_});
  EXPECT_NE(note.find("\"state\":\"succeeded\""), std::string::npos) << note;
  EXPECT_NE(note.find("\"run_id\":1,"), std::string::npos) << note;
  EXPECT_EQ(note.find('\n'), std::string::npos) << "one receipt line: " << note;
}

TEST_F(GitRunLocksTest, ALockOfALiveOwnerMakesTheRunWaitWithoutAnAttemptUntilItsOwnerIsGone) {
  // Another daemon of this host: any pid but this process's, which the fake
  // table holds as this daemon's.
  const int32_t other = getpid() + 1;
  processes_.Start(other, 5);
  PlantForeign(other);
  source_->Add(sha_);
  Step();
  EXPECT_TRUE(launcher_.started.empty());
  wtd::Run waiting = Get(1);
  EXPECT_EQ(waiting.state, RunState::kRetryWait);
  EXPECT_EQ(waiting.attempt, 0u);
  EXPECT_EQ(waiting.lock_waits, 1u);
  EXPECT_NE(waiting.error.find("pid " + std::to_string(other)), std::string::npos) << waiting.error;
  EXPECT_TRUE(Leases().empty());
  EXPECT_EQ(RefOwner()->pid, other) << "the holder's ref is untouched";

  // Still alive after the backoff: waits again.
  clock_.SetMs(waiting.not_before_ms);
  Step();
  Step();
  EXPECT_TRUE(launcher_.started.empty());
  EXPECT_EQ(Get(1).lock_waits, 2u);

  // The holder dies: its lock is stale, reaped, and the run happens once.
  processes_.Exit(other);
  clock_.SetMs(Get(1).not_before_ms);
  Step();
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  EXPECT_EQ(RefOwner()->run_id, 1u);
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_EQ(Get(1).attempt, 1u);
  EXPECT_EQ(LockRefsNow(), "");
}

TEST_F(GitRunLocksTest, AnotherOwnersReceiptSkipsTheRunAndNothingIsLaunched) {
  locks::Receipt theirs;
  theirs.worktree = "main";
  theirs.job = "build";
  theirs.state = "succeeded";
  theirs.exit_code = 0;
  theirs.attempt = 1;
  theirs.run_id = 55;
  theirs.host = "other-host";
  theirs.finished_at_ms = clock_.NowMs();
  ASSERT_TRUE(locks::AppendReceiptIfFirst(*refs_, locks::kDefaultNotesRef, sha_, theirs).ok());
  source_->Add(sha_);
  Step();
  EXPECT_TRUE(launcher_.started.empty());
  wtd::Run skipped = Get(1);
  EXPECT_EQ(skipped.state, RunState::kSkipped);
  EXPECT_EQ(skipped.error, "done by other-host run 55");
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
}

TEST_F(GitRunLocksTest, RenewalMovesTheExpiryInTheRowAndTheBlob) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  int64_t first = RefOwner()->expires_at_ms;
  clock_.AdvanceMs(20'000);  // a third of the TTL
  Step();
  std::optional<locks::LockOwner> owner = RefOwner();
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->expires_at_ms, first + 20'000);
  EXPECT_EQ(owner->job_pid, launcher_.started[0]->identity().pid);
  std::vector<Lease> held = Leases();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].expires_at_ms, owner->expires_at_ms);
  EXPECT_EQ(held[0].ref_blob, *locks::BlobIdOf(*owner));
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
}

TEST_F(GitRunLocksTest, ALostLockStopsTheJobAndRecordsTheAttemptInterrupted) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  // Someone reaped it (and may hold it now).
  Git(repo_, {"update-ref", "-d", "refs/wtd/locks/main/build/" + sha_});
  clock_.AdvanceMs(20'000);
  Step();
  EXPECT_TRUE(launcher_.started[0]->terminated);
  Step();
  // The attempt was recorded interrupted (retried at once) and its lease
  // released; the next attempt holds a fresh lock.
  EXPECT_EQ(Git(repo_, {"notes", "--ref=wtd", "list"}), "") << "no receipt for an interrupted run";
  ASSERT_EQ(launcher_.started.size(), 2u);
  wtd::Run r = Get(1);
  EXPECT_EQ(r.attempt, 2u);
  std::optional<locks::LockOwner> owner = RefOwner();
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->job_pid, launcher_.started[1]->identity().pid);
  std::vector<Lease> held = Leases();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].fencing_token, owner->token);
}

TEST_F(GitRunLocksTest, AReleaseThatFailedIsFinishedBeforeTheNextAttempt) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  // A leftover ref lock file: git refuses to delete the ref meanwhile.
  std::string ref_lock = repo_ + "/.git/refs/wtd/locks/main/build/" + sha_ + ".lock";
  WriteFile(ref_lock, "");
  launcher_.started[0]->Exit(1);
  Step();
  wtd::Run failed = Get(1);
  ASSERT_EQ(failed.state, RunState::kRetryWait);
  std::vector<Lease> left = Leases();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].state, LeaseState::kReleasing);
  EXPECT_NE(LockRefsNow(), "");

  ASSERT_EQ(std::remove(ref_lock.c_str()), 0);
  clock_.SetMs(failed.not_before_ms);
  Step();
  Step();
  ASSERT_EQ(launcher_.started.size(), 2u) << Get(1).error;
  EXPECT_EQ(Get(1).attempt, 2u);
  std::vector<Lease> held = Leases();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].state, LeaseState::kHeld);
  EXPECT_EQ(RefOwner()->token, held[0].fencing_token);
  launcher_.started[1]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
}

TEST_F(GitRunLocksTest, AReceiptOfAnotherStoreWithTheSameHostAndRunIdIsNotTakenForOurs) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  // Another daemon of this host, its own store numbering runs from 1 too,
  // wrote first (it reaped this lock as stale, say).
  locks::Receipt theirs;
  theirs.worktree = "main";
  theirs.job = "build";
  theirs.state = "succeeded";
  theirs.exit_code = 0;
  theirs.attempt = 1;
  theirs.run_id = 1;
  theirs.host = kHost;
  theirs.pid = 4343;
  theirs.store = "0123456789abcdef0123456789abcdef";
  theirs.finished_at_ms = clock_.NowMs();
  ASSERT_TRUE(locks::AppendReceiptIfFirst(*refs_, locks::kDefaultNotesRef, sha_, theirs).ok());
  launcher_.started[0]->Exit(0);
  Step();
  wtd::Run skipped = Get(1);
  EXPECT_EQ(skipped.state, RunState::kSkipped);
  EXPECT_EQ(skipped.error, std::string("done by ") + kHost + " pid 4343 run 1");
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
}

TEST_F(GitRunLocksTest, OurReceiptNamesThisDaemonsPidAndStore) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  Result<std::optional<locks::Receipt>> mine =
      locks::FindReceipt(*refs_, locks::kDefaultNotesRef, sha_, "main", "build");
  ASSERT_TRUE(mine.ok() && mine->has_value()) << mine.status().ToString();
  EXPECT_EQ((*mine)->pid, getpid());
  EXPECT_EQ((*mine)->store, store_->store_id());
  EXPECT_EQ((*mine)->store.size(), 32u);
}

TEST_F(GitRunLocksTest, AReceiptThatCannotBeWrittenYetIsRetriedUntilTheRunFinishes) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  // A fresh lock file on the notes ref: another writer, as far as anyone
  // can tell.
  std::string notes_lock = repo_ + "/.git/refs/notes/wtd.lock";
  WriteFile(notes_lock, "");
  launcher_.started[0]->Exit(0);
  Step();
  wtd::Run waiting = Get(1);
  EXPECT_EQ(waiting.state, RunState::kFinishing);
  EXPECT_EQ(waiting.finish_state, RunState::kSucceeded);
  EXPECT_NE(LockRefsNow(), "") << "the lock is kept until the receipt is in";
  EXPECT_LE(locks_->NextRenewalMs(), 1'000);

  ASSERT_EQ(std::remove(notes_lock.c_str()), 0);
  clock_.AdvanceMs(1'000);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  EXPECT_TRUE(
      locks::FindReceipt(*refs_, locks::kDefaultNotesRef, sha_, "main", "build")->has_value());
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
  EXPECT_EQ(locks_->NextRenewalMs(), -1);
}

TEST_F(GitRunLocksTest, ARefThatCannotBeDeletedYetIsReleasedByARetry) {
  source_->Add(sha_);
  Step();
  ASSERT_EQ(launcher_.started.size(), 1u);
  std::string ref_lock = repo_ + "/.git/refs/wtd/locks/main/build/" + sha_ + ".lock";
  WriteFile(ref_lock, "");
  launcher_.started[0]->Exit(0);
  Step();
  EXPECT_EQ(Get(1).state, RunState::kSucceeded);
  ASSERT_EQ(Leases().size(), 1u);
  EXPECT_EQ(Leases()[0].state, LeaseState::kReleasing);

  ASSERT_EQ(std::remove(ref_lock.c_str()), 0);
  clock_.AdvanceMs(1'000);
  Step();
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
}

TEST_F(GitRunLocksTest, ARunWhoseLockNameGivesNoValidRefIsCancelledWithoutAnAttempt) {
  source_->Add(sha_, "bad..job");
  Step();
  EXPECT_TRUE(launcher_.started.empty());
  wtd::Run r = Get(1);
  EXPECT_EQ(r.state, RunState::kCancelled);
  EXPECT_EQ(r.attempt, 0u);
  EXPECT_NE(r.error.find("no valid lock ref"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("bad..job"), std::string::npos) << r.error;
  EXPECT_EQ(LockRefsNow(), "");
  EXPECT_TRUE(Leases().empty());
}

}  // namespace
}  // namespace wtd
